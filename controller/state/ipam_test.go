package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/ipam"
	"github.com/regentcloud/regent/pkg/api"
)

func (f *fixture) block(b *api.IPBlock) *api.IPBlock {
	f.t.Helper()
	var out *api.IPBlock
	f.ok("create block "+b.CIDR, func(t *Txn) (err error) { out, err = t.IPBlockCreate(b); return })
	return out
}

func (f *fixture) alloc(block uint64, addr string) (*api.IPAddress, error) {
	var out *api.IPAddress
	err := f.do(func(t *Txn) (err error) {
		out, err = t.IPAddressCreate(&api.IPAddress{BlockID: block, Address: addr})
		return
	})
	return out, err
}

func (f *fixture) mustAlloc(block uint64, addr string) string {
	f.t.Helper()
	a, err := f.alloc(block, addr)
	if err != nil {
		f.t.Fatalf("allocate %q in block %d: %v", addr, block, err)
	}
	return a.Address
}

func ipamFixture(t *testing.T) (*fixture, *api.Member) {
	f := newFixture(t)
	f.bootstrap()
	return f, f.member("acme")
}

func TestIPBlockCreateRules(t *testing.T) {
	f, m := ipamFixture(t)
	mel := func(cidr string) *api.IPBlock {
		return &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: cidr}
	}
	root := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.1/16", Type: api.BlockPublic, NetworkID: "n1"})
	if root.CIDR != "10.0.0.0/16" || root.Generator != api.GeneratorSequential || root.CreatedIndex == 0 {
		t.Fatalf("root not normalised: %+v", root)
	}
	cases := []struct {
		name  string
		b     *api.IPBlock
		field string
		code  string
	}{
		{"bad cidr", mel("10.../8"), "cidr", "ipam_block_create_102"},
		{"bad type", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "11.0.0.0/8", Type: "weird"}, "type", "ipam_block_create_103"},
		{"bad dialect", &api.IPBlock{MemberID: m.ID, Dialect: "x", CIDR: "11.0.0.0/8"}, "dialect", "ipam_block_create_104"},
		{"no member", &api.IPBlock{MemberID: 99, Dialect: api.DialectMelange, CIDR: "11.0.0.0/8"}, "member_id", "ipam_block_create_101"},
		{"bad gateway", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "11.0.0.0/8", Gateway: "::1"}, "gateway", "ipam_block_create_106"},
		{"v6 generator on v4", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "11.0.0.0/8", Generator: api.GeneratorEUI64}, "generator", "ipam_block_create_105"},
		{"no policy", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "11.0.0.0/8", PolicyID: 7}, "policy_id", "ipam_block_create_111"},
		{"public overlap", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.5.0/24", Type: api.BlockPublic}, "cidr", "ipam_block_create_113"},
		{"network overlap", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.5.0/24", Type: api.BlockPublic, NetworkID: "n1"}, "cidr", "ipam_block_create_113"},
		{"type within network", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "12.0.0.0/8", Type: api.BlockPrivate, NetworkID: "n1"}, "type", "ipam_block_create_112"},
		{"no parent", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.1.0/24", ParentID: 99}, "parent_id", "ipam_block_create_107"},
		{"outside parent", &api.IPBlock{Dialect: api.DialectMelange, CIDR: "11.0.1.0/24", ParentID: root.ID}, "cidr", "ipam_block_create_113"},
		{"parent network", &api.IPBlock{Dialect: api.DialectMelange, CIDR: "10.0.1.0/24", ParentID: root.ID, NetworkID: "n2"}, "network_id", "ipam_block_create_108"},
		{"cloudcix allocation without asn", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectCloudCIX, CIDR: "10.0.0.0/8"}, "asn_id", "ipam_block_create_110"},
		{"gateway outside", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "11.0.0.0/24", Gateway: "192.168.0.1"}, "gateway", "ipam_block_create_120"},
		{"subnet gateway outside", &api.IPBlock{Dialect: api.DialectMelange, CIDR: "10.0.9.0/24", ParentID: root.ID, Gateway: "10.0.10.1"}, "gateway", "ipam_block_create_120"},
		{"bad dns1", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "11.0.0.0/24", DNS1: "10.0.0.300"}, "dns1", "ipam_block_create_121"},
		{"bad dns2", &api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "11.0.0.0/24", DNS2: "bogus"}, "dns2", "ipam_block_create_121"},
	}
	for _, c := range cases {
		err := f.do(func(t *Txn) error { _, err := t.IPBlockCreate(c.b); return err })
		wantErr(t, c.name, err, http.StatusBadRequest, c.field, c.code)
	}
	// Subnets inherit type, network and owner; siblings must not overlap.
	sub := f.block(&api.IPBlock{Dialect: api.DialectMelange, CIDR: "10.0.1.0/24", ParentID: root.ID})
	if sub.Type != api.BlockPublic || sub.NetworkID != "n1" || sub.MemberID != m.ID {
		t.Fatalf("subnet did not inherit: %+v", sub)
	}
	err := f.do(func(t *Txn) error {
		_, err := t.IPBlockCreate(&api.IPBlock{CIDR: "10.0.1.128/25", ParentID: root.ID})
		return err
	})
	wantErr(t, "sibling overlap", err, 400, "cidr", "ipam_block_create_113")
	// A parent that holds addresses cannot be subnetted; a subnetted block cannot allocate.
	leaf := f.block(mel("192.168.0.0/24"))
	f.mustAlloc(leaf.ID, "")
	err = f.do(func(t *Txn) error {
		_, err := t.IPBlockCreate(&api.IPBlock{CIDR: "192.168.0.128/25", ParentID: leaf.ID})
		return err
	})
	wantErr(t, "parent with ips", err, 400, "parent_id", "ipam_block_create_109")
	_, err = f.alloc(root.ID, "")
	wantErr(t, "subnetted", err, http.StatusUnprocessableEntity, "", "ipam_ip_address_create_101")
}

func TestCloudCIXAllocationsAndSubnets(t *testing.T) {
	f, m := ipamFixture(t)
	var asn1, asn2 *api.ASN
	f.ok("asn", func(t *Txn) (err error) {
		asn1, err = t.asnCreate(&api.ASN{MemberID: m.ID, Number: api.PseudoASNBase + 1}, true)
		return
	})
	f.ok("asn", func(t *Txn) (err error) {
		asn2, err = t.asnCreate(&api.ASN{MemberID: m.ID, Number: api.PseudoASNBase + 2}, true)
		return
	})
	if !asn1.IsPseudo() {
		t.Fatal("pseudo ASN not recognised")
	}
	err := f.do(func(t *Txn) error {
		_, err := t.asnCreate(&api.ASN{MemberID: m.ID, Number: asn1.Number}, true)
		return err
	})
	wantErr(t, "duplicate asn", err, 400, "number", "ipam_asn_create_103")
	err = f.do(func(t *Txn) error { _, err := t.ASNCreate(&api.ASN{MemberID: m.ID}); return err })
	wantErr(t, "zero asn", err, 400, "number", "ipam_asn_create_102")
	err = f.do(func(t *Txn) error {
		_, err := t.ASNCreate(&api.ASN{MemberID: m.ID, Number: api.PseudoASNBase + 9})
		return err
	})
	wantErr(t, "manual pseudo asn", err, 400, "number", "ipam_asn_create_105")
	err = f.do(func(t *Txn) error {
		_, err := t.ASNUpdate(&api.ASN{Meta: asn2.Meta, MemberID: m.ID, Number: api.PseudoASNBase + 9}, 0)
		return err
	})
	wantErr(t, "renumbered into the pseudo range", err, 400, "number", "ipam_asn_update_105")

	cix := func(asn uint64, cidr string) *api.IPBlock {
		return &api.IPBlock{MemberID: m.ID, Dialect: api.DialectCloudCIX, CIDR: cidr, ASNID: asn}
	}
	a1 := f.block(cix(asn1.ID, "10.0.0.0/8"))
	f.block(cix(asn2.ID, "10.0.0.0/8")) // private ranges repeat across projects
	err = f.do(func(t *Txn) error { _, err := t.IPBlockCreate(cix(asn1.ID, "10.1.0.0/16")); return err })
	wantErr(t, "same-asn overlap", err, 400, "cidr", "ipam_block_create_114")

	// A public range is one ASN's only: no private allocation of another ASN
	// may overlap it, nor a public one a private allocation.
	pub := cix(asn1.ID, "8.8.8.0/24")
	pub.Type = api.BlockPublic
	f.block(pub)
	err = f.do(func(t *Txn) error { _, err := t.IPBlockCreate(cix(asn2.ID, "8.8.8.0/25")); return err })
	wantErr(t, "private over another ASN's public", err, 400, "cidr", "ipam_block_create_114")
	var asn3 *api.ASN
	f.ok("asn", func(t *Txn) (err error) {
		asn3, err = t.asnCreate(&api.ASN{MemberID: m.ID, Number: api.PseudoASNBase + 3}, true)
		return
	})
	pub2 := cix(asn3.ID, "10.200.0.0/25")
	pub2.Type = api.BlockPublic
	err = f.do(func(t *Txn) error { _, err := t.IPBlockCreate(pub2); return err })
	wantErr(t, "public over another ASN's private", err, 400, "cidr", "ipam_block_create_114")

	sub := f.block(&api.IPBlock{Dialect: api.DialectCloudCIX, CIDR: "10.0.0.1/24", Gateway: "10.0.0.1", ParentID: a1.ID})
	if sub.CIDR != "10.0.0.0/24" || sub.ASNID != asn1.ID {
		t.Fatalf("subnet: %+v", sub)
	}
	for _, c := range []struct{ cidr, gw, code string }{
		{"10.0.0.1/24", "10.0.0.1", "ipam_block_create_118"}, // duplicate
		{"10.0.0.1/25", "10.0.0.1", "ipam_block_create_119"}, // overlap
		{"11.0.0.1/24", "11.0.0.1", "ipam_block_create_117"}, // outside
	} {
		err := f.do(func(t *Txn) error {
			_, err := t.IPBlockCreate(&api.IPBlock{Dialect: api.DialectCloudCIX, CIDR: c.cidr, Gateway: c.gw, ParentID: a1.ID})
			return err
		})
		wantErr(t, c.cidr, err, 400, "cidr", c.code)
	}
	// CloudCIX reserves network, gateway and broadcast.
	if got := f.mustAlloc(sub.ID, ""); got != "10.0.0.2" {
		t.Fatalf("first CloudCIX address %s", got)
	}
	_, err = f.alloc(sub.ID, "10.0.0.0")
	wantErr(t, "network address", err, http.StatusConflict, "", "ipam_ip_address_create_107")
	space, _ := f.s.Read().IPBlockSubnetSpace(a1.ID)
	if len(space) == 0 || space[0].Prefix.String() != "10.0.0.0/24" || space[0].Free {
		t.Fatalf("subnet space: %+v", space)
	}
	err = f.do(func(t *Txn) error { return t.ASNDelete(asn1.ID) })
	wantErr(t, "asn in use", err, 400, "", "ipam_asn_delete_101")
	// asn1 has two allocations (10.0.0.0/8, 8.8.8.0/24); the subnet in
	// a1 is not one of them.
	if n := f.s.Read().ASNAllocations(asn1.ID); n != 2 {
		t.Fatalf("ASNAllocations = %d, want 2", n)
	}
	if err.(*api.Error).Detail != "The ASN has 2 allocation(s); delete them first." {
		t.Fatalf("asn delete detail: %v", err)
	}

	// router_id is a foreign key: refused when it names no router, on
	// create and when an update changes it.
	err = f.do(func(t *Txn) error {
		_, err := t.IPBlockCreate(&api.IPBlock{Dialect: api.DialectCloudCIX, CIDR: "10.0.1.1/24", Gateway: "10.0.1.1", ParentID: a1.ID, RouterID: 77})
		return err
	})
	wantErr(t, "unknown router on create", err, 400, "router_id", "ipam_block_create_123")
	err = f.do(func(t *Txn) error {
		n := *sub
		n.RouterID = 77
		_, err := t.IPBlockUpdate(&n, 0)
		return err
	})
	wantErr(t, "unknown router on update", err, 400, "router_id", "ipam_block_update_123")
}

func TestIPAllocationLifecycle(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/30", Gateway: "10.0.0.1"})
	// /30 with gateway .1: .0 and .2, then full (broadcast .3 is skipped).
	if a := f.mustAlloc(b.ID, ""); a != "10.0.0.0" {
		t.Fatalf("first %s", a)
	}
	if a := f.mustAlloc(b.ID, ""); a != "10.0.0.2" {
		t.Fatalf("second %s", a)
	}
	_, err := f.alloc(b.ID, "")
	wantErr(t, "full", err, http.StatusUnprocessableEntity, "", "ipam_ip_address_create_104")
	_, err = f.alloc(b.ID, "10.0.0.2")
	wantErr(t, "taken", err, http.StatusConflict, "", "ipam_ip_address_create_107")
	_, err = f.alloc(b.ID, "10.0.0.1")
	wantErr(t, "gateway", err, http.StatusConflict, "", "ipam_ip_address_create_107")
	_, err = f.alloc(b.ID, "10.0.1.1")
	wantErr(t, "outside", err, http.StatusUnprocessableEntity, "", "ipam_ip_address_create_106")
	_, err = f.alloc(b.ID, "10.0.0.x")
	wantErr(t, "bad address", err, 400, "address", "ipam_ip_address_create_105")
	_, err = f.alloc(99, "")
	wantErr(t, "no block", err, 404, "", "ipam_ip_address_create_001")

	// Release keeps the address taken; restore; release again; purge frees it.
	rel := func(ref IPRef) (*api.IPAddress, error) {
		var out *api.IPAddress
		err := f.do(func(t *Txn) (err error) { out, err = t.IPAddressRelease(ref); return })
		return out, err
	}
	r, err := rel(IPRef{BlockID: b.ID, Address: "10.0.0.2"})
	if err != nil || !r.Deallocated || r.DeallocatedAt == "" {
		t.Fatalf("release: %+v %v", r, err)
	}
	// Releasing again succeeds and stamps it again, as Melange does: the
	// retention starts over, so a purge up to the first release keeps it.
	first, _ := time.Parse(time.RFC3339Nano, r.DeallocatedAt)
	r, err = rel(IPRef{BlockID: b.ID, Address: "10.0.0.2"})
	if err != nil || !r.Deallocated {
		t.Fatalf("release twice: %+v %v", r, err)
	}
	if second, _ := time.Parse(time.RFC3339Nano, r.DeallocatedAt); !second.After(first) {
		t.Fatalf("release twice kept deallocated_at %s (first %s)", r.DeallocatedAt, first)
	}
	f.ok("purge up to the first release", func(t *Txn) (err error) {
		res, err := t.IPAddressPurge(0, first)
		if err == nil && res.Purged != 0 {
			err = fmt.Errorf("purged %d addresses released again after the cutoff", res.Purged)
		}
		return err
	})
	if a, ok := f.s.Read().IPAddressIn(b.ID, "10.0.0.2"); !ok || !a.Deallocated {
		t.Fatalf("re-released address after the purge: %+v %v", a, ok)
	}
	_, err = rel(IPRef{BlockID: b.ID, Address: "10.0.0.3"})
	wantErr(t, "release unknown", err, 404, "", "ipam_ip_address_delete_001")
	_, err = f.alloc(b.ID, "10.0.0.2")
	wantErr(t, "deallocated is taken", err, http.StatusConflict, "", "ipam_ip_address_create_107")
	var restored, again *api.IPAddress
	f.ok("restore", func(t *Txn) (err error) { restored, err = t.IPAddressRestore(IPRef{ID: r.ID}); return })
	// Restoring an allocated address is a no-op, not an error.
	f.ok("restore allocated", func(t *Txn) (err error) { again, err = t.IPAddressRestore(IPRef{ID: r.ID}); return })
	if again.Deallocated || again.Address != "10.0.0.2" || again.ModifiedIndex != restored.ModifiedIndex {
		t.Fatalf("restore of an allocated address: %+v, after restore %+v", again, restored)
	}
	r, _ = rel(IPRef{ID: r.ID})
	at, _ := time.Parse(time.RFC3339Nano, r.DeallocatedAt)

	purge := func(cutoff time.Time) int {
		var res *api.IPPurgeResult
		f.ok("purge", func(t *Txn) (err error) { res, err = t.IPAddressPurge(0, cutoff); return })
		return res.Purged
	}
	if n := purge(at.Add(-time.Nanosecond)); n != 0 {
		t.Fatalf("purged %d before the cutoff", n)
	}
	if n := purge(at); n != 1 { // inclusive
		t.Fatalf("purged %d at the cutoff", n)
	}
	if _, ok := f.s.Read().IPAddressIn(b.ID, "10.0.0.2"); ok {
		t.Fatal("purged row still there")
	}
	if a := f.mustAlloc(b.ID, ""); a != "10.0.0.2" {
		t.Fatalf("after purge %s", a)
	}
	err = f.do(func(t *Txn) error { _, err := t.IPAddressPurge(99, at); return err })
	wantErr(t, "purge unknown block", err, 404, "", "ipam_ip_address_purge_001")

	// Delete only when empty.
	err = f.do(func(t *Txn) error { return t.IPBlockDelete(b.ID) })
	wantErr(t, "delete non-empty", err, 400, "", "ipam_block_delete_102")
	err = f.do(func(t *Txn) error { return t.IPBlockDelete(99) })
	wantErr(t, "delete unknown", err, 404, "", "ipam_block_delete_001")
}

// The Melange delete takes the subnets and every address (soft-deallocated
// ones too) with the block; a CloudCIX block is refused, unchanged.
func TestIPBlockDeleteCascade(t *testing.T) {
	f, m := ipamFixture(t)
	top := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/16"})
	sub := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, ParentID: top.ID, CIDR: "10.0.1.0/24"})
	f.mustAlloc(sub.ID, "")
	f.mustAlloc(sub.ID, "10.0.1.9")
	f.ok("release", func(t *Txn) error {
		_, err := t.IPAddressRelease(IPRef{BlockID: sub.ID, Address: "10.0.1.9"})
		return err
	})
	f.ok("cascade", func(t *Txn) error { return t.IPBlockDeleteCascade(top.ID) })
	r := f.s.Read()
	if _, ok := r.IPBlock(top.ID); ok {
		t.Error("the block is still there")
	}
	if _, ok := r.IPBlock(sub.ID); ok {
		t.Error("the subnet is still there")
	}
	if n := len(r.IPAddressListAll()); n != 0 {
		t.Errorf("%d addresses left", n)
	}
	err := f.do(func(t *Txn) error { return t.IPBlockDeleteCascade(top.ID) })
	wantErr(t, "cascade unknown", err, 404, "", "ipam_block_delete_001")

	asn := &api.ASN{}
	f.ok("asn", func(t *Txn) (err error) { asn, err = t.ASNCreate(&api.ASN{MemberID: m.ID, Number: 65001}); return })
	cix := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectCloudCIX, CIDR: "10.1.0.0/24", ASNID: asn.ID})
	err = f.do(func(t *Txn) error { return t.IPBlockDeleteCascade(cix.ID) })
	wantErr(t, "cascade a CloudCIX block", err, 400, "", "ipam_block_delete_103")
	if _, ok := f.s.Read().IPBlock(cix.ID); !ok {
		t.Error("the refused CloudCIX block is gone")
	}
}

func TestIPv6Generators(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "fe::/64", Generator: api.GeneratorTenantHash})
	_, err := f.alloc(b.ID, "")
	wantErr(t, "mac required", err, 400, "mac_address", "ipam_ip_address_create_103")
	var a *api.IPAddress
	f.ok("alloc v6", func(t *Txn) (err error) {
		a, err = t.AllocateNext(b.ID, &api.IPAddress{MACAddress: "00:FF:12:89:67:34", UsedByTenant: tenantOf(m)})
		return
	})
	// The tenant-hash IID of the member (the melange-facts §7 vector for
	// tenant "1234" is checked in package ipam; tenants here are members).
	var a16 [16]byte
	a16[1] = 0xfe
	binary.BigEndian.PutUint64(a16[8:], ipam.TenantIID(tenantOf(m), 0x00ff12896734))
	want := netip.AddrFrom16(a16).String()
	if a.Address != want || a.Version != 6 || a.MACAddress != "00:ff:12:89:67:34" {
		t.Fatalf("tenant-hash address: %+v", a)
	}
	err = f.do(func(t *Txn) error {
		_, err := t.AllocateNext(b.ID, &api.IPAddress{MACAddress: "zz"})
		return err
	})
	wantErr(t, "bad mac", err, 400, "mac_address", "ipam_ip_address_create_102")
}

func TestIPPolicies(t *testing.T) {
	f, m := ipamFixture(t)
	err := f.do(func(t *Txn) error { _, err := t.IPPolicyCreate(&api.IPPolicy{MemberID: m.ID}); return err })
	wantErr(t, "no name", err, 400, "name", "ipam_policy_create_102")
	err = f.do(func(t *Txn) error {
		_, err := t.IPPolicyCreate(&api.IPPolicy{MemberID: m.ID, Name: "p", UnusableRanges: []api.UnusableRange{{Length: -1}}})
		return err
	})
	wantErr(t, "negative length", err, 400, "unusable_ranges", "ipam_policy_create_103")
	var p *api.IPPolicy
	f.ok("policy", func(t *Txn) (err error) {
		p, err = t.IPPolicyCreate(&api.IPPolicy{MemberID: m.ID, Name: "p", UnusableRanges: []api.UnusableRange{{Offset: 0, Length: 1}}})
		return
	})
	if p.UnusableRanges[0].ID == 0 {
		t.Fatal("range has no id")
	}
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/29", Gateway: "10.0.0.7", PolicyID: p.ID})
	if a := f.mustAlloc(b.ID, ""); a != "10.0.0.1" {
		t.Fatalf("policy ignored: %s", a)
	}
	_, err = f.alloc(b.ID, "10.0.0.0")
	wantErr(t, "disallowed", err, http.StatusUnprocessableEntity, "", "ipam_ip_address_create_108")

	// A read transaction opened now keeps its engine after the update.
	before := f.s.Read()
	upd := &api.IPPolicy{Meta: api.Meta{ID: p.ID}, Name: "p", UnusableRanges: []api.UnusableRange{p.UnusableRanges[0]},
		UnusableOctets: []api.UnusableOctet{{Octet: 2}, {Octet: 3}}}
	f.ok("update", func(t *Txn) (err error) { p, err = t.IPPolicyUpdate(upd, p.ModifiedIndex); return })
	if a := f.mustAlloc(b.ID, ""); a != "10.0.0.4" {
		t.Fatalf("octets not re-applied: %s", a)
	}
	if a, _ := before.IPBlockNextFree(b.ID, ipam.Request{}); a.String() != "10.0.0.2" {
		t.Fatalf("old read transaction sees %s", a)
	}
	bad := &api.IPPolicy{Meta: api.Meta{ID: p.ID}, Name: "p", UnusableOctets: []api.UnusableOctet{{ID: 999, Octet: 1}}}
	err = f.do(func(t *Txn) error { _, err := t.IPPolicyUpdate(bad, 0); return err })
	wantErr(t, "unknown entry", err, 400, "unusable_octets", "ipam_policy_update_104")
	err = f.do(func(t *Txn) error { _, err := t.IPPolicyUpdate(upd, 1); return err })
	wantErr(t, "stale", err, http.StatusConflict, "", "ipam_policy_update_002")

	// Delete drops the policy from the block.
	f.ok("delete policy", func(t *Txn) error { return t.IPPolicyDelete(p.ID) })
	if bb, _ := f.s.Read().IPBlock(b.ID); bb.PolicyID != 0 {
		t.Fatal("block keeps a deleted policy")
	}
	if a := f.mustAlloc(b.ID, ""); a != "10.0.0.0" {
		t.Fatalf("policy not dropped: %s", a)
	}
	err = f.do(func(t *Txn) error { return t.IPPolicyDelete(p.ID) })
	wantErr(t, "delete twice", err, 404, "", "ipam_policy_delete_001")
}

// Unusable ranges and octets have their own timestamps, stamped from the
// command's time: an entry added later is newer than its siblings, a
// sibling's change or addition leaves an entry's times alone, and changing
// an entry moves its updated time only. Times a caller sends are ignored.
func TestIPPolicyEntryTimes(t *testing.T) {
	f, m := ipamFixture(t)
	var p *api.IPPolicy
	f.ok("create", func(t *Txn) (err error) {
		p, err = t.IPPolicyCreate(&api.IPPolicy{MemberID: m.ID, Name: "p",
			UnusableRanges: []api.UnusableRange{{Offset: 0, Length: 1, Created: "2000-01-01T00:00:00Z"}}})
		return
	})
	r0 := p.UnusableRanges[0]
	if r0.Created != p.Created || r0.Updated != p.Created {
		t.Fatalf("new range %+v, policy created %s", r0, p.Created)
	}
	update := func(what string, edit func(p *api.IPPolicy)) {
		t.Helper()
		cur, _ := f.s.Read().IPPolicy(p.ID)
		in := *cur
		in.UnusableRanges = append([]api.UnusableRange(nil), cur.UnusableRanges...)
		in.UnusableOctets = append([]api.UnusableOctet(nil), cur.UnusableOctets...)
		edit(&in)
		f.ok(what, func(t *Txn) (err error) { p, err = t.IPPolicyUpdate(&in, 0); return })
	}
	update("add an octet", func(p *api.IPPolicy) { p.UnusableOctets = append(p.UnusableOctets, api.UnusableOctet{Octet: 7}) })
	o0 := p.UnusableOctets[0]
	if p.UnusableRanges[0] != r0 {
		t.Errorf("adding an octet changed the range: %+v, was %+v", p.UnusableRanges[0], r0)
	}
	if o0.Created != p.Updated || o0.Updated != p.Updated || o0.Created == r0.Created {
		t.Errorf("new octet %+v (range %+v, policy updated %s)", o0, r0, p.Updated)
	}
	update("change the range", func(p *api.IPPolicy) {
		p.UnusableRanges[0].Length = 2
		p.UnusableRanges[0].Updated = "2000-01-01T00:00:00Z"
	})
	if r := p.UnusableRanges[0]; r.Created != r0.Created || r.Updated != p.Updated || r.Updated == r0.Updated {
		t.Errorf("changed range %+v, was %+v", r, r0)
	}
	if p.UnusableOctets[0] != o0 {
		t.Errorf("changing the range changed the octet: %+v, was %+v", p.UnusableOctets[0], o0)
	}
}

// A snapshot taken before entries had timestamps loads; an old entry takes
// its policy's times (what it showed until then) when the policy is next
// written, and keeps them after.
func TestIPPolicyEntryTimesFromOldSnapshot(t *testing.T) {
	f, m := ipamFixture(t)
	var p *api.IPPolicy
	f.ok("create", func(t *Txn) (err error) {
		p, err = t.IPPolicyCreate(&api.IPPolicy{MemberID: m.ID, Name: "p",
			UnusableRanges: []api.UnusableRange{{Offset: 0, Length: 1}}, UnusableOctets: []api.UnusableOctet{{Octet: 3}}})
		return
	})
	f.ok("rename", func(t *Txn) (err error) {
		in := *p
		in.Name = "q"
		p, err = t.IPPolicyUpdate(&in, 0)
		return
	})
	header, records, _ := snapParts(t, f.snapshot())
	strip := regexp.MustCompile(`,"created":"[^"]*","updated":"[^"]*"\}`)
	for i, r := range records {
		records[i] = strip.ReplaceAllString(r, "}")
	}
	old := seal(header, records, -1)
	if bytes.Contains(old, []byte(`"length":1,"created"`)) || !bytes.Contains(old, []byte(`"length":1}`)) {
		t.Fatalf("entries keep their times in the doctored snapshot")
	}
	s := New()
	if err := s.Restore(bytes.NewReader(old)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	lp, _ := s.Read().IPPolicy(p.ID)
	if lp.UnusableRanges[0].Created != "" || lp.UnusableOctets[0].Updated != "" {
		t.Fatalf("loaded entries: %+v %+v", lp.UnusableRanges, lp.UnusableOctets)
	}
	txn := s.Write(100, t0.Add(time.Hour))
	in := *lp
	in.UnusableOctets = append([]api.UnusableOctet{}, lp.UnusableOctets...)
	in.UnusableOctets = append(in.UnusableOctets, api.UnusableOctet{Octet: 9})
	got, err := txn.IPPolicyUpdate(&in, 0)
	if err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	if r := got.UnusableRanges[0]; r.Created != lp.Created || r.Updated != lp.Updated {
		t.Errorf("old range %+v, want the policy's times %s / %s", r, lp.Created, lp.Updated)
	}
	if o := got.UnusableOctets[0]; o.Created != lp.Created || o.Updated != lp.Updated {
		t.Errorf("old octet %+v, want the policy's times %s / %s", o, lp.Created, lp.Updated)
	}
	if o := got.UnusableOctets[1]; o.Created != got.Updated || o.Created == lp.Updated {
		t.Errorf("new octet %+v", o)
	}
}

func TestIPBlockUpdate(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/29"})
	upd := *b
	upd.Gateway, upd.CIDR, upd.Name = "10.0.0.0", "99.0.0.0/8", "renamed"
	var got *api.IPBlock
	f.ok("update", func(t *Txn) (err error) { got, err = t.IPBlockUpdate(&upd, b.ModifiedIndex); return })
	if got.CIDR != "10.0.0.0/29" || got.Name != "renamed" {
		t.Fatalf("update: %+v", got)
	}
	if a := f.mustAlloc(b.ID, ""); a != "10.0.0.1" {
		t.Fatalf("new gateway ignored: %s", a)
	}
	upd.Gateway = "nope"
	err := f.do(func(t *Txn) error { _, err := t.IPBlockUpdate(&upd, 0); return err })
	wantErr(t, "bad gateway", err, 400, "gateway", "ipam_block_update_106")
	upd.Gateway = "10.0.0.8"
	err = f.do(func(t *Txn) error { _, err := t.IPBlockUpdate(&upd, 0); return err })
	wantErr(t, "gateway outside", err, 400, "gateway", "ipam_block_update_120")
	upd.Gateway = "10.0.0.1" // held by the allocation above
	err = f.do(func(t *Txn) error { _, err := t.IPBlockUpdate(&upd, 0); return err })
	wantErr(t, "gateway held", err, 400, "gateway", "ipam_block_update_122")
	upd.Gateway, upd.DNS1 = "10.0.0.0", "999.1.1.1"
	err = f.do(func(t *Txn) error { _, err := t.IPBlockUpdate(&upd, 0); return err })
	wantErr(t, "bad dns1", err, 400, "dns1", "ipam_block_update_121")
}

// A new network_id is checked as a create would be (melange-facts §3, "re-
// checked on every save"): rule 6, no overlap with a top-level block of that
// network, and rule 9, one type within a network. A refused update changes
// nothing; the block's own subnets, which share its network, do not count.
func TestIPBlockUpdateNetworkRules(t *testing.T) {
	f, m := ipamFixture(t)
	mel := func(cidr, net, typ string) *api.IPBlock {
		return f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: cidr, NetworkID: net, Type: typ})
	}
	mel("10.9.0.0/16", "ovl", api.BlockPrivate)
	b := mel("10.9.0.0/24", "other", api.BlockPrivate)
	update := func(net string) (*api.IPBlock, error) {
		var got *api.IPBlock
		err := f.do(func(t *Txn) (err error) {
			cur, _ := t.IPBlock(b.ID)
			upd := *cur
			upd.NetworkID = net
			got, err = t.IPBlockUpdate(&upd, 0)
			return
		})
		return got, err
	}
	_, err := update("ovl")
	wantErr(t, "overlap in the new network", err, 400, "cidr", "ipam_block_update_113")
	if e := err.(*api.Error); e.Errors["cidr"].Detail != "cidr overlaps with block 10.9.0.0/16 in same network" {
		t.Errorf("detail %q", e.Errors["cidr"].Detail)
	}
	if cur, _ := f.s.Read().IPBlock(b.ID); cur.NetworkID != "other" {
		t.Errorf("refused update applied: network %q", cur.NetworkID)
	}
	mel("172.16.0.0/24", "pub", api.BlockPublic)
	_, err = update("pub")
	wantErr(t, "type within the new network", err, 400, "type", "ipam_block_update_112")
	// A block with a subnet moves to a free network, subnet and all; an
	// update that keeps the network passes its own check.
	parent := mel("10.50.0.0/16", "", api.BlockPrivate)
	f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.50.1.0/24", ParentID: parent.ID, NetworkID: "fresh"})
	f.ok("parent into its subnet's network", func(t *Txn) error {
		upd := *parent
		upd.NetworkID = "fresh"
		_, err := t.IPBlockUpdate(&upd, 0)
		return err
	})
	if got, err := update("free"); err != nil || got.NetworkID != "free" {
		t.Fatalf("move to a free network: %+v %v", got, err)
	}
	if got, err := update("free"); err != nil || got.NetworkID != "free" {
		t.Fatalf("same network again: %+v %v", got, err)
	}
}

// Routes: destination an address or CIDR of the block's family, gateway an
// address of that family, netmask contiguous and of that family (or a
// prefix length), agreeing with a CIDR destination; values normalised.
func TestIPRouteChecks(t *testing.T) {
	f, m := ipamFixture(t)
	v4 := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/24"})
	v6 := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "fe::/64"})
	create := func(rt *api.IPRoute) (*api.IPRoute, error) {
		var out *api.IPRoute
		err := f.do(func(t *Txn) (err error) { out, err = t.IPRouteCreate(rt); return })
		return out, err
	}
	for _, c := range []struct {
		name  string
		rt    api.IPRoute
		field string
		code  string
	}{
		{"no destination", api.IPRoute{BlockID: v4.ID, Gateway: "10.0.0.1"}, "destination", "ipam_ip_route_create_101"},
		{"bad destination", api.IPRoute{BlockID: v4.ID, Destination: "10.0.0.300", Gateway: "10.0.0.1"}, "destination", "ipam_ip_route_create_104"},
		{"destination of the other family", api.IPRoute{BlockID: v4.ID, Destination: "fd00::/8", Gateway: "10.0.0.1"}, "destination", "ipam_ip_route_create_104"},
		{"bad gateway", api.IPRoute{BlockID: v4.ID, Destination: "10.1.0.0", Gateway: "hello"}, "gateway", "ipam_ip_route_create_105"},
		{"gateway of the other family", api.IPRoute{BlockID: v4.ID, Destination: "10.1.0.0", Gateway: "fe::1"}, "gateway", "ipam_ip_route_create_105"},
		{"bad netmask", api.IPRoute{BlockID: v4.ID, Destination: "10.1.0.0", Gateway: "10.0.0.1", Netmask: "255.255.0.999"}, "netmask", "ipam_ip_route_create_106"},
		{"netmask not contiguous", api.IPRoute{BlockID: v4.ID, Destination: "10.1.0.0", Gateway: "10.0.0.1", Netmask: "255.0.255.0"}, "netmask", "ipam_ip_route_create_106"},
		{"netmask of the other family", api.IPRoute{BlockID: v4.ID, Destination: "10.1.0.0", Gateway: "10.0.0.1", Netmask: "ffff::"}, "netmask", "ipam_ip_route_create_106"},
		{"netmask length too long", api.IPRoute{BlockID: v4.ID, Destination: "10.1.0.0", Gateway: "10.0.0.1", Netmask: "33"}, "netmask", "ipam_ip_route_create_106"},
		{"netmask against the destination", api.IPRoute{BlockID: v4.ID, Destination: "10.1.0.0/16", Gateway: "10.0.0.1", Netmask: "255.255.255.0"}, "netmask", "ipam_ip_route_create_106"},
		{"v6 netmask length too long", api.IPRoute{BlockID: v6.ID, Destination: "fd00::", Gateway: "fe::1", Netmask: "129"}, "netmask", "ipam_ip_route_create_106"},
	} {
		_, err := create(&c.rt)
		wantErr(t, c.name, err, http.StatusBadRequest, c.field, c.code)
	}
	for _, c := range []struct{ in, mask, dest, gw string }{
		{"10.1.0.0/16", "255.255.0.0", "10.1.0.0/16", "10.0.0.1"},
		{"0.0.0.0", "0.0.0.0", "0.0.0.0", "192.0.2.1"}, // a gateway outside the block is allowed
		{"172.16.0.0", "12", "172.16.0.0", "10.0.0.1"},
	} {
		rt, err := create(&api.IPRoute{BlockID: v4.ID, Destination: c.in, Gateway: c.gw, Netmask: c.mask})
		if err != nil || rt.Destination != c.dest || rt.Gateway != c.gw {
			t.Fatalf("route %s via %s: %+v %v", c.in, c.gw, rt, err)
		}
	}
	rt, err := create(&api.IPRoute{BlockID: v6.ID, Destination: "2001:db8:0::/32", Gateway: "fe:0::1", Netmask: "ffff:ffff::"})
	if err != nil || rt.Destination != "2001:db8::/32" || rt.Gateway != "fe::1" {
		t.Fatalf("IPv6 route: %+v %v", rt, err)
	}
	upd := *rt
	upd.Gateway = "10.0.0.1"
	err = f.do(func(t *Txn) error { _, err := t.IPRouteUpdate(&upd, 0); return err })
	wantErr(t, "update gateway of the other family", err, http.StatusBadRequest, "gateway", "ipam_ip_route_update_105")
}

func TestMACRanges(t *testing.T) {
	f, _ := ipamFixture(t)
	var r *api.MACRange
	f.ok("mac range", func(t *Txn) (err error) {
		r, err = t.MACRangeCreate(&api.MACRange{CIDR: "BC:76:4E:20:00:01/27"})
		return
	})
	if r.CIDR != "BC:76:4E:20:00:01/27" { // as given (TestMACRangeKeepsItsCIDR)
		t.Fatalf("range %s", r.CIDR)
	}
	err := f.do(func(t *Txn) error { _, err := t.MACRangeCreate(&api.MACRange{CIDR: "x/2"}); return err })
	wantErr(t, "bad range", err, 400, "cidr", "ipam_mac_address_range_create_101")
	f.ok("delete", func(t *Txn) error { return t.MACRangeDelete(r.ID) })
	err = f.do(func(t *Txn) error { return t.MACRangeDelete(r.ID) })
	wantErr(t, "delete twice", err, 404, "", "ipam_mac_address_range_delete_001")
}

func TestIPAMSnapshotRebuildsEngines(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/24", Gateway: "10.0.0.1"})
	for range 5 {
		f.mustAlloc(b.ID, "")
	}
	f.ok("release", func(t *Txn) error {
		_, err := t.IPAddressRelease(IPRef{BlockID: b.ID, Address: "10.0.0.2"})
		return err
	})
	snap := f.snapshot()
	s2 := New()
	if err := s2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	u1, _ := f.s.Read().IPBlockUtilisation(b.ID)
	u2, _ := s2.Read().IPBlockUtilisation(b.ID)
	if u1 != u2 || u2.Deallocated.Lo != 1 || u2.Allocated.Lo != 4 {
		t.Fatalf("utilisation %+v vs restored %+v", u1, u2)
	}
	n1, _ := f.s.Read().IPBlockNextFree(b.ID, ipam.Request{})
	n2, _ := s2.Read().IPBlockNextFree(b.ID, ipam.Request{})
	if n1 != n2 || n1.String() != "10.0.0.6" {
		t.Fatalf("next free %s vs restored %s", n1, n2)
	}
	var again bytes.Buffer
	if err := s2.Read().Persist(&again); err != nil || !bytes.Equal(again.Bytes(), snap) {
		t.Fatalf("snapshot after restore differs: %v", err)
	}
	// An address outside its block makes the snapshot invalid.
	header, recs, _ := snapParts(t, snap)
	for i, r := range recs {
		if bytes.Contains([]byte(r), []byte(`"10.0.0.3"`)) {
			recs[i] = string(bytes.Replace([]byte(r), []byte(`"10.0.0.3"`), []byte(`"10.9.0.3"`), 1))
		}
	}
	if _, err := Validate(bytes.NewReader(seal(header, recs, len(recs)))); err == nil {
		t.Fatal("snapshot with an address outside its block validated")
	}
}

func TestMemberDeleteRefusedWhileOwningIPAM(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.9.0.0/24"})
	err := f.do(func(t *Txn) error { return t.MemberDelete(m.ID) })
	if e, ok := err.(*api.Error); !ok || e.ErrorCode != "membership_member_delete_104" {
		t.Fatalf("delete of a member owning a block: %v", err)
	}
	f.ok("delete block", func(t *Txn) error { return t.IPBlockDelete(b.ID) })
	f.ok("delete member", func(t *Txn) error { return t.MemberDelete(m.ID) })
}

func TestIPAddressDeleteFreesAtOnce(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.9.1.0/29"})
	first, err := f.alloc(b.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	f.mustAlloc(b.ID, "")
	f.ok("delete", func(t *Txn) error { return t.IPAddressDelete(IPRef{ID: first.ID}) })
	if _, ok := f.s.Read().IPAddress(first.ID); ok {
		t.Fatal("the deleted address still has a row")
	}
	if got := f.mustAlloc(b.ID, ""); got != first.Address {
		t.Fatalf("after delete the next free address is %s, want %s", got, first.Address)
	}
	if err := f.do(func(t *Txn) error { return t.IPAddressDelete(IPRef{ID: first.ID}) }); err == nil {
		t.Fatal("deleting a deleted address must fail")
	}
}

// TestEnginesWithinOneTransaction: the commands of one raft batch share a
// transaction, and a block's engine reaches its memdb record only at
// Commit. Within the transaction every allocation, release and block
// update sees the ones before it; a failed change leaves nothing; after
// Commit the stored engine holds them all, and an aborted transaction
// leaves the stored one as it was.
func TestEnginesWithinOneTransaction(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.9.2.0/29"})
	f.mustAlloc(b.ID, "") // 10.9.2.1 (.0 is the network)

	f.index++
	txn := f.s.Write(f.index, t0)
	var got []string
	for range 3 {
		a, err := txn.IPAddressCreate(&api.IPAddress{BlockID: b.ID})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.Address)
	}
	if got[0] == got[1] || got[1] == got[2] {
		t.Fatalf("one transaction allocated %v: later commands must see earlier ones", got)
	}
	if _, err := txn.IPAddressCreate(&api.IPAddress{BlockID: b.ID, Address: got[1]}); err == nil {
		t.Fatalf("%s allocated twice in one transaction", got[1])
	}
	if u, _ := txn.IPBlockUtilisation(b.ID); u.Allocated.Lo != 4 {
		t.Errorf("utilisation inside the transaction: %+v, want 4 allocated", u)
	}
	upd := *b
	upd.Gateway = "10.9.2.6"
	if _, err := txn.IPBlockUpdate(&upd, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := txn.IPAddressRelease(IPRef{BlockID: b.ID, Address: got[0]}); err != nil {
		t.Fatal(err)
	}
	// Before Commit the stored state has none of it.
	if u, _ := f.s.Read().IPBlockUtilisation(b.ID); u.Allocated.Lo != 1 {
		t.Errorf("stored utilisation before commit: %+v", u)
	}
	txn.Commit()
	r := f.s.Read()
	if u, _ := r.IPBlockUtilisation(b.ID); u.Allocated.Lo != 3 || u.Deallocated.Lo != 1 {
		t.Errorf("stored utilisation after commit: %+v, want 3 allocated, 1 deallocated", u)
	}
	if blk, _ := r.IPBlock(b.ID); blk.Gateway != "10.9.2.6" {
		t.Errorf("the block update was lost: gateway %q", blk.Gateway)
	}
	// The engine got the new gateway too: .6 is not handed out.
	if next, err := r.IPBlockNextFree(b.ID, ipam.Request{}); err != nil || next.String() == "10.9.2.6" {
		t.Errorf("next free after commit: %v %v", next, err)
	}

	// An aborted transaction leaves the stored engine alone.
	f.index++
	txn = f.s.Write(f.index, t0)
	if _, err := txn.IPAddressCreate(&api.IPAddress{BlockID: b.ID}); err != nil {
		t.Fatal(err)
	}
	txn.Abort()
	if u, _ := f.s.Read().IPBlockUtilisation(b.ID); u.Allocated.Lo != 3 {
		t.Errorf("an aborted allocation is stored: %+v", u)
	}
}

// TestPseudoASNKeepsNumberAndMember: a project's pseudo-ASN (PseudoASNBase
// + project id) can be neither renumbered (to a manual number) nor moved
// to another member, even without allocations: the project's ASN would no
// longer be it. Commands made before Rules2 replay as they applied.
func TestPseudoASNKeepsNumberAndMember(t *testing.T) {
	f, m := ipamFixture(t)
	other := f.member("other")
	var asn *api.ASN
	f.ok("pseudo asn", func(t *Txn) (err error) {
		asn, err = t.asnCreate(&api.ASN{MemberID: m.ID, Number: api.PseudoASNBase + 7}, true)
		return
	})
	upd := func(rules uint32, n api.ASN) error {
		return f.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.ASNUpdate(&n, 0)
			return err
		})
	}
	renumber := api.ASN{Meta: asn.Meta, MemberID: m.ID, Number: 65010}
	move := api.ASN{Meta: asn.Meta, MemberID: other.ID, Number: asn.Number}
	wantErr(t, "renumbered", upd(RulesCurrent, renumber), http.StatusBadRequest, "number", "ipam_asn_update_106")
	wantErr(t, "moved", upd(RulesCurrent, move), http.StatusBadRequest, "number", "ipam_asn_update_106")
	if err := upd(RulesCurrent, api.ASN{Meta: asn.Meta, MemberID: m.ID, Number: asn.Number}); err != nil {
		t.Fatalf("unchanged pseudo-ASN: %v", err)
	}
	if err := upd(Rules1, move); err != nil {
		t.Fatalf("a move made under Rules1 replays as it applied: %v", err)
	}
}

// TestSubnetGatewaySameAsParentInApply: two gateway changes built from one
// view (child 10.0.0.2/24 → 10.0.0.3/24, its parent 10.0.0.1/24 →
// 10.0.0.3/24) each pass the API's check; applied in turn, the second
// would make parent and child the same address_range and is refused
// (ipam_block_update_116). Either order. Commands made before Rules2
// replay as they applied.
func TestSubnetGatewaySameAsParentInApply(t *testing.T) {
	run := func(rules uint32, parentFirst bool) error {
		f, m := ipamFixture(t)
		var asn *api.ASN
		f.ok("asn", func(t *Txn) (err error) { asn, err = t.ASNCreate(&api.ASN{MemberID: m.ID, Number: 65001}); return })
		alloc := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectCloudCIX, CIDR: "10.0.0.0/16", ASNID: asn.ID})
		p := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectCloudCIX, ParentID: alloc.ID, CIDR: "10.0.0.0/24", Gateway: "10.0.0.1"})
		c := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectCloudCIX, ParentID: p.ID, CIDR: "10.0.0.0/24", Gateway: "10.0.0.2"})
		np, nc := *p, *c
		np.Gateway, nc.Gateway = "10.0.0.3", "10.0.0.3"
		upd := func(b api.IPBlock) error {
			return f.do(func(t *Txn) error { t.Rules = rules; _, err := t.IPBlockUpdate(&b, 0); return err })
		}
		first, second := nc, np
		if parentFirst {
			first, second = np, nc
		}
		if err := upd(first); err != nil {
			t.Fatalf("first update: %v", err)
		}
		return upd(second)
	}
	for _, parentFirst := range []bool{false, true} {
		wantErr(t, fmt.Sprintf("second update (parent first %v)", parentFirst), run(RulesCurrent, parentFirst), http.StatusBadRequest, "cidr", "ipam_block_update_116")
		if err := run(Rules1, parentFirst); err != nil {
			t.Fatalf("an update made under Rules1 replays as it applied: %v", err)
		}
	}
}
