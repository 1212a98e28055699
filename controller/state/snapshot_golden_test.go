package state

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// goldenState is the state of testdata/snapshot-v1.golden: the scale
// fixture at a small size (members, users, tokens, ASNs, CloudCIX
// allocations and subnets, Melange blocks, addresses), one address
// released (soft-deallocated), and DNS settings.
func goldenState(t *testing.T) *Store {
	s := scaleState(t, 8, 3)
	tx := s.Write(2, t0.Add(time.Minute))
	a := s.Read().IPAddressListAll()[4]
	if _, err := tx.IPAddressRelease(IPRef{ID: a.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.DNSSettingsSet(&DNSSettings{NS: []string{"ns1.example.net."}, SetBy: "c1"}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	return s
}

// TestSnapshotGoldenV1: a snapshot written by the code of commit a212e97
// (testdata/snapshot-v1.golden, goldenState persisted; REGENT_UPDATE_GOLDEN=1
// rewrites it, which only the commit that changes the format may do, keeping
// the old file) still validates and restores, rebuilds the IPAM engines
// (the next address of a subnet is the one after its last), and persists to
// the same bytes; and goldenState persists to those bytes too.
func TestSnapshotGoldenV1(t *testing.T) {
	const path = "testdata/snapshot-v1.golden"
	if os.Getenv("REGENT_UPDATE_GOLDEN") == "1" {
		var buf bytes.Buffer
		if err := goldenState(t).Read().Persist(&buf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := Validate(bytes.NewReader(golden)); err != nil || idx != 2 {
		t.Fatalf("Validate: %d, %v; want 2, nil", idx, err)
	}
	s := New()
	if err := s.Restore(bytes.NewReader(golden)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	var again bytes.Buffer
	if err := s.Read().Persist(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, again.Bytes()) {
		t.Error("the restored golden snapshot persists to other bytes")
	}
	var fresh bytes.Buffer
	if err := goldenState(t).Read().Persist(&fresh); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, fresh.Bytes()) {
		t.Error("goldenState persists to other bytes than the golden snapshot")
	}
	r := s.Read()
	if n := len(r.IPAddressListAll()); n != 24 {
		t.Errorf("%d addresses restored, want 24", n)
	}
	released := 0
	for _, a := range r.IPAddressListAll() {
		if a.Deallocated {
			released++
		}
	}
	if released != 1 {
		t.Errorf("%d released addresses restored, want 1", released)
	}
	// The engines were rebuilt: subnet 10.0.0.0/24 has .2, .3, .4 (the
	// gateway is .1), so the next address is .5.
	var subnet uint64
	for _, b := range r.IPBlockList() {
		if b.CIDR == "10.0.0.0/24" {
			subnet = b.ID
		}
	}
	tx := s.Write(3, t0.Add(2*time.Minute))
	defer tx.Abort()
	a, err := tx.IPAddressCreate(&api.IPAddress{BlockID: subnet})
	if err != nil {
		t.Fatal(err)
	}
	if a.Address != "10.0.0.5" {
		t.Errorf("next address after restore: %s, want 10.0.0.5", a.Address)
	}
}
