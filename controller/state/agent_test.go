package state

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

// TestAgentInterfacesKeepTheirOrder: from Rules8 a registration's
// interfaces are stored in name order, and interfaces that share a name
// (the API does not refuse them) in the order the agent reported them.
// sort.Slice (older entries keep it) left the order of equal names to its
// algorithm: a replay built with another Go release could number them
// differently from the nodes that applied the entry first.
func TestAgentInterfacesKeepTheirOrder(t *testing.T) {
	x := newComputeFixture(t)
	var ifs []api.AgentInterface
	for i := range 40 {
		name := "eth0"
		if i%5 == 0 {
			name = fmt.Sprintf("br%02d", i)
		}
		ifs = append(ifs, api.AgentInterface{Name: name, MAC: fmt.Sprintf("52:54:00:00:00:%02x", i), Up: true})
	}
	reg := &AgentRegistration{RegionID: x.region.ID, Agent: api.AgentRegistration{Hostname: "hv1", Roles: []string{api.RoleHypervisor},
		Version: "1", Interfaces: ifs, Capacity: api.Capacity{CPUCores: 8, RAMMB: 32768, Storage: []api.StorageCapacity{{Type: "SSD", TotalGB: 500}}}}}
	var out *api.AgentRegistered
	x.ok("register", func(t *Txn) (err error) { out, err = t.AgentRegister(reg); return })
	want := slices.Clone(ifs)
	slices.SortStableFunc(want, func(a, b api.AgentInterface) int { return strings.Compare(a.Name, b.Name) })
	got := x.s.Read().InterfacesOfServer(out.ServerID)
	if len(got) != len(want) {
		t.Fatalf("%d interfaces stored, want %d", len(got), len(want))
	}
	for i, g := range got {
		if g.Details != want[i].Name || g.MACAddress != want[i].MAC {
			t.Fatalf("interface %d (id %d) is %s %s, want %s %s: interfaces of one name are not in the order reported",
				i, g.ID, g.Details, g.MACAddress, want[i].Name, want[i].MAC)
		}
	}
}
