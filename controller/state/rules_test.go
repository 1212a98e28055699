package state

import (
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

// TestRulesOfTheCommand: a command is applied under the rules it was made
// under. Replaying an entry made before Rules1 (a follower catching up, a
// node restarted after the upgrade) gives what it gave then, so every node
// holds the same state whichever binary first applied it; the same command
// made now follows the new rules.
func TestRulesOfTheCommand(t *testing.T) {
	under := func(rules uint32) (deleted bool, dup bool) {
		f := newFixture(t)
		f.bootstrap()
		m := f.member("acme")
		var d *api.Domain
		f.ok("domain", func(t *Txn) (err error) {
			d, err = t.DomainCreate(&api.Domain{MemberID: m.ID, Name: "acme.example"})
			return
		})
		f.ok("txt", func(t *Txn) error {
			_, err := t.RecordCreate(&api.Record{DomainID: d.ID, MemberID: m.ID, Name: "acme.example", Type: "TXT", Content: "Token", TTL: 3600})
			return err
		})
		dupErr := f.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.RecordCreate(&api.Record{DomainID: d.ID, MemberID: m.ID, Name: "acme.example", Type: "TXT", Content: "token", TTL: 3600})
			return err
		})
		delErr := f.do(func(t *Txn) error {
			t.Rules = rules
			return t.MemberDelete(m.ID)
		})
		return delErr == nil, dupErr != nil
	}
	if deleted, dup := under(RulesOriginal); !deleted || !dup {
		t.Errorf("under the original rules: member deleted %v (want true), TXT differing in case refused %v (want true)", deleted, dup)
	}
	if deleted, dup := under(Rules1); deleted || dup {
		t.Errorf("under Rules1: member deleted %v (want false), TXT differing in case refused %v (want false)", deleted, dup)
	}
}

// TestMemberDeleteKeepsMelangeTenants: from Rules2 a member that is the
// Melange tenant of an interface, or of an address in another member's
// block (used_by_tenant), cannot be deleted: 400
// membership_member_delete_107, and nothing changes. Before, it was, and a
// replayed entry still is.
func TestMemberDeleteKeepsMelangeTenants(t *testing.T) {
	for _, what := range []string{"interface", "address", "released address"} {
		under := func(rules uint32) error {
			f := newFixture(t)
			f.bootstrap()
			m := f.member("acme")
			switch what {
			case "interface":
				if _, err := f.iface(api.Interface{VIF: "vif-1", TenantID: tenantOf(m)}, nil); err != nil {
					t.Fatal(err)
				}
			case "address", "released address":
				b := f.block(&api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/24"})
				f.ok("address", func(t *Txn) error {
					a, err := t.AllocateNext(b.ID, &api.IPAddress{UsedByTenant: tenantOf(m)})
					if err == nil && what == "released address" {
						// kept (with its tenant) until the purge: the
						// caller could not remove it, so it does not count
						_, err = t.IPAddressRelease(IPRef{ID: a.ID})
					}
					return err
				})
			}
			err := f.do(func(t *Txn) error {
				t.Rules = rules
				return t.MemberDelete(m.ID)
			})
			if _, ok := f.s.Read().Member(m.ID); ok == (err == nil) {
				t.Errorf("%s, rules %d: delete gave %v, yet the member exists: %v", what, rules, err, ok)
			}
			return err
		}
		for _, old := range []uint32{RulesOriginal, Rules1} {
			if err := under(old); err != nil {
				t.Errorf("the tenant of an %s under rules %d: %v, want deleted as it was", what, old, err)
			}
		}
		if what == "released address" {
			if err := under(Rules2); err != nil {
				t.Errorf("the tenant of a released address under Rules2: %v, want deleted", err)
			}
			continue
		}
		wantErr(t, "the tenant of an "+what+" under Rules2", under(Rules2), 400, "", "membership_member_delete_107")
	}
}

// TestReleasedAddressOfADeletedTenant: a released address does not keep
// its Melange tenant member from being deleted; from Rules3 it is then not
// restored (409 ipam_ip_address_restore_101, the address stays released),
// as it would be allocated again to a member that is gone. A restore made
// before Rules3 replays as it applied, and a live tenant's address is
// restored under any rules.
func TestReleasedAddressOfADeletedTenant(t *testing.T) {
	under := func(rules uint32, deleteTenant bool) (*api.IPAddress, error) {
		f := newFixture(t)
		f.bootstrap()
		m := f.member("acme")
		b := f.block(&api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/24"})
		var a *api.IPAddress
		f.ok("address", func(t *Txn) (err error) {
			if a, err = t.AllocateNext(b.ID, &api.IPAddress{UsedByTenant: tenantOf(m)}); err == nil {
				_, err = t.IPAddressRelease(IPRef{ID: a.ID})
			}
			return err
		})
		if deleteTenant {
			f.ok("member delete", func(t *Txn) error { return t.MemberDelete(m.ID) })
		}
		err := f.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.IPAddressRestore(IPRef{ID: a.ID})
			return err
		})
		got, _ := f.s.Read().IPAddress(a.ID)
		return got, err
	}
	for _, old := range []uint32{RulesOriginal, Rules2} {
		if a, err := under(old, true); err != nil || a.Deallocated {
			t.Errorf("rules %d: restore of a deleted tenant's address gave %v (released %v), want restored as it was", old, err, a.Deallocated)
		}
	}
	a, err := under(Rules3, true)
	wantErr(t, "restore of a deleted tenant's address under Rules3", err, 409, "", "ipam_ip_address_restore_101")
	if !a.Deallocated {
		t.Error("the refused restore changed the address: it is allocated")
	}
	if a, err := under(Rules3, false); err != nil || a.Deallocated {
		t.Errorf("restore of a live tenant's address under Rules3: %v (released %v)", err, a.Deallocated)
	}
}

// TestRegionDeleteKeepsRegionImages: from Rules2 a region that offers an
// image cannot be deleted: 400 membership_region_delete_103, and nothing
// changes. Before, it was (leaving region images of no region), and a
// replayed entry still is.
func TestRegionDeleteKeepsRegionImages(t *testing.T) {
	under := func(rules uint32) error {
		f := newFixture(t)
		f.bootstrap()
		var reg *api.Region
		f.ok("region", func(t *Txn) (err error) { reg, err = t.RegionCreate(&api.Region{Name: "r1"}); return })
		f.ok("region image", func(t *Txn) error {
			img, err := t.ImageCreate(&api.Image{DisplayName: "Alma", ServerTypeID: api.ServerTypeKVM})
			if err != nil {
				return err
			}
			_, err = t.RegionImageCreate(&api.RegionImage{RegionID: reg.ID, ImageID: img.ID})
			return err
		})
		err := f.do(func(t *Txn) error {
			t.Rules = rules
			return t.RegionDelete(reg.ID)
		})
		if _, ok := f.s.Read().Region(reg.ID); ok == (err == nil) {
			t.Errorf("rules %d: delete gave %v, yet the region exists: %v", rules, err, ok)
		}
		return err
	}
	for _, old := range []uint32{RulesOriginal, Rules1} {
		if err := under(old); err != nil {
			t.Errorf("a region with an image under rules %d: %v, want deleted as it was", old, err)
		}
	}
	wantErr(t, "a region with an image under Rules2", under(Rules2), 400, "", "membership_region_delete_103")
}
