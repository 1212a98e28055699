package state

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

func (f *fixture) iface(in api.Interface, net *NetworkRef) (*InterfaceDetail, error) {
	var out *InterfaceDetail
	err := f.do(func(t *Txn) (err error) { out, err = t.InterfaceCreate(in, net); return })
	return out, err
}

// tenantOf is the Melange tenant id of member m.
func tenantOf(m *api.Member) string { return strconv.FormatUint(m.ID, 10) }

// A Melange tenant id outside a URL (an interface's owner, an address's
// used_by_tenant, an instance's tenant) is a member id: one that names no
// member is 400, as for blocks and policies, and nothing is made. A valid
// one is stored in its canonical spelling.
func TestInterfaceAndAddressTenantsAreMembers(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/24", NetworkID: "n"})
	for _, bad := range []string{"abc", "999", "-1", "1.0"} {
		_, err := f.iface(api.Interface{VIF: "ifz", TenantID: bad}, nil)
		wantErr(t, "interface of tenant "+bad, err, 400, "tenant_id", "ipam_interface_create_108")
		err = f.do(func(t *Txn) error {
			_, err := t.IPAddressAllocateOnInterface(api.Interface{VIF: "ifq", TenantID: bad}, b.ID, "", "")
			return err
		})
		wantErr(t, "address on a new interface of tenant "+bad, err, 400, "tenant_id", "ipam_interface_create_108")
		err = f.do(func(t *Txn) error { _, err := t.AllocateNext(b.ID, &api.IPAddress{UsedByTenant: bad}); return err })
		wantErr(t, "address used by tenant "+bad, err, 400, "used_by_tenant", "ipam_ip_address_create_112")
		err = f.do(func(t *Txn) error { _, err := t.InstanceInterfacesReplace("vm", bad, nil); return err })
		wantErr(t, "instance of tenant "+bad, err, 400, "tenant_id", "ipam_interface_create_108")
	}
	r := f.s.Read()
	if len(r.InterfaceList()) != 0 || len(r.IPAddressList(b.ID)) != 0 {
		t.Fatalf("refused commands left %v, %v", r.InterfaceList(), r.IPAddressList(b.ID))
	}
	d, err := f.iface(api.Interface{VIF: "ok", TenantID: "0" + tenantOf(m)}, nil)
	if err != nil || d.Interface.TenantID != tenantOf(m) {
		t.Fatalf("interface of member %d: %+v %v", m.ID, d, err)
	}
	var a *api.IPAddress
	f.ok("address used by a member", func(t *Txn) (err error) { a, err = t.AllocateNext(b.ID, &api.IPAddress{UsedByTenant: "1"}); return })
	if a.UsedByTenant != "1" {
		t.Fatalf("address %+v", a)
	}
}

func TestInterfacesMACsAndAddresses(t *testing.T) {
	f, m := ipamFixture(t)
	f.ok("range", func(t *Txn) error {
		_, err := t.MACRangeCreate(&api.MACRange{CIDR: "BC:76:4E:20:00:00/47"})
		return err
	})
	f.ok("range 2", func(t *Txn) error {
		_, err := t.MACRangeCreate(&api.MACRange{CIDR: "02:00:00:00:00:00/48"})
		return err
	})
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/30", Gateway: "10.0.0.3", NetworkID: "n"})
	var macs []string
	for _, vif := range []string{"a", "b", "c"} {
		d, err := f.iface(api.Interface{VIF: vif, TenantID: tenantOf(m)}, &NetworkRef{ID: "n", MemberID: m.ID})
		if err != nil {
			t.Fatalf("%s: %v", vif, err)
		}
		macs = append(macs, d.Interface.MACAddress)
	}
	if strings.Join(macs, " ") != "bc:76:4e:20:00:00 bc:76:4e:20:00:01 02:00:00:00:00:00" {
		t.Fatalf("MACs %v", macs)
	}
	// No MAC and no address left: the failed command leaves nothing.
	_, err := f.iface(api.Interface{VIF: "d", TenantID: tenantOf(m)}, nil)
	wantErr(t, "no more MACs", err, 422, "", "ipam_interface_create_106")
	_, err = f.iface(api.Interface{VIF: "d", TenantID: tenantOf(m), MACAddress: "02:00:00:00:00:09"}, &NetworkRef{ID: "n", MemberID: m.ID})
	wantErr(t, "network full", err, 422, "", "ipam_network_allocate_103")
	if _, ok := f.s.Read().InterfaceByVIF("d"); ok {
		t.Fatal("a failed create left its interface")
	}
	_, err = f.iface(api.Interface{VIF: "a", TenantID: tenantOf(m), MACAddress: "02:00:00:00:00:09"}, nil)
	wantErr(t, "duplicate vif", err, 400, "virtual_interface_id", "ipam_interface_create_102")
	// An address may only name an existing interface.
	err = f.do(func(t *Txn) error {
		_, err := t.IPAddressCreate(&api.IPAddress{BlockID: b.ID, InterfaceID: "nope"})
		return err
	})
	wantErr(t, "unknown interface", err, 400, "interface_id", "ipam_ip_address_create_109")

	f.ok("delete b", func(t *Txn) error { return t.InterfaceDelete("b") })
	if a, _ := f.s.Read().IPAddressIn(b.ID, "10.0.0.1"); !a.Deallocated || a.InterfaceID != "" {
		t.Fatalf("address of the deleted interface: %+v", a)
	}

	// The MAC engine is rebuilt on restore: the freed MAC is the next one
	// on both stores, and the snapshot bytes survive the round trip.
	snap := f.snapshot()
	s2 := New()
	if err := s2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := s2.Read().Persist(&again); err != nil || !bytes.Equal(again.Bytes(), snap) {
		t.Fatalf("snapshot after restore differs: %v", err)
	}
	d, err := f.iface(api.Interface{VIF: "e", TenantID: tenantOf(m)}, nil)
	if err != nil || d.Interface.MACAddress != "bc:76:4e:20:00:01" {
		t.Fatalf("after delete: %+v %v", d, err)
	}
	w := s2.Write(1000, t0)
	d2, err := w.InterfaceCreate(api.Interface{VIF: "e", TenantID: tenantOf(m)}, nil)
	w.Abort()
	if err != nil || d2.Interface.MACAddress != d.Interface.MACAddress {
		t.Fatalf("restored store gives %+v %v", d2, err)
	}

	// A snapshot with a MAC held twice, or an address of a missing
	// interface, does not restore.
	header, recs, _ := snapParts(t, snap)
	bad := append([]string(nil), recs...)
	for i, r := range bad {
		bad[i] = strings.Replace(r, `"mac_address":"02:00:00:00:00:00"`, `"mac_address":"bc:76:4e:20:00:00"`, 1)
	}
	if _, err := Validate(bytes.NewReader(seal(header, bad, -1))); err == nil {
		t.Fatal("a snapshot with a duplicated MAC validated")
	}
	bad = append([]string(nil), recs...)
	for i, r := range bad {
		bad[i] = strings.Replace(r, `"interface_id":"c"`, `"interface_id":"zz"`, 1)
	}
	if _, err := Validate(bytes.NewReader(seal(header, bad, -1))); err == nil {
		t.Fatal("a snapshot with an address of a missing interface validated")
	}
}

func TestIPRoutesBelongToTheirBlock(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.1.0.0/24"})
	err := f.do(func(t *Txn) error { _, err := t.IPRouteCreate(&api.IPRoute{BlockID: b.ID}); return err })
	wantErr(t, "missing fields", err, 400, "destination", "ipam_ip_route_create_101")
	var rt *api.IPRoute
	f.ok("route", func(t *Txn) (err error) {
		rt, err = t.IPRouteCreate(&api.IPRoute{BlockID: b.ID, Destination: "0.0.0.0", Gateway: "10.1.0.1"})
		return
	})
	f.ok("delete block", func(t *Txn) error { return t.IPBlockDelete(b.ID) })
	if _, ok := f.s.Read().IPRoute(rt.ID); ok {
		t.Fatal("the route of a deleted block remains")
	}
}

func TestNATAndAllowedIPsFollowTheirAddresses(t *testing.T) {
	f, m := ipamFixture(t)
	b := f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.2.0.0/24", NetworkID: "n"})
	var local, global *api.IPAddress
	var err error
	if local, err = f.alloc(b.ID, "10.2.0.5"); err != nil {
		t.Fatal(err)
	}
	if global, err = f.alloc(b.ID, "10.2.0.6"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.iface(api.Interface{VIF: "v", TenantID: tenantOf(m)}, &NetworkRef{ID: "n", MemberID: m.ID}); err != nil {
		t.Fatal(err)
	}
	f.ok("link", func(t *Txn) error { return t.NATLink([]uint64{local.ID}, []uint64{global.ID, global.ID}) })
	f.ok("allow", func(t *Txn) error { _, err := t.AllowIP("v", global.ID); return err })
	r := f.s.Read()
	if len(r.InsideGlobals(local.ID)) != 1 || len(r.InsideLocals(global.ID)) != 1 || len(r.AllowedIPs("v")) != 1 {
		t.Fatal("links or allowance missing")
	}
	snap := f.snapshot()
	// A soft-deallocated address is locked for new links.
	f.ok("release", func(t *Txn) error { _, err := t.IPAddressRelease(IPRef{ID: global.ID}); return err })
	err = f.do(func(t *Txn) error { return t.NATLink([]uint64{local.ID}, []uint64{global.ID}) })
	wantErr(t, "locked", err, 422, "", "ipam_nat_create_101")
	// A purge removes the row and everything that pointed at it.
	f.ok("purge", func(t *Txn) error { _, err := t.IPAddressPurge(0, t.Now); return err })
	r = f.s.Read()
	if len(r.InsideGlobals(local.ID)) != 0 || len(r.AllowedIPs("v")) != 0 {
		t.Fatal("a purged address left links or allowances")
	}
	var again bytes.Buffer
	if err := r.Persist(&again); err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(bytes.NewReader(again.Bytes())); err != nil {
		t.Fatalf("state after purge does not validate: %v", err)
	}
	// A snapshot whose link names a missing address does not restore.
	header, recs, _ := snapParts(t, snap)
	var bad []string
	for _, rec := range recs {
		if strings.Contains(rec, `"t":"ipam_addresses"`) && strings.Contains(rec, `"10.2.0.6"`) {
			continue
		}
		bad = append(bad, rec)
	}
	if _, err := Validate(bytes.NewReader(seal(header, bad, -1))); err == nil {
		t.Fatal("a snapshot with a dangling NAT link validated")
	}
}

// go-memdb finds a value in a non-unique string index as a prefix of the
// keys (value, NUL, primary key): an id with a NUL in it ("vm1", NUL, "x")
// was found under "vm1" too, so one tenant's interface listed, and its
// delete freed, the addresses of another's; a device and a network the
// same. Under Rules2 only exact matches count; a command made before is
// replayed as it was applied.
func TestStringIndexesMatchExactly(t *testing.T) {
	run := func(rules uint32) (*fixture, *api.Member) {
		f, m := ipamFixture(t)
		f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.0.0.0/24", NetworkID: "n"})
		for _, id := range []string{"vm1\x00x", "vm1"} {
			f.ok("interface "+id, func(t *Txn) error {
				_, err := t.InterfaceCreate(api.Interface{VIF: id, TenantID: tenantOf(m), DeviceID: "d" + id[3:]}, &NetworkRef{ID: "n", MemberID: m.ID})
				return err
			})
		}
		r := f.s.Read()
		if a := r.InterfaceAddresses("vm1"); len(a) != 1 || a[0].InterfaceID != "vm1" {
			t.Fatalf("addresses of vm1: %+v", a)
		}
		if d := r.InterfacesOfDevice("d"); len(d) != 1 || d[0].VIF != "vm1" {
			t.Fatalf("interfaces of device d: %+v", d)
		}
		if a, err := r.NetworkAddresses(m.ID, "n", "vm1", ""); err != nil || len(a) != 1 || a[0].InterfaceID != "vm1" {
			t.Fatalf("addresses of vm1 in n: %+v %v", a, err)
		}
		// A public block in network "n", NUL, "x" is not in network n.
		f.block(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "192.0.2.0/24", Type: api.BlockPublic, NetworkID: "n\x00x"})
		if b := f.s.Read().IPBlockListByNetwork("n"); len(b) != 1 || b[0].NetworkID != "n" {
			t.Fatalf("blocks of network n: %+v", b)
		}
		f.ok("delete vm1", func(t *Txn) error { t.Rules = rules; return t.InterfaceDelete("vm1") })
		return f, m
	}
	other := func(f *fixture) int { return len(f.s.Read().InterfaceAddresses("vm1\x00x")) }
	if f, _ := run(Rules2); other(f) != 1 {
		t.Fatalf("deleting vm1 freed the address of vm1\\x00x")
	}
	if f, _ := run(RulesOriginal); other(f) != 0 {
		t.Fatalf("a delete made before Rules2 replays differently: vm1\\x00x kept its address")
	}
	f, m := run(Rules2)
	for _, rules := range []uint32{RulesOriginal, Rules2} {
		err := f.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.IPBlockCreate(&api.IPBlock{MemberID: m.ID, Dialect: api.DialectMelange, CIDR: "10.9.0.0/24", NetworkID: "n"})
			return err
		})
		if (err == nil) != (rules == Rules2) {
			t.Errorf("rules %d: a private block in n beside a public one in n\\x00x: %v", rules, err)
		}
	}
}

// A MAC range keeps its cidr as given (Melange's checklist 70); its MACs
// are those of the range it names, host bits cleared. A create made before
// Rules2 is replayed as it was applied: normalised.
func TestMACRangeKeepsItsCIDR(t *testing.T) {
	for _, tc := range []struct {
		rules uint32
		want  string
	}{{Rules2, "ab-bc-cd-12-23-34/40"}, {RulesOriginal, "ab:bc:cd:12:23:00/40"}} {
		f, m := ipamFixture(t)
		var r *api.MACRange
		f.ok("range", func(t *Txn) (err error) {
			t.Rules = tc.rules
			r, err = t.MACRangeCreate(&api.MACRange{CIDR: "ab-bc-cd-12-23-34/40"})
			return
		})
		if got, _ := f.s.Read().MACRange(r.ID); r.CIDR != tc.want || got.CIDR != tc.want {
			t.Errorf("rules %d: created %q, stored %q, want %q", tc.rules, r.CIDR, got.CIDR, tc.want)
		}
		d, err := f.iface(api.Interface{VIF: "v", TenantID: tenantOf(m)}, nil)
		if err != nil || d.Interface.MACAddress != "ab:bc:cd:12:23:00" {
			t.Errorf("rules %d: interface %+v %v", tc.rules, d, err)
		}
	}
}
