package state

import (
	"bytes"
	"testing"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/pkg/api"
)

// The cached-position indexers give memdb's keys and errors.
func TestFieldIndexersMatchMemdb(t *testing.T) {
	name := "Ab"
	type withPtr struct {
		api.Meta
		P *string
		N uint16
	}
	objs := []any{
		&api.Member{Meta: api.Meta{ID: 7}, Name: "CIX"},
		&api.User{Meta: api.Meta{ID: 1 << 40}, MemberID: 3, Username: "Root"},
		&withPtr{Meta: api.Meta{ID: 1}, P: &name, N: 513},
		&withPtr{},
		api.Member{Name: ""},
	}
	uints := []string{"ID", "MemberID", "N", "Name", "Missing"}
	strs := []string{"Name", "Username", "P", "ID", "Missing"}
	for _, o := range objs {
		for _, f := range uints {
			ok1, k1, err1 := uintFieldIndex(f).FromObject(o)
			ok2, k2, err2 := (&memdb.UintFieldIndex{Field: f}).FromObject(o)
			if ok1 != ok2 || !bytes.Equal(k1, k2) || (err1 == nil) != (err2 == nil) {
				t.Errorf("uint %s of %T: %v %x %v, memdb %v %x %v", f, o, ok1, k1, err1, ok2, k2, err2)
			}
		}
		for _, f := range strs {
			for _, lower := range []bool{false, true} {
				ok1, k1, err1 := stringFieldIndex(f, lower).FromObject(o)
				ok2, k2, err2 := (&memdb.StringFieldIndex{Field: f, Lowercase: lower}).FromObject(o)
				if ok1 != ok2 || !bytes.Equal(k1, k2) || (err1 == nil) != (err2 == nil) {
					t.Errorf("string %s (lower %v) of %T: %v %q %v, memdb %v %q %v", f, lower, o, ok1, k1, err1, ok2, k2, err2)
				}
			}
		}
	}
	// One indexer sees objects of several types (as memdb never does, but
	// the cache must not mix them up).
	ix := uintFieldIndex("ID")
	for i, o := range []any{&api.Member{Meta: api.Meta{ID: 5}}, &withPtr{Meta: api.Meta{ID: 6}}, &api.Member{Meta: api.Meta{ID: 7}}} {
		_, k, _ := ix.FromObject(o)
		if k[7] != byte(5+i) {
			t.Errorf("object %d: key %x", i, k)
		}
	}
}

// TestOptionalRefIndex: the addresses' public_ip index is an optional
// reference: 0 is no value, so the row stays out of the index; any other
// value is indexed as uintFieldIndex does.
func TestOptionalRefIndex(t *testing.T) {
	ix := schema().Tables[IPAddresses].Indexes["public_ip"]
	if !ix.AllowMissing {
		t.Fatal("an optional reference index must allow missing values")
	}
	single := ix.Indexer.(memdb.SingleIndexer)
	if ok, key, err := single.FromObject(&api.IPAddress{}); ok || key != nil || err != nil {
		t.Errorf("no reference: indexed=%v key=%x err=%v, want left out", ok, key, err)
	}
	ok, key, err := single.FromObject(&api.IPAddress{PublicIPID: 5})
	_, want, _ := uintFieldIndex("PublicIPID").FromObject(&api.IPAddress{PublicIPID: 5})
	if !ok || err != nil || !bytes.Equal(key, want) {
		t.Errorf("reference 5: indexed=%v key=%x err=%v, want %x", ok, key, err, want)
	}
}
