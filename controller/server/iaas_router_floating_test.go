package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestRouterFloatingSubnetOneRouter: a floating subnet is one router's. A
// router of the same region or of another listing router RT's floating
// subnet FS is refused on create and on update (400
// iaas_router_{create,update}_107 on floating_subnet_ids, naming RT), and
// nothing is stored; before, both routers handed out FS's addresses.
func TestRouterFloatingSubnetOneRouter(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	other := c.CreateRegion(f.root, f.n.Unique("region"), f.r.MemberA)
	names := func(r *apitest.Response, code string) {
		t.Helper()
		e := r.Err().Errors["floating_subnet_ids"]
		if e.ErrorCode != code || !strings.Contains(e.Detail, fmt.Sprintf("router %d", x.rt)) {
			t.Errorf("%s: %+v, want %s naming router %d", r, e, code, x.rt)
		}
	}
	before := c.Do("GET", "/iaas/router/", nil, f.root).Expect(200).List().Metadata.TotalRecords
	for _, region := range []uint64{f.reg, other} {
		names(c.Do("POST", "/iaas/router/", map[string]any{"region_id": region, "phantom": true, "floating_subnet_ids": []uint64{x.fs}}, f.root).Expect(400),
			"iaas_router_create_107")
	}
	if after := c.Do("GET", "/iaas/router/", nil, f.root).Expect(200).List().Metadata.TotalRecords; after != before {
		t.Errorf("refused creates stored routers: %d → %d", before, after)
	}
	bare := create(c, f.root, "/iaas/router/", map[string]any{"region_id": other, "capacity": 5})
	names(c.Do("PATCH", apitest.Path("/iaas/router/", bare), map[string]any{"floating_subnet_ids": []uint64{x.fs}}, f.root).Expect(400),
		"iaas_router_update_107")
	if got := c.Do("GET", apitest.Path("/iaas/router/", bare), nil, f.root).Expect(200).Content()["floating_subnet_ids"]; len(got.([]any)) != 0 {
		t.Errorf("refused update stored floating subnets %v", got)
	}
	// RT itself keeps listing it.
	c.Do("PATCH", apitest.Path("/iaas/router/", x.rt), map[string]any{"model": "edge", "floating_subnet_ids": []uint64{x.fs}}, f.root).Expect(200)
}

// TestRouterFloatingSubnetHeld: router RT does not give up its floating
// subnet FS while project P's virtual router (its public address) and VM V
// (its NAT address) hold addresses in it: PATCH without FS and a PUT that
// leaves floating_subnet_ids out are 400 iaas_router_update_108 on
// floating_subnet_ids, saying how many and naming a holder, and RT keeps
// FS. Before, RT lost it and the next router to list FS handed the same
// addresses out again.
func TestRouterFloatingSubnetHeld(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	rt := apitest.Path("/iaas/router/", x.rt)
	for _, r := range []*apitest.Response{
		c.Do("PATCH", rt, map[string]any{"floating_subnet_ids": []uint64{}}, f.root),
		c.Do("PUT", rt, map[string]any{"phantom": true}, f.root),
	} {
		e := r.Expect(400).Err().Errors["floating_subnet_ids"]
		if e.ErrorCode != "iaas_router_update_108" || !strings.Contains(e.Detail, "2 of its addresses") ||
			!strings.Contains(e.Detail, fmt.Sprintf("virtual router %d of project %d", x.vr, x.project)) {
			t.Errorf("%s: %+v, want iaas_router_update_108 naming 2 addresses and virtual router %d", r, e, x.vr)
		}
	}
	got := c.Do("GET", rt, nil, f.root).Expect(200).Content()["floating_subnet_ids"].([]any)
	if len(got) != 1 || uint64(got[0].(float64)) != x.fs {
		t.Errorf("RT's floating subnets after the refusals: %v", got)
	}
}
