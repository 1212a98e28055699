package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// computeGen drives a random cloud workload through the FSM: projects and
// clouds, VMs and their spec and state changes (a user's and a robot's),
// storages, VPNs, snapshots and backups, routers' floating subnets, agent
// registrations and status, DNS domains, records and PTR records, and
// address purges, aimed at objects that exist and some that do not.
type computeGen struct {
	*gen
	member, region, image, st, router, floating, alloc uint64
	servers                                            []uint64
}

func (g *computeGen) must(typ fsm.MessageType, payload any) any {
	g.t.Helper()
	r := g.emit(typ, payload, 0)
	if r.Err != nil {
		g.t.Fatalf("command %d: %v", typ, r.Err)
	}
	return r.Value
}

var (
	root  = fsm.Actor{TokenID: 1, UserID: 1, MemberID: api.GlobalMemberID}
	robot = fsm.Actor{TokenID: 1, MemberID: api.GlobalMemberID, Robot: true}
)

func newComputeGen(t *testing.T, seed uint64) *computeGen {
	g := &computeGen{gen: newGen(t, seed)}
	hash := g.hex()
	g.must(fsm.BootstrapType, fsm.BootstrapPayload{MemberName: "CIX", Username: "root",
		Token: &state.TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_" + hash[:4]}, Hash: hash}})
	g.member = g.must(fsm.MemberCreateType, &api.Member{Name: "acme"}).(*api.Member).ID
	g.region = g.must(fsm.RegionCreateType, &api.Region{Name: "r1", Customers: []uint64{g.member}}).(*api.Region).ID
	g.st = g.must(fsm.StorageTypeCreateType, &api.StorageType{Name: "SSD"}).(*api.StorageType).ID
	g.image = g.must(fsm.ImageCreateType, &api.Image{DisplayName: "Ubuntu", ServerTypeID: api.ServerTypeKVM, CloudInit: true, MultipleIPs: true}).(*api.Image).ID
	g.must(fsm.RegionImageCreateType, &api.RegionImage{RegionID: g.region, ImageID: g.image})
	asn := g.must(fsm.ASNCreateType, &api.ASN{MemberID: api.GlobalMemberID, Number: 64512}).(*api.ASN)
	g.alloc = g.must(fsm.IPBlockCreateType, &api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectCloudCIX, CIDR: "45.0.0.0/24", Type: api.BlockPublic, ASNID: asn.ID}).(*api.IPBlock).ID
	g.floating = g.must(fsm.IPBlockCreateType, &api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectCloudCIX, ParentID: g.alloc, CIDR: "45.0.0.0/28", Gateway: "45.0.0.1"}).(*api.IPBlock).ID
	capacity := 50
	g.router = g.must(fsm.RouterCreateType, &api.Router{RegionID: g.region, Capacity: &capacity, Enabled: true, FloatingSubnetIDs: []uint64{g.floating}}).(*api.Router).ID
	for _, s := range [][3]int{{64, 1000, 16}, {128, 2000, 32}, {64, 1000, 16}} {
		g.servers = append(g.servers, g.must(fsm.ServerCreateType, &api.Server{RegionID: g.region, TypeID: api.ServerTypeKVM,
			StorageTypeID: g.st, RAM: s[0], GB: s[1], Cores: s[2], Enabled: true}).(*api.Server).ID)
	}
	g.must(fsm.DomainCreateType, &api.Domain{MemberID: g.member, Name: "example.com"})
	return g
}

func (g *computeGen) read() *state.ReadTxn { return g.scratch.Store().Read() }

func (g *computeGen) vmSpec(name string, subnet int) state.VMSpec {
	ip := fmt.Sprintf("10.0.%d.%d", subnet, 2+g.rng.IntN(20))
	return state.VMSpec{Name: name, ImageID: g.image, StorageTypeID: g.st, CPU: 1 + g.rng.IntN(4), RAM: 1 + g.rng.IntN(8), DNS: "1.1.1.1",
		Storages: []state.StorageSpec{{Name: "root", GB: 10 + g.rng.IntN(40), Primary: true}}, GatewaySubnet: fmt.Sprintf("10.0.%d.1/24", subnet),
		IPAddresses: []state.IPSpec{{Address: ip, NAT: g.rng.IntN(2) == 0}}, GUID: "guid-" + name}
}

func (g *computeGen) step() {
	r := g.read()
	projects, vms := r.ProjectList(), r.VMList()
	name := fmt.Sprintf("n%d", g.rng.IntN(12))
	switch op := g.rng.IntN(100); {
	case op < 10: // a cloud: project, subnets, VMs, firewall
		rules := []api.FirewallRule{{Order: g.rng.IntN(3), Allow: true, Source: "*", Destination: "10.0.0.0/24", Protocol: "tcp", Port: "22"},
			{Order: g.rng.IntN(3), Allow: false, Source: "*", Destination: "10.0.1.0/24", Protocol: "any"}}
		var specs []state.VMSpec
		for i := range g.rng.IntN(3) {
			specs = append(specs, g.vmSpec(fmt.Sprintf("%s-%d", name, i), g.rng.IntN(2)))
		}
		g.emitAs(fsm.CloudCreateType, root, &state.CloudSpec{
			Project: &state.ProjectSpec{MemberID: g.member, RegionID: g.region, Name: name, GracePeriod: g.rng.IntN(3)},
			Subnets: []state.SubnetSpec{{Name: "a", AddressRange: "10.0.0.1/24"}, {Name: "b", AddressRange: "10.0.1.1/24"}},
			VMs:     specs, FirewallRules: &rules, Placement: api.DefaultPlacement, Actor: state.Actor{UserID: 1, MemberID: api.GlobalMemberID}}, 0)
	case op < 14: // a bare project
		g.emitAs(fsm.ProjectCreateType, root, &state.ProjectSpec{MemberID: g.member, RegionID: g.region, Name: name, GracePeriod: 1}, 0)
	case op < 26: // a VM in a project
		s := g.vmSpec(name, g.rng.IntN(2))
		s.ProjectID = pick(g.gen, projects)
		g.emitAs(fsm.VMCreateType, root, &state.VMCreatePayload{VM: s, Placement: api.DefaultPlacement}, 0)
	case op < 34: // a spec change
		id := pick(g.gen, vms)
		ch := state.VMChange{ID: id}
		switch g.rng.IntN(4) {
		case 0:
			n := 1 + g.rng.IntN(6)
			ch.CPU = &n
		case 1:
			n := 1 + g.rng.IntN(16)
			ch.RAM = &n
		case 2:
			ch.Name = &name
		default:
			ch.Storages = []state.StorageSpec{{Name: "d" + name, GB: 5 + g.rng.IntN(20)}}
		}
		var expect uint64
		if vm, ok := find(vms, id); ok {
			expect = g.expect(vm.ModifiedIndex)
		}
		g.emitAs(fsm.VMUpdateType, root, &state.VMUpdatePayload{Change: ch, Placement: api.DefaultPlacement}, expect)
	case op < 37:
		g.emitAs(fsm.StorageCreateType, root, &state.StorageCreatePayload{VMID: pick(g.gen, vms), Storage: state.StorageSpec{Name: "s" + name, GB: 5}, Placement: api.DefaultPlacement}, 0)
	case op < 58: // a state change of a VM, virtual router, snapshot or backup, by the robot or a user
		actor, kind := root, api.KindVM
		if g.rng.IntN(2) == 0 {
			actor = robot
		}
		var id uint64
		cur := -1
		switch g.rng.IntN(6) {
		case 0:
			kind, id = api.KindVirtualRouter, pick(g.gen, r.VirtualRouterList())
			if v, ok := r.VirtualRouter(id); ok {
				cur = v.State
			}
		case 1:
			kind, id = api.KindSnapshot, pick(g.gen, r.SnapshotList())
			if v, ok := r.Snapshot(id); ok {
				cur = v.State
			}
		case 2:
			kind, id = api.KindBackup, pick(g.gen, r.BackupList())
			if v, ok := r.Backup(id); ok {
				cur = v.State
			}
		default:
			id = pick(g.gen, vms)
			if v, ok := r.VM(id); ok {
				cur = v.State
			}
		}
		// Mostly a change the actor's map allows, so that objects move
		// through their lives; sometimes any state.
		states := api.AllStates
		m := api.UserMap
		if actor.Robot {
			m = api.RobotMap
		}
		if next := m[cur]; len(next) > 0 && g.rng.IntN(5) > 0 {
			states = next
		}
		ch := &state.StateChange{Kind: kind, ID: id, To: states[g.rng.IntN(len(states))],
			Actor: state.Actor{UserID: actor.UserID, MemberID: actor.MemberID, Robot: actor.Robot}}
		if actor.Robot && g.rng.IntN(8) > 0 {
			ch.Expected = &cur // a robot reports from the state it read
		}
		g.emitAs(fsm.StateChangeType, actor, ch, 0)
	case op < 62:
		g.emitAs(fsm.SnapshotCreateType, root, &state.SnapshotCreatePayload{VMID: pick(g.gen, vms), Name: name}, 0)
	case op < 65:
		g.emitAs(fsm.BackupCreateType, root, &state.BackupCreatePayload{VMID: pick(g.gen, vms), Name: name, Repository: 1}, 0)
	case op < 70: // a VPN
		vrs := r.VirtualRouterList()
		vr := pick(g.gen, vrs)
		var routes []api.VPNRoute
		if v, ok := find(vrs, vr); ok {
			if p, ok := r.Project(v.ProjectID); ok {
				if subs := r.ProjectSubnets(p); len(subs) > 0 {
					routes = []api.VPNRoute{{LocalSubnetID: subs[g.rng.IntN(len(subs))].ID, RemoteSubnet: fmt.Sprintf("198.18.%d.0/24", g.rng.IntN(4))}}
				}
			}
		}
		g.emitAs(fsm.VPNCreateType, root, &state.VPNPayload{VPN: api.VPN{VirtualRouterID: vr, Routes: routes}, PreSharedKey: "k" + name}, 0)
	case op < 72:
		g.emitAs(fsm.VPNDeleteType, root, &state.VPNDeletePayload{ID: pick(g.gen, r.VPNList())}, 0)
	case op < 75: // an agent registers (the same host again, or another)
		var ifs []api.AgentInterface
		for i := range g.rng.IntN(16) {
			ifs = append(ifs, api.AgentInterface{Name: fmt.Sprintf("eth%d", g.rng.IntN(4)), MAC: fmt.Sprintf("52:54:00:00:00:%02x", i), Up: true})
		}
		g.emitAs(fsm.AgentRegisterType, robot, &state.AgentRegistration{RegionID: g.region, Agent: api.AgentRegistration{
			Hostname: fmt.Sprintf("hv%d", g.rng.IntN(3)), Roles: []string{api.RoleHypervisor}, Version: "1", Interfaces: ifs,
			Capacity: api.Capacity{CPUCores: 8 + g.rng.IntN(8), RAMMB: 65536, Storage: []api.StorageCapacity{{Type: "SSD", TotalGB: 900}}}}}, 0)
	case op < 78:
		st := &state.AgentStatus{Servers: map[uint64]string{}, Capacity: map[uint64]api.Capacity{}}
		for _, s := range g.servers {
			if g.rng.IntN(2) == 0 {
				st.Servers[s] = []string{api.AgentUp, api.AgentDown}[g.rng.IntN(2)]
			}
		}
		g.emitAs(fsm.AgentStatusType, root, st, 0)
	case op < 80: // a floating subnet more or less
		rt, ok := r.Router(g.router)
		if !ok {
			return
		}
		n := *rt
		if len(n.FloatingSubnetIDs) > 0 && g.rng.IntN(2) == 0 {
			n.FloatingSubnetIDs = nil
		} else {
			n.FloatingSubnetIDs = []uint64{g.floating}
		}
		g.emitAs(fsm.RouterUpdateType, root, &n, 0)
	case op < 86: // forward records
		doms := r.DomainList()
		typ := []string{"A", "CNAME", "TXT", "MX"}[g.rng.IntN(4)]
		content := map[string]string{"A": "192.0.2.1", "CNAME": fmt.Sprintf("n%d.example.com", g.rng.IntN(12)), "TXT": "v=" + name, "MX": "mail.example.com"}[typ]
		g.emitAs(fsm.RecordCreateType, root, &api.Record{DomainID: pick(g.gen, doms), Name: name + ".example.com", Type: typ, Content: content, TTL: 300}, 0)
	case op < 88:
		g.emitAs(fsm.RecordDeleteType, root, &fsm.IDPayload{ID: pick(g.gen, r.RecordList())}, 0)
	case op < 92: // a PTR record of an address a VM holds
		addrs := r.IPAddressList(g.floating)
		if len(addrs) == 0 {
			return
		}
		a := addrs[g.rng.IntN(len(addrs))]
		g.emitAs(fsm.PTRCreateType, root, &fsm.PTRPayload{Record: &api.Record{MemberID: api.GlobalMemberID, IPAddress: a.Address,
			Name: reverse4(a.Address), Type: "PTR", Content: name + ".example.com", TTL: 300}, AnyOwner: true}, 0)
	case op < 95:
		g.emitAs(fsm.IPAddressPurgeType, root, &fsm.IPPurgePayload{Cutoff: g.now.Add(-time.Duration(g.rng.IntN(5)) * time.Second)}, 0)
	case op < 97:
		g.emitAs(fsm.ClosedVPNsPurgeType, root, struct{}{}, 0)
	default:
		p, ok := find(projects, pick(g.gen, projects))
		if !ok {
			return
		}
		g.emitAs(fsm.StateChangeType, root, &state.StateChange{Kind: state.KindProject, ID: p.ID, To: api.StateScrub,
			Actor: state.Actor{UserID: 1, MemberID: api.GlobalMemberID}}, 0)
	}
}

// reverse4 is the reverse name of an IPv4 address, without the final dot.
func reverse4(a string) string {
	var o [4]int
	fmt.Sscanf(a, "%d.%d.%d.%d", &o[0], &o[1], &o[2], &o[3])
	return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", o[3], o[2], o[1], o[0])
}

// TestComputeDeterminism: a random cloud log gives the same results and
// the same snapshot bytes applied one entry at a time, in random raft
// batches, and after a snapshot restored at several points of the log.
func TestComputeDeterminism(t *testing.T) {
	for _, seed := range []uint64{5, 6, 20261125} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			g := newComputeGen(t, seed)
			for range 3000 {
				g.step()
			}
			t.Logf("%d entries: %d ok, %d failed; by type %v", len(g.log), g.okay, g.failed, g.types)
			r := g.read()
			t.Logf("final: %d projects, %d VMs, %d VPNs, %d snapshots, %d backups, %d records, %d servers",
				len(r.ProjectList()), len(r.VMList()), len(r.VPNList()), len(r.SnapshotList()), len(r.BackupList()), len(r.RecordList()), len(r.ServerList()))
			if len(r.VMList()) < 10 {
				t.Fatalf("the log made only %d VMs", len(r.VMList()))
			}

			a := newFSM()
			ra := replay(a, g.log)
			snapA := persist(t, a)
			if !bytes.Equal(snapA, persist(t, g.scratch)) {
				t.Fatal("a replay's snapshot differs from the generator's")
			}

			// Random raft batches.
			b := newFSM()
			rb := replayBatched(t, b, g.log, rand.New(rand.NewPCG(seed, 7)), 32)
			for i := range ra {
				if ra[i] != rb[i] {
					t.Fatalf("entry %d: batched result differs:\n one   %s\n batch %s", i, ra[i], rb[i])
				}
			}
			if !bytes.Equal(snapA, persist(t, b)) {
				t.Fatal("batched state differs")
			}

			// A node that installs a snapshot at some point and applies the
			// rest ends where the others do.
			for _, cut := range []int{len(g.log) / 4, len(g.log) / 2, 3 * len(g.log) / 4} {
				d := newFSM()
				replay(d, g.log[:cut])
				e := newFSM()
				if err := e.Restore(io.NopCloser(bytes.NewReader(persist(t, d)))); err != nil {
					t.Fatalf("restore at %d: %v", cut, err)
				}
				re := replay(e, g.log[cut:])
				for i := range re {
					if re[i] != ra[cut+i] {
						t.Fatalf("restored at %d: entry %d differs:\n full     %s\n restored %s", cut, cut+i, ra[cut+i], re[i])
					}
				}
				if !bytes.Equal(snapA, persist(t, e)) {
					t.Fatalf("restored at %d: the state differs", cut)
				}
			}
		})
	}
}
