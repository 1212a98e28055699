package server_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestListIsNullOnOptionalReferences: the optional references the other
// lists show as 0 (or leave out) when unset are null to isnull, as
// CloudCIX's null keys are (see TestIaaSListIsNullOnOptionalKeys for the
// address and subnet ones): a project without a manager, a root snapshot
// (no parent), a user token (no region, no server), a robot token of the
// whole region (no server). For each, search[f__isnull]=true finds the
// object without one and not the one with one, and false the other way
// round; search[f__isnull]=true found neither before.
func TestListIsNullOnOptionalReferences(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin, root := f.c.For(t), f.r.Token(apitest.MemberAdmin), f.root

	// Projects: manager_id 0 is none (the default is the caller).
	noManager := create(c, admin, "/iaas/project/", map[string]any{"name": f.n.Unique("p"), "region_id": f.reg, "manager_id": 0})
	managed := create(c, admin, "/iaas/project/", map[string]any{"name": f.n.Unique("p"), "region_id": f.reg})

	// Snapshots: the first of a VM has no parent, the next one's parent
	// is the first.
	vm := runningVM(f)
	rootSnap := create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vm, "name": "a"})
	for _, s := range [][2]int{{2, 1}, {4, 2}} {
		c.Do("PATCH", apitest.Path("/iaas/snapshot/", rootSnap), map[string]any{"state": s[0], "expected_state": s[1]}, x.robotR).Expect(200)
	}
	childSnap := create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vm, "name": "b"})

	// Tokens: a user token has no region or server; a robot token has a
	// region, and a server when bound to one.
	userTok, _ := c.CreateToken(root, f.r.UserA)
	regionTok, _ := c.CreateRobotToken(root, f.reg)
	serverTok := c.Do("POST", "/membership/token/", map[string]any{"kind": "robot", "region_id": f.reg, "server_id": x.srv,
		"name": f.n.Unique("robot")}, root).Expect(201).ID()

	for _, tc := range []struct {
		list, field   string
		without, with uint64
	}{
		{"/iaas/project/", "manager_id", noManager, managed},
		{"/iaas/snapshot/", "parent_id", rootSnap, childSnap},
		{"/membership/token/", "region_id", userTok, regionTok},
		{"/membership/token/", "server_id", regionTok, serverTok},
	} {
		t.Run(tc.list+tc.field, func(t *testing.T) {
			for _, want := range []struct {
				null bool
				id   uint64
			}{{true, tc.without}, {false, tc.with}} {
				path := fmt.Sprintf("%s?search[%s__isnull]=%t&search[id__in]=%d,%d&order=id", tc.list, tc.field, want.null, tc.without, tc.with)
				l := c.Do("GET", path, nil, root).Expect(200).List()
				if got := l.IDs(); !slices.Equal(got, []uint64{want.id}) || len(l.Metadata.Warnings) > 0 {
					t.Errorf("%s: %v %q, want [%d]", path, got, l.Metadata.Warnings, want.id)
				}
			}
		})
	}
}
