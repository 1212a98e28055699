package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// TestPruneImages: image volumes go once nothing needs them, over real
// qcow2 files (qemu-img) in two pools and a backup directory: an image a
// VM of the work wants, one a disk is based on (absolute and relative
// backing paths, and through a symbolic link), one a backup copy and one
// a partial backup copy are based on all stay; the others go once unused
// for the retention, which starts again when one is used again.
func TestPruneImages(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		skipOrFail(t, "needs qemu-img (scripts/setup-deps.sh)")
	}
	b, _, _ := fakeEnv(t)
	ctx := context.Background()
	root := t.TempDir()
	b.cfg.BackupDir = filepath.Join(root, "backups")
	ssd := filepath.Join(b.cfg.StorageRoot, "ssd")
	hdd := filepath.Join(root, "elsewhere", "hdd")
	b.cfg.PoolPaths = map[string]string{"hdd": hdd}
	link := filepath.Join(root, "ssd-link") // another name of the ssd pool
	for _, d := range []string{ssd, hdd, filepath.Join(b.cfg.BackupDir, "dom_1", "b1"), filepath.Join(b.cfg.BackupDir, "dom_1", "b2.partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ssd, link); err != nil {
		t.Fatal(err)
	}
	images := map[int]api.ImageSpec{}
	path := map[int]string{}
	for id := 1; id <= 8; id++ {
		img := api.ImageSpec{ID: uint64(id), SHA256: strings.Repeat(fmt.Sprintf("%x", id), 64)}
		dir := ssd
		if id == 4 || id == 6 {
			dir = hdd
		}
		images[id], path[id] = img, filepath.Join(dir, imageVolume(img))
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", path[id], "1M")
	}
	overlay := func(file, backing string) {
		t.Helper()
		run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, file)
	}
	overlay(filepath.Join(ssd, "dom_1_11.qcow2"), path[2])                                     // a disk
	overlay(filepath.Join(hdd, "dom_1_12.qcow2"), filepath.Base(path[4]))                      // relative
	overlay(filepath.Join(ssd, "dom_1_13.qcow2"), filepath.Join(link, filepath.Base(path[8]))) // by the link
	overlay(filepath.Join(b.cfg.BackupDir, "dom_1", "b1", "vda.qcow2"), path[3])               // a backup
	overlay(filepath.Join(b.cfg.BackupDir, "dom_1", "b2.partial", "vda.qcow2"), path[7])       // being taken
	for _, f := range []string{filepath.Join(ssd, "notes"), filepath.Join(b.cfg.BackupDir, "dom_1", "b1", "manifest.json")} {
		if err := os.WriteFile(f, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exists := func() []int {
		var ids []int
		for id := 1; id <= 8; id++ {
			if _, err := os.Stat(path[id]); err == nil {
				ids = append(ids, id)
			}
		}
		return ids
	}
	want := []api.ImageSpec{images[1]}

	// Unused 5 and 6 start their retention.
	pruned, err := b.PruneImages(ctx, want, time.Hour)
	if err != nil || len(pruned) != 0 {
		t.Fatalf("first prune: %v %v", pruned, err)
	}
	if len(b.unusedSince) != 2 || b.unusedSince[path[5]].IsZero() || b.unusedSince[path[6]].IsZero() {
		t.Fatalf("unused since: %v", b.unusedSince)
	}
	// 5 has been unused for two hours, 6 just now.
	b.unusedSince[path[5]] = time.Now().Add(-2 * time.Hour)
	pruned, err = b.PruneImages(ctx, want, time.Hour)
	if err != nil || len(pruned) != 1 || pruned[0].Path != path[5] || pruned[0].Bytes <= 0 {
		t.Fatalf("second prune: %v %v", pruned, err)
	}
	if got := exists(); !slices.Equal(got, []int{1, 2, 3, 4, 6, 7, 8}) {
		t.Fatalf("after the second prune: %v", got)
	}

	// The disk on 2 goes: with retention 0, 2 and 6 go at once.
	if err := os.Remove(filepath.Join(ssd, "dom_1_11.qcow2")); err != nil {
		t.Fatal(err)
	}
	if pruned, err = b.PruneImages(ctx, want, 0); err != nil || len(pruned) != 2 {
		t.Fatalf("third prune: %v %v", pruned, err)
	}
	if got := exists(); !slices.Equal(got, []int{1, 3, 4, 7, 8}) {
		t.Fatalf("after the third prune: %v", got)
	}
	if len(b.unusedSince) != 0 {
		t.Errorf("unused since after removal: %v", b.unusedSince)
	}

	// The backup on 3 is deleted; 3's retention starts, then a disk is
	// based on it again: it is forgotten, and stays.
	if err := os.RemoveAll(filepath.Join(b.cfg.BackupDir, "dom_1", "b1")); err != nil {
		t.Fatal(err)
	}
	if pruned, err = b.PruneImages(ctx, want, time.Hour); err != nil || len(pruned) != 0 || b.unusedSince[path[3]].IsZero() {
		t.Fatalf("fourth prune: %v %v %v", pruned, err, b.unusedSince)
	}
	b.unusedSince[path[3]] = time.Now().Add(-2 * time.Hour)
	overlay(filepath.Join(ssd, "dom_2_21.qcow2"), path[3])
	if pruned, err = b.PruneImages(ctx, want, time.Hour); err != nil || len(pruned) != 0 || len(b.unusedSince) != 0 {
		t.Fatalf("fifth prune: %v %v %v", pruned, err, b.unusedSince)
	}

	// Nothing is wanted: the wanted image 1 goes too.
	if pruned, err = b.PruneImages(ctx, nil, 0); err != nil || len(pruned) != 1 || pruned[0].Path != path[1] {
		t.Fatalf("sixth prune: %v %v", pruned, err)
	}
	if got := exists(); !slices.Equal(got, []int{3, 4, 7, 8}) {
		t.Fatalf("after the sixth prune: %v", got)
	}

	// A build holding the images: the prune does nothing.
	if err := os.Remove(filepath.Join(ssd, "dom_2_21.qcow2")); err != nil {
		t.Fatal(err)
	}
	b.imageMu.RLock()
	pruned, err = b.PruneImages(ctx, nil, 0)
	b.imageMu.RUnlock()
	if !errors.Is(err, ErrImagesBusy) || len(pruned) != 0 {
		t.Fatalf("prune during a build: %v %v", pruned, err)
	}
	if got := exists(); !slices.Equal(got, []int{3, 4, 7, 8}) {
		t.Fatalf("after the busy prune: %v", got)
	}
}

// TestSystemPruneImages on a real libvirtd: the image volume of a VM
// stays while the VM's disk and then a backup are based on it, goes from
// the pool (libvirt's volume list too) once neither is, and a new build
// imports it again.
func TestSystemPruneImages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, _, b, spec := builtVM(t, ctx, 3, 10)
	pool := b.poolName(spec.StorageType)
	vol := imageVolume(spec.Image)
	img := filepath.Join(b.poolPath(spec.StorageType), vol)
	prune := func(step string, wantGone bool) {
		t.Helper()
		pruned, err := b.PruneImages(ctx, nil, 0)
		if err != nil {
			t.Fatalf("%s: prune: %v", step, err)
		}
		_, statErr := os.Stat(img)
		_, volErr := c.VolumeInfo(ctx, pool, vol)
		if wantGone {
			if len(pruned) != 1 || pruned[0].Path != img || statErr == nil || !isCode(volErr, errNoStorageVol) {
				t.Fatalf("%s: pruned %v, image file: %v, libvirt volume: %v", step, pruned, statErr, volErr)
			}
			return
		}
		if len(pruned) != 0 || statErr != nil || volErr != nil {
			t.Fatalf("%s: pruned %v, image file: %v, libvirt volume: %v", step, pruned, statErr, volErr)
		}
	}
	prune("VM built", false)
	if _, err := b.Backup(ctx, spec, "b1"); err != nil {
		t.Fatalf("backup: %v", err)
	}
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatalf("scrub: %v", err)
	}
	prune("VM scrubbed, backup kept", false)
	if err := b.BackupDelete(ctx, spec, "b1"); err != nil {
		t.Fatalf("backup delete: %v", err)
	}
	prune("backup deleted", true)
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("build after the prune: %v", err)
	}
	if st, ok, err := b.State(ctx, spec); err != nil || !ok || st != StateRunning {
		t.Fatalf("state after the rebuild: %v %v %v", st, ok, err)
	}
	prune("VM built again", false)
}
