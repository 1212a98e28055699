package vm

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSystemRevertAndRestoreDoneOnce: a revert and a restore finished at
// a generation are not done again at that generation, also by a new
// builder (an agent restarted before it could report them); a new
// generation (a new request) does them again.
func TestSystemRevertAndRestoreDoneOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, e, b, spec := builtVM(t, ctx, 5, 13)
	name := b.DomainName(spec)
	current := func() string {
		t.Helper()
		snaps, err := c.ListSnapshots(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range snaps {
			if s.Current {
				return s.Name
			}
		}
		return ""
	}
	if err := b.SnapshotCreate(ctx, spec, "snapshot-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.SnapshotRevert(ctx, spec, "snapshot-1", 2); err != nil {
		t.Fatalf("revert: %v", err)
	}
	// The VM goes on (a snapshot taken since is the current one).
	if err := b.SnapshotCreate(ctx, spec, "snapshot-2"); err != nil {
		t.Fatal(err)
	}
	restarted, err := New(e.config(), c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.SnapshotRevert(ctx, spec, "snapshot-1", 2); err != nil {
		t.Fatalf("revert again at the same generation: %v", err)
	}
	if got := current(); got != "snapshot-2" {
		t.Errorf("current snapshot %q after a second revert at the same generation: it was done again", got)
	}
	if err := restarted.SnapshotRevert(ctx, spec, "snapshot-1", 3); err != nil {
		t.Fatalf("revert at a new generation: %v", err)
	}
	if got := current(); got != "snapshot-1" {
		t.Errorf("current snapshot %q after a revert at a new generation, want snapshot-1", got)
	}
	for _, s := range []string{"snapshot-2", "snapshot-1"} {
		if err := b.SnapshotDelete(ctx, spec, s, false); err != nil {
			t.Fatal(err)
		}
	}

	dir, err := b.Backup(ctx, spec, "backup-1")
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	vda := liveXML(t, ctx, c, name).Devices.Disks[0].Source.File
	restored := func() bool {
		err := exec.Command("qemu-img", "compare", "-U", "-q", filepath.Join(dir, "vda.qcow2"), vda).Run()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Fatalf("qemu-img compare: %v", err)
		}
		return err == nil
	}
	if err := b.BackupRestore(ctx, spec, "backup-1", 2); err != nil {
		t.Fatalf("restore: %v", err)
	}
	wantState(t, ctx, b, spec, StateRunning)
	// The VM goes on: its disk changes after the restore.
	if err := b.Quiesce(ctx, spec); err != nil {
		t.Fatal(err)
	}
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", vda)
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	restarted, err = New(e.config(), c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.BackupRestore(ctx, spec, "backup-1", 2); err != nil {
		t.Fatalf("restore again at the same generation: %v", err)
	}
	if restored() {
		t.Error("a second restore at the same generation was done again: the VM's writes since are gone")
	}
	wantState(t, ctx, b, spec, StateRunning)
	if err := restarted.BackupRestore(ctx, spec, "backup-1", 3); err != nil {
		t.Fatalf("restore at a new generation: %v", err)
	}
	if !restored() {
		t.Error("a restore at a new generation was not done")
	}
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatal(err)
	}
}
