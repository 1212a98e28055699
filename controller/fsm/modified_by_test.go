package fsm_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// byUser encodes a command of user (0: a command without a user, as the
// leader's own duties are).
func byUser(t *testing.T, typ fsm.MessageType, user uint64, payload any) []byte {
	t.Helper()
	c, err := fsm.NewCommand(typ, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), fsm.Actor{UserID: user, TokenID: user}, payload)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func modifiedBy(m api.Modified) string {
	if m.ModifiedBy == nil {
		return "null"
	}
	b, _ := json.Marshal(*m.ModifiedBy)
	return string(b)
}

// TestModifiedByFromCommand: modified_by is the user of the command that
// last created or changed an object (null for a command without one), on
// direct writes and on side effects, whatever the payload says; replaying
// the same log on another FSM gives the same values.
func TestModifiedByFromCommand(t *testing.T) {
	var log []*raft.Log
	add := func(data []byte) {
		log = append(log, &raft.Log{Index: uint64(len(log) + 1), Type: raft.LogCommand, Data: data})
	}
	hash := "00"
	add(byUser(t, fsm.BootstrapType, 0, fsm.BootstrapPayload{MemberName: "CIX", Username: "root",
		Token: &state.TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_abcd"}, Hash: hash}}))
	add(byUser(t, fsm.ASNCreateType, 1, &api.ASN{MemberID: 1, Number: 64512}))                                          // ASN 1
	add(byUser(t, fsm.IPBlockCreateType, 7, &api.IPBlock{MemberID: 1, Dialect: api.DialectCloudCIX, CIDR: "10.0.0.0/8", // block 1
		ASNID: 1, Name: "alloc"}))
	add(byUser(t, fsm.IPBlockCreateType, 7, &api.IPBlock{Dialect: api.DialectCloudCIX, CIDR: "10.1.0.0/24", // block 2
		Gateway: "10.1.0.1", ParentID: 1}))
	forged := uint64(42)
	add(byUser(t, fsm.IPAddressAllocateType, 9, &api.IPAddress{BlockID: 2, Modified: api.Modified{ModifiedBy: &forged}})) // address 1
	add(byUser(t, fsm.DomainCreateType, 7, &api.Domain{MemberID: 1, Name: "example.com",
		Modified: api.Modified{ModifiedBy: &forged}})) // domain 1
	add(byUser(t, fsm.CIXBlacklistCreateType, 9, &api.CIXListEntry{CIDR: "192.0.2.0/24"}))
	// One coalesced entry, two users: each command stamps its own.
	add(fsm.EncodeBatch([][]byte{
		byUser(t, fsm.RecordCreateType, 11, &api.Record{DomainID: 1, MemberID: 1, Name: "a.example.com", Type: "A",
			Content: "192.0.2.1", TTL: 3600, Priority: 1}),
		byUser(t, fsm.RecordCreateType, 12, &api.Record{DomainID: 1, MemberID: 1, Name: "b.example.com", Type: "A",
			Content: "192.0.2.2", TTL: 3600, Priority: 1}),
	}))
	// A PTR record creates its reverse zone for its user.
	add(byUser(t, fsm.PTRCreateType, 13, fsm.PTRPayload{Record: &api.Record{Name: "1.0.1.10.in-addr.arpa", Type: "PTR",
		Content: "host.example.com", TTL: 3600, Priority: 1, IPAddress: "10.1.0.1", MemberID: 1}, AnyOwner: true}))

	// Updates: the allocation by user 8, the address by no user.
	f, _ := applyAll(t, log)
	rt := f.Store().Read()
	blk, _ := rt.IPBlock(1)
	upd := *blk
	upd.Name = "renamed"
	add(byUser(t, fsm.IPBlockUpdateType, 8, &upd))
	ip, _ := rt.IPAddress(1)
	ipUpd := *ip
	ipUpd.Name = "by the region"
	add(byUser(t, fsm.IPAddressUpdateType, 0, &ipUpd))

	a, snapA := applyAll(t, log)
	b, snapB := applyAll(t, log)
	if !bytes.Equal(snapA, snapB) {
		t.Fatal("two FSMs fed the same log differ")
	}
	for _, f := range []*fsm.FSM{a, b} {
		r := f.Store().Read()
		alloc, _ := r.IPBlock(1)
		sub, _ := r.IPBlock(2)
		addr, _ := r.IPAddress(1)
		dom, _ := r.Domain(1)
		cix := r.CIXList(state.CIXBlacklist)
		got := map[string]string{
			"allocation": modifiedBy(alloc.Modified),
			"subnet":     modifiedBy(sub.Modified),
			"address":    modifiedBy(addr.Modified),
			"domain":     modifiedBy(dom.Modified),
			"cix":        modifiedBy(cix[0].Modified),
		}
		want := map[string]string{"allocation": "8", "subnet": "7", "address": "null", "domain": "7", "cix": "9",
			"a.example.com": "11", "b.example.com": "12", "1.0.1.10.in-addr.arpa": "13", "reverse zone": "13"}
		for _, rec := range r.DomainRecords(1) {
			got[rec.Name] = modifiedBy(rec.Modified)
		}
		ptr, ok := r.PTRFor("10.1.0.1")
		if !ok {
			t.Fatal("no PTR record")
		}
		got[ptr.Name] = modifiedBy(ptr.Modified)
		if zone, ok := r.Domain(ptr.DomainID); ok && zone.ID != 1 {
			got["reverse zone"] = modifiedBy(zone.Modified)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: modified_by %s, want %s", k, got[k], v)
			}
		}
		if js, _ := json.Marshal(addr); !bytes.Contains(js, []byte(`"modified_by":null`)) {
			t.Errorf("address without a writer renders %s", js)
		}
	}
}

// applyAll applies log to a fresh FSM (batch entries included) and returns
// it with its snapshot.
func applyAll(t *testing.T, log []*raft.Log) (*fsm.FSM, []byte) {
	t.Helper()
	f := newFSM()
	for _, l := range log {
		c := *l
		c.Data = bytes.Clone(l.Data)
		out := f.ApplyBatch([]*raft.Log{&c})[0]
		if r, ok := out.(fsm.Result); ok && r.Err != nil {
			t.Fatalf("entry %d: %v", l.Index, r.Err)
		}
		if rs, ok := out.([]any); ok {
			for i, x := range rs {
				if r, ok := x.(fsm.Result); ok && r.Err != nil {
					t.Fatalf("entry %d command %d: %v", l.Index, i, r.Err)
				}
			}
		}
	}
	return f, persist(t, f)
}
