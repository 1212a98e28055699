package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// TestInterfaceDeterminism drives a random workload of interface, network,
// instance and route commands (MAC allocation included) and checks that
// replays, batched replays and restore + replay give the same results and
// the same snapshot bytes, and that the MACs in use stay unique.
func TestInterfaceDeterminism(t *testing.T) {
	for _, seed := range []uint64{5, 6, 20260202} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			g := newIPAMGen(t, seed)
			tenant := fmt.Sprint(g.member)
			g.must(fsm.MACRangeCreateType, &api.MACRange{CIDR: "02:00:00:00:00:00/45"})
			g.must(fsm.MACRangeCreateType, &api.MACRange{CIDR: "06:00:00:00:00:00/46"})
			for _, b := range []*api.IPBlock{
				{MemberID: g.member, Dialect: api.DialectMelange, CIDR: "172.16.0.0/28", NetworkID: "n1"},
				{MemberID: g.member, Dialect: api.DialectMelange, CIDR: "fd01::/64", NetworkID: "n1", Generator: api.GeneratorTenantHash},
				{MemberID: g.member, Dialect: api.DialectMelange, CIDR: "172.16.1.0/29", NetworkID: "n2"},
			} {
				g.blocks = append(g.blocks, g.must(fsm.IPBlockCreateType, b).(*api.IPBlock))
			}
			vif := func() string { return fmt.Sprint("vif-", g.rng.IntN(12)) }
			net := func() string { return fmt.Sprint("n", 1+g.rng.IntN(3)) }
			for range 1000 {
				switch n := g.rng.IntN(100); {
				case n < 20:
					p := fsm.InterfaceCreatePayload{Interface: api.Interface{VIF: vif(), TenantID: tenant, DeviceID: fmt.Sprint("d", g.rng.IntN(3))}}
					if g.rng.IntN(2) == 0 {
						p.Network = &state.NetworkRef{ID: net(), MemberID: g.member}
					}
					g.emit(fsm.InterfaceCreateType, p, 0)
				case n < 35:
					g.emit(fsm.InterfaceDeleteType, fsm.VIFPayload{VIF: vif()}, 0)
				case n < 55:
					b := g.blocks[g.rng.IntN(len(g.blocks))]
					g.emit(fsm.IPAddressAllocateOnIfaceType, fsm.InterfaceAllocatePayload{BlockID: b.ID,
						Interface: api.Interface{VIF: vif(), TenantID: tenant}}, 0)
				case n < 70:
					g.emit(fsm.NetworkAllocateType, fsm.NetworkAllocatePayload{Interface: api.Interface{VIF: vif(), TenantID: tenant},
						Network: state.NetworkRef{ID: net(), MemberID: g.member}}, 0)
				case n < 78:
					g.emit(fsm.NetworkDeallocateType, fsm.NetworkDeallocatePayload{MemberID: g.member, NetworkID: net(), VIF: vif()}, 0)
				case n < 86:
					p := fsm.InstanceInterfacesPayload{DeviceID: fmt.Sprint("d", g.rng.IntN(3)), TenantID: tenant}
					for i := range g.rng.IntN(3) {
						p.Interfaces = append(p.Interfaces, state.InstanceInterface{VIF: fmt.Sprint("inst-", g.index, "-", i),
							Network: &state.NetworkRef{ID: net(), MemberID: g.member}})
					}
					g.emit(fsm.InstanceInterfacesReplaceType, p, 0)
				case n < 90:
					g.emit(fsm.InstanceInterfacesDeleteType, fsm.InstanceInterfacesPayload{DeviceID: fmt.Sprint("d", g.rng.IntN(3))}, 0)
				case n < 95:
					g.emit(fsm.IPRouteCreateType, &api.IPRoute{BlockID: g.blocks[g.rng.IntN(len(g.blocks))].ID, Destination: "0.0.0.0", Gateway: "172.16.0.1"}, 0)
				case n < 97:
					id := func() uint64 { return uint64(1 + g.rng.IntN(40)) }
					switch g.rng.IntN(4) {
					case 0:
						g.emit(fsm.NATLinkType, fsm.NATPayload{Locals: []uint64{id()}, Globals: []uint64{id(), id()}}, 0)
					case 1:
						g.emit(fsm.NATUnlinkType, fsm.NATUnlinkPayload{LocalID: id()}, 0)
					case 2:
						g.emit(fsm.AllowedIPCreateType, fsm.AllowedIPPayload{VIF: vif(), AddressID: id()}, 0)
					default:
						g.emit(fsm.AllowedIPDeleteType, fsm.AllowedIPPayload{VIF: vif(), AddressID: id()}, 0)
					}
				default:
					g.emit(fsm.IPAddressPurgeType, fsm.IPPurgePayload{Cutoff: g.now}, 0)
				}
				g.checkInvariants()
				seen := map[string]bool{}
				for _, ifc := range g.read().InterfaceList() {
					if ifc.MACAddress != "" && seen[ifc.MACAddress] {
						t.Fatalf("MAC %s held twice", ifc.MACAddress)
					}
					seen[ifc.MACAddress] = true
				}
			}
			t.Logf("%d entries: %d ok, %d failed; by type %v", len(g.log), g.okay, g.failed, g.types)
			a, b := newFSM(), newFSM()
			ra, rb := replay(a, g.log), replay(b, g.log)
			for i := range ra {
				if ra[i] != rb[i] {
					t.Fatalf("entry %d: results differ:\n A %s\n B %s", i, ra[i], rb[i])
				}
			}
			snapA := persist(t, a)
			if !bytes.Equal(snapA, persist(t, b)) || !bytes.Equal(snapA, persist(t, g.scratch)) {
				t.Fatal("snapshots differ")
			}
			c := newFSM()
			var rc []string
			for i := 0; i < len(g.log); i += 5 {
				for _, v := range c.ApplyBatch(g.log[i:min(i+5, len(g.log))]) {
					rc = append(rc, outcome(v))
				}
			}
			for i := range rc {
				if rc[i] != ra[i] {
					t.Fatalf("entry %d: batched result differs:\n one %s\n batch %s", i, ra[i], rc[i])
				}
			}
			mid := len(g.log) / 2
			d := newFSM()
			replay(d, g.log[:mid])
			e := newFSM()
			if err := e.Restore(io.NopCloser(bytes.NewReader(persist(t, d)))); err != nil {
				t.Fatal(err)
			}
			re := replay(e, g.log[mid:])
			for i := range re {
				if re[i] != ra[mid+i] {
					t.Fatalf("entry %d after restore differs:\n full     %s\n restored %s", mid+i, ra[mid+i], re[i])
				}
			}
			if !bytes.Equal(snapA, persist(t, e)) {
				t.Fatal("state after restore + replay differs")
			}
		})
	}
}
