package state

import (
	"bytes"
	"testing"
)

// TestDNSSettingsSet: the first settings and every change are stored with
// the raft index of the change (which becomes every zone's serial); the
// same settings again change nothing; they survive a snapshot.
func TestDNSSettingsSet(t *testing.T) {
	f := newFixture(t)
	if _, ok := f.s.Read().DNSSettings(); ok {
		t.Fatal("a new store has DNS settings")
	}
	set := func(ns []string, hm, by string) {
		t.Helper()
		f.ok("set", func(t *Txn) error {
			_, err := t.DNSSettingsSet(&DNSSettings{NS: ns, Hostmaster: hm, SetBy: by})
			return err
		})
	}
	check := func(index uint64, ns0, by string) {
		t.Helper()
		r := f.s.Read()
		s, ok := r.DNSSettings()
		if !ok || s.Index != index || s.NS[0] != ns0 || s.SetBy != by {
			t.Fatalf("settings = %+v, want index %d, ns %s, set by %s", s, index, ns0, by)
		}
		if got := r.TableIndex(DNSSettingsTable); got != index {
			t.Fatalf("table index %d, want %d", got, index)
		}
	}
	set([]string{"ns1.example.net.", "ns2.example.net."}, "hostmaster.example.net.", "c1")
	check(1, "ns1.example.net.", "c1")
	set([]string{"ns1.example.net.", "ns2.example.net."}, "hostmaster.example.net.", "c2")
	check(1, "ns1.example.net.", "c1") // same apex: no change, no new serial
	set([]string{"ns1.example.net.", "ns2.example.net."}, "dns.example.net.", "c2")
	check(3, "ns1.example.net.", "c2")
	set([]string{"a.example.org."}, "dns.example.net.", "c3")
	check(4, "a.example.org.", "c3")

	var buf bytes.Buffer
	if err := f.s.Read().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	other := New()
	if err := other.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	s, ok := other.Read().DNSSettings()
	if !ok || s.Index != 4 || len(s.NS) != 1 || s.Hostmaster != "dns.example.net." {
		t.Fatalf("restored settings = %+v", s)
	}
}
