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
