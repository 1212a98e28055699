package state

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// computeFixture is a region with a customer, a KVM image, an SSD storage
// type, servers and a router whose floating subnet is 45.0.0.1/29
// (usable 45.0.0.2–45.0.0.6).
type computeFixture struct {
	*fixture
	member   *api.Member
	region   *api.Region
	image    *api.Image
	st       *api.StorageType
	router   *api.Router
	floating *api.IPBlock
	servers  []*api.Server
}

func newComputeFixture(t testing.TB, servers ...[3]int) *computeFixture {
	f := newFixture(t)
	f.bootstrap()
	x := &computeFixture{fixture: f, member: f.member("acme")}
	f.ok("region", func(t *Txn) (err error) {
		x.region, err = t.RegionCreate(&api.Region{Name: "r1", Customers: []uint64{x.member.ID}})
		return
	})
	f.ok("catalogue", func(t *Txn) (err error) {
		if x.st, err = t.StorageTypeCreate(&api.StorageType{Name: "SSD"}); err != nil {
			return err
		}
		if x.image, err = t.ImageCreate(&api.Image{DisplayName: "Ubuntu", ServerTypeID: api.ServerTypeKVM, CloudInit: true, MultipleIPs: true}); err != nil {
			return err
		}
		_, err = t.RegionImageCreate(&api.RegionImage{RegionID: x.region.ID, ImageID: x.image.ID})
		return err
	})
	f.ok("floating", func(t *Txn) error {
		asn, err := t.ASNCreate(&api.ASN{MemberID: api.GlobalMemberID, Number: 64512})
		if err != nil {
			return err
		}
		alloc, err := t.IPBlockCreate(&api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectCloudCIX, CIDR: "45.0.0.0/24", Type: api.BlockPublic, ASNID: asn.ID})
		if err != nil {
			return err
		}
		x.floating, err = t.IPBlockCreate(&api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectCloudCIX, ParentID: alloc.ID, CIDR: "45.0.0.0/29", Gateway: "45.0.0.1"})
		return err
	})
	capacity := 10
	f.ok("router", func(t *Txn) (err error) {
		x.router, err = t.RouterCreate(&api.Router{RegionID: x.region.ID, Capacity: &capacity, Enabled: true, FloatingSubnetIDs: []uint64{x.floating.ID}})
		return
	})
	for _, s := range servers {
		f.ok("server", func(t *Txn) error {
			srv, err := t.ServerCreate(&api.Server{RegionID: x.region.ID, TypeID: api.ServerTypeKVM, StorageTypeID: x.st.ID, RAM: s[0], GB: s[1], Cores: s[2], Enabled: true})
			x.servers = append(x.servers, srv)
			return err
		})
	}
	return x
}

func (x *computeFixture) vm(name, ip string, nat bool) VMSpec {
	gw := "10.0.0.1/24" // the subnet of ip: it holds an address of the VM (Rules6)
	if strings.HasPrefix(ip, "10.0.1.") {
		gw = "10.0.1.1/24"
	}
	return VMSpec{Name: name, ImageID: x.image.ID, StorageTypeID: x.st.ID, CPU: 2, RAM: 4, DNS: "1.1.1.1",
		Storages: []StorageSpec{{Name: "root", GB: 20, Primary: true}}, GatewaySubnet: gw,
		IPAddresses: []IPSpec{{Address: ip, NAT: nat}}, GUID: "guid-" + name}
}

func (x *computeFixture) cloud(name string, vms ...VMSpec) *CloudSpec {
	rules := []api.FirewallRule{{Order: 1, Allow: true, Source: "*", Destination: "10.0.0.0/24", Protocol: "tcp", Port: "22"}}
	return &CloudSpec{
		Project:       &ProjectSpec{MemberID: x.member.ID, RegionID: x.region.ID, Name: name, GracePeriod: 168},
		Subnets:       []SubnetSpec{{Name: "a", AddressRange: "10.0.0.1/24"}, {Name: "b", AddressRange: "10.0.1.1/24"}},
		VMs:           vms,
		FirewallRules: &rules,
		Placement:     api.DefaultPlacement,
		Actor:         Actor{UserID: 1, MemberID: x.member.ID},
	}
}

func (x *computeFixture) create(s *CloudSpec) (*CloudResult, error) {
	var res *CloudResult
	err := x.do(func(t *Txn) (err error) { res, err = t.CloudCreate(s); return })
	return res, err
}

// counts is the size of every table a cloud create writes to.
func (x *computeFixture) counts() string {
	r := x.s.Read()
	return fmt.Sprintf("projects=%d vrs=%d vms=%d storages=%d histories=%d asns=%d blocks=%d addresses=%d",
		len(r.ProjectList()), len(r.VirtualRouterList()), len(r.VMList()), len(r.StorageList()),
		len(r.VMHistoryList()), len(r.ASNList()), len(r.IPBlockList()), len(all[*api.IPAddress](r, IPAddresses, "id")))
}

// TestCloudCreateIsAtomic: a cloud create with 2 subnets, 3 VMs and
// firewall rules whose last VM is invalid leaves nothing behind.
func TestCloudCreateIsAtomic(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	before := x.counts()
	bad := x.vm("c", "10.0.1.20", false)
	bad.ImageID = 999
	_, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", true), x.vm("b", "10.0.0.11", false), bad))
	wantErr(t, "cloud with a bad last VM", err, http.StatusBadRequest, "vms[2].image_id", "iaas_vm_create_107")
	if after := x.counts(); after != before {
		t.Fatalf("a failed cloud create left objects behind:\nbefore %s\nafter  %s", before, after)
	}
	// A last VM with no capacity, or a bad rule, leaves nothing either.
	big := x.vm("c", "10.0.1.20", false)
	big.RAM = 10000
	_, err = x.create(x.cloud("p", x.vm("a", "10.0.0.10", true), x.vm("b", "10.0.0.11", false), big))
	wantErr(t, "no capacity", err, http.StatusBadRequest, "vms[2].server", "iaas_vm_create_123")
	if after := x.counts(); after != before {
		t.Fatalf("no-capacity cloud create left objects:\n%s\n%s", before, after)
	}

	// The same cloud, valid, creates everything.
	res, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", true), x.vm("b", "10.0.0.11", false), x.vm("c", "10.0.1.20", false)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Subnets) != 2 || len(res.VMs) != 3 || len(res.VirtualRouter.FirewallRules) != 1 {
		t.Fatalf("result: %+v", res)
	}
	r := x.s.Read()
	p := res.Project
	if p.ASN != api.PseudoASNBase+p.ID || len(p.AllocationIDs) != 3 {
		t.Errorf("project: %+v", p)
	}
	if res.VirtualRouter.IPAddress != "45.0.0.2" || res.VirtualRouter.State != api.StateRequested {
		t.Errorf("virtual router: %+v", res.VirtualRouter)
	}
	if res.Subnets[0].VLAN != api.VLANMin || res.Subnets[1].VLAN != api.VLANMin+1 || res.Subnets[0].VXLAN == res.Subnets[1].VXLAN {
		t.Errorf("segments: %d/%d %d/%d", res.Subnets[0].VLAN, res.Subnets[0].VXLAN, res.Subnets[1].VLAN, res.Subnets[1].VXLAN)
	}
	priv, pub := r.VMAddresses(res.VMs[0])
	if len(priv) != 1 || pub[priv[0].ID] == nil || pub[priv[0].ID].Address != "45.0.0.3" {
		t.Fatalf("NAT: the first VM's public address must be the lowest free, 45.0.0.3: %+v %+v", priv, pub)
	}
	for _, vm := range res.VMs {
		if vm.State != api.StateRequested || len(r.VMHistoryOf(vm.ID)) != 1 {
			t.Errorf("vm %d: state %d, %d history rows", vm.ID, vm.State, len(r.VMHistoryOf(vm.ID)))
		}
		priv, _ := r.VMAddresses(vm)
		m, err := netx.ParseMAC(priv[0].MACAddress)
		if err != nil || !m.IsLocalUnicast() {
			t.Errorf("vm %d: MAC %q is not locally administered unicast", vm.ID, priv[0].MACAddress)
		}
	}
	// A second project gets the next VLANs of the region.
	res2, err := x.create(x.cloud("q", x.vm("a", "10.0.0.10", false)))
	if err != nil {
		t.Fatal(err)
	}
	if res2.Subnets[0].VLAN != api.VLANMin+2 {
		t.Errorf("second project VLAN %d, want %d", res2.Subnets[0].VLAN, api.VLANMin+2)
	}
}

// TestPlacementScoring: the best fit by direction wins, a server where the
// VM does not fit never does, ties go to the lowest id.
func TestPlacementScoring(t *testing.T) {
	// remaining [ram, gb, cpu]: A ram-heavy, B disk-heavy, C too small.
	x := newComputeFixture(t, [3]int{208, 200, 4}, [3]int{20, 2000, 4}, [3]int{10, 120, 1})
	r := x.s.Read()
	for i, want := range [][3]int64{{170, 77, 25}, {11, 1463, 25}, {2, 16, 7}} {
		if got := r.Remaining(x.servers[i], api.DefaultPlacement, false); got != want {
			t.Errorf("server %d remaining %v, want %v", i, got, want)
		}
	}
	ram := x.vm("ram", "10.0.0.10", false)
	ram.RAM, ram.CPU, ram.Storages[0].GB = 8, 1, 10
	disk := x.vm("disk", "10.0.0.11", false)
	disk.RAM, disk.CPU, disk.Storages[0].GB = 1, 1, 500
	res, err := x.create(x.cloud("p", ram, disk))
	if err != nil {
		t.Fatal(err)
	}
	if res.VMs[0].ServerID != x.servers[0].ID || res.VMs[1].ServerID != x.servers[1].ID {
		t.Errorf("placement: ram VM on %d (want %d), disk VM on %d (want %d)", res.VMs[0].ServerID, x.servers[0].ID, res.VMs[1].ServerID, x.servers[1].ID)
	}
	// Custom factors change the limits: no RAM reserve gives more room.
	f := api.DefaultPlacement
	f.RAMReserveGB = 0
	if got := r.Remaining(x.servers[2], f, false); got[0] != 9 {
		t.Errorf("with no RAM reserve: %v", got)
	}
}

// TestStateChangeCAS: robots must compare-and-swap; one of two claims wins.
func TestStateChangeCAS(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	res, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", true)))
	if err != nil {
		t.Fatal(err)
	}
	vm := res.VMs[0]
	robot := Actor{UserID: 1, TokenID: 7, Robot: true}
	set := func(to int, expected *int, a Actor, extra ...func(*StateChange)) error {
		ch := &StateChange{Kind: api.KindVM, ID: vm.ID, To: to, Expected: expected, Actor: a}
		for _, e := range extra {
			e(ch)
		}
		return x.do(func(t *Txn) error { _, err := t.SetState(ch); return err })
	}
	req, bld := api.StateRequested, api.StateBuilding
	wantErr(t, "robot without expected", set(bld, nil, robot), 400, "expected_state", "iaas_vm_update_111")
	if err := set(bld, &req, robot); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "second claim", set(bld, &req, robot), 409, "", "iaas_vm_update_004")
	wantErr(t, "user cannot build", set(api.StateRunning, nil, Actor{UserID: 2}), 400, "state", "iaas_vm_update_106")
	err = set(api.StateUnresourced, &bld, robot, func(c *StateChange) { c.ErrorCode, c.ErrorDetail = "disk_full", "no space" })
	if err != nil {
		t.Fatal(err)
	}
	got, _ := x.s.Read().VM(vm.ID)
	if got.State != api.StateUnresourced || got.ErrorCode != "disk_full" || got.ErrorDetail != "no space" {
		t.Errorf("unresourced: %+v", got)
	}
	h := x.s.Read().VMHistoryOf(vm.ID)
	if len(h) != 3 || !h[2].Robot || h[2].TokenID != 7 || h[2].State != api.StateUnresourced {
		t.Errorf("history: %+v", h)
	}
	// Retry, build, run; a user stops and scrubs; the robot closes: the
	// addresses are freed and the router must drop the NAT.
	un := api.StateUnresourced
	for _, step := range []struct {
		to  int
		exp *int
		a   Actor
	}{{api.StateRequested, &un, robot}, {api.StateBuilding, &req, robot}, {api.StateRunning, &bld, robot},
		{api.StateScrub, nil, Actor{UserID: 2}}, {api.StateScrubbing, ptr(api.StateScrub), robot}, {api.StateClosed, ptr(api.StateScrubbing), robot}} {
		if err := set(step.to, step.exp, step.a); err != nil {
			t.Fatalf("→ %d: %v", step.to, err)
		}
	}
	r := x.s.Read()
	if priv, _ := r.VMAddresses(vm); len(priv) != 0 {
		t.Errorf("a closed VM keeps addresses %+v", priv)
	}
	if vr, _ := r.VirtualRouter(res.VirtualRouter.ID); vr.Generation != 2 {
		t.Errorf("closing a NATed VM must bump the router's generation: %+v", vr)
	}
}

func ptr[T any](v T) *T { return &v }

func TestComputeSnapshotRoundTrip(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	if _, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", true))); err != nil {
		t.Fatal(err)
	}
	snap := x.snapshot()
	s := New()
	if err := s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	var again []byte
	{
		f := &fixture{t: t, s: s}
		again = f.snapshot()
	}
	if string(again) != string(snap) {
		t.Fatal("compute snapshot does not round-trip")
	}
}

// TestScrubQueueGracePeriod: a robot cannot take a VM from SCRUB_QUEUE to
// SCRUBBING before the project's grace period (hours since the VM entered
// SCRUB_QUEUE) is over; a user can restore it meanwhile.
func TestScrubQueueGracePeriod(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	spec := x.cloud("p", x.vm("a", "10.0.0.10", false), x.vm("b", "10.0.0.11", false))
	spec.Project.GracePeriod = 2
	res, err := x.create(spec)
	if err != nil {
		t.Fatal(err)
	}
	robot := Actor{Robot: true, TokenID: 9}
	// The fixture's clock: command n runs at t0 + n seconds; at allows
	// a command at a chosen time.
	at := func(when time.Time, ch *StateChange) error {
		x.index++
		txn := x.s.Write(x.index, when)
		if _, err := txn.SetState(ch); err != nil {
			txn.Abort()
			return err
		}
		txn.Commit()
		return nil
	}
	now := t0.Add(time.Hour)
	for _, vm := range res.VMs {
		for _, s := range [][2]int{{2, 1}, {4, 2}, {8, 4}, {14, 8}, {9, 14}} {
			a := robot
			exp := ptr(s[1])
			if s[0] == api.StateScrub {
				a, exp = Actor{UserID: 2}, nil
			}
			if err := at(now, &StateChange{Kind: api.KindVM, ID: vm.ID, To: s[0], Expected: exp, Actor: a}); err != nil {
				t.Fatalf("vm %d → %d: %v", vm.ID, s[0], err)
			}
		}
	}
	a, b := res.VMs[0], res.VMs[1]
	q := ptr(api.StateScrubQueue)
	err = at(now.Add(119*time.Minute), &StateChange{Kind: api.KindVM, ID: a.ID, To: api.StateScrubbing, Expected: q, Actor: robot})
	wantErr(t, "scrub inside the grace period", err, 400, "state", "iaas_vm_update_114")
	r := x.s.Read()
	cur, _ := r.VM(a.ID)
	if r.VMScrubDue(cur, now.Add(119*time.Minute)) || !r.VMScrubDue(cur, now.Add(121*time.Minute)) {
		t.Error("VMScrubDue does not follow the 2 h grace period")
	}
	// restore b inside the grace period; scrub a after it.
	if err := at(now.Add(time.Hour), &StateChange{Kind: api.KindVM, ID: b.ID, To: api.StateRestart, Actor: Actor{UserID: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := at(now.Add(121*time.Minute), &StateChange{Kind: api.KindVM, ID: a.ID, To: api.StateScrubbing, Expected: q, Actor: robot}); err != nil {
		t.Fatal(err)
	}
}

// TestProjectStateScrubAndRestore: 8 sends everything to SCRUB, 4 restores
// what waits in SCRUB_QUEUE (VM_RESTORE_MAP: a VM that was RUNNING
// restarts, one that was QUIESCED stays QUIESCED); refused unless the
// project is stable.
func TestProjectStateScrubAndRestore(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	res, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", false), x.vm("b", "10.0.0.11", false)))
	if err != nil {
		t.Fatal(err)
	}
	user := Actor{UserID: 2}
	set := func(ch *StateChange) error {
		return x.do(func(t *Txn) error { _, err := t.SetState(ch); return err })
	}
	proj := func(to int) error {
		return set(&StateChange{Kind: KindProject, ID: res.Project.ID, To: to, Actor: user})
	}
	wantErr(t, "project not stable", proj(api.StateScrub), 400, "state", "iaas_project_update_109")
	wantErr(t, "bad project state", proj(api.StateQuiesce), 400, "state", "iaas_project_update_108")
	robot := Actor{Robot: true}
	steps := func(kind string, id uint64, steps [][2]int) {
		t.Helper()
		for _, s := range steps {
			a := robot
			if s[0] == api.StateQuiesce {
				a = user
			}
			if err := set(&StateChange{Kind: kind, ID: id, To: s[0], Expected: ptr(s[1]), Actor: a}); err != nil {
				t.Fatalf("%s %d → %d: %v", kind, id, s[0], err)
			}
		}
	}
	a, b := res.VMs[0].ID, res.VMs[1].ID
	steps(api.KindVM, a, [][2]int{{2, 1}, {4, 2}})
	steps(api.KindVM, b, [][2]int{{2, 1}, {4, 2}, {5, 4}, {12, 5}, {6, 12}}) // b is QUIESCED
	steps(api.KindVirtualRouter, res.VirtualRouter.ID, [][2]int{{2, 1}, {4, 2}})
	if err := proj(api.StateScrub); err != nil {
		t.Fatal(err)
	}
	r := x.s.Read()
	va, _ := r.VM(a)
	vb, _ := r.VM(b)
	vr, _ := r.VirtualRouter(res.VirtualRouter.ID)
	if va.State != api.StateScrub || vb.State != api.StateScrub || vr.State != api.StateScrub {
		t.Fatalf("after project delete: vms %d %d, vr %d", va.State, vb.State, vr.State)
	}
	for _, id := range []uint64{a, b} {
		steps(api.KindVM, id, [][2]int{{14, 8}, {9, 14}})
	}
	wantErr(t, "VR still scrubbing", proj(api.StateRunning), 400, "state", "iaas_project_update_109")
	// The router's scrub waits for the VMs to be CLOSED; SCRUB_PREP is fine.
	steps(api.KindVirtualRouter, vr.ID, [][2]int{{14, 8}, {9, 14}})
	if err := proj(api.StateRunning); err != nil {
		t.Fatal(err)
	}
	r = x.s.Read()
	va, _ = r.VM(a)
	vb, _ = r.VM(b)
	vr, _ = r.VirtualRouter(vr.ID)
	if va.State != api.StateRestart || vb.State != api.StateQuiesced || vr.State != api.StateRestart {
		t.Fatalf("after restore: vm a %d (want 7), vm b %d (want 6), vr %d (want 7)", va.State, vb.State, vr.State)
	}
	// The restored states are in the VMs' history.
	if h := r.VMHistoryOf(b); h[len(h)-1].State != api.StateQuiesced {
		t.Errorf("last history row of b: %+v", h[len(h)-1])
	}
}

// TestMACsPerNIC: a VM with addresses in two subnets gets two different
// locally administered unicast MACs; two addresses in one subnet share one.
func TestMACsPerNIC(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	v := x.vm("multi", "10.0.0.10", false)
	v.IPAddresses = []IPSpec{{Address: "10.0.0.10"}, {Address: "10.0.0.11"}, {Address: "10.0.1.10"}}
	res, err := x.create(x.cloud("p", v, x.vm("other", "10.0.0.12", false)))
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := x.s.Read().VMAddresses(res.VMs[0])
	if len(priv) != 3 || priv[0].MACAddress != priv[1].MACAddress || priv[0].MACAddress == priv[2].MACAddress {
		t.Fatalf("MACs: %s %s %s", priv[0].MACAddress, priv[1].MACAddress, priv[2].MACAddress)
	}
	other, _ := x.s.Read().VMAddresses(res.VMs[1])
	seen := map[string]bool{}
	for _, a := range append(priv, other...) {
		m, _ := netx.ParseMAC(a.MACAddress)
		if !m.IsLocalUnicast() {
			t.Errorf("%s is not locally administered unicast", m)
		}
		seen[a.MACAddress] = true
	}
	if len(seen) != 3 {
		t.Errorf("distinct MACs %v, want 3", seen)
	}
}

// TestFloatingAddressesRunOut: the router's floating /29 has five usable
// addresses: the virtual router takes the first, NAT the next ones, lowest
// first; the sixth request is 142 and leaves nothing behind.
func TestFloatingAddressesRunOut(t *testing.T) {
	x := newComputeFixture(t, [3]int{256, 5000, 64})
	var vms []VMSpec
	for i := 0; i < 5; i++ {
		vms = append(vms, x.vm(fmt.Sprintf("v%d", i), fmt.Sprintf("10.0.0.%d", 10+i), true))
	}
	before := x.counts()
	_, err := x.create(x.cloud("p", vms...))
	wantErr(t, "sixth floating address", err, 400, "vms[4].ip_addresses[0]", "iaas_vm_create_142")
	if after := x.counts(); after != before {
		t.Fatalf("left behind:\n%s\n%s", before, after)
	}
	res, err := x.create(x.cloud("p", vms[:4]...))
	if err != nil {
		t.Fatal(err)
	}
	r := x.s.Read()
	for i, vm := range res.VMs {
		priv, pub := r.VMAddresses(vm)
		if want := fmt.Sprintf("45.0.0.%d", 3+i); pub[priv[0].ID].Address != want {
			t.Errorf("vm %d NAT %s, want %s", i, pub[priv[0].ID].Address, want)
		}
	}
	// No address left for another project's virtual router.
	_, err = x.create(x.cloud("q"))
	wantErr(t, "no address for a router", err, 400, "", "iaas_cloud_create_109")
}

// TestVLANPool: a region hands out every VLAN of 1000–2000 (1001 of them,
// CloudCIX's off-by-one fixed), lowest first, and then refuses.
func TestVLANPool(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	spec := x.cloud("p")
	spec.FirewallRules = nil
	spec.Subnets = nil
	for i := 0; i < 1002; i++ {
		spec.Subnets = append(spec.Subnets, SubnetSpec{Name: "s", AddressRange: fmt.Sprintf("10.%d.%d.1/24", i/256, i%256)})
	}
	_, err := x.create(spec)
	wantErr(t, "1002 subnets", err, 400, "subnets[1001].address_range", "iaas_cloud_create_116")
	spec.Subnets = spec.Subnets[:1001]
	res, err := x.create(spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Subnets[0].VLAN != 1000 || res.Subnets[1000].VLAN != 2000 {
		t.Errorf("VLANs %d..%d", res.Subnets[0].VLAN, res.Subnets[1000].VLAN)
	}
}

// TestComputeApplyDeterministic: the same commands on two stores give
// byte-identical snapshots (no map order, clock or randomness in Apply).
func TestComputeApplyDeterministic(t *testing.T) {
	var snaps [2][]byte
	for i := range snaps {
		x := newComputeFixture(t, [3]int{64, 1000, 16}, [3]int{128, 2000, 32})
		v := x.vm("a", "10.0.0.10", true)
		v.IPAddresses = append(v.IPAddresses, IPSpec{Address: "10.0.1.10"})
		res, err := x.create(x.cloud("p", v, x.vm("b", "10.0.0.11", true), x.vm("c", "10.0.1.11", false)))
		if err != nil {
			t.Fatal(err)
		}
		x.ok("vpn", func(t *Txn) error {
			_, err := t.VPNCreate(&VPNPayload{VPN: api.VPN{VirtualRouterID: res.VirtualRouter.ID,
				Routes: []api.VPNRoute{{LocalSubnetID: res.Subnets[0].ID, RemoteSubnet: "198.18.0.0/24"}}}, PreSharedKey: "k"})
			return err
		})
		snaps[i] = x.snapshot()
	}
	if string(snaps[0]) != string(snaps[1]) {
		t.Fatal("two stores applying the same commands differ")
	}
}

// TestSetStateEveryTriple: the state machine as Apply enforces it, for a
// VM, a virtual router, a snapshot and a backup: every (from, to, actor)
// triple. Allowed changes succeed, the same state is a no-op, everything
// else is a 400 with the code of api.Transition.
func TestSetStateEveryTriple(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	res, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", false)))
	if err != nil {
		t.Fatal(err)
	}
	vmID, vrID := res.VMs[0].ID, res.VirtualRouter.ID
	var snapID, backupID uint64
	x.ok("snapshot and backup", func(t *Txn) error {
		vm, _ := t.VM(vmID)
		n := *vm
		n.State = api.StateRunning
		if err := t.txn.Insert(VMs, &n); err != nil {
			return err
		}
		s, err := t.SnapshotCreate(&SnapshotCreatePayload{VMID: vmID, Name: "s"})
		if err != nil {
			return err
		}
		b, err := t.BackupCreate(&BackupCreatePayload{VMID: vmID, Name: "b", Repository: 1})
		snapID, backupID = s.ID, b.ID
		return err
	})
	long := t0.Add(-365 * 24 * time.Hour).Format(time.RFC3339Nano) // grace long over
	// force puts an object in a state, outside the state machine.
	force := func(t *Txn, kind string, id uint64, st int) error {
		switch kind {
		case api.KindVM:
			v, _ := t.VM(id)
			n := *v
			n.State, n.StateChanged = st, long
			return t.txn.Insert(VMs, &n)
		case api.KindVirtualRouter:
			v, _ := t.VirtualRouter(id)
			n := *v
			n.State, n.StateChanged = st, long
			return t.txn.Insert(VirtualRouters, &n)
		case api.KindSnapshot:
			v, _ := t.Snapshot(id)
			n := *v
			n.State, n.StateChanged = st, long
			return t.txn.Insert(Snapshots, &n)
		}
		v, _ := t.Backup(id)
		n := *v
		n.State, n.StateChanged = st, long
		return t.txn.Insert(Backups, &n)
	}
	objects := []struct {
		kind string
		id   uint64
	}{{api.KindVM, vmID}, {api.KindVirtualRouter, vrID}, {api.KindSnapshot, snapID}, {api.KindBackup, backupID}}
	n := 0
	for _, o := range objects {
		for _, robot := range []bool{false, true} {
			actor := api.ActorUser
			if robot {
				actor = api.ActorRobot
			}
			for _, from := range api.AllStates {
				for _, to := range append(append([]int{}, api.AllStates...), 18, 100) {
					n++
					// The guards that depend on other objects are tested
					// elsewhere: here the snapshot and VM never block each other.
					x.ok("reset", func(t *Txn) error {
						if o.kind == api.KindVM {
							// a VM with a live snapshot cannot be scrubbed (109),
							// nor changed by a user with a busy backup (110)
							if err := force(t, api.KindSnapshot, snapID, api.StateClosed); err != nil {
								return err
							}
							if err := force(t, api.KindBackup, backupID, api.StateClosed); err != nil {
								return err
							}
						}
						if o.kind == api.KindVirtualRouter {
							// a router cannot be scrubbed while a VM is not CLOSED (003)
							if err := force(t, api.KindVM, vmID, api.StateClosed); err != nil {
								return err
							}
						}
						if o.kind == api.KindSnapshot || o.kind == api.KindBackup {
							// a revert or restore needs a RUNNING or QUIESCED VM (117)
							if err := force(t, api.KindVM, vmID, api.StateRunning); err != nil {
								return err
							}
						}
						return force(t, o.kind, o.id, from)
					})
					ch := &StateChange{Kind: o.kind, ID: o.id, To: to, Actor: Actor{Robot: robot, UserID: 1}}
					if robot {
						ch.Expected = ptr(from)
					}
					err := x.do(func(t *Txn) error { _, err := t.SetState(ch); return err })
					changed, want := api.Transition(o.kind, o.kind, actor, from, to)
					name := fmt.Sprintf("%s %s %d→%d", o.kind, actor, from, to)
					switch {
					case want != nil:
						if err == nil || err.Error() != want.Error() {
							t.Errorf("%s: want %v, got %v", name, want, err)
						}
					case err != nil:
						t.Errorf("%s: allowed (changed=%v), got %v", name, changed, err)
					default:
						var got int
						r := x.s.Read()
						switch o.kind {
						case api.KindVM:
							v, _ := r.VM(o.id)
							got = v.State
						case api.KindVirtualRouter:
							v, _ := r.VirtualRouter(o.id)
							got = v.State
						case api.KindSnapshot:
							v, _ := r.Snapshot(o.id)
							got = v.State
						default:
							v, _ := r.Backup(o.id)
							got = v.State
						}
						if got != to {
							t.Errorf("%s: state %d after an allowed change", name, got)
						}
					}
				}
			}
		}
	}
	if n != 4*2*20*22 {
		t.Fatalf("covered %d triples", n)
	}
}

// TestVPNOnDeletedRouter: a VPN cannot be created or changed on a virtual
// router that is being deleted (it would be stored and never built); it
// can still be deleted.
func TestVPNOnDeletedRouter(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	res, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", false)))
	if err != nil {
		t.Fatal(err)
	}
	vpn := func(id uint64) *VPNPayload {
		return &VPNPayload{VPN: api.VPN{Meta: api.Meta{ID: id}, VirtualRouterID: res.VirtualRouter.ID,
			Routes: []api.VPNRoute{{LocalSubnetID: res.Subnets[0].ID, RemoteSubnet: "198.18.0.0/24"}}}, PreSharedKey: "k"}
	}
	var id uint64
	x.ok("vpn", func(t *Txn) error {
		v, err := t.VPNCreate(vpn(0))
		if v != nil {
			id = v.ID
		}
		return err
	})
	robot := Actor{Robot: true}
	set := func(kind string, id uint64, to, from int) {
		t.Helper()
		x.ok(fmt.Sprintf("%s → %d", kind, to), func(t *Txn) error {
			_, err := t.SetState(&StateChange{Kind: kind, ID: id, To: to, Expected: ptr(from), Actor: robot})
			return err
		})
	}
	for _, k := range []struct {
		kind string
		id   uint64
	}{{api.KindVM, res.VMs[0].ID}, {api.KindVirtualRouter, res.VirtualRouter.ID}} {
		set(k.kind, k.id, api.StateBuilding, api.StateRequested)
		set(k.kind, k.id, api.StateRunning, api.StateBuilding)
	}
	x.ok("project delete", func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: KindProject, ID: res.Project.ID, To: api.StateScrub, Actor: Actor{UserID: 2}})
		return err
	})
	err = x.do(func(t *Txn) error { _, err := t.VPNCreate(vpn(0)); return err })
	wantErr(t, "create on a router being deleted", err, 400, "virtual_router_id", "iaas_vpn_create_129")
	err = x.do(func(t *Txn) error { _, err := t.VPNUpdate(vpn(id), 0); return err })
	wantErr(t, "update on a router being deleted", err, 400, "virtual_router_id", "iaas_vpn_update_129")
	x.ok("delete", func(t *Txn) error { return t.VPNDelete(&VPNDeletePayload{ID: id}) })
}

// BenchmarkVPNRouteCheck: a VPN create with the most routes the API takes
// (api.MaxVPNRoutes), checked inside Apply on every node; each prefix is
// parsed once, the overlap checks among the routes are pairwise.
func BenchmarkVPNRouteCheck(b *testing.B) {
	x := newComputeFixture(b, [3]int{64, 1000, 16})
	res, err := x.create(x.cloud("p"))
	if err != nil {
		b.Fatal(err)
	}
	routes := make([]api.VPNRoute, api.MaxVPNRoutes)
	for i := range routes {
		routes[i] = api.VPNRoute{LocalSubnetID: res.Subnets[0].ID, RemoteSubnet: fmt.Sprintf("198.18.%d.0/24", i)}
	}
	v := &api.VPN{VirtualRouterID: res.VirtualRouter.ID, ProjectID: res.Project.ID, Routes: routes}
	txn := x.s.Write(x.index+1, time.Now())
	defer txn.Abort()
	b.ResetTimer()
	for range b.N {
		if err := txn.vpnRoutes(v, "create"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUserDeleteProjectManager: a user who manages an open project cannot
// be deleted (400 naming the project, nothing changed); once the project
// is closed the delete goes through and clears its manager_id in the same
// transaction, so no project points at a missing user.
func TestUserDeleteProjectManager(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	alice, bob := x.user(x.member.ID, "alice"), x.user(x.member.ID, "bob")
	spec := x.cloud("managed")
	spec.Project.ManagerID = alice.ID
	res, err := x.create(spec)
	if err != nil {
		t.Fatal(err)
	}
	other := x.cloud("other")
	other.Project.ManagerID = bob.ID
	other.Subnets = []SubnetSpec{{Name: "a", AddressRange: "10.0.0.1/24"}}
	if _, err := x.create(other); err != nil {
		t.Fatal(err)
	}
	del := func(id uint64) error { return x.do(func(t *Txn) error { return t.UserDelete(id) }) }
	err = del(alice.ID)
	wantErr(t, "delete a project's manager", err, 400, "", "membership_user_delete_102")
	if !strings.Contains(err.Error(), fmt.Sprintf("%d (\"managed\")", res.Project.ID)) {
		t.Errorf("error does not name the project: %v", err)
	}
	if _, ok := x.s.Read().User(alice.ID); !ok {
		t.Fatal("refused delete removed the user")
	}
	x.ok("close the project", func(t *Txn) error {
		p, _ := t.Project(res.Project.ID)
		n := *p
		n.Closed = true
		return replace(t, Projects, &n, 0, "test")
	})
	x.ok("delete the closed project's manager", func(t *Txn) error { return t.UserDelete(alice.ID) })
	r := x.s.Read()
	if _, ok := r.User(alice.ID); ok {
		t.Error("user still there")
	}
	if p, _ := r.Project(res.Project.ID); p.ManagerID != 0 {
		t.Errorf("closed project still names deleted user %d as manager", p.ManagerID)
	}
	for _, p := range r.ProjectList() {
		if p.ManagerID == bob.ID {
			return
		}
	}
	t.Error("another user's project lost its manager")
}

// TestVMHistoryQuantityNames: history rows carry CloudCIX's names
// (cpu_quantity, ram_quantity, gpu_quantity); a snapshot written before the
// rename, with cpu, ram and gpu, restores to the same values, and persists
// again to exactly the snapshot the current version writes.
func TestVMHistoryQuantityNames(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	if _, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", false))); err != nil {
		t.Fatal(err)
	}
	hist := x.s.Read().VMHistoryList()
	if len(hist) != 1 || hist[0].CPUQuantity != 2 || hist[0].RAMQuantity != 4 {
		t.Fatalf("history: %+v", hist)
	}
	snap := x.snapshot()
	header, records, _ := snapParts(t, snap)
	old := make([]string, len(records))
	doctored := 0
	for i, r := range records {
		old[i] = r
		if strings.HasPrefix(r, `{"t":"`+VMHistories+`"`) {
			if !strings.Contains(r, `"cpu_quantity":2,"ram_quantity":4,"gpu_quantity":0`) {
				t.Fatalf("history record: %s", r)
			}
			old[i] = strings.Replace(r, `"cpu_quantity":2,"ram_quantity":4,"gpu_quantity":0`, `"cpu":2,"ram":4,"gpu":0`, 1)
			doctored++
		}
	}
	if doctored != 1 {
		t.Fatalf("%d history records in the snapshot", doctored)
	}
	s := New()
	if err := s.Restore(bytes.NewReader(seal(header, old, -1))); err != nil {
		t.Fatalf("restore an old snapshot: %v", err)
	}
	h, _ := s.Read().VMHistory(hist[0].ID)
	if h.CPUQuantity != 2 || h.RAMQuantity != 4 || h.GPUQuantity != 0 {
		t.Errorf("old history row restored as %+v", h)
	}
	var again bytes.Buffer
	if err := s.Read().Persist(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), snap) {
		t.Errorf("an old snapshot does not persist again as the current one")
	}
}

// TestPlacementHugeSizes: placement picks the best fit exactly at the
// largest sizes the API accepts (api.MaxCores, MaxRAMGB, MaxStorageGB):
// the score's dot product and norm (|S|² reaches 2^80) do not overflow.
// The winner is checked against the score computed with big.Rat.
func TestPlacementHugeSizes(t *testing.T) {
	const c, m, g = api.MaxCores, api.MaxRAMGB, api.MaxStorageGB
	servers := [][3]int{{m, g, c}, {m, 2000, 16}, {64, g, 16}, {64, 1000, c}, {64, 1000, 16}}
	for i, v := range [][3]int{{1, 1, 1}, {m / 2, 10, 1}, {1, g / 2, 1}, {8, 100, c}, {4, 20, 2}, {m / 2, g / 2, c}} {
		x := newComputeFixture(t, servers...)
		r := x.s.Read()
		// The reference: score² = (V·S)² / |S|², exactly.
		var want *api.Server
		var best *big.Rat
		for _, s := range x.servers {
			rem := r.Remaining(s, api.DefaultPlacement, false)
			dot, norm := new(big.Int), new(big.Int)
			fits := true
			for k := range 3 {
				if int64(v[k]) > rem[k] {
					fits = false
				}
				dot.Add(dot, new(big.Int).Mul(big.NewInt(int64(v[k])), big.NewInt(rem[k])))
				norm.Add(norm, new(big.Int).Mul(big.NewInt(rem[k]), big.NewInt(rem[k])))
			}
			if !fits {
				continue
			}
			if norm.Sign() == 0 {
				norm.SetInt64(1)
			}
			score := new(big.Rat).SetFrac(new(big.Int).Mul(dot, dot), norm)
			if best == nil || score.Cmp(best) > 0 {
				want, best = s, score
			}
		}
		if want == nil {
			t.Fatalf("case %d: nothing fits %v", i, v)
		}
		vm := x.vm("v", "10.0.0.10", false)
		vm.RAM, vm.Storages[0].GB, vm.CPU = v[0], v[1], v[2]
		res, err := x.create(x.cloud("p", vm))
		if err != nil {
			t.Fatalf("case %d %v: %v", i, v, err)
		}
		if got := res.VMs[0].ServerID; got != want.ID {
			t.Errorf("case %d: VM %v placed on server %d, want %d", i, v, got, want.ID)
		}
	}
}

// TestRemainingSaturates: a server's remaining capacity does not wrap
// around on sizes beyond the API's bounds (stored before them, or with a
// large cpu_oversubscription): it stays huge and positive.
func TestRemainingSaturates(t *testing.T) {
	x := newComputeFixture(t, [3]int{math.MaxInt, math.MaxInt, math.MaxInt / 2})
	f := api.DefaultPlacement
	f.CPUOversubscription = 1 << 40
	for _, pf := range []api.PlacementFactors{api.DefaultPlacement, f} {
		for _, upd := range []bool{false, true} {
			rem := x.s.Read().Remaining(x.servers[0], pf, upd)
			for k, v := range rem {
				if v < 1<<60 {
					t.Errorf("factors %+v update %v: remaining[%d] = %d, want huge", pf, upd, k, v)
				}
			}
		}
	}
}

// TestGlobalActorIsTheAPIsGlobalUser: the state's checks on the actor
// agree with the API's notion of a global user (api.User.IsGlobal: member
// 1 AND global_active). A user of member 1 without global_active is a
// tenant: it may not create a project in a region whose customers do not
// include member 1, nor a VM in another member's project; a global user
// may do both; a robot of a global user is no global user.
func TestGlobalActorIsTheAPIsGlobalUser(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	res, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", false)))
	if err != nil {
		t.Fatal(err)
	}
	cixUser := x.user(api.GlobalMemberID, "cix-user") // not global_active
	tenant := Actor{UserID: cixUser.ID, MemberID: api.GlobalMemberID}
	root := Actor{UserID: 1, MemberID: api.GlobalMemberID}
	if u, ok := x.s.Read().User(root.UserID); !ok || !u.IsGlobal() {
		t.Fatalf("user 1 is not the global root user: %+v", u)
	}
	project := func(a Actor, name string) error {
		return x.do(func(t *Txn) error {
			_, err := t.ProjectCreate(&ProjectSpec{MemberID: api.GlobalMemberID, RegionID: x.region.ID, Name: name, GracePeriod: 168}, a)
			return err
		})
	}
	vm := func(a Actor, name, ip string) error {
		return x.do(func(t *Txn) error {
			s := x.vm(name, ip, false)
			s.ProjectID = res.Project.ID
			_, err := t.VMCreate(&VMCreatePayload{VM: s, Placement: api.DefaultPlacement, Actor: a})
			return err
		})
	}
	wantErr(t, "member-1 user, project in a region it is no customer of", project(tenant, "t"), http.StatusBadRequest, "region_id", "iaas_project_create_104")
	wantErr(t, "member-1 user, VM in another member's project", vm(tenant, "t", "10.0.0.20"), http.StatusBadRequest, "project_id", "iaas_vm_create_103")
	robot := Actor{UserID: 1, MemberID: api.GlobalMemberID, Robot: true}
	wantErr(t, "a global user's robot, project", project(robot, "r"), http.StatusBadRequest, "region_id", "iaas_project_create_104")
	wantErr(t, "a global user's robot, VM", vm(robot, "r", "10.0.0.21"), http.StatusBadRequest, "project_id", "iaas_vm_create_103")
	if err := project(root, "g"); err != nil {
		t.Fatalf("global user, project in any region: %v", err)
	}
	if err := vm(root, "g", "10.0.0.22"); err != nil {
		t.Fatalf("global user, VM in a tenant's project: %v", err)
	}
}

// TestFloatingSubnetDelete: a router's floating subnet, even empty, is not
// deleted (ipam_block_delete_104): every later update of the router would
// find it missing. A delete made before Rules2 replays as it applied.
func TestFloatingSubnetDelete(t *testing.T) {
	x := newComputeFixture(t)
	del := func(rules uint32) error {
		return x.do(func(t *Txn) error { t.Rules = rules; return t.IPBlockDelete(x.floating.ID) })
	}
	wantErr(t, "delete a floating subnet", del(RulesCurrent), http.StatusBadRequest, "", "ipam_block_delete_104")
	x.ok("router update", func(t *Txn) error {
		rt := *x.router
		rt.Model = "renamed"
		_, err := t.RouterUpdate(&rt, 0)
		return err
	})
	if err := del(Rules1); err != nil {
		t.Fatalf("a delete made under Rules1 replays as it applied: %v", err)
	}
}

// TestProjectSubnetHasNoSubnets: a subnet of a project's virtual router,
// even one without VMs yet, cannot be a parent (ipam_block_create_124):
// a child under it would make every later VM on it fail. Commands made
// before Rules2 replay as they applied.
func TestProjectSubnetHasNoSubnets(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1024, 1000})
	res, err := x.create(x.cloud("p", x.vm("v", "10.0.0.10", false)))
	if err != nil {
		t.Fatal(err)
	}
	var empty *api.IPBlock
	for _, s := range x.s.Read().ProjectSubnets(res.Project) {
		if s.CIDR == "10.0.1.0/24" {
			empty = s
		}
	}
	if empty == nil || len(x.s.Read().IPAddressList(empty.ID)) != 0 {
		t.Fatalf("no empty project subnet: %+v", empty)
	}
	child := func(rules uint32) error {
		return x.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.IPBlockCreate(&api.IPBlock{MemberID: x.member.ID, Dialect: api.DialectCloudCIX, ParentID: empty.ID, CIDR: "10.0.1.0/25", Gateway: "10.0.1.2"})
			return err
		})
	}
	wantErr(t, "child of a project subnet", child(RulesCurrent), http.StatusBadRequest, "parent_id", "ipam_block_create_124")
	if err := child(Rules1); err != nil {
		t.Fatalf("a create made under Rules1 replays as it applied: %v", err)
	}
}

// TestPublicAllocationInPrivateSpace: a public allocation inside RFC 1918
// space (the API refuses one now; an older cluster may hold one) overlaps
// the private range every project gets: a project or cloud create is 409
// iaas_{project,cloud}_create_147 naming the allocation and what to do, not
// state's block overlap on a field the tenant never sent. Deleted, projects
// are made again.
func TestPublicAllocationInPrivateSpace(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	var pub *api.IPBlock
	if err := x.do(func(t *Txn) error {
		asn, err := t.ASNCreate(&api.ASN{MemberID: api.GlobalMemberID, Number: 64999})
		if err != nil {
			return err
		}
		pub, err = t.IPBlockCreate(&api.IPBlock{Dialect: api.DialectCloudCIX, MemberID: api.GlobalMemberID, ASNID: asn.ID,
			CIDR: "172.20.0.0/16", Type: api.BlockPublic})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	root := Actor{UserID: 1, MemberID: api.GlobalMemberID}
	project := func(name string) error {
		return x.do(func(t *Txn) error {
			_, err := t.ProjectCreate(&ProjectSpec{MemberID: api.GlobalMemberID, RegionID: x.region.ID, Name: name, GracePeriod: 168}, root)
			return err
		})
	}
	err := project("p")
	wantErr(t, "project beside a public allocation in 172.16/12", err, http.StatusConflict, "", "iaas_project_create_147")
	if err == nil || !strings.Contains(err.Error(), "172.20.0.0/16") || !strings.Contains(err.Error(), "172.16.0.0/12") {
		t.Errorf("the refusal does not name the allocation and the range: %v", err)
	}
	_, err = x.create(x.cloud("c", x.vm("a", "10.0.0.10", false)))
	wantErr(t, "cloud beside it", err, http.StatusConflict, "", "iaas_cloud_create_147")
	if err := x.do(func(t *Txn) error { return t.IPBlockDelete(pub.ID) }); err != nil {
		t.Fatal(err)
	}
	if err := project("p"); err != nil {
		t.Fatalf("after the allocation's delete: %v", err)
	}
}

// TestClosedRouterGivesItsAddressBack: a virtual router that closes gives
// its public address back and, from Rules5, no longer shows it (the next
// project's router gets it, and both listed it); a close made under Rules4
// replays as it applied.
func TestClosedRouterGivesItsAddressBack(t *testing.T) {
	for _, rules := range []uint32{Rules4, RulesCurrent} {
		x := newComputeFixture(t, [3]int{64, 1000, 16})
		spec := x.cloud("p")
		spec.Project.GracePeriod = 0
		res, err := x.create(spec)
		if err != nil {
			t.Fatal(err)
		}
		vr := res.VirtualRouter
		for _, s := range [][3]int{{2, 1, 1}, {4, 2, 1}, {api.StateScrub, 4, 0}, {14, 8, 1}, {9, 14, 1}, {17, 9, 1}, {api.StateClosed, 17, 1}} {
			a := Actor{UserID: 2}
			if s[2] == 1 {
				a = Actor{Robot: true}
			}
			x.ok(fmt.Sprintf("router → %d", s[0]), func(t *Txn) error {
				t.Rules = rules
				_, err := t.SetState(&StateChange{Kind: api.KindVirtualRouter, ID: vr.ID, To: s[0], Expected: ptr(s[1]), Actor: a})
				return err
			})
		}
		got, _ := x.s.Read().VirtualRouter(vr.ID)
		if _, held := x.s.Read().IPAddress(vr.IPAddressID); held {
			t.Errorf("rules %d: the closed router's address %s (id %d) is still allocated", rules, vr.IPAddress, vr.IPAddressID)
		}
		if shows := got.IPAddressID != 0 || got.IPAddress != ""; shows != (rules < Rules5) {
			t.Errorf("rules %d: the closed router shows address %q (id %d)", rules, got.IPAddress, got.IPAddressID)
		}
	}
}

// TestPTRThroughNAT: from Rules5 a member holds its addresses' public (NAT)
// addresses for PTR records (a VM's public address is the region's row),
// and the record goes when the member stops holding it: the row leaves its
// public address, or the row goes while the public address stays. Under
// Rules4 the create was refused (109), and replays so.
func TestPTRThroughNAT(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	res, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", true), x.vm("b", "10.0.0.11", true)))
	if err != nil {
		t.Fatal(err)
	}
	priv := func(vm *api.VM) (*api.IPAddress, *api.IPAddress) {
		p, pub := x.s.Read().VMAddresses(vm)
		return p[0], pub[p[0].ID]
	}
	ptr := func(rules uint32, addr string) error {
		a := netip.MustParseAddr(addr)
		return x.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.PTRCreate(&api.Record{Type: "PTR", Name: strings.TrimSuffix(netx.ReverseName(a), "."), Content: "vm.example.com.",
				TTL: 3600, IPAddress: addr, MemberID: x.member.ID}, false)
			return err
		})
	}
	has := func(addr string) bool { _, ok := x.s.Read().PTRFor(addr); return ok }
	ra, pa := priv(res.VMs[0])
	rb, pb := priv(res.VMs[1])
	wantErr(t, "PTR of a NAT address under Rules4", ptr(Rules4, pa.Address), 400, "ip_address", "iaas_ptr_record_create_109")
	for _, p := range []*api.IPAddress{pa, pb} {
		if err := ptr(RulesCurrent, p.Address); err != nil {
			t.Fatalf("PTR of the NAT address %s: %v", p.Address, err)
		}
	}
	// a's address leaves its public address, which stays the region's.
	x.ok("unlink", func(t *Txn) error {
		n := *ra
		n.PublicIPID = 0
		_, err := t.IPAddressUpdate(&n, 0)
		return err
	})
	if has(pa.Address) {
		t.Errorf("the PTR of %s outlived the NAT link it was held through", pa.Address)
	}
	if _, ok := x.s.Read().IPAddress(pa.ID); !ok {
		t.Fatalf("the public address went with the link")
	}
	// b's address goes, its public address stays.
	x.ok("delete", func(t *Txn) error { return t.IPAddressDelete(IPRef{ID: rb.ID}) })
	if has(pb.Address) {
		t.Errorf("the PTR of %s outlived the address it was held through", pb.Address)
	}
}

// TestVMNameCase: from Rules6 a VM's name is unique in its project
// regardless of case (the router's DHCP host names are lower case), on
// create and on a rename; a command made under Rules5 replays as it
// applied, taking "web" beside "Web".
func TestVMNameCase(t *testing.T) {
	for _, rules := range []uint32{Rules5, RulesCurrent} {
		x := newComputeFixture(t, [3]int{64, 1000, 16})
		var err error
		x.do(func(t *Txn) error {
			t.Rules = rules
			_, err = t.CloudCreate(x.cloud("p", x.vm("Web", "10.0.0.10", false), x.vm("web", "10.0.0.11", false)))
			return err
		})
		if refused := err != nil; refused != (rules >= Rules6) {
			t.Errorf("rules %d: Web and web in one project refused: %v (%v)", rules, refused, err)
		}
	}
	// Names that make one DHCP host name clash too; two that make none
	// (nothing of a-z, 0-9 left) do not.
	for _, pair := range [][2]string{{"Web 1", "web_1"}, {"web-1", "web_1"}, {"ÄÖ", "Ü"}} {
		x := newComputeFixture(t, [3]int{64, 1000, 16})
		_, err := x.create(x.cloud("p", x.vm(pair[0], "10.0.0.10", false), x.vm(pair[1], "10.0.0.11", false)))
		if clash := netx.HostLabel(pair[0]) != ""; (err != nil) != clash {
			t.Errorf("%q and %q in one project: %v, want refused %v", pair[0], pair[1], err, clash)
		}
	}
}

// TestVMStorageLimit: from Rules6 a spec change that would give a VM more
// than api.MaxVMStorages disks is refused (iaas_vm_update_113), as is a
// storage create on a VM that has them; a command made under Rules5
// replays as it applied.
func TestVMStorageLimit(t *testing.T) {
	for _, rules := range []uint32{Rules5, RulesCurrent} {
		x, res := runningCloud(t)
		vm := res.VMs[0]
		var add []StorageSpec
		for i := 0; i < api.MaxVMStorages; i++ { // with root: one too many
			add = append(add, StorageSpec{Name: fmt.Sprintf("d%d", i), GB: 1})
		}
		err := x.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.VMUpdate(&VMUpdatePayload{Change: VMChange{ID: vm.ID, Storages: add}, Placement: api.DefaultPlacement}, 0)
			return err
		})
		if refused := err != nil; refused != (rules >= Rules6) {
			t.Errorf("rules %d: %d disks refused: %v (%v)", rules, api.MaxVMStorages+1, refused, err)
		} else if refused && !strings.Contains(err.Error(), "iaas_vm_update_113") {
			t.Errorf("rules %d: %v, want iaas_vm_update_113", rules, err)
		}
		if rules >= Rules6 {
			continue
		}
		// A VM given more disks before Rules6 stays updatable: a change
		// that adds none (a rename) is taken.
		x.ok("a change that adds no disk to a VM over the limit", func(t *Txn) error {
			_, err := t.VMUpdate(&VMUpdatePayload{Change: VMChange{ID: vm.ID, Name: ptr("renamed")}, Placement: api.DefaultPlacement}, 0)
			return err
		})
	}
}

// TestVMGatewayHoldsAnAddress: from Rules6 a new VM whose gateway subnet
// holds none of its addresses is refused (iaas_vm_create_131); a command
// made under Rules5 replays as it applied.
func TestVMGatewayHoldsAnAddress(t *testing.T) {
	for _, rules := range []uint32{Rules5, RulesCurrent} {
		x := newComputeFixture(t, [3]int{64, 1000, 16})
		vm := x.vm("a", "10.0.0.10", false)
		vm.GatewaySubnet = "10.0.1.1/24"
		err := x.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.CloudCreate(x.cloud("p", vm))
			return err
		})
		if refused := err != nil; refused != (rules >= Rules6) {
			t.Errorf("rules %d: refused %v (%v)", rules, refused, err)
		} else if refused && !strings.Contains(err.Error(), "iaas_vm_create_131") {
			t.Errorf("rules %d: %v, want iaas_vm_create_131", rules, err)
		}
	}
}
