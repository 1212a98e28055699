package systest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// vmWorld is a controller, a hypervisor agent over libvirtd (QEMU TCG)
// and one RUNNING VM, as TestAgentVMs sets them up.
type vmWorld struct {
	e         *env
	root      string // the agent's directories
	backups   string // its backup_dir
	domPrefix string
	vmID      uint64
	domain    string
}

func newVMWorld(t *testing.T) *vmWorld {
	h := newHypervisor(t, 1)
	w := &vmWorld{e: h.env, root: h.vmRoot, backups: filepath.Join(h.vmRoot, "backups"), domPrefix: h.domPrefix}
	project, vms := h.cloud([]int{1})
	w.vmID = vms[0]
	h.vmAt(w.vmID, api.StateRunning, 3*time.Minute)
	w.domain = h.domain(project, w.vmID)
	return w
}

// objAt waits until the snapshot or backup (service "snapshot" or
// "backup") id is in state at its current generation; UNRESOURCED fails
// the test unless it is the state waited for.
func (e *env) objAt(service string, id uint64, state int, timeout time.Duration) (map[string]any, time.Duration) {
	var last map[string]any
	took := eventually(e.t, fmt.Sprintf("%s %d %s", service, id, api.StateNames[state]), timeout, func() bool {
		last = e.api.must(e.root, "GET", fmt.Sprintf("/iaas/%s/%d/", service, id), nil, 200)
		st := num(last["state"])
		if st == api.StateUnresourced && state != api.StateUnresourced {
			e.t.Fatalf("%s %d UNRESOURCED: %s: %s\nagent log:\n%s", service, id, last["error_code"], last["error_detail"], tail(e.agent.log(), 40))
		}
		if state == api.StateClosed || state == api.StateUnresourced {
			return st == uint64(state)
		}
		return st == uint64(state) && num(last["observed_generation"]) == num(last["generation"])
	})
	return last, took
}

func snapName(id uint64) string { return fmt.Sprintf("snapshot-%d", id) }

// TestAgentSnapshots: snapshots and backups through the API, the
// controller, the agent and libvirt. Two snapshots of a RUNNING VM become
// RUNNING and are in libvirt as a chain (the second's parent is the
// first), as GET snapshot_tree shows; a revert to the first (PATCH 10)
// makes it libvirt's current snapshot; a delete (8) of the second ends
// CLOSED with the snapshot gone from libvirt. A backup ends RUNNING with
// time_valid, its disk copies in the agent's backup_dir and the domain's
// disk back on its own volume (block commit pivoted); its delete removes
// the copy. A backup into a directory that cannot be made ends UNRESOURCED
// with error_code vm_backup_dir while the VM stays RUNNING, and its user's
// delete takes it to CLOSED.
func TestAgentSnapshots(t *testing.T) {
	w := newVMWorld(t)
	e, a := w.e, w.e.api
	vmPath := fmt.Sprintf("/iaas/vm/%d/", w.vmID)

	var s1, s2 uint64
	t.Run("take two", func(t *testing.T) {
		start := time.Now()
		s1 = a.create(e.root, "/iaas/snapshot/", map[string]any{"vm_id": w.vmID, "name": "before the upgrade"})
		_, took := e.objAt("snapshot", s1, api.StateRunning, 2*time.Minute)
		t.Logf("snapshot of a running VM (1 GiB RAM, TCG), POST → RUNNING: %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH snapshot_create_seconds %.3f\n", time.Since(start).Seconds())
		s2 = a.create(e.root, "/iaas/snapshot/", map[string]any{"vm_id": w.vmID, "name": "after"})
		e.objAt("snapshot", s2, api.StateRunning, 2*time.Minute)
		list := strings.Fields(virsh(t, "snapshot-list", w.domain, "--name"))
		if !slices.Contains(list, snapName(s1)) || !slices.Contains(list, snapName(s2)) {
			t.Fatalf("libvirt snapshots %v, want %s and %s", list, snapName(s1), snapName(s2))
		}
		if p := strings.TrimSpace(virsh(t, "snapshot-parent", w.domain, snapName(s2))); p != snapName(s1) {
			t.Errorf("libvirt parent of %s is %q, want %s", snapName(s2), p, snapName(s1))
		}
		if st := domState(w.domain); st != "running" {
			t.Errorf("domain is %q after the snapshots", st)
		}
		tree := a.must(e.root, "GET", fmt.Sprintf("/iaas/snapshot_tree/%d/", w.vmID), nil, 200)["branches"].([]any)
		if len(tree) != 1 {
			t.Fatalf("snapshot_tree: %v", tree)
		}
		root := tree[0].(map[string]any)
		kids := root["children"].([]any)
		if num(root["id"]) != s1 || len(kids) != 1 || num(kids[0].(map[string]any)["id"]) != s2 || kids[0].(map[string]any)["active"] != true {
			t.Errorf("snapshot_tree: %v", tree)
		}
	})
	if s2 == 0 {
		t.FailNow()
	}
	t.Run("revert to the first", func(t *testing.T) {
		a.must(e.root, "PATCH", fmt.Sprintf("/iaas/snapshot/%d/", s1), map[string]any{"state": api.StateRunningUpdate}, 200)
		_, took := e.objAt("snapshot", s1, api.StateRunning, 2*time.Minute)
		t.Logf("revert, PATCH 10 → RUNNING: %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH snapshot_revert_seconds %.3f\n", took.Seconds())
		if cur := strings.TrimSpace(virsh(t, "snapshot-current", w.domain, "--name")); cur != snapName(s1) {
			t.Errorf("libvirt's current snapshot is %q, want %s", cur, snapName(s1))
		}
		if st := domState(w.domain); st != "running" {
			t.Errorf("domain is %q after the revert", st)
		}
		e.vmAt(w.vmID, api.StateRunning, 30*time.Second)
		if n := strings.Count(e.agent.log(), "snapshot revert:"); n != 1 {
			t.Errorf("the agent reverted %d times, want once", n)
		}
	})
	t.Run("delete the second", func(t *testing.T) {
		a.must(e.root, "PATCH", fmt.Sprintf("/iaas/snapshot/%d/", s2), map[string]any{"state": api.StateScrub}, 200)
		_, took := e.objAt("snapshot", s2, api.StateClosed, 2*time.Minute)
		t.Logf("snapshot delete, PATCH 8 → CLOSED: %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH snapshot_delete_seconds %.3f\n", took.Seconds())
		list := strings.Fields(virsh(t, "snapshot-list", w.domain, "--name"))
		if slices.Contains(list, snapName(s2)) || !slices.Contains(list, snapName(s1)) {
			t.Errorf("libvirt snapshots after the delete: %v", list)
		}
		tree := a.must(e.root, "GET", fmt.Sprintf("/iaas/snapshot_tree/%d/", w.vmID), nil, 200)["branches"].([]any)
		if len(tree) != 1 || len(tree[0].(map[string]any)["children"].([]any)) != 0 {
			t.Errorf("snapshot_tree after the delete: %v", tree)
		}
	})

	t.Run("agent restart mid-step converges", func(t *testing.T) {
		// The agent dies after its claim and after libvirt took the
		// snapshot, before its report: the restarted agent finds the
		// snapshot taken and reports it.
		if !e.agent.signal(syscall.SIGKILL, 10*time.Second) {
			t.Fatal("agent survived SIGKILL")
		}
		s3 := a.create(e.root, "/iaas/snapshot/", map[string]any{"vm_id": w.vmID, "name": "interrupted"})
		a.must(e.robot, "PATCH", fmt.Sprintf("/iaas/snapshot/%d/", s3), map[string]any{"state": api.StateBuilding, "expected_state": api.StateRequested}, 200)
		virsh(t, "snapshot-create-as", w.domain, snapName(s3))
		e.startAgent(e.agent.args[2])
		_, took := e.objAt("snapshot", s3, api.StateRunning, 2*time.Minute)
		t.Logf("restarted agent, BUILDING with the snapshot already taken → RUNNING: %v", took.Round(time.Millisecond))
		list := strings.Fields(virsh(t, "snapshot-list", w.domain, "--name"))
		if !slices.Equal(list, []string{snapName(s1), snapName(s3)}) && !slices.Equal(list, []string{snapName(s3), snapName(s1)}) {
			t.Errorf("libvirt snapshots after the restart: %v", list)
		}
		if p := strings.TrimSpace(virsh(t, "snapshot-parent", w.domain, snapName(s3))); p != snapName(s1) {
			t.Errorf("libvirt parent of %s is %q, want %s", snapName(s3), p, snapName(s1))
		}
	})

	t.Run("backup", func(t *testing.T) {
		before := dumpXML(t, w.domain).disks()
		b := a.create(e.root, "/iaas/backup/", map[string]any{"vm_id": w.vmID, "name": "nightly"})
		rec, took := e.objAt("backup", b, api.StateRunning, 3*time.Minute)
		t.Logf("backup of a running VM (external snapshot, copy, block commit), POST → RUNNING: %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH backup_create_seconds %.3f\n", took.Seconds())
		if rec["time_valid"] == "" || rec["time_valid"] == nil {
			t.Errorf("backup without time_valid: %v", rec)
		}
		dir := filepath.Join(w.backups, w.domain, fmt.Sprintf("backup-%d", b))
		for _, f := range []string{"vda.qcow2", "manifest.json", w.domain + ".xml"} {
			if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
				t.Errorf("backup file %s: %v", f, err)
			}
		}
		sh(t, "qemu-img", "info", "-U", filepath.Join(dir, "vda.qcow2"))
		after := dumpXML(t, w.domain).disks()
		if after["vda"] != before["vda"] || len(after) != len(before) {
			t.Errorf("disks after the backup %v, before %v: the block commit did not pivot back", after, before)
		}
		if left, _ := filepath.Glob(filepath.Join(e.disks, "*.backup-overlay")); len(left) > 0 {
			t.Errorf("overlays left: %v", left)
		}
		if st := domState(w.domain); st != "running" {
			t.Errorf("domain is %q after the backup", st)
		}
		// Restore: the agent puts the disks back to the copy (a new file
		// renamed over the volume) and starts the VM again.
		vda := after["vda"]
		ino := func() uint64 {
			st, err := os.Stat(vda)
			if err != nil {
				t.Fatal(err)
			}
			return st.Sys().(*syscall.Stat_t).Ino
		}
		old := ino()
		a.must(e.root, "PATCH", fmt.Sprintf("/iaas/backup/%d/", b), map[string]any{"state": api.StateRunningUpdate}, 200)
		_, took = e.objAt("backup", b, api.StateRunning, 3*time.Minute)
		t.Logf("backup restore of a running VM (power off, copy back, start), PATCH 10 → RUNNING: %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH backup_restore_seconds %.3f\n", took.Seconds())
		if ino() == old {
			t.Error("the restore did not replace the volume")
		}
		sh(t, "qemu-img", "compare", "-U", "-q", filepath.Join(dir, "vda.qcow2"), vda)
		if st := domState(w.domain); st != "running" {
			t.Errorf("domain is %q after the restore", st)
		}
		a.must(e.root, "PATCH", fmt.Sprintf("/iaas/backup/%d/", b), map[string]any{"state": api.StateScrub}, 200)
		_, took = e.objAt("backup", b, api.StateClosed, 2*time.Minute)
		t.Logf("backup delete, PATCH 8 → CLOSED: %v", took.Round(time.Millisecond))
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("backup directory still there after the delete: %v", err)
		}
	})

	t.Run("backup into an unusable dir", func(t *testing.T) {
		// The domain's backup directory is a file: it cannot be made.
		dom := filepath.Join(w.backups, w.domain)
		if err := os.RemoveAll(dom); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dom, []byte("not a directory\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		b := a.create(e.root, "/iaas/backup/", map[string]any{"vm_id": w.vmID, "name": "doomed"})
		rec, took := e.objAt("backup", b, api.StateUnresourced, 2*time.Minute)
		t.Logf("unusable backup dir, POST → UNRESOURCED: %v", took.Round(time.Millisecond))
		if rec["error_code"] != "vm_backup_dir" || !strings.Contains(fmt.Sprint(rec["error_detail"]), "not a directory") {
			t.Errorf("failed backup: error_code %v error_detail %v", rec["error_code"], rec["error_detail"])
		}
		if v := e.vmRecord(w.vmID); num(v["state"]) != api.StateRunning {
			t.Errorf("VM state %v after the failed backup", v["state"])
		}
		if st := domState(w.domain); st != "running" {
			t.Errorf("domain is %q after the failed backup", st)
		}
		if d := dumpXML(t, w.domain).disks(); strings.HasSuffix(d["vda"], ".backup-overlay") {
			t.Errorf("the failed backup left the disk on an overlay: %v", d)
		}
		// Its user deletes it (3 → 8): the agent has nothing to remove
		// (the path cannot hold it) and reports it CLOSED.
		a.must(e.root, "PATCH", fmt.Sprintf("/iaas/backup/%d/", b), map[string]any{"state": api.StateScrub}, 200)
		_, took = e.objAt("backup", b, api.StateClosed, 2*time.Minute)
		t.Logf("failed backup delete, PATCH 8 → CLOSED: %v", took.Round(time.Millisecond))
		if data, err := os.ReadFile(dom); err != nil || string(data) != "not a directory\n" {
			t.Errorf("the delete touched the file in the way: %q %v", data, err)
		}
		// The VM is still served: a state change goes through.
		a.must(e.root, "PATCH", vmPath, map[string]any{"state": api.StateQuiesce}, 200)
		e.vmAt(w.vmID, api.StateQuiesced, 2*time.Minute)
	})
}
