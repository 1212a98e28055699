package state

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

// TestFloatingSubnetOneRouter: from Rules7 a router may not list a
// floating subnet another router lists, on create or update
// (iaas_router_{create,update}_107), whether in the same region or
// another: both would hand out its addresses. Commands made before
// replay as they applied, and a router that shares one from before stays
// updatable (its agent's reports go through the same update).
func TestFloatingSubnetOneRouter(t *testing.T) {
	x := newComputeFixture(t)
	var other *api.Region
	x.ok("other region", func(t *Txn) (err error) {
		other, err = t.RegionCreate(&api.Region{Name: "r2", Customers: []uint64{x.member.ID}})
		return
	})
	create := func(rules uint32, region uint64, subnets ...uint64) (*api.Router, error) {
		var rt *api.Router
		err := x.do(func(t *Txn) (err error) {
			t.Rules = rules
			rt, err = t.RouterCreate(&api.Router{RegionID: region, Enabled: true, FloatingSubnetIDs: subnets})
			return
		})
		return rt, err
	}
	update := func(rules uint32, rt *api.Router, subnets ...uint64) error {
		return x.do(func(t *Txn) error {
			t.Rules = rules
			n := *rt
			n.FloatingSubnetIDs = subnets
			_, err := t.RouterUpdate(&n, 0)
			return err
		})
	}
	for _, region := range []uint64{x.region.ID, other.ID} {
		_, err := create(RulesCurrent, region, x.floating.ID)
		wantErr(t, "a second router on the floating subnet", err, http.StatusBadRequest, "floating_subnet_ids", "iaas_router_create_107")
	}
	bare, err := create(RulesCurrent, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "a router adding another's floating subnet", update(RulesCurrent, bare, x.floating.ID),
		http.StatusBadRequest, "floating_subnet_ids", "iaas_router_update_107")

	// Before Rules7 both applied.
	if _, err := create(Rules5, other.ID, x.floating.ID); err != nil {
		t.Fatalf("a create made under Rules5 replays as it applied: %v", err)
	}
	if err := update(Rules5, bare, x.floating.ID); err != nil {
		t.Fatalf("an update made under Rules5 replays as it applied: %v", err)
	}
	// The routers that share it from before stay updatable, and may
	// give it up.
	bare, _ = x.s.Read().Router(bare.ID)
	x.ok("rename a sharing router", func(t *Txn) error {
		n := *bare
		n.Model = "renamed"
		_, err := t.RouterUpdate(&n, 0)
		return err
	})
	if err := update(RulesCurrent, bare); err != nil {
		t.Fatalf("a sharing router gives the subnet up: %v", err)
	}
}

// TestFloatingSubnetHeld: from Rules7 a router does not give up a floating
// subnet while virtual routers (their public address) or VMs (their NAT
// addresses) hold addresses in it (iaas_router_update_108, with how many
// and one holder): they kept addresses of a subnet no router had, which
// the next router to list it handed out again. An address held by nobody
// of these (an operator's) does not keep it; commands made before Rules7
// replay as they applied.
func TestFloatingSubnetHeld(t *testing.T) {
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	var spare *api.IPBlock
	x.ok("spare floating subnet with an operator's address", func(t *Txn) (err error) {
		spare, err = t.IPBlockCreate(&api.IPBlock{MemberID: api.GlobalMemberID, Dialect: api.DialectCloudCIX, ParentID: x.floating.ParentID, CIDR: "45.0.0.8/29", Gateway: "45.0.0.9"})
		if err != nil {
			return err
		}
		if _, err = t.AllocateNext(spare.ID, &api.IPAddress{Name: "operator's"}); err != nil {
			return err
		}
		rt := *x.router
		rt.FloatingSubnetIDs = []uint64{x.floating.ID, spare.ID}
		x.router, err = t.RouterUpdate(&rt, 0)
		return err
	})
	res, err := x.create(x.cloud("p", x.vm("v", "10.0.0.10", true)))
	if err != nil {
		t.Fatal(err)
	}
	update := func(rules uint32, subnets ...uint64) error {
		return x.do(func(t *Txn) error {
			t.Rules = rules
			rt, _ := t.Router(x.router.ID)
			n := *rt
			n.FloatingSubnetIDs = subnets
			_, err := t.RouterUpdate(&n, 0)
			return err
		})
	}
	// The router's address and the VM's NAT address are in x.floating.
	err = update(RulesCurrent, spare.ID)
	wantErr(t, "give up a held floating subnet", err, http.StatusBadRequest, "floating_subnet_ids", "iaas_router_update_108")
	detail := err.(*api.Error).Errors["floating_subnet_ids"].Detail
	if want := fmt.Sprintf("2 of its addresses are held by virtual routers and VMs (virtual router %d of project %d", res.VirtualRouter.ID, res.Project.ID); !strings.Contains(detail, want) {
		t.Errorf("detail %q, want it to contain %q", detail, want)
	}
	if rt, _ := x.s.Read().Router(x.router.ID); len(rt.FloatingSubnetIDs) != 2 {
		t.Errorf("refused update stored %v", rt.FloatingSubnetIDs)
	}
	// The spare subnet holds only an operator's address: it may go.
	if err := update(RulesCurrent, x.floating.ID); err != nil {
		t.Fatalf("give up a floating subnet nobody's VMs or routers hold: %v", err)
	}
	// A router that shared the held subnet from before Rules7 may give it
	// up: its holders are the first router's, which keeps it.
	var second *api.Router
	x.ok("second router sharing the subnet (Rules5)", func(t *Txn) (err error) {
		t.Rules = Rules5
		capacity := 10
		second, err = t.RouterCreate(&api.Router{RegionID: x.region.ID, Capacity: &capacity, Enabled: true, FloatingSubnetIDs: []uint64{x.floating.ID}})
		return err
	})
	x.ok("the second router gives the shared subnet up", func(t *Txn) error {
		n := *second
		n.FloatingSubnetIDs = nil
		_, err := t.RouterUpdate(&n, 0)
		return err
	})
	// Before Rules7 the held one went too.
	if err := update(Rules5); err != nil {
		t.Fatalf("an update made under Rules5 replays as it applied: %v", err)
	}
}
