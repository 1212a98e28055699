package vm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSystemRestoreCutMidway: a restore whose copy of the second disk
// fails leaves both disks as they were (not the first from the backup and
// the second from now), and the VM's drift repair starts it again; a
// restore cut between its renames (the second volume cannot be replaced)
// keeps the domain off, also through drift repair and a restart, until a
// restore finishes, which starts it.
func TestSystemRestoreCutMidway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _, b, spec := builtVM(t, ctx, 4, 12)
	name := b.DomainName(spec)
	dir, err := b.Backup(ctx, spec, "backup-1")
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	vols := map[string]string{}
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
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	same := func(target string) bool {
		err := exec.Command("qemu-img", "compare", "-U", "-q", filepath.Join(dir, target+".qcow2"), vols[target]).Run()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Fatalf("qemu-img compare %s: %v", target, err)
		}
		return err == nil
	}

	// The copy of vdb fails (its copy's name is taken by a directory).
	block := vols["vdb"] + ".backup-restore"
	if err := os.Mkdir(block, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.BackupRestore(ctx, spec, "backup-1", 0); err == nil {
		t.Fatal("the restore with a failing copy succeeded")
	}
	for target := range vols {
		if same(target) {
			t.Errorf("%s restored although the copy of another disk failed: the disks are of two points in time", target)
		}
	}
	if left, _ := filepath.Glob(vols["vda"] + ".backup-restore"); len(left) != 0 {
		t.Errorf("copies left: %v", left)
	}
	if err := os.Remove(block); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := b.Build(ctx, spec); err != nil { // drift repair
		t.Fatal(err)
	}
	wantState(t, ctx, b, spec, StateRunning)

	// Cut between the renames: vdb's volume cannot be replaced.
	run(t, "chattr", "+i", vols["vdb"])
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", vols["vdb"]).Run() })
	if err := b.BackupRestore(ctx, spec, "backup-1", 0); err == nil {
		t.Fatal("the restore with a volume that cannot be replaced succeeded")
	}
	if !same("vda") || same("vdb") {
		t.Fatalf("the cut restore: vda restored %v, vdb restored %v; want only vda", same("vda"), same("vdb"))
	}
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("drift repair during an unfinished restore: %v", err)
	}
	if err := b.Restart(ctx, spec); err == nil {
		t.Error("a restart during an unfinished restore succeeded")
	}
	wantState(t, ctx, b, spec, StateShutoff)
	run(t, "chattr", "-i", vols["vdb"])
	if err := b.BackupRestore(ctx, spec, "backup-1", 0); err != nil {
		t.Fatalf("the restore again: %v", err)
	}
	wantState(t, ctx, b, spec, StateRunning)
	for target := range vols {
		if !same(target) {
			t.Errorf("%s: not the backup's content after the restore", target)
		}
	}
	if _, err := os.Stat(filepath.Join(b.cfg.SeedDir, name+"-restore.json")); !os.IsNotExist(err) {
		t.Errorf("restore marker left: %v", err)
	}
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatalf("scrub: %v", err)
	}
}
