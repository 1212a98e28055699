package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
)

// TestSystemSnapshotsAndBackup takes internal snapshots of a running
// domain as a tree, reverts and deletes them, and backs the domain up with
// an external snapshot, copy and block commit.
func TestSystemSnapshotsAndBackup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	c, e, b, spec := builtVM(t, ctx, 1, 8)
	name := b.DomainName(spec)

	for _, s := range []string{"a", "b"} {
		if err := b.SnapshotCreate(ctx, spec, s); err != nil {
			t.Fatalf("snapshot %s: %v", s, err)
		}
	}
	if err := b.SnapshotCreate(ctx, spec, "b"); err != nil {
		t.Fatalf("snapshot b again: %v", err)
	}
	if err := b.SnapshotRevert(ctx, spec, "a", 0); err != nil {
		t.Fatalf("revert a: %v", err)
	}
	wantState(t, ctx, b, spec, StateRunning)
	if err := b.SnapshotCreate(ctx, spec, "c"); err != nil {
		t.Fatalf("snapshot c: %v", err)
	}
	tree, err := b.SnapshotTree(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := treeString(tree); got != "a(b,c*)" {
		t.Errorf("tree %s, want a(b,c*)", got)
	}
	out := run(t, "virsh", "-c", "qemu:///system", "snapshot-list", name, "--tree")
	if !strings.Contains(out, "a") || !strings.Contains(out, "c") {
		t.Errorf("virsh snapshot-list:\n%s", out)
	}
	if err := b.SnapshotDelete(ctx, spec, "a", false); err != nil {
		t.Fatalf("delete a: %v", err)
	}
	if err := b.SnapshotDelete(ctx, spec, "a", false); err != nil {
		t.Fatalf("delete a again: %v", err)
	}
	tree, _ = b.SnapshotTree(ctx, spec)
	if got := treeString(tree); got != "b,c*" {
		t.Errorf("tree after deleting a: %s, want b,c*", got)
	}
	if err := b.SnapshotDelete(ctx, spec, "b", true); err != nil {
		t.Fatalf("delete b: %v", err)
	}

	// Backup of the running domain.
	dir, err := b.Backup(ctx, spec, "nightly")
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	var m BackupManifest
	mj, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil || json.Unmarshal(mj, &m) != nil {
		t.Fatalf("manifest: %v %s", err, mj)
	}
	if len(m.Disks) != 2 || m.Disks[0].Target != "vda" || !strings.Contains(m.Disks[0].BackingFile, "image_3_") {
		t.Errorf("manifest disks: %+v", m.Disks)
	}
	for _, f := range []string{"vda.qcow2", "vdb.qcow2", name + ".xml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("backup file: %v", err)
		}
	}
	run(t, "qemu-img", "info", "-U", filepath.Join(dir, "vdb.qcow2"))
	// The domain is back on its own volumes, and the overlays are gone.
	d := liveXML(t, ctx, c, name)
	for _, dk := range d.Devices.Disks {
		if dk.Source != nil && strings.HasSuffix(dk.Source.File, overlaySuffix) {
			t.Errorf("disk %s still on overlay %s", dk.Target.Dev, dk.Source.File)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(e.root, "pools", "ssd", "*"+overlaySuffix)); len(left) > 0 {
		t.Errorf("overlays left: %v", left)
	}
	wantState(t, ctx, b, spec, StateRunning)
	if again, err := b.Backup(ctx, spec, "nightly"); err != nil || again != dir {
		t.Errorf("second backup: %v %s", err, again)
	}
	if err := b.BackupDelete(ctx, spec, "nightly"); err != nil {
		t.Fatal(err)
	}

	// An agent killed mid-backup leaves the disks on their overlays (the
	// state just after the freezing snapshot): the next backup folds them
	// back first, then backs up as usual.
	live := liveXML(t, ctx, c, name)
	args := []string{"virsh", "-c", "qemu:///system", "snapshot-create-as", name, "regent-backup-killed", "--disk-only", "--no-metadata", "--atomic"}
	var overlays []string
	for _, dk := range live.Devices.Disks {
		switch {
		case dk.Device == "disk" && dk.Source != nil:
			args = append(args, "--diskspec", dk.Target.Dev+",snapshot=external,file="+dk.Source.File+overlaySuffix)
			overlays = append(overlays, dk.Source.File+overlaySuffix)
		default:
			args = append(args, "--diskspec", dk.Target.Dev+",snapshot=no")
		}
	}
	run(t, args[0], args[1:]...)
	if d := liveXML(t, ctx, c, name); !strings.HasSuffix(d.Devices.Disks[0].Source.File, overlaySuffix) {
		t.Fatalf("the simulated interrupted backup did not move vda to its overlay: %+v", d.Devices.Disks[0].Source)
	}
	if dir, err := b.Backup(ctx, spec, "after-crash"); err != nil {
		t.Fatalf("backup after an interrupted one: %v", err)
	} else if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
		t.Errorf("no manifest after the backup that followed an interrupted one: %v", err)
	}
	for _, dk := range liveXML(t, ctx, c, name).Devices.Disks {
		if dk.Source != nil && strings.HasSuffix(dk.Source.File, overlaySuffix) {
			t.Errorf("disk %s still on overlay %s after the next backup", dk.Target.Dev, dk.Source.File)
		}
	}
	for _, o := range overlays {
		if _, err := os.Stat(o); err == nil {
			t.Errorf("overlay %s left after the next backup", o)
		}
	}
	wantState(t, ctx, b, spec, StateRunning)

	// An agent killed during the block commit leaves the commit job of a
	// disk running (ready, not pivoted): the next backup waits for it and
	// pivots rather than starting a second one (libvirt refuses it).
	args[5] = "regent-backup-killed-commit"
	run(t, args[0], args[1:]...)
	run(t, "virsh", "-c", "qemu:///system", "blockcommit", name, "vda", "--active", "--shallow")
	if _, err := b.Backup(ctx, spec, "after-commit-kill"); err != nil {
		t.Fatalf("backup after one killed mid-commit: %v", err)
	}
	for _, dk := range liveXML(t, ctx, c, name).Devices.Disks {
		if dk.Source != nil && strings.HasSuffix(dk.Source.File, overlaySuffix) {
			t.Errorf("disk %s still on overlay %s after the backup that followed a killed commit", dk.Target.Dev, dk.Source.File)
		}
	}
	wantState(t, ctx, b, spec, StateRunning)
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatalf("scrub: %v", err)
	}
}

func treeString(ns []*SnapshotNode) string {
	var parts []string
	for _, n := range ns {
		s := n.Name
		if n.Current {
			s += "*"
		}
		if len(n.Children) > 0 {
			s += "(" + treeString(n.Children) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

// TestSystemBackupRestore restores a running VM from a backup on a real
// libvirtd: both disks, changed after the backup, get the backup's content
// back (qemu-img compare), the VM runs again, and a snapshot taken before
// the backup can still be reverted to. A restore is refused, changing
// nothing, while the VM has a snapshot taken after the backup, and a
// backup without a copy is reported as missing. A shut-off VM stays shut
// off.
func TestSystemBackupRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, e, b, spec := builtVM(t, ctx, 2, 9)
	name := b.DomainName(spec)
	if err := b.SnapshotCreate(ctx, spec, "before"); err != nil {
		t.Fatal(err)
	}
	dir, err := b.Backup(ctx, spec, "backup-1")
	if err != nil {
		t.Fatalf("backup: %v", err)
	}

	// Both disks change after the backup (written while the VM is off).
	vols := map[string]string{} // target → volume
	for _, d := range liveXML(t, ctx, c, name).Devices.Disks {
		if d.Device == "disk" && d.Source != nil {
			vols[d.Target.Dev] = d.Source.File
		}
	}
	if len(vols) != 2 {
		t.Fatalf("disks %v", vols)
	}
	if err := b.Quiesce(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", v)
	}
	if err := b.Restart(ctx, spec); err != nil {
		t.Fatal(err)
	}
	same := func(target string) bool { // guest-visible content of the volume and of its copy
		err := exec.Command("qemu-img", "compare", "-U", "-q", filepath.Join(dir, target+".qcow2"), vols[target]).Run()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Fatalf("qemu-img compare %s: %v", target, err)
		}
		return err == nil
	}
	for target := range vols {
		if same(target) {
			t.Fatalf("%s: the write after the backup did not change the volume", target)
		}
	}

	// A snapshot taken after the backup: refused, nothing changed.
	if err := b.SnapshotCreate(ctx, spec, "after"); err != nil {
		t.Fatal(err)
	}
	err = b.BackupRestore(ctx, spec, "backup-1", 0)
	if ErrorCode(err) != CodeRestoreRefused || !strings.Contains(err.Error(), "after") {
		t.Fatalf("restore with a newer snapshot: %v, want %s naming it", err, CodeRestoreRefused)
	}
	wantState(t, ctx, b, spec, StateRunning)
	for target := range vols {
		if same(target) {
			t.Fatalf("%s: a refused restore changed the volume", target)
		}
	}
	if err := b.SnapshotDelete(ctx, spec, "after", false); err != nil {
		t.Fatal(err)
	}
	if err := b.BackupRestore(ctx, spec, "backup-9", 0); ErrorCode(err) != CodeBackupMissing {
		t.Fatalf("restore from a backup without a copy: %v, want %s", err, CodeBackupMissing)
	}

	start := time.Now()
	if err := b.BackupRestore(ctx, spec, "backup-1", 0); err != nil {
		t.Fatalf("restore: %v", err)
	}
	t.Logf("restore of 2 disks (running VM: power off, copy, start): %v", time.Since(start).Round(time.Millisecond))
	wantState(t, ctx, b, spec, StateRunning)
	for target := range vols {
		if !same(target) {
			t.Errorf("%s: not the backup's content after the restore", target)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(e.root, "pools", "*", "*.backup-restore")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := b.SnapshotRevert(ctx, spec, "before", 0); err != nil {
		t.Fatalf("revert to the snapshot from before the backup: %v", err)
	}
	wantState(t, ctx, b, spec, StateRunning)

	// A shut-off VM is restored and stays shut off.
	if err := b.Quiesce(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := b.BackupRestore(ctx, spec, "backup-1", 0); err != nil {
		t.Fatalf("restore of a shut-off VM: %v", err)
	}
	wantState(t, ctx, b, spec, StateShutoff)
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatalf("scrub: %v", err)
	}
}

// builtVM builds VM id (running, with a second 1 GiB disk) for a snapshot
// or backup test; vniOffset gives each test a segment bridge of its own.
func builtVM(t *testing.T, ctx context.Context, vniOffset uint32, id uint64) (*Conn, *testEnv, *Builder, *api.VMSpec) {
	t.Helper()
	c := needLibvirt(t)
	e := newTestEnv(t)
	e.vni += vniOffset
	b, err := New(e.config(), c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b.SetServerID(1) // registered
	cleanupLibvirt(t, c, b, e.prefix)
	addBridge(t, netrouter.SegmentBridge(e.bridgePfx, netrouter.ModeVXLAN, e.vni))
	spec := testSpec(e)
	spec.ID = id
	spec.NICs[0].MAC = fmt.Sprintf("52:54:00:ab:cd:%02x", id)
	spec.Storages = append(spec.Storages, StorageSpecForTest(id+5, 1))
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("build: %v", err)
	}
	return c, e, b, spec
}
