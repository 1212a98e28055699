package server_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// settleVM lets the region's robot apply a VM's spec change: RUNNING_UPDATE
// → RUNNING_UPDATING → RUNNING.
func settleVM(c *apitest.Client, x *computeFixture, vm uint64) {
	p := apitest.Path("/iaas/vm/", vm)
	c.Do("PATCH", p, map[string]any{"state": 11, "expected_state": 10}, x.robotR).Expect(200)
	c.Do("PATCH", p, map[string]any{"state": 4, "expected_state": 11}, x.robotR).Expect(200)
}

// TestComputeVMStorageUpdate: a VM update (and a cloud update's VM) names
// an existing disk by name or id: it grows it, never shrinks it or makes a
// second disk of its name; primary goes through and cannot move.
func TestComputeVMStorageUpdate(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vm := runningVM(f) // root 20 GB primary
	path := apitest.Path("/iaas/vm/", vm)
	before := c.Do("GET", path, nil, admin).Expect(200).Content()
	storage := func(name string, gb int, primary bool) map[string]any {
		return map[string]any{"name": name, "gb": gb, "primary": primary}
	}
	for _, tc := range []struct {
		name     string
		storages []any
		code     string
	}{
		{"shrink root by name", []any{storage("root", 5, true)}, "iaas_vm_update_121"},
		{"a new disk as primary", []any{storage("data", 5, true)}, "iaas_vm_update_122"},
		{"one name twice", []any{storage("data", 5, false), storage("data", 6, false)}, "iaas_vm_update_113"},
	} {
		if got := c.Do("PATCH", path, map[string]any{"storages": tc.storages}, admin).Expect(400).FieldCode("storages"); got != tc.code {
			t.Errorf("%s: %q, want %s", tc.name, got, tc.code)
		}
	}
	if after := c.Do("GET", path, nil, admin).Expect(200).Content(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused updates changed the VM:\n%v\n%v", before, after)
	}
	got := c.Do("PATCH", path, map[string]any{"storages": []any{storage("root", 30, true)}}, admin).Expect(200).Content()
	disks := got["storages"].([]any)
	if d := disks[0].(map[string]any); len(disks) != 1 || d["gb"].(float64) != 30 || d["primary"] != true || got["state"].(float64) != 10 {
		t.Errorf("root grown by name: %v", got)
	}
	settleVM(c, x, vm)
	// Through a cloud update: the same rules and codes.
	cloud := apitest.Path("/iaas/cloud/", x.project)
	resp := c.Do("PATCH", cloud, map[string]any{"vms": []any{map[string]any{"id": vm, "storages": []any{storage("root", 10, false)}}}}, admin).Expect(400)
	if got := resp.FieldCode("vms[0].storages"); got != "iaas_vm_update_121" {
		t.Errorf("cloud update shrinking root: %q\n%s", got, resp)
	}
	if n := len(c.Do("GET", path, nil, admin).Expect(200).Content()["storages"].([]any)); n != 1 {
		t.Errorf("VM has %d disks after refused updates, want 1", n)
	}
}

// TestComputeSnapshotGuards: while a snapshot is being built the VM's spec
// cannot change (110); a project with a VM that has a snapshot cannot be
// deleted as a whole (111), as the VM cannot (109). Nothing changes.
func TestComputeSnapshotGuards(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("guards"), f.reg, x, 1), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	vmID := uint64(cloud["vms"].([]any)[0].(map[string]any)["id"].(float64))
	vm := apitest.Path("/iaas/vm/", vmID)
	vr := apitest.Path("/iaas/virtual_router/", uint64(cloud["virtual_router"].(map[string]any)["id"].(float64)))
	for _, p := range []string{vm, vr} {
		c.Do("PATCH", p, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
		c.Do("PATCH", p, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	}
	snap := apitest.Path("/iaas/snapshot/", create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vmID, "name": "s"}))
	for _, body := range []map[string]any{{"cpu": 3}, {"storages": []any{map[string]any{"name": "data", "gb": 5}}}} {
		if got := c.Do("PATCH", vm, body, admin).Expect(400).ErrorCode(); got != "iaas_vm_update_110" {
			t.Errorf("spec change %v with a snapshot in state 1: %q", body, got)
		}
	}
	if v := c.Do("GET", vm, nil, admin).Expect(200).Content(); v["state"].(float64) != 4 || v["cpu"].(float64) != 2 {
		t.Errorf("refused spec change changed the VM: %v", v)
	}
	c.Do("PATCH", snap, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	c.Do("PATCH", snap, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	project := apitest.Path("/iaas/project/", id)
	if got := c.Do("PATCH", project, map[string]any{"state": 8}, admin).Expect(400).FieldCode("state"); got != "iaas_project_update_111" {
		t.Errorf("project delete with a snapshot: %q", got)
	}
	for _, p := range []string{vm, vr} {
		if s := c.Do("GET", p, nil, admin).Expect(200).Content()["state"].(float64); s != 4 {
			t.Errorf("%s in state %v after a refused project delete", p, s)
		}
	}
	// The robot takes a deleted snapshot straight to SCRUBBING: no delete queue.
	c.Do("PATCH", snap, map[string]any{"state": 8}, admin).Expect(200)
	if got := c.Do("PATCH", snap, map[string]any{"state": 14, "expected_state": 8}, x.robotR).Expect(400).FieldCode("state"); got != "iaas_snapshot_update_107" {
		t.Errorf("snapshot to SCRUB_PREP: %q", got)
	}
	c.Do("PATCH", snap, map[string]any{"state": 17, "expected_state": 8}, x.robotR).Expect(200)
	c.Do("PATCH", snap, map[string]any{"state": 99, "expected_state": 17}, x.robotR).Expect(200)
	c.Do("PATCH", project, map[string]any{"state": 8}, admin).Expect(200)
}

// TestComputeFailedSnapshotDeletable: a snapshot or backup that failed
// (UNRESOURCED, with the agent's error) is deleted by its user (PATCH 8),
// and the agent takes it to CLOSED; before, the failed snapshot holds the
// VM's delete (109), its state changes (110, naming the failure) and a new
// snapshot (107, saying to delete it), and nothing changes. Without the user's delete (the USER map allowed 4 only)
// only an operator could free the VM.
func TestComputeFailedSnapshotDeletable(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vmID := runningVM(f)
	vm := apitest.Path("/iaas/vm/", vmID)
	snap := apitest.Path("/iaas/snapshot/", create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vmID, "name": "s"}))
	backup := apitest.Path("/iaas/backup/", create(c, admin, "/iaas/backup/", map[string]any{"vm_id": vmID, "name": "b"}))
	for _, p := range []string{snap, backup} {
		c.Do("PATCH", p, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
		got := c.Do("PATCH", p, map[string]any{"state": 3, "expected_state": 2, "error_code": "vm_libvirt", "error_detail": "disk full"}, x.robotR).Expect(200).Content()
		if got["state"].(float64) != 3 || got["error_code"] != "vm_libvirt" {
			t.Fatalf("%s failed: %v", p, got)
		}
	}
	before := c.Do("GET", vm, nil, admin).Expect(200).Content()
	if got := c.Do("PATCH", vm, map[string]any{"state": 8}, admin).Expect(400).FieldCode("state"); got != "iaas_vm_update_109" {
		t.Errorf("VM delete with a failed snapshot: %q", got)
	}
	r := c.Do("PATCH", vm, map[string]any{"state": 5}, admin).Expect(400)
	if e := r.Err().Errors["state"]; e.ErrorCode != "iaas_vm_update_110" || !strings.Contains(e.Detail, "delete it") {
		t.Errorf("VM stop with a failed snapshot: %+v", e)
	}
	// A new snapshot would take the failed active one as its parent: the
	// user is told to delete it, not to wait (107).
	r = c.Do("POST", "/iaas/snapshot/", map[string]any{"vm_id": vmID, "name": "s2"}, admin).Expect(400)
	if e := r.Err().Errors["vm_id"]; e.ErrorCode != "iaas_snapshot_create_107" || !strings.Contains(e.Detail, "delete it") {
		t.Errorf("snapshot with a failed active snapshot: %+v", e)
	}
	if after := c.Do("GET", vm, nil, admin).Expect(200).Content(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused changes changed the VM:\n%v\n%v", before, after)
	}
	for _, p := range []string{snap, backup} {
		got := c.Do("PATCH", p, map[string]any{"state": 8}, admin).Expect(200).Content()
		if got["state"].(float64) != 8 || got["error_code"] != "" {
			t.Errorf("%s after the user's delete: %v", p, got)
		}
		c.Do("PATCH", p, map[string]any{"state": 17, "expected_state": 8}, x.robotR).Expect(200)
		c.Do("PATCH", p, map[string]any{"state": 99, "expected_state": 17}, x.robotR).Expect(200)
	}
	c.Do("PATCH", vm, map[string]any{"state": 8}, admin).Expect(200)
}

// TestComputeBackupHoldsVMDelete: a VM with a backup that is not CLOSED
// (here a finished one, RUNNING) cannot be deleted (109), nor its project
// (111), as with a snapshot; nothing changes. Before, the VM went to
// CLOSED and its backups stayed listed RUNNING for ever, their copies on
// the host never removed (the agent gets backups inside their VM's spec).
// Once the user has deleted the backup, the project goes.
func TestComputeBackupHoldsVMDelete(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("bk"), f.reg, x, 1), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	vmID := uint64(cloud["vms"].([]any)[0].(map[string]any)["id"].(float64))
	vm := apitest.Path("/iaas/vm/", vmID)
	vr := apitest.Path("/iaas/virtual_router/", uint64(cloud["virtual_router"].(map[string]any)["id"].(float64)))
	for _, p := range []string{vm, vr} {
		c.Do("PATCH", p, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
		c.Do("PATCH", p, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	}
	backup := apitest.Path("/iaas/backup/", create(c, admin, "/iaas/backup/", map[string]any{"vm_id": vmID, "name": "nightly"}))
	c.Do("PATCH", backup, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	c.Do("PATCH", backup, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	project := apitest.Path("/iaas/project/", id)
	before := map[string]string{}
	for _, p := range []string{vm, vr, project, backup} {
		before[p] = fmt.Sprint(c.Do("GET", p, nil, admin).Expect(200).Content())
	}
	if got := c.Do("PATCH", vm, map[string]any{"state": 8}, admin).Expect(400).FieldCode("state"); got != "iaas_vm_update_109" {
		t.Errorf("VM delete with a backup: %q", got)
	}
	if got := c.Do("PATCH", project, map[string]any{"state": 8}, admin).Expect(400).FieldCode("state"); got != "iaas_project_update_111" {
		t.Errorf("project delete with a backup: %q", got)
	}
	for _, p := range []string{vm, vr, project, backup} {
		if after := fmt.Sprint(c.Do("GET", p, nil, admin).Expect(200).Content()); after != before[p] {
			t.Errorf("refused deletes changed %s:\n%s\n%s", p, before[p], after)
		}
	}
	c.Do("PATCH", backup, map[string]any{"state": 8}, admin).Expect(200)
	c.Do("PATCH", backup, map[string]any{"state": 17, "expected_state": 8}, x.robotR).Expect(200)
	c.Do("PATCH", backup, map[string]any{"state": 99, "expected_state": 17}, x.robotR).Expect(200)
	c.Do("PATCH", project, map[string]any{"state": 8}, admin).Expect(200)
	if s := c.Do("GET", vm, nil, admin).Expect(200).Content()["state"].(float64); s != 8 {
		t.Errorf("VM in state %v after the project's delete", s)
	}
}

// TestComputeRestoreNeedsAStableVM: a backup restore or a snapshot revert
// (PATCH 10) onto a VM that is not RUNNING or QUIESCED is 400
// (iaas_backup_update_117, iaas_snapshot_update_117) and changes nothing:
// a VM being stopped, failed or rebuilt (one with them is never deleted). Before, it was
// accepted whatever the VM's state. Onto the stopped VM it is accepted.
func TestComputeRestoreNeedsAStableVM(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	body := cloudBody(f.n.Unique("rs"), f.reg, x, 1)
	body["project"].(map[string]any)["grace_period"] = 0
	id := cloudID(c.Do("POST", "/iaas/cloud/", body, admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	vmID := uint64(cloud["vms"].([]any)[0].(map[string]any)["id"].(float64))
	vm := apitest.Path("/iaas/vm/", vmID)
	robot := func(p string, steps ...[2]int) {
		for _, s := range steps {
			c.Do("PATCH", p, map[string]any{"state": s[1], "expected_state": s[0]}, x.robotR).Expect(200)
		}
	}
	robot(vm, [2]int{1, 2}, [2]int{2, 4})
	snap := apitest.Path("/iaas/snapshot/", create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vmID, "name": "s"}))
	robot(snap, [2]int{1, 2}, [2]int{2, 4})
	backup := apitest.Path("/iaas/backup/", create(c, admin, "/iaas/backup/", map[string]any{"vm_id": vmID, "name": "b"}))
	robot(backup, [2]int{1, 2}, [2]int{2, 4})
	refused := func(when string) {
		t.Helper()
		before := map[string]string{}
		for _, p := range []string{vm, snap, backup} {
			before[p] = fmt.Sprint(c.Do("GET", p, nil, admin).Expect(200).Content())
		}
		for p, code := range map[string]string{backup: "iaas_backup_update_117", snap: "iaas_snapshot_update_117"} {
			if got := c.Do("PATCH", p, map[string]any{"state": 10}, admin).Expect(400).FieldCode("state"); got != code {
				t.Errorf("%s %s: %q, want %s", p, when, got, code)
			}
		}
		for _, p := range []string{vm, snap, backup} {
			if after := fmt.Sprint(c.Do("GET", p, nil, admin).Expect(200).Content()); after != before[p] {
				t.Errorf("a refused restore %s changed %s:\n%s\n%s", when, p, before[p], after)
			}
		}
	}
	c.Do("PATCH", vm, map[string]any{"state": 5}, admin).Expect(200)
	refused("while the VM is being stopped")
	robot(vm, [2]int{5, 12}, [2]int{12, 6})
	c.Do("PATCH", vm, map[string]any{"cpu": 3}, admin).Expect(200) // QUIESCED_UPDATE
	robot(vm, [2]int{15, 16}, [2]int{16, 3})
	refused("onto a failed VM")
	robot(vm, [2]int{3, 1})
	refused("onto a VM being rebuilt")
	robot(vm, [2]int{1, 2}, [2]int{2, 3})
	refused("onto a failed VM")
	// A VM with a snapshot or backup that is not CLOSED is never deleted,
	// not even by a robot's retry (109): a restore cannot meet a VM being
	// deleted or CLOSED.
	if got := c.Do("PATCH", vm, map[string]any{"state": 8, "expected_state": 3}, x.robotR).Expect(400).FieldCode("state"); got != "iaas_vm_update_109" {
		t.Errorf("robot 3 → 8 with a snapshot and a backup: %q", got)
	}
	// Onto a QUIESCED VM: accepted (the agent restores it and leaves it off).
	id2 := runningVM(f)
	vm2 := apitest.Path("/iaas/vm/", id2)
	b2 := apitest.Path("/iaas/backup/", create(c, admin, "/iaas/backup/", map[string]any{"vm_id": id2, "name": "b"}))
	robot(b2, [2]int{1, 2}, [2]int{2, 4})
	c.Do("PATCH", vm2, map[string]any{"state": 5}, admin).Expect(200)
	robot(vm2, [2]int{5, 12}, [2]int{12, 6})
	if got := c.Do("PATCH", b2, map[string]any{"state": 10}, admin).Expect(200).Content(); got["state"].(float64) != 10 {
		t.Errorf("restore onto a QUIESCED VM: %v", got)
	}
}

// TestComputeProjectManager: manager_id is a user of the project's member
// (or absent, null, 0); another member's user or no user is a field error
// and changes nothing.
func TestComputeProjectManager(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	for _, m := range []uint64{999999, f.r.AdminB} {
		body := map[string]any{"name": f.n.Unique("mgr"), "region_id": f.reg, "manager_id": m}
		if got := c.Do("POST", "/iaas/project/", body, admin).Expect(400).FieldCode("manager_id"); got != "iaas_project_create_131" {
			t.Errorf("create with manager %d: %q", m, got)
		}
		cb := cloudBody(f.n.Unique("mgr"), f.reg, x, 0)
		cb["project"].(map[string]any)["manager_id"] = m
		if got := c.Do("POST", "/iaas/cloud/", cb, admin).Expect(400).FieldCode("project.manager_id"); got != "iaas_cloud_create_131" {
			t.Errorf("cloud create with manager %d: %q", m, got)
		}
	}
	p := c.Do("POST", "/iaas/project/", map[string]any{"name": f.n.Unique("mgr"), "region_id": f.reg, "manager_id": f.r.UserA}, admin).Expect(201).Content()
	if p["manager_id"].(float64) != float64(f.r.UserA) {
		t.Errorf("manager: %v", p)
	}
	path := apitest.Path("/iaas/project/", uint64(p["id"].(float64)))
	for _, method := range []string{"PATCH", "PUT"} {
		body := map[string]any{"name": p["name"], "manager_id": f.r.AdminB}
		if got := c.Do(method, path, body, admin).Expect(400).FieldCode("manager_id"); got != "iaas_project_update_131" {
			t.Errorf("%s with another member's user: %q", method, got)
		}
	}
	if got := c.Do("GET", path, nil, admin).Expect(200).Content()["manager_id"].(float64); got != float64(f.r.UserA) {
		t.Errorf("manager after refused updates: %v", got)
	}
	if got := c.Do("PATCH", path, map[string]any{"manager_id": nil}, admin).Expect(200).Content()["manager_id"].(float64); got != float64(f.r.UserA) {
		t.Errorf("PATCH manager_id null keeps it: %v", got)
	}
	if got := c.Do("PATCH", path, map[string]any{"manager_id": f.r.AdminA}, admin).Expect(200).Content()["manager_id"].(float64); got != float64(f.r.AdminA) {
		t.Errorf("PATCH manager_id: %v", got)
	}
}

// TestComputePutReplaces: PUT on a VM and a project replaces: required
// fields left out are "This field is required.", others are cleared.
func TestComputePutReplaces(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vm := runningVM(f)
	path := apitest.Path("/iaas/vm/", vm)
	before := c.Do("GET", path, nil, admin).Expect(200).Content()
	resp := c.Do("PUT", path, map[string]any{"name": "vm3x"}, admin).Expect(400)
	for field, code := range map[string]string{"cpu": "iaas_vm_update_117", "ram": "iaas_vm_update_120", "dns": "iaas_vm_update_124", "storages": "iaas_vm_update_112"} {
		if e := resp.Err().Errors[field]; e.ErrorCode != code || e.Detail != "This field is required." {
			t.Errorf("PUT name only: errors[%s] = %+v, want %s", field, e, code)
		}
	}
	full := map[string]any{"name": "vm3x", "cpu": 2, "ram": 4, "dns": "9.9.9.9", "storages": []any{map[string]any{"name": "root", "gb": 20, "primary": true}}}
	// Every disk must be listed: one left out would be removed.
	c.Do("PATCH", path, map[string]any{"storages": []any{map[string]any{"name": "data", "gb": 5}}}, admin).Expect(200)
	settleVM(c, x, vm)
	if got := c.Do("PUT", path, full, admin).Expect(400).FieldCode("storages"); got != "iaas_vm_update_123" {
		t.Errorf("PUT without the data disk: %q", got)
	}
	full["storages"] = append(full["storages"].([]any), map[string]any{"name": "data", "gb": 5})
	got := c.Do("PUT", path, full, admin).Expect(200).Content()
	if got["name"] != "vm3x" || got["dns"] != "9.9.9.9" || got["state"].(float64) != 4 || got["generation"] != c.Do("GET", path, nil, admin).Expect(200).Content()["generation"] {
		t.Errorf("PUT of the same spec with a new name and dns: %v (before %v)", got, before)
	}
	// A state change by PUT is still a state change.
	c.Do("PUT", path, map[string]any{"state": 5}, admin).Expect(200)

	// Project: name required; note, grace_period and manager_id reset.
	p := c.Do("POST", "/iaas/project/", map[string]any{"name": f.n.Unique("put"), "region_id": f.reg, "note": "n", "grace_period": 2}, admin).Expect(201).Content()
	pp := apitest.Path("/iaas/project/", uint64(p["id"].(float64)))
	if got := c.Do("PUT", pp, map[string]any{"note": "x"}, admin).Expect(400).FieldCode("name"); got != "iaas_project_update_101" {
		t.Errorf("project PUT without name: %q", got)
	}
	got = c.Do("PUT", pp, map[string]any{"name": p["name"]}, admin).Expect(200).Content()
	if got["note"] != "" || got["grace_period"].(float64) != 168 || got["manager_id"].(float64) != 0 {
		t.Errorf("project PUT name only: %v", got)
	}

	// Server: the optional fields take their create defaults (they stayed).
	sp := apitest.Path("/iaas/server/", x.srv)
	cur := c.Do("PATCH", sp, map[string]any{"asset_tag": "AT-1", "model": "R640", "enabled": false}, f.root).Expect(200).Content()
	put := map[string]any{"type_id": cur["type_id"], "storage_type_id": cur["storage_type_id"], "cores": cur["cores"], "ram": cur["ram"], "gb": cur["gb"]}
	got = c.Do("PUT", sp, put, f.root).Expect(200).Content()
	if got["asset_tag"] != "" || got["model"] != "" || got["enabled"] != true {
		t.Errorf("server PUT without the optional fields: %v", got)
	}

	// Router: capacity (or phantom) required, the rest its create default.
	rp := apitest.Path("/iaas/router/", x.rt)
	c.Do("PATCH", rp, map[string]any{"asset_tag": "RT-1", "model": "edge", "public_interface": "eth1"}, f.root).Expect(200)
	if got := c.Do("PUT", rp, map[string]any{"enabled": true}, f.root).Expect(400).FieldCode("capacity"); got != "iaas_router_update_105" {
		t.Errorf("router PUT without capacity: %q", got)
	}
	got = c.Do("PUT", rp, map[string]any{"phantom": true, "floating_subnet_ids": []uint64{x.fs}}, f.root).Expect(200).Content()
	if got["asset_tag"] != "" || got["model"] != "" || got["public_interface"] != "" || got["enabled"] != true {
		t.Errorf("router PUT without the optional fields: %v", got)
	}
}

// TestComputeVirtualRouterSubnets: PUT /iaas/virtual_router/{id}/ takes
// subnets as CloudCIX's virtual router update does ({name, address_range}
// new, {id, name} renamed), through cloud update's subnet path: in one
// command, the router moves to RUNNING_UPDATE with a new generation; a bad
// item is reported at its path and nothing of the request is kept.
func TestComputeVirtualRouterSubnets(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("vrs"), f.reg, x, 0), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	vrID := uint64(cloud["virtual_router"].(map[string]any)["id"].(float64))
	path := apitest.Path("/iaas/virtual_router/", vrID)
	c.Do("PATCH", path, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	before := c.Do("PATCH", path, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200).Content()
	subnetA := uint64(before["subnets"].([]any)[0].(map[string]any)["id"].(float64))

	// A bad second item: 400 at subnets[1].address_range, the good first
	// item is not created either.
	bad := map[string]any{"subnets": []any{
		map[string]any{"name": "c", "address_range": "10.0.2.1/24"},
		map[string]any{"name": "d", "address_range": "10.0.3.0/24"}}}
	resp := c.Do("PUT", path, bad, admin).Expect(400)
	if got := resp.FieldCode("subnets[1].address_range"); got != "iaas_cloud_update_114" {
		t.Errorf("network address as gateway: %q\n%s", got, resp)
	}
	if got := resp.FieldCode("subnets[0].address_range"); got != "" {
		t.Errorf("good item reported: %q", got)
	}
	resp = c.Do("PUT", path, map[string]any{"subnets": []any{map[string]any{"name": "e"}, map[string]any{"address_range": "10.0.4.1/24"}}}, admin).Expect(400)
	if a, b := resp.FieldCode("subnets[0].address_range"), resp.FieldCode("subnets[1].name"); a != "iaas_cloud_update_113" || b != "iaas_cloud_update_110" {
		t.Errorf("shape errors: %q %q\n%s", a, b, resp)
	}
	if n := len(c.Do("GET", path, nil, admin).Expect(200).Content()["subnets"].([]any)); n != 2 {
		t.Fatalf("%d subnets after refused updates, want 2", n)
	}
	if got := c.Do("PUT", path, map[string]any{"subnets": []any{}}, admin).Expect(400).FieldCode("subnets"); got != "iaas_virtual_router_update_116" {
		t.Errorf("empty subnets: %q", got)
	}
	if got := c.Do("PUT", path, map[string]any{"state": 5, "subnets": []any{map[string]any{"name": "c", "address_range": "10.0.2.1/24"}}}, admin).Expect(400).ErrorCode(); got != "iaas_virtual_router_update_115" {
		t.Errorf("state and subnets: %q", got)
	}
	if got := c.Do("PUT", path, map[string]any{"subnets": []any{map[string]any{"name": "c", "address_range": "10.0.2.1/24"}}}, x.robotR).Expect(403).ErrorCode(); got != "iaas_virtual_router_update_203" {
		t.Errorf("robot: %q", got)
	}

	// A new subnet and a rename in one request.
	good := map[string]any{"subnets": []any{
		map[string]any{"name": "c", "address_range": "10.0.2.1/24"},
		map[string]any{"id": subnetA, "name": "a2"}}}
	after := c.Do("PUT", path, good, admin).Expect(200).Content()
	if after["state"].(float64) != 10 || after["generation"].(float64) != before["generation"].(float64)+1 {
		t.Errorf("router after subnet update: state %v generation %v (before %v)", after["state"], after["generation"], before["generation"])
	}
	names := map[string]string{}
	for _, s := range after["subnets"].([]any) {
		s := s.(map[string]any)
		names[s["address_range"].(string)] = s["name"].(string)
	}
	if len(names) != 3 || names["10.0.2.1/24"] != "c" || names["10.0.0.1/24"] != "a2" || names["10.0.1.1/24"] != "b" {
		t.Errorf("subnets after update: %v", names)
	}
	// The address range of an existing subnet cannot change.
	if got := c.Do("PATCH", path, map[string]any{"subnets": []any{map[string]any{"id": subnetA, "name": "a", "address_range": "10.0.9.1/24"}}}, admin).Expect(400).FieldCode("subnets[0].address_range"); got != "iaas_cloud_update_112" {
		t.Errorf("address_range change: %q", got)
	}
	// A new subnet may not overlap a remote network of the router's VPNs
	// (CloudCIX: iaas_virtual_router_update_111).
	create(c, admin, "/iaas/vpn/", map[string]any{"virtual_router_id": vrID, "ike_gateway_value": "203.0.113.7", "ike_pre_shared_key": testPSK,
		"routes": []any{map[string]any{"local_subnet_id": subnetA, "remote_subnet": "10.0.8.0/24"}}})
	if got := c.Do("PUT", path, map[string]any{"subnets": []any{map[string]any{"name": "v", "address_range": "10.0.8.1/25"}}}, admin).Expect(400).FieldCode("subnets[0].address_range"); got != "iaas_cloud_update_132" {
		t.Errorf("subnet over a VPN's remote network: %q", got)
	}
}

// TestComputeRobotRetryHeldBySnapshots: a robot token requesting a VM's
// change (an operator's retry from UNRESOURCED: 3 → 8, 3 → 5) is held by
// the VM's snapshots and backups as a user is (109, 110), nothing
// changed; before, 3 → 8 → 14 → 9 → 17 → 99 closed the VM and stranded
// its RUNNING snapshot and backup. A robot's reports (12 → 3) are not
// held back by a busy snapshot.
func TestComputeRobotRetryHeldBySnapshots(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vmID := runningVM(f)
	vm := apitest.Path("/iaas/vm/", vmID)
	snap := apitest.Path("/iaas/snapshot/", create(c, admin, "/iaas/snapshot/", map[string]any{"vm_id": vmID, "name": "s"}))
	backup := apitest.Path("/iaas/backup/", create(c, admin, "/iaas/backup/", map[string]any{"vm_id": vmID, "name": "b"}))
	for _, p := range []string{snap, backup} {
		c.Do("PATCH", p, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
		c.Do("PATCH", p, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	}
	c.Do("PATCH", vm, map[string]any{"state": 5}, admin).Expect(200)
	c.Do("PATCH", vm, map[string]any{"state": 12, "expected_state": 5}, x.robotR).Expect(200)
	c.Do("PATCH", snap, map[string]any{"state": 8}, admin).Expect(200) // busy now
	// A report: the host failed to stop the VM.
	c.Do("PATCH", vm, map[string]any{"state": 3, "expected_state": 12, "error_code": "vm_libvirt"}, x.robotR).Expect(200)
	before := c.Do("GET", vm, nil, admin).Expect(200).Content()
	if got := c.Do("PATCH", vm, map[string]any{"state": 8, "expected_state": 3}, x.robotR).Expect(400).FieldCode("state"); got != "iaas_vm_update_109" {
		t.Errorf("robot 3 → 8 with a snapshot: %q", got)
	}
	if got := c.Do("PATCH", vm, map[string]any{"state": 5, "expected_state": 3}, x.robotR).Expect(400).FieldCode("state"); got != "iaas_vm_update_110" {
		t.Errorf("robot 3 → 5 with a busy snapshot: %q", got)
	}
	c.Do("PATCH", snap, map[string]any{"state": 17, "expected_state": 8}, x.robotR).Expect(200)
	c.Do("PATCH", snap, map[string]any{"state": 99, "expected_state": 17}, x.robotR).Expect(200)
	if got := c.Do("PATCH", vm, map[string]any{"state": 8, "expected_state": 3}, x.robotR).Expect(400).FieldCode("state"); got != "iaas_vm_update_109" {
		t.Errorf("robot 3 → 8 with a backup: %q", got)
	}
	if after := c.Do("GET", vm, nil, admin).Expect(200).Content(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused retries changed the VM:\n%v\n%v", before, after)
	}
	c.Do("PATCH", backup, map[string]any{"state": 8}, admin).Expect(200)
	c.Do("PATCH", backup, map[string]any{"state": 17, "expected_state": 8}, x.robotR).Expect(200)
	c.Do("PATCH", backup, map[string]any{"state": 99, "expected_state": 17}, x.robotR).Expect(200)
	for _, st := range [][2]int{{8, 3}, {14, 8}, {9, 14}} {
		c.Do("PATCH", vm, map[string]any{"state": st[0], "expected_state": st[1]}, x.robotR).Expect(200)
	}
}

// TestComputeNothingAddedToDeletedProject: once a project's virtual router
// is being deleted (SCRUB and after) no VM, subnet or firewall rule is
// added to the project, through the VM, cloud or virtual router routes:
// 400 (iaas_vm_create_104, iaas_cloud_update_102) naming the router's
// state, nothing changed. Before, they were stored (and never built; a VM
// would hold the router's scrub for ever), as VPNs no longer are.
func TestComputeNothingAddedToDeletedProject(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("del"), f.reg, x, 0), admin).Expect(201))
	cloudPath := apitest.Path("/iaas/cloud/", id)
	vrID := uint64(c.Do("GET", cloudPath, nil, admin).Expect(200).Content()["virtual_router"].(map[string]any)["id"].(float64))
	vr := apitest.Path("/iaas/virtual_router/", vrID)
	c.Do("PATCH", vr, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	c.Do("PATCH", vr, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)
	c.Do("PATCH", vr, map[string]any{"state": 8}, admin).Expect(200)
	before := fmt.Sprint(c.Do("GET", cloudPath, nil, admin).Expect(200).Content())
	vm := vmBody("late", x, 30, false)
	vm["project_id"] = id
	r := c.Do("POST", "/iaas/vm/", vm, admin).Expect(400)
	if e := r.Err().Errors["project_id"]; e.ErrorCode != "iaas_vm_create_104" || !strings.Contains(e.Detail, "being deleted") {
		t.Errorf("VM create: %s", r)
	}
	for name, body := range map[string]map[string]any{
		"a VM":     {"vms": []any{vmBody("late", x, 30, false)}},
		"a subnet": {"subnets": []any{map[string]any{"name": "c", "address_range": "10.0.2.1/24"}}},
		"rules":    {"firewall_rules": []any{map[string]any{"allow": true, "source": "*", "destination": "10.0.1.0/24", "protocol": "tcp", "port": "80"}}},
	} {
		r := c.Do("PATCH", cloudPath, body, admin).Expect(400)
		if got := r.ErrorCode(); got != "iaas_cloud_update_102" || !strings.Contains(r.String(), "being deleted") {
			t.Errorf("cloud update with %s: %s", name, r)
		}
	}
	r = c.Do("PATCH", vr, map[string]any{"subnets": []any{map[string]any{"name": "c", "address_range": "10.0.2.1/24"}}}, admin).Expect(400)
	if got := r.ErrorCode(); got != "iaas_cloud_update_102" {
		t.Errorf("virtual router subnets: %s", r)
	}
	if after := fmt.Sprint(c.Do("GET", cloudPath, nil, admin).Expect(200).Content()); after != before {
		t.Errorf("refused additions changed the project:\n%s\n%s", before, after)
	}
}

// TestComputePseudoASNRange: ASN numbers above 10^12 are projects'
// pseudo-ASNs (10^12 + project id, facts §5.9): a manual create or a
// renumbering into that range is 400 (iaas_asn_create_105,
// iaas_asn_update_105), nothing changed, so the next project's create
// still gets its own. Before, a manual ASN 10^12 + N made the create of
// project N fail.
func TestComputePseudoASNRange(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("asn"), f.reg, x, 0), admin).Expect(201))
	p := c.Do("GET", apitest.Path("/iaas/project/", id), nil, admin).Expect(200).Content()
	own := apitest.Path("/iaas/asn/", uint64(p["asn_id"].(float64)))
	if a := c.Do("GET", own, nil, f.root).Expect(200).Content(); a["is_pseudo"] != true || a["number"].(float64) != 1e12+float64(id) {
		t.Errorf("project's ASN: %v", a)
	}
	next := uint64(1e12) + id + 1
	if got := c.Do("POST", "/iaas/asn/", map[string]any{"member_id": f.r.MemberA, "number": next}, f.root).Expect(400).FieldCode("number"); got != "iaas_asn_create_105" {
		t.Errorf("manual ASN %d: %q", next, got)
	}
	asn := create(c, f.root, "/iaas/asn/", map[string]any{"member_id": f.r.MemberA, "number": 64900 + id})
	if got := c.Do("PATCH", apitest.Path("/iaas/asn/", asn), map[string]any{"number": next}, f.root).Expect(400).FieldCode("number"); got != "iaas_asn_update_105" {
		t.Errorf("ASN renumbered to %d: %q", next, got)
	}
	if n := c.Do("GET", apitest.Path("/iaas/asn/", asn), nil, f.root).Expect(200).Content()["number"].(float64); n != float64(64900+id) {
		t.Errorf("refused renumbering left number %v", n)
	}
	// A project's own pseudo-ASN keeps its number through an update.
	c.Do("PATCH", own, map[string]any{"number": 1e12 + float64(id)}, f.root).Expect(200)
	id2 := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("asn2"), f.reg, x, 0), admin).Expect(201))
	if id2 != id+1 {
		t.Errorf("next project %d, want %d", id2, id+1)
	}
}

// TestComputeFirewallRuleOrderExtremes: firewall rules are stored sorted by
// order even at the ends of the int range. Before, the comparator
// a.Order - b.Order overflowed and put order MaxInt64 before MinInt64.
func TestComputeFirewallRuleOrderExtremes(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	body := cloudBody(f.n.Unique("order"), f.reg, x, 0)
	rule := func(order int, port string) map[string]any {
		return map[string]any{"order": order, "allow": true, "source": "*", "destination": "10.0.0.0/24", "protocol": "tcp", "port": port}
	}
	body["firewall_rules"] = []any{rule(math.MaxInt64, "3"), rule(math.MinInt64, "1"), rule(0, "2")}
	id := cloudID(c.Do("POST", "/iaas/cloud/", body, admin).Expect(201))
	rules := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()["virtual_router"].(map[string]any)["firewall_rules"].([]any)
	var ports []string
	for _, r := range rules {
		ports = append(ports, r.(map[string]any)["port"].(string))
	}
	if strings.Join(ports, ",") != "1,2,3" {
		t.Errorf("rules stored in port order %v, want 1,2,3 (by order)", ports)
	}
}

// TestComputeClosedRouterFreesSegments: once a project's virtual router is
// CLOSED its VLANs, VNIs and stif numbers are free (the next project gets
// them, the lowest free) and its VPNs are deleted with it (a delete
// history row each), so their pre-shared keys stay nowhere. Before, a
// closed project held them for ever. Its public address goes back too,
// and the router no longer shows it (state.Rules5).
func TestComputeClosedRouterFreesSegments(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	cloudOf := func(name string) (project, vr uint64, cloud map[string]any) {
		body := cloudBody(f.n.Unique(name), f.reg, x, 0)
		body["project"].(map[string]any)["grace_period"] = 0
		project = cloudID(c.Do("POST", "/iaas/cloud/", body, admin).Expect(201))
		cloud = c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, admin).Expect(200).Content()
		return project, uint64(cloud["virtual_router"].(map[string]any)["id"].(float64)), cloud
	}
	segments := func(cloud map[string]any) string {
		var out []string
		for _, s := range cloud["subnets"].([]any) {
			m := s.(map[string]any)
			out = append(out, fmt.Sprintf("%v/%v", m["vlan"], m["vxlan"]))
		}
		return strings.Join(out, ",")
	}
	vpnOn := func(vr uint64, cloud map[string]any) map[string]any {
		local := cloud["subnets"].([]any)[0].(map[string]any)["id"]
		return c.Do("POST", "/iaas/vpn/", map[string]any{"virtual_router_id": vr, "ike_gateway_value": "203.0.113.7", "ike_pre_shared_key": testPSK,
			"routes": []any{map[string]any{"local_subnet_id": local, "remote_subnet": "198.18.200.0/24"}}}, admin).Expect(201).Content()
	}
	_, vr1, cloud1 := cloudOf("first")
	vpn1 := vpnOn(vr1, cloud1)
	path := apitest.Path("/iaas/virtual_router/", vr1)
	for _, st := range [][2]int{{1, 2}, {2, 4}} {
		c.Do("PATCH", path, map[string]any{"state": st[1], "expected_state": st[0]}, x.robotR).Expect(200)
	}
	c.Do("PATCH", path, map[string]any{"state": 8}, admin).Expect(200)
	for _, st := range [][2]int{{8, 14}, {14, 9}, {9, 17}, {17, 99}} {
		c.Do("PATCH", path, map[string]any{"state": st[1], "expected_state": st[0]}, x.robotR).Expect(200)
	}
	id1 := uint64(vpn1["id"].(float64))
	c.Do("GET", apitest.Path("/iaas/vpn/", id1), nil, admin).Expect(404)
	deleted := false
	for _, h := range c.Do("GET", "/iaas/vpn_history/", nil, f.root).Expect(200).List().Content {
		deleted = deleted || (h["vpn_id"].(float64) == float64(id1) && h["action"] == "delete")
	}
	if !deleted {
		t.Errorf("no delete history row for VPN %d of the closed router", id1)
	}
	// The closed router gave its public address back and no longer shows
	// it (it did, while the next router showed it too).
	closed := c.Do("GET", path, nil, admin).Expect(200).Content()
	if closed["ip_address"] != "" || closed["ip_address_id"].(float64) != 0 {
		t.Errorf("the closed router still shows address %v (id %v)", closed["ip_address"], closed["ip_address_id"])
	}
	_, vr2, cloud2 := cloudOf("second")
	if a, b := cloud1["virtual_router"].(map[string]any)["ip_address"], cloud2["virtual_router"].(map[string]any)["ip_address"]; a != b {
		t.Errorf("the next router got public address %v, want the closed router's %v", b, a)
	}
	if a, b := segments(cloud1), segments(cloud2); a != b {
		t.Errorf("the next project got VLAN/VNI %s, want the closed project's %s", b, a)
	}
	if s1, s2 := vpn1["stif_number"], vpnOn(vr2, cloud2)["stif_number"]; s1 != s2 {
		t.Errorf("the next VPN got stif number %v, want the closed router's %v", s2, s1)
	}
}

// TestClosedRouterVPNsPurged: a virtual router closed before state.Rules1
// kept its VPNs, pre-shared keys included (a close replayed under those
// rules keeps them still); the leader deletes them (its periodic purge, a
// command of its own), each with a delete history row.
func TestClosedRouterVPNsPurged(t *testing.T) {
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) { c.PurgeInterval = 50 * time.Millisecond }})
	f := newFixture(t, n)
	x := computeOf(f)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	body := cloudBody(f.n.Unique("old"), f.reg, x, 0)
	body["project"].(map[string]any)["grace_period"] = 0
	project := cloudID(c.Do("POST", "/iaas/cloud/", body, admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", project), nil, admin).Expect(200).Content()
	vr := uint64(cloud["virtual_router"].(map[string]any)["id"].(float64))
	local := cloud["subnets"].([]any)[0].(map[string]any)["id"]
	vpn := c.Do("POST", "/iaas/vpn/", map[string]any{"virtual_router_id": vr, "ike_gateway_value": "203.0.113.7", "ike_pre_shared_key": testPSK,
		"routes": []any{map[string]any{"local_subnet_id": local, "remote_subnet": "198.18.200.0/24"}}}, admin).Expect(201).Content()
	id := uint64(vpn["id"].(float64))
	path := apitest.Path("/iaas/virtual_router/", vr)
	for _, st := range [][2]int{{1, 2}, {2, 4}} {
		c.Do("PATCH", path, map[string]any{"state": st[1], "expected_state": st[0]}, x.robotR).Expect(200)
	}
	c.Do("PATCH", path, map[string]any{"state": 8}, admin).Expect(200)
	for _, st := range [][2]int{{8, 14}, {14, 9}, {9, 17}} {
		c.Do("PATCH", path, map[string]any{"state": st[1], "expected_state": st[0]}, x.robotR).Expect(200)
	}
	// The close as an older leader made it: under the original rules.
	from := 17
	cmd, err := fsm.NewCommand(fsm.StateChangeType, time.Now(), fsm.Actor{Robot: true},
		state.StateChange{Kind: wire.KindVirtualRouter, ID: vr, To: 99, Expected: &from})
	if err != nil {
		t.Fatal(err)
	}
	cmd.Rules = state.RulesOriginal
	data, err := cmd.Encode()
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := n.Server.Cluster().Apply(context.Background(), data)
	if err != nil || resp.(fsm.Result).Err != nil {
		t.Fatalf("close: %v %v", err, resp)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Do("GET", apitest.Path("/iaas/vpn/", id), nil, admin).Status != 404 {
		if time.Now().After(deadline) {
			t.Fatalf("VPN %d of the closed router still there after 10 s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var rows []map[string]any
	for _, h := range c.Do("GET", "/iaas/vpn_history/", nil, f.root).Expect(200).List().Content {
		if h["vpn_id"].(float64) == float64(id) && h["action"] == "delete" {
			rows = append(rows, h)
		}
	}
	// One delete row, the leader's (no user, not a robot): the close under
	// the original rules deleted nothing.
	if len(rows) != 1 || rows[0]["robot"] == true || rows[0]["user_id"] != nil && rows[0]["user_id"] != float64(0) {
		t.Errorf("delete history rows of VPN %d: %v, want one by the leader", id, rows)
	}
}

// TestComputeSubnetOverlapCode: a project subnet that overlaps (or repeats)
// another subnet of the project is refused with the cloud's own code at the
// item, naming the subnet it overlaps (133), through cloud create, cloud
// update and the virtual router's subnets, and nothing is made; before, it
// was the state store's ipam_block_create_118/119 ("The address range is
// refused: overlap."), whatever the route and method.
func TestComputeSubnetOverlapCode(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	projects := func() float64 {
		return c.Do("GET", "/iaas/project/", nil, f.root).Expect(200).Map()["_metadata"].(map[string]any)["total_records"].(float64)
	}
	before := projects()
	for _, second := range []string{"10.0.0.129/25", "10.0.0.1/24"} {
		body := cloudBody(f.n.Unique("overlap"), f.reg, x, 0)
		body["subnets"] = []any{map[string]any{"name": "a", "address_range": "10.0.0.1/24"}, map[string]any{"name": "b", "address_range": second}}
		resp := c.Do("POST", "/iaas/cloud/", body, admin).Expect(400)
		if got := resp.FieldCode("subnets[1].address_range"); got != "iaas_cloud_create_133" {
			t.Errorf("cloud create with %s beside 10.0.0.1/24: %q\n%s", second, got, resp)
		}
		if !strings.Contains(resp.String(), "10.0.0.1/24") {
			t.Errorf("the detail does not name the subnet overlapped: %s", resp)
		}
	}
	if got := projects(); got != before {
		t.Errorf("%v projects after refused cloud creates, %v before", got, before)
	}
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("overlap"), f.reg, x, 0), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	vr := apitest.Path("/iaas/virtual_router/", uint64(cloud["virtual_router"].(map[string]any)["id"].(float64)))
	over := map[string]any{"subnets": []any{map[string]any{"name": "c", "address_range": "10.0.2.1/24"},
		map[string]any{"name": "d", "address_range": "10.0.1.1/25"}}}
	for _, path := range []string{apitest.Path("/iaas/cloud/", id), vr} {
		resp := c.Do("PATCH", path, over, admin).Expect(400)
		if got := resp.FieldCode("subnets[1].address_range"); got != "iaas_cloud_update_133" {
			t.Errorf("%s: 10.0.1.1/25 over 10.0.1.1/24: %q\n%s", path, got, resp)
		}
	}
	if n := len(c.Do("GET", vr, nil, admin).Expect(200).Content()["subnets"].([]any)); n != 2 {
		t.Errorf("%d subnets after refused updates, want 2", n)
	}
}

// TestComputeCloudUpdateListedTwice: a cloud update (or the virtual
// router's subnets) naming one subnet or VM twice is 400
// iaas_cloud_update_134 at the second item, nothing changed; before, a
// subnet listed twice took the last name silently and a VM listed twice
// was refused as if it were not RUNNING (118, "it is RUNNING_UPDATE").
func TestComputeCloudUpdateListedTwice(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	id := cloudID(c.Do("POST", "/iaas/cloud/", cloudBody(f.n.Unique("twice"), f.reg, x, 1), admin).Expect(201))
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	vr := apitest.Path("/iaas/virtual_router/", uint64(cloud["virtual_router"].(map[string]any)["id"].(float64)))
	subnet := cloud["subnets"].([]any)[0].(map[string]any)
	vm := uint64(cloud["vms"].([]any)[0].(map[string]any)["id"].(float64))
	vmPath := apitest.Path("/iaas/vm/", vm)
	c.Do("PATCH", vmPath, map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	c.Do("PATCH", vmPath, map[string]any{"state": 4, "expected_state": 2}, x.robotR).Expect(200)

	twice := map[string]any{"subnets": []any{map[string]any{"id": subnet["id"], "name": "x"}, map[string]any{"id": subnet["id"], "name": "y"}}}
	for _, path := range []string{apitest.Path("/iaas/cloud/", id), vr} {
		resp := c.Do("PATCH", path, twice, admin).Expect(400)
		if got := resp.FieldCode("subnets[1].id"); got != "iaas_cloud_update_134" {
			t.Errorf("%s: a subnet listed twice: %q\n%s", path, got, resp)
		}
	}
	resp := c.Do("PATCH", apitest.Path("/iaas/cloud/", id), map[string]any{"vms": []any{map[string]any{"id": vm, "cpu": 3}, map[string]any{"id": vm, "cpu": 4}}}, admin).Expect(400)
	if got := resp.FieldCode("vms[1].id"); got != "iaas_cloud_update_134" {
		t.Errorf("a VM listed twice: %q\n%s", got, resp)
	}
	after := c.Do("GET", apitest.Path("/iaas/cloud/", id), nil, admin).Expect(200).Content()
	v := after["vms"].([]any)[0].(map[string]any)
	if s := after["subnets"].([]any)[0].(map[string]any); s["name"] != subnet["name"] || v["cpu"].(float64) != 2 || v["state"].(float64) != 4 {
		t.Errorf("changed by refused updates: subnet %v, vm cpu %v state %v", s["name"], v["cpu"], v["state"])
	}
}

// TestComputeEmptyStateUpdateHint: a snapshot or backup update without
// state is 400 …_update_104, whose detail names what else the service
// takes: a snapshot's name or remove_subtree, a backup's name only (a
// backup refuses remove_subtree, 115); before, the backup's named
// remove_subtree too.
func TestComputeEmptyStateUpdateHint(t *testing.T) {
	_, f, _ := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	vmID := runningVM(f)
	for _, kind := range []string{"snapshot", "backup"} {
		p := apitest.Path("/iaas/"+kind+"/", create(c, admin, "/iaas/"+kind+"/", map[string]any{"vm_id": vmID, "name": "x"}))
		e := c.Do("PATCH", p, map[string]any{}, admin).Expect(400).Err().Errors["state"]
		if e.ErrorCode != "iaas_"+kind+"_update_104" || strings.Contains(e.Detail, "remove_subtree") != (kind == "snapshot") {
			t.Errorf("%s update without state: %+v", kind, e)
		}
	}
}

// TestPTRForNATAddress: a member makes the PTR record of its VM's public
// (NAT) address, which is the region's row (state.Rules5; it was 400
// iaas_ptr_record_create_109, "does not hold", so reverse DNS of a VM was
// the operator's to set); another member cannot; the record goes when the
// VM closes and gives the address back.
func TestPTRForNATAddress(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin, other := f.c.For(t), f.r.Token(apitest.MemberAdmin), f.r.Token(apitest.OtherMember)
	body := cloudBody(f.n.Unique("rdns"), f.reg, x, 1)
	body["project"].(map[string]any)["grace_period"] = 0
	cloud := c.Do("GET", apitest.Path("/iaas/cloud/", cloudID(c.Do("POST", "/iaas/cloud/", body, admin).Expect(201))), nil, admin).Expect(200).Content()
	vm := cloud["vms"].([]any)[0].(map[string]any)
	pub, _ := vm["ip_addresses"].([]any)[0].(map[string]any)["public_ip"].(map[string]any)
	if pub == nil {
		t.Fatalf("the fixture's VM has no public address: %v", vm)
	}
	ptr := map[string]any{"ip_address": pub["address"], "content": "web.example.com."}
	if e := c.Do("POST", "/iaas/ptr_record/", ptr, other).Expect(400).Err().Errors["ip_address"]; e.ErrorCode != "iaas_ptr_record_create_109" {
		t.Errorf("another member's PTR for the VM's public address: %+v", e)
	}
	rec := create(c, admin, "/iaas/ptr_record/", ptr)
	path := apitest.Path("/iaas/vm/", uint64(vm["id"].(float64)))
	for _, st := range [][2]int{{1, 2}, {2, 4}} {
		c.Do("PATCH", path, map[string]any{"state": st[1], "expected_state": st[0]}, x.robotR).Expect(200)
	}
	c.Do("PATCH", path, map[string]any{"state": 8}, admin).Expect(200)
	c.Do("GET", apitest.Path("/iaas/ptr_record/", rec), nil, admin).Expect(200) // the VM still has its address
	for _, st := range [][2]int{{8, 14}, {14, 9}, {9, 17}, {17, 99}} {
		c.Do("PATCH", path, map[string]any{"state": st[1], "expected_state": st[0]}, x.robotR).Expect(200)
	}
	c.Do("GET", apitest.Path("/iaas/ptr_record/", rec), nil, admin).Expect(404)
}
