package vm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// Image volumes are imported once per pool and named by image id and
// digest (imageVolume), so a new version of an image is a new volume and
// the old one stays behind. PruneImages removes those nobody needs any
// more; everything that needs one takes b.imageMu for reading while it
// does, so a prune never removes an image between its check and its use.

// imageVolumeRe matches the names imageVolume gives.
var imageVolumeRe = regexp.MustCompile(`^image_[0-9]+_[0-9a-f]{16}$`)

// ErrImagesBusy: PruneImages did nothing because a build or a restore was
// using the image volumes; the next prune tries again.
var ErrImagesBusy = errors.New("vm: image volumes in use by a build; prune skipped")

// PrunedImage is an image volume PruneImages removed.
type PrunedImage struct {
	Path  string
	Bytes int64
}

// PruneImages removes the image volumes of every pool that nothing needs
// and that have been unused for at least retention (0: at once). An image
// volume is needed while
//   - an image of want (the images of the VMs this host has work for) is
//     imported as it, so a VM that is still to be built, or built again,
//     does not download it again;
//   - a qcow2 file in a pool is based on it: a VM's disk, a restore in
//     progress;
//   - a qcow2 file under BackupDir is based on it: a backup (or one being
//     taken) restores onto it (BackupRestore refuses when it is gone).
//
// The unused time is kept in memory from the first prune that found the
// volume unused, so a restart of the agent starts it again: a volume is
// never removed earlier than retention after it was last seen in use.
// Any file it cannot read makes it remove nothing and return the error.
// While a build or a restore holds an image (an import can take minutes)
// it does nothing and returns ErrImagesBusy: builds never wait on a prune.
func (b *Builder) PruneImages(ctx context.Context, want []api.ImageSpec, retention time.Duration) ([]PrunedImage, error) {
	if !b.imageMu.TryLock() {
		return nil, ErrImagesBusy
	}
	defer b.imageMu.Unlock()
	pools, err := b.poolDirs()
	if err != nil {
		return nil, lv(err, "prune images")
	}
	wanted := map[string]bool{}
	for _, img := range want {
		if sha256Re.MatchString(strings.ToLower(img.SHA256)) {
			wanted[imageVolume(img)] = true
		}
	}
	used := map[string]bool{}
	type candidate struct {
		pool poolDir
		name string
		path string
		size int64
	}
	var cands []candidate
	for _, p := range pools {
		files, err := os.ReadDir(p.dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, lv(err, "prune images")
		}
		for _, f := range files {
			path := filepath.Join(p.dir, f.Name())
			if !f.Type().IsRegular() {
				continue
			}
			if imageVolumeRe.MatchString(f.Name()) {
				if !wanted[f.Name()] {
					info, err := f.Info()
					if err != nil {
						return nil, lv(err, "prune images")
					}
					cands = append(cands, candidate{p, f.Name(), path, info.Size()})
				}
				continue
			}
			if err := addBacking(used, path); err != nil {
				return nil, lv(err, "prune images")
			}
		}
	}
	if len(cands) == 0 {
		clear(b.unusedSince)
		return nil, nil
	}
	// Backups: every qcow2 file of <BackupDir>/<domain>/<backup>[.partial]/.
	copies, err := filepath.Glob(filepath.Join(b.cfg.BackupDir, "*", "*", "*"))
	if err != nil {
		return nil, lv(err, "prune images")
	}
	for _, c := range copies {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if st, err := os.Lstat(c); err == nil && st.Mode().IsRegular() {
			if err := addBacking(used, c); err != nil {
				return nil, lv(err, "prune images")
			}
		}
	}

	now := time.Now()
	if b.unusedSince == nil {
		b.unusedSince = map[string]time.Time{}
	}
	unused := map[string]bool{}
	var pruned []PrunedImage
	refreshed := map[string]bool{}
	for _, c := range cands {
		if used[c.path] || used[realPath(c.path)] {
			continue
		}
		unused[c.path] = true
		since, ok := b.unusedSince[c.path]
		if !ok {
			since = now
			b.unusedSince[c.path] = now
		}
		if now.Sub(since) < retention {
			continue
		}
		if err := ctx.Err(); err != nil {
			return pruned, err
		}
		if !refreshed[c.pool.name] {
			_ = b.lv.RefreshPool(ctx, c.pool.name)
			refreshed[c.pool.name] = true
		}
		if err := b.deleteVolume(ctx, c.pool, c.name); err != nil {
			return pruned, err
		}
		delete(b.unusedSince, c.path)
		delete(unused, c.path)
		b.log.Info("removed an image volume nothing uses", "volume", c.path, "bytes", c.size, "unused_for", now.Sub(since).Round(time.Second))
		pruned = append(pruned, PrunedImage{Path: c.path, Bytes: c.size})
	}
	// Forget volumes that are in use again or gone.
	for p := range b.unusedSince {
		if !unused[p] {
			delete(b.unusedSince, p)
		}
	}
	sort.Slice(pruned, func(i, j int) bool { return pruned[i].Path < pruned[j].Path })
	return pruned, nil
}

// addBacking adds the backing file of path, when it is a qcow2 file with
// one, to used (as written, and with symbolic links resolved). A file
// that is not qcow2 is skipped; one that cannot be read is an error: a
// prune that cannot see every user removes nothing.
func addBacking(used map[string]bool, path string) error {
	bf, err := qcow2BackingFile(path)
	switch {
	case errors.Is(err, errNotQcow2) || errors.Is(err, fs.ErrNotExist):
		return nil // not a disk, or removed meanwhile
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	case bf == "":
		return nil
	}
	if !filepath.IsAbs(bf) {
		bf = filepath.Join(filepath.Dir(path), bf)
	}
	bf = filepath.Clean(bf)
	used[bf] = true
	used[realPath(bf)] = true
	return nil
}

// realPath is path with symbolic links resolved, or path when it cannot
// be resolved.
func realPath(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}
