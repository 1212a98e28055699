package state

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

func TestCIXListsCanonicalUniqueAndSnapshotted(t *testing.T) {
	f, _ := ipamFixture(t)
	add := func(table, cidr string) (*api.CIXListEntry, error) {
		var out *api.CIXListEntry
		err := f.do(func(t *Txn) (err error) { out, err = t.CIXEntryCreate(table, &api.CIXListEntry{CIDR: cidr}); return })
		return out, err
	}
	e, err := add(CIXBlacklist, "10.1.2.3/8")
	if err != nil || e.CIDR != "10.0.0.0/8" {
		t.Fatalf("create: %+v %v", e, err)
	}
	if e, err := add(CIXBlacklist, "::ffff:192.0.2.1"); err != nil || e.CIDR != "192.0.2.1/32" {
		t.Fatalf("mapped address: %+v %v", e, err)
	}
	_, err = add(CIXBlacklist, "10.9.0.0/8")
	wantErr(t, "duplicate", err, http.StatusBadRequest, "cidr", "ipam_cix_blacklist_create_103")
	_, err = add(CIXBlacklist, "10.0.0.0/33")
	wantErr(t, "/33", err, http.StatusBadRequest, "cidr", "ipam_cix_blacklist_create_101")
	if _, err := add(CIXWhitelist, "10.0.0.0/8"); err != nil {
		t.Fatalf("the whitelist is a separate list: %v", err)
	}
	if got, ok := f.s.Read().CIXEntryByCIDR(CIXBlacklist, "10.200.0.0/8"); !ok || got.ID != e.ID {
		t.Fatalf("by CIDR: %+v %v", got, ok)
	}
	if _, ok := f.s.Read().CIXEntryByCIDR(CIXBlacklist, "10.200.0.0/16"); ok {
		t.Fatal("a CIDR inside an entry is not the entry")
	}

	snap := f.snapshot()
	s2 := New()
	if err := s2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if len(s2.Read().CIXList(CIXBlacklist)) != 2 || len(s2.Read().CIXList(CIXWhitelist)) != 1 {
		t.Fatalf("restored lists: %v %v", s2.Read().CIXList(CIXBlacklist), s2.Read().CIXList(CIXWhitelist))
	}
	if _, ok := s2.Read().CIXEntryByCIDR(CIXBlacklist, "10.0.0.0/8"); !ok {
		t.Fatal("the cidr index is not rebuilt on restore")
	}

	f.ok("delete", func(t *Txn) error { return t.CIXEntryDelete(CIXBlacklist, e.ID) })
	err = f.do(func(t *Txn) error { return t.CIXEntryDelete(CIXBlacklist, e.ID) })
	wantErr(t, "delete twice", err, http.StatusNotFound, "", "ipam_cix_blacklist_delete_001")
}

func TestASNUpdateRules(t *testing.T) {
	f, m := ipamFixture(t)
	other := f.member("other")
	var a, b *api.ASN
	f.ok("asn", func(t *Txn) (err error) { a, err = t.ASNCreate(&api.ASN{MemberID: m.ID, Number: 65001}); return })
	f.ok("asn", func(t *Txn) (err error) { b, err = t.ASNCreate(&api.ASN{MemberID: m.ID, Number: 65002}); return })
	f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectCloudCIX, CIDR: "10.0.0.0/24", ASNID: a.ID})
	upd := func(n api.ASN) error {
		return f.do(func(t *Txn) error { _, err := t.ASNUpdate(&n, 0); return err })
	}
	wantErr(t, "move with allocations", upd(api.ASN{Meta: a.Meta, MemberID: other.ID, Number: 65001}), http.StatusBadRequest, "member_id", "ipam_asn_update_104")
	wantErr(t, "number taken", upd(api.ASN{Meta: a.Meta, MemberID: m.ID, Number: 65002}), http.StatusBadRequest, "number", "ipam_asn_update_103")
	if err := upd(api.ASN{Meta: b.Meta, MemberID: other.ID, Number: 65003}); err != nil {
		t.Fatalf("move an empty ASN: %v", err)
	}
	if got, _ := f.s.Read().ASN(b.ID); got.MemberID != other.ID || got.Number != 65003 || got.CreatedIndex != b.CreatedIndex {
		t.Fatalf("updated ASN %+v", got)
	}
	err := f.do(func(t *Txn) error {
		_, err := t.ASNUpdate(&api.ASN{Meta: a.Meta, MemberID: m.ID, Number: 65009}, a.ModifiedIndex+1)
		return err
	})
	wantErr(t, "stale expect", err, http.StatusConflict, "", "ipam_asn_update_002")
}

// FuzzCanonicalCIDR: canonicalisation is idempotent, never panics and
// yields at most 49 characters with the host bits clear.
func FuzzCanonicalCIDR(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.1.2.3/8", "192.0.2.1", "::ffff:10.0.0.1/104", "2001:db8::1/32", "10.0.0.0/33", "10.0.0.0/-1", "fe80::1%eth0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := CanonicalCIDR(s)
		if !ok {
			return
		}
		if p != p.Masked() || len(p.String()) > 49 {
			t.Fatalf("%q → %s: not canonical", s, p)
		}
		q, ok := CanonicalCIDR(p.String())
		if !ok || q != p {
			t.Fatalf("%q → %s → %v %v: not idempotent", s, p, q, ok)
		}
	})
}
