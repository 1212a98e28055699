package state

import (
	"net/http"
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
