package vm

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// strictSnapshots refuses, like libvirt, an external snapshot onto a file
// that exists.
type strictSnapshots struct{ *fakeLibvirt }

func (s strictSnapshots) CreateSnapshot(ctx context.Context, dom, x string, diskOnly bool) error {
	var snap snapshotXML
	if err := xml.Unmarshal([]byte(x), &snap); err != nil {
		return err
	}
	for _, d := range snap.Disks {
		if d.Snapshot == "external" && d.Source != nil {
			if _, err := os.Stat(d.Source.File); err == nil {
				return fmt.Errorf("external snapshot file for disk %s already exists", d.Name)
			}
		}
	}
	return s.fakeLibvirt.CreateSnapshot(ctx, dom, x, diskOnly)
}

// TestFakeBackupAfterKillBeforeOverlayRemoval: a backup killed after the
// block commit of a disk but before the removal of its overlay leaves the
// overlay file with no disk on it; the next backup removes it rather than
// failing on it for good.
func TestFakeBackupAfterKillBeforeOverlayRemoval(t *testing.T) {
	b, f, spec := fakeEnv(t)
	b.cfg.BackupDir = t.TempDir()
	ctx := context.Background()
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	b.lv = strictSnapshots{f}
	cur, err := b.current(ctx, b.DomainName(spec))
	if err != nil || cur.live == nil {
		t.Fatalf("domain not running: %v", err)
	}
	var stale []string
	for _, d := range cur.live.Devices.Disks {
		if d.Device == "disk" && d.Source != nil {
			o := d.Source.File + overlaySuffix
			if err := os.WriteFile(o, []byte("QFI\xfb"), 0o644); err != nil {
				t.Fatal(err)
			}
			stale = append(stale, o)
		}
	}
	if len(stale) == 0 {
		t.Fatal("no disk")
	}
	if _, err := b.Backup(ctx, spec, BackupName(1)); err != nil {
		t.Fatalf("backup after a kill before the overlay's removal: %v", err)
	}
	for _, o := range stale {
		if _, err := os.Stat(o); err == nil {
			t.Errorf("stale overlay %s left", filepath.Base(o))
		}
	}
}

// TestFakeBackupDeleteRemovesPartialCopy: deleting a backup whose take
// was killed midway removes the partial copy too.
func TestFakeBackupDeleteRemovesPartialCopy(t *testing.T) {
	b, _, spec := fakeEnv(t)
	b.cfg.BackupDir = t.TempDir()
	name := BackupName(2)
	partial := filepath.Join(b.cfg.BackupDir, b.DomainName(spec), name+".partial")
	if err := os.MkdirAll(partial, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(partial, "vda.qcow2"), []byte("half a disk"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := b.BackupDelete(context.Background(), spec, name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(partial); err == nil {
		t.Errorf("partial copy left after the backup's delete")
	}
}

// TestFakeBackupDeleteOfFailedBackup: deleting a backup whose take failed
// because its directory could not be made (the domain's directory under
// backup_dir is a file: vm_backup_dir) succeeds: nothing of it can exist,
// so the delete must not fail for ever on "not a directory".
func TestFakeBackupDeleteOfFailedBackup(t *testing.T) {
	b, _, spec := fakeEnv(t)
	b.cfg.BackupDir = t.TempDir()
	ctx := context.Background()
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	dom := filepath.Join(b.cfg.BackupDir, b.DomainName(spec))
	if err := os.WriteFile(dom, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := BackupName(3)
	if _, err := b.Backup(ctx, spec, name); ErrorCode(err) != CodeBackupDir {
		t.Fatalf("backup into a file: %v (%s), want %s", err, ErrorCode(err), CodeBackupDir)
	}
	if err := b.BackupDelete(ctx, spec, name); err != nil {
		t.Fatalf("delete of the failed backup: %v", err)
	}
	if data, err := os.ReadFile(dom); err != nil || string(data) != "not a directory\n" {
		t.Errorf("the delete touched what is not the backup's: %q %v", data, err)
	}
}

// TestQcow2SnapshotNames reads the snapshot table of files qemu-img made:
// none, one, and several with names of different lengths (the entries'
// padding); a file that is not qcow2 is an error.
func TestQcow2SnapshotNames(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		skipOrFail(t, "needs qemu-img (scripts/setup-deps.sh)")
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "d.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", f, "1M")
	got, err := qcow2SnapshotNames(f)
	if err != nil || len(got) != 0 {
		t.Fatalf("no snapshots: %v %v", got, err)
	}
	want := []string{"snapshot-1", "snapshot-22", "snapshot-333", "s", "a-much-longer-snapshot-name-x"}
	for _, n := range want {
		run(t, "qemu-img", "snapshot", "-c", n, f)
	}
	got, err = qcow2SnapshotNames(f)
	if err != nil || len(got) != len(want) {
		t.Fatalf("names %v, %v; want %v", got, err, want)
	}
	for _, n := range want {
		if !got[n] {
			t.Errorf("%s missing from %v", n, got)
		}
	}
	raw := filepath.Join(dir, "raw")
	if err := os.WriteFile(raw, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := qcow2SnapshotNames(raw); err == nil {
		t.Error("a raw file parsed as qcow2")
	}
}
