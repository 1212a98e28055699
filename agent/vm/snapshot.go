package vm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/atomicfile"
)

// Snapshots are libvirt internal snapshots (CloudCIX v1's
// snapshot-create-as/revert/delete); libvirt keeps their tree.
// Backups follow CloudCIX v1 too: a disk-only external snapshot (no
// metadata) freezes the disks, each base is copied to the backup
// directory, then an active block commit with pivot folds the overlay back
// and the overlay is removed.

type snapshotXML struct {
	XMLName     xml.Name          `xml:"domainsnapshot"`
	Name        string            `xml:"name"`
	Description string            `xml:"description,omitempty"`
	Disks       []snapshotDiskXML `xml:"disks>disk,omitempty"`
}

type snapshotDiskXML struct {
	Name     string         `xml:"name,attr"`
	Snapshot string         `xml:"snapshot,attr"`
	Driver   *diskDriverXML `xml:"driver,omitempty"`
	Source   *diskSourceXML `xml:"source,omitempty"`
}

var snapshotNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// SnapshotName is the libvirt name of the controller's snapshot id:
// stable (the user's name may change and need not be a valid libvirt
// name), so a restarted agent finds what it took.
func SnapshotName(id uint64) string { return fmt.Sprintf("snapshot-%d", id) }

// BackupName is the directory name of the controller's backup id, under
// <BackupDir>/<domain>/.
func BackupName(id uint64) string { return fmt.Sprintf("backup-%d", id) }

func checkSnapshotName(name string) error {
	if !snapshotNameRe.MatchString(name) {
		return newError(CodeBadSpec, "snapshot name %q: letters, digits, _ . - only, at most 128", name)
	}
	return nil
}

// SnapshotCreate takes an internal snapshot of a VM (disks and, when it
// runs, memory). An existing snapshot of that name is already done.
func (b *Builder) SnapshotCreate(ctx context.Context, spec *api.VMSpec, name string) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	dom := b.DomainName(spec)
	snaps, err := b.lv.ListSnapshots(ctx, dom)
	if err != nil {
		return lv(err, "snapshots of %s", dom)
	}
	for _, s := range snaps {
		if s.Name == name {
			return nil
		}
	}
	x, _ := xml.Marshal(snapshotXML{Name: name})
	return lv(b.lv.CreateSnapshot(ctx, dom, string(x), false), "snapshot %s of %s", name, dom)
}

// SnapshotRevert reverts a VM to a snapshot (it becomes the current one).
// generation is the snapshot's: a revert finished at that generation is
// recorded on the host (doneSteps) and not done again, so an agent that
// restarts before it could report the revert does not throw away what
// the VM did since. Generation 0 records nothing.
func (b *Builder) SnapshotRevert(ctx context.Context, spec *api.VMSpec, name string, generation uint64) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	dom := b.DomainName(spec)
	if ok, err := b.stepDone(dom, name, generation); err != nil || ok {
		if ok {
			b.log.Info("revert done already at this generation: not again", "domain", dom, "snapshot", name, "generation", generation)
		}
		return lv(err, "revert %s to %s", dom, name)
	}
	if err := b.lv.RevertSnapshot(ctx, dom, name); err != nil {
		return lv(err, "revert %s to %s", dom, name)
	}
	return lv(b.markStepDone(dom, name, generation), "revert %s to %s", dom, name)
}

// SnapshotDelete deletes a snapshot; with subtree its descendants too,
// otherwise they are re-parented to its parent (libvirt's behaviour). A
// missing snapshot or domain is already deleted.
func (b *Builder) SnapshotDelete(ctx context.Context, spec *api.VMSpec, name string, subtree bool) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	dom := b.DomainName(spec)
	if err := done(b.lv.DeleteSnapshot(ctx, dom, name, subtree), errNoDomainSnapshot, errNoDomain); err != nil {
		return lv(err, "delete snapshot %s of %s", name, dom)
	}
	return lv(b.forgetStep(dom, name), "delete snapshot %s of %s", name, dom)
}

// SnapshotNode is one snapshot in a VM's tree.
type SnapshotNode struct {
	Name     string          `json:"name"`
	Current  bool            `json:"current"`
	Children []*SnapshotNode `json:"children"`
}

// SnapshotTree returns the roots of a VM's snapshot tree, children sorted
// by name.
func (b *Builder) SnapshotTree(ctx context.Context, spec *api.VMSpec) ([]*SnapshotNode, error) {
	dom := b.DomainName(spec)
	snaps, err := b.lv.ListSnapshots(ctx, dom)
	if err != nil {
		return nil, lv(err, "snapshots of %s", dom)
	}
	return snapshotTree(snaps), nil
}

func snapshotTree(snaps []SnapshotInfo) []*SnapshotNode {
	nodes := map[string]*SnapshotNode{}
	for _, s := range snaps {
		nodes[s.Name] = &SnapshotNode{Name: s.Name, Current: s.Current, Children: []*SnapshotNode{}}
	}
	var roots []*SnapshotNode
	for _, s := range snaps {
		if p, ok := nodes[s.Parent]; ok && s.Parent != "" {
			p.Children = append(p.Children, nodes[s.Name])
		} else {
			roots = append(roots, nodes[s.Name])
		}
	}
	var sortRec func(ns []*SnapshotNode)
	sortRec = func(ns []*SnapshotNode) {
		sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
		for _, n := range ns {
			sortRec(n.Children)
		}
	}
	sortRec(roots)
	return roots
}

// BackupManifest describes one backup directory.
type BackupManifest struct {
	Domain  string       `json:"domain"`
	Name    string       `json:"name"`
	Created time.Time    `json:"created"`
	Disks   []BackupDisk `json:"disks"`
}

// BackupDisk is one copied disk. A primary disk is a qcow2 overlay: its
// copy needs the image volume (BackingFile) to be restored.
type BackupDisk struct {
	Target      string `json:"target"`
	File        string `json:"file"`
	BackingFile string `json:"backing_file,omitempty"`
}

// overlaySuffix marks the temporary overlays of a backup.
const overlaySuffix = ".backup-overlay"

// Backup copies a VM's disks to <BackupDir>/<domain>/<name>/ with its
// domain XML and a manifest, and returns that directory. A running VM
// keeps running: its disks are frozen by a disk-only external snapshot
// while they are copied, then committed back with a pivot. A backup that
// exists already is done.
func (b *Builder) Backup(ctx context.Context, spec *api.VMSpec, name string) (string, error) {
	if err := checkSnapshotName(name); err != nil {
		return "", err
	}
	dom := b.DomainName(spec)
	dir := filepath.Join(b.cfg.BackupDir, dom, name)
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return dir, nil
	}
	cur, err := b.current(ctx, dom)
	if err != nil {
		return "", err
	}
	if !cur.defined {
		return "", lv(fmt.Errorf("no domain"), "backup %s", dom)
	}
	var desc *domainXML
	if cur.live != nil {
		desc = cur.live
	} else {
		x, err := b.lv.DomainXML(ctx, dom, true)
		if err != nil {
			return "", lv(err, "xml of %s", dom)
		}
		if desc, err = parseDomainXML(x); err != nil {
			return "", lv(err, "xml of %s", dom)
		}
	}
	var disks []diskXML
	var leftover []diskXML
	for _, d := range desc.Devices.Disks {
		if d.Device != "disk" || d.Source == nil {
			continue
		}
		if strings.HasSuffix(d.Source.File, overlaySuffix) {
			// A backup was interrupted (the agent was killed) after it
			// froze the disk: fold the overlay back first. A domain that
			// was shut off since needs an operator (its persistent XML
			// names the overlay).
			if cur.live == nil {
				return "", newError(CodeLibvirt, "backup %s: disk %s is still on a backup overlay %s and the domain is not running", dom, d.Target.Dev, d.Source.File)
			}
			leftover = append(leftover, d)
			src := *d.Source
			src.File = strings.TrimSuffix(src.File, overlaySuffix)
			d.Source = &src
		}
		disks = append(disks, d)
	}
	if len(leftover) > 0 {
		if err := b.foldOverlays(ctx, dom, leftover); err != nil {
			return "", err
		}
		b.log.Warn("folded back the overlays of an interrupted backup", "domain", dom, "disks", len(leftover))
	}
	tmpDir := dir + ".partial"
	if err := os.RemoveAll(tmpDir); err != nil {
		return "", newError(CodeBackupDir, "backup %s: %v", dom, err)
	}
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return "", newError(CodeBackupDir, "backup %s: %v", dom, err)
	}
	// Probe the directory before the disks are frozen: a read-only or
	// foreign directory fails here, with the domain untouched.
	probe, err := os.CreateTemp(tmpDir, ".probe-*")
	if err != nil {
		os.RemoveAll(tmpDir)
		return "", newError(CodeBackupDir, "backup %s: %v", dom, err)
	}
	probe.Close()
	os.Remove(probe.Name())

	frozen := cur.live != nil
	if frozen {
		// An overlay file no disk is on is the leftover of a backup
		// killed between its block commit and the overlay's removal:
		// libvirt refuses an external snapshot onto an existing file.
		for _, d := range disks {
			if err := os.Remove(d.Source.File + overlaySuffix); err != nil && !os.IsNotExist(err) {
				return "", lv(err, "remove stale overlay of %s", d.Target.Dev)
			}
		}
		snap := snapshotXML{Name: "regent-backup-" + name}
		for _, d := range disks {
			snap.Disks = append(snap.Disks, snapshotDiskXML{Name: d.Target.Dev, Snapshot: "external",
				Driver: &diskDriverXML{Name: "qemu", Type: "qcow2"},
				Source: &diskSourceXML{File: d.Source.File + overlaySuffix}})
		}
		for _, d := range desc.Devices.Disks {
			if d.Device != "disk" {
				snap.Disks = append(snap.Disks, snapshotDiskXML{Name: d.Target.Dev, Snapshot: "no"})
			}
		}
		x, _ := xml.Marshal(snap)
		if err := b.lv.CreateSnapshot(ctx, dom, string(x), true); err != nil {
			return "", lv(err, "backup snapshot of %s", dom)
		}
	}
	m := BackupManifest{Domain: dom, Name: name, Created: time.Now().UTC()}
	copyErr := func() error {
		for _, d := range disks {
			dst := filepath.Join(tmpDir, d.Target.Dev+".qcow2")
			if err := copyFile(d.Source.File, dst); err != nil {
				return err
			}
			bd := BackupDisk{Target: d.Target.Dev, File: filepath.Base(dst)}
			if bf, err := qcow2BackingFile(d.Source.File); err == nil {
				bd.BackingFile = bf
			}
			m.Disks = append(m.Disks, bd)
		}
		return nil
	}()
	if frozen {
		// Fold the overlays back whatever happened to the copy.
		overlays := make([]diskXML, len(disks))
		for i, d := range disks {
			src := *d.Source
			src.File += overlaySuffix
			overlays[i] = d
			overlays[i].Source = &src
		}
		if err := b.foldOverlays(ctx, dom, overlays); err != nil {
			os.RemoveAll(tmpDir)
			return "", err
		}
	}
	if copyErr != nil {
		os.RemoveAll(tmpDir)
		if isNoSpace(copyErr) {
			return "", newError(CodePoolFull, "backup %s: %v", dom, copyErr)
		}
		return "", lv(copyErr, "backup %s", dom)
	}
	x, err := b.lv.DomainXML(ctx, dom, true)
	if err != nil {
		return "", lv(err, "xml of %s", dom)
	}
	if err := os.WriteFile(filepath.Join(tmpDir, dom+".xml"), []byte(x), 0o640); err != nil {
		return "", lv(err, "backup %s", dom)
	}
	mj, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmpDir, "manifest.json"), mj, 0o640); err != nil {
		return "", lv(err, "backup %s", dom)
	}
	if err := os.Rename(tmpDir, dir); err != nil {
		return "", lv(err, "backup %s", dom)
	}
	return dir, nil
}

// foldTimeout bounds folding a backup's overlays back into the volumes.
const foldTimeout = 15 * time.Minute

// foldOverlays commits the overlays that disks (of a running domain) are
// on back into their volumes, pivots the domain onto the volumes and
// removes the overlay files. It runs on even when ctx is cancelled (an
// agent stopping gracefully), within foldTimeout, and tries every disk
// when one fails: a disk left on its overlay is one a later converge
// must fold first, and every one less is better.
func (b *Builder) foldOverlays(ctx context.Context, dom string, disks []diskXML) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), foldTimeout)
	defer cancel()
	var errs []error
	for _, d := range disks {
		if err := b.lv.CommitActive(ctx, dom, d.Target.Dev); err != nil {
			errs = append(errs, lv(err, "block commit of the backup overlay %s of %s of %s", d.Source.File, d.Target.Dev, dom))
			continue
		}
		if err := os.Remove(d.Source.File); err != nil && !os.IsNotExist(err) {
			errs = append(errs, lv(err, "remove overlay of %s of %s", d.Target.Dev, dom))
		}
	}
	return errors.Join(errs...)
}

// overlayDisks lists the disks of a domain description that are on a
// backup overlay.
func overlayDisks(d *domainXML) []diskXML {
	var out []diskXML
	for _, dk := range d.Devices.Disks {
		if dk.Device == "disk" && dk.Source != nil && strings.HasSuffix(dk.Source.File, overlaySuffix) {
			out = append(out, dk)
		}
	}
	return out
}

// BackupDelete removes a backup directory (and its partial copy). A path
// through something that is not a directory (ENOTDIR: the domain's
// directory under backup_dir is a file, the failure vm_backup_dir of a
// take) holds nothing of the backup: deleted, not a failure for ever.
func (b *Builder) BackupDelete(_ context.Context, spec *api.VMSpec, name string) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	dir := filepath.Join(b.cfg.BackupDir, b.DomainName(spec), name)
	// With the partial copy of a take that was killed or failed after its
	// copy (nothing else removes it once the backup is deleted).
	for _, d := range []string{dir + ".partial", dir} {
		if err := os.RemoveAll(d); err != nil && !errors.Is(err, syscall.ENOTDIR) {
			return lv(err, "delete backup %s", name)
		}
	}
	return lv(b.forgetStep(b.DomainName(spec), name), "delete backup %s", name)
}

// BackupRestore puts a VM's disks back to what backup name holds. The VM
// is powered off (destroyed: its disks are about to be replaced, so none
// of its running state is worth a shutdown), each disk of the backup is
// copied over the VM's volume (into a file beside it, synced, then renamed
// over it, so a volume is never half-written), and the VM is converged
// again: disks grown back to the spec, started when it was running before.
// Running it again redoes the whole restore, so an agent killed midway
// converges.
//
// It changes nothing and says why when the backup's copy is gone
// (CodeBackupMissing) or does not fit the VM as it is now
// (CodeRestoreRefused): a disk of the backup the VM no longer has, a
// backing image that is gone, a disk on a backup overlay, or a snapshot of
// the VM that the backup's disks do not hold (taken after the backup: its
// libvirt metadata would point at data the restored disks no longer have).
// Internal snapshots the backup holds but the VM no longer has stay in the
// restored disks, unused.
func (b *Builder) BackupRestore(ctx context.Context, spec *api.VMSpec, name string, generation uint64) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	dom := b.DomainName(spec)
	if ok, err := b.stepDone(dom, name, generation); err != nil || ok {
		if ok {
			b.log.Info("restore done already at this generation: not again", "domain", dom, "backup", name, "generation", generation)
		}
		return lv(err, "restore %s", dom)
	}
	dir := filepath.Join(b.cfg.BackupDir, dom, name)
	mj, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if os.IsNotExist(err) {
		return newError(CodeBackupMissing, "restore %s: backup %s has no copy in %s", dom, name, dir)
	}
	if err != nil {
		return newError(CodeBackupDir, "restore %s: %v", dom, err)
	}
	var m BackupManifest
	if err := json.Unmarshal(mj, &m); err != nil || len(m.Disks) == 0 {
		return newError(CodeBackupMissing, "restore %s: the manifest of backup %s is unreadable or lists no disk", dom, name)
	}
	refuse := func(format string, args ...any) error {
		return newError(CodeRestoreRefused, "restore %s from %s: %s", dom, name, fmt.Sprintf(format, args...))
	}
	cur, err := b.current(ctx, dom)
	if err != nil {
		return err
	}
	if !cur.defined {
		return lv(fmt.Errorf("no domain"), "restore %s", dom)
	}
	x, err := b.lv.DomainXML(ctx, dom, true)
	if err != nil {
		return lv(err, "xml of %s", dom)
	}
	desc, err := parseDomainXML(x)
	if err != nil {
		return lv(err, "xml of %s", dom)
	}
	files := map[string]string{} // target → the VM's volume
	for _, d := range desc.Devices.Disks {
		if d.Device == "disk" && d.Source != nil {
			files[d.Target.Dev] = d.Source.File
		}
	}
	if cur.live != nil {
		for _, d := range cur.live.Devices.Disks {
			if d.Device == "disk" && d.Source != nil && strings.HasSuffix(d.Source.File, overlaySuffix) {
				return refuse("disk %s is on the overlay of an interrupted backup (the next backup folds it back)", d.Target.Dev)
			}
		}
	}
	// The backing images must stay until the restored disks are based
	// on them (PruneImages).
	// (converge takes the lock again: it is released before.)
	b.imageMu.RLock()
	locked := true
	defer func() {
		if locked {
			b.imageMu.RUnlock()
		}
	}()
	for _, d := range m.Disks {
		f, ok := files[d.Target]
		switch {
		case !ok:
			return refuse("the VM has no disk %s any more", d.Target)
		case strings.HasSuffix(f, overlaySuffix):
			return refuse("disk %s is on the overlay of an interrupted backup", d.Target)
		}
		if d.BackingFile != "" {
			if _, err := os.Stat(d.BackingFile); err != nil {
				return refuse("the image volume %s that disk %s of the backup is based on is gone", d.BackingFile, d.Target)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, d.File)); err != nil {
			return newError(CodeBackupMissing, "restore %s: disk %s of backup %s: %v", dom, d.Target, name, err)
		}
	}
	snaps, err := b.lv.ListSnapshots(ctx, dom)
	if err != nil {
		return lv(err, "snapshots of %s", dom)
	}
	if len(snaps) > 0 {
		held, err := qcow2SnapshotNames(filepath.Join(dir, m.Disks[0].File))
		if err != nil {
			return newError(CodeBackupMissing, "restore %s: disk %s of backup %s: %v", dom, m.Disks[0].Target, name, err)
		}
		var missing []string
		for _, s := range snaps {
			if !held[s.Name] {
				missing = append(missing, s.Name)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return refuse("the VM has snapshots taken after the backup (%s): delete them first", strings.Join(missing, ", "))
		}
	}

	// A restore cut in its renames (below) left the domain off: it was
	// running if the marker says so.
	unfinished, err := b.readRestoreMarker(dom)
	if err != nil {
		return lv(err, "restore %s", dom)
	}
	running := cur.live != nil || unfinished != nil && unfinished.Start
	if cur.live != nil {
		if err := done(b.lv.DestroyDomain(ctx, dom), errOperationInvalid, errNoDomain); err != nil {
			return lv(err, "power off %s", dom)
		}
	}
	// Every disk is copied beside its volume first; the volumes are
	// replaced only when all copies are there, so a failed copy leaves
	// every disk as it was, never some from the backup and some from now.
	var tmps []string
	defer func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}()
	for _, d := range m.Disks {
		tmp := files[d.Target] + restoreSuffix
		tmps = append(tmps, tmp)
		if err := restoreCopy(filepath.Join(dir, d.File), tmp, files[d.Target]); err != nil {
			if isNoSpace(err) {
				return newError(CodePoolFull, "restore %s: disk %s: %v", dom, d.Target, err)
			}
			return lv(err, "restore disk %s of %s", d.Target, dom)
		}
	}
	// From the first rename to the last the disks are of two points in
	// time: the marker keeps the domain from being started (converge)
	// until a restore has replaced them all.
	if err := b.writeRestoreMarker(dom, restoreMarker{Backup: name, Start: running}); err != nil {
		return lv(err, "restore %s", dom)
	}
	for _, d := range m.Disks {
		if err := os.Rename(files[d.Target]+restoreSuffix, files[d.Target]); err != nil {
			return lv(err, "restore disk %s of %s: the restore is unfinished and the domain stays off until it is done", d.Target, dom)
		}
	}
	synced := map[string]bool{}
	for _, d := range m.Disks {
		if dd := filepath.Dir(files[d.Target]); !synced[dd] {
			if err := syncDir(dd); err != nil {
				return lv(err, "restore %s", dom)
			}
			synced[dd] = true
		}
	}
	if err := b.removeRestoreMarker(dom); err != nil {
		return lv(err, "restore %s", dom)
	}
	b.imageMu.RUnlock()
	locked = false
	b.log.Info("disks restored from backup", "domain", dom, "backup", name, "disks", len(m.Disks), "backup_created", m.Created, "start", running)
	if err := b.converge(ctx, spec, running); err != nil {
		return err
	}
	return lv(b.markStepDone(dom, name, generation), "restore %s", dom)
}

// restoreSuffix marks the copy of a backup's disk beside the volume it
// is about to replace (Scrub removes a leftover).
const restoreSuffix = ".backup-restore"

// restoreCopy copies src to tmp, synced and given dst's mode and owner,
// ready to be renamed over dst.
func restoreCopy(src, tmp, dst string) error {
	if err := copyFile(src, tmp); err != nil {
		return err
	}
	st, err := os.Stat(dst)
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, st.Mode().Perm()); err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(tmp, int(sys.Uid), int(sys.Gid)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// restoreMarker is on the host while a restore replaces a domain's
// volumes (<SeedDir>/<domain>-restore.json): the domain is not started
// while it is there.
type restoreMarker struct {
	Backup string `json:"backup"`
	// Start: the domain ran before the restore and starts after it.
	Start bool `json:"start"`
}

func (b *Builder) restoreMarkerPath(domain string) string {
	return filepath.Join(b.cfg.SeedDir, domain+"-restore.json")
}

// readRestoreMarker returns the marker of an unfinished restore, or nil.
func (b *Builder) readRestoreMarker(domain string) (*restoreMarker, error) {
	data, err := os.ReadFile(b.restoreMarkerPath(domain))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m restoreMarker
	if err := json.Unmarshal(data, &m); err != nil {
		// Written atomically, so this is not ours to half-read: still,
		// a restore is unfinished; the domain ran (start it after).
		return &restoreMarker{Start: true}, nil
	}
	return &m, nil
}

func (b *Builder) writeRestoreMarker(domain string, m restoreMarker) error {
	if err := os.MkdirAll(b.cfg.SeedDir, 0o755); err != nil {
		return err
	}
	data, _ := json.Marshal(m)
	return atomicfile.Write(b.restoreMarkerPath(domain), data, 0o600)
}

func (b *Builder) removeRestoreMarker(domain string) error {
	if err := os.Remove(b.restoreMarkerPath(domain)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(b.cfg.SeedDir)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// errNotQcow2: the file is too short for a qcow2 header or has not its
// magic.
var errNotQcow2 = errors.New("not a qcow2 file")

// qcow2BackingFile reads the backing file name from a qcow2 header.
func qcow2BackingFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 20)
	if _, err := io.ReadFull(f, hdr); errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "", fmt.Errorf("%s: %w", path, errNotQcow2)
	} else if err != nil {
		return "", err
	}
	if string(hdr[:4]) != "QFI\xfb" {
		return "", fmt.Errorf("%s: %w", path, errNotQcow2)
	}
	off := uint64(hdr[8])<<56 | uint64(hdr[9])<<48 | uint64(hdr[10])<<40 | uint64(hdr[11])<<32 |
		uint64(hdr[12])<<24 | uint64(hdr[13])<<16 | uint64(hdr[14])<<8 | uint64(hdr[15])
	size := uint32(hdr[16])<<24 | uint32(hdr[17])<<16 | uint32(hdr[18])<<8 | uint32(hdr[19])
	if off == 0 || size == 0 || size > 4096 {
		return "", nil
	}
	name := make([]byte, size)
	if _, err := f.ReadAt(name, int64(off)); err != nil {
		return "", err
	}
	return string(name), nil
}

// qcow2SnapshotNames reads the names of the internal snapshots in a qcow2
// file's snapshot table (what libvirt's internal snapshots are stored as).
func qcow2SnapshotNames(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hdr := make([]byte, 72)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("%s: qcow2 header: %w", path, err)
	}
	if string(hdr[:4]) != "QFI\xfb" {
		return nil, fmt.Errorf("%s is not qcow2", path)
	}
	n := binary.BigEndian.Uint32(hdr[60:64])
	off := int64(binary.BigEndian.Uint64(hdr[64:72]))
	if n > 65536 {
		return nil, fmt.Errorf("%s: %d snapshots in the header: not a sane qcow2", path, n)
	}
	names := make(map[string]bool, n)
	r := io.NewSectionReader(f, off, 1<<40)
	fixed := make([]byte, 40)
	var pos int64
	for range n {
		if _, err := io.ReadFull(r, fixed); err != nil {
			return nil, fmt.Errorf("%s: snapshot table: %w", path, err)
		}
		idLen := int64(binary.BigEndian.Uint16(fixed[12:14]))
		nameLen := int64(binary.BigEndian.Uint16(fixed[14:16]))
		extra := int64(binary.BigEndian.Uint32(fixed[36:40]))
		if extra > 1<<16 {
			return nil, fmt.Errorf("%s: snapshot table: extra data of %d bytes", path, extra)
		}
		rest := make([]byte, extra+idLen+nameLen)
		if _, err := io.ReadFull(r, rest); err != nil {
			return nil, fmt.Errorf("%s: snapshot table: %w", path, err)
		}
		names[string(rest[extra+idLen:])] = true
		pos += 40 + int64(len(rest))
		if pad := (8 - pos%8) % 8; pad > 0 { // entries are 8-byte aligned
			if _, err := r.Seek(pad, io.SeekCurrent); err != nil {
				return nil, err
			}
			pos += pad
		}
	}
	return names, nil
}

// doneSteps is the record of the reverts and restores a domain finished
// (<SeedDir>/<domain>-done.json): snapshot or backup name → the
// generation it finished at. A step is recorded before it is reported, so
// a retry after a failed report, or after an agent restart, finds it done
// and only reports it; a new request (a new generation) runs it again. A
// snapshot's or backup's delete drops its entry; Scrub the file.
type doneSteps map[string]uint64

func (b *Builder) doneStepsPath(domain string) string {
	return filepath.Join(b.cfg.SeedDir, domain+"-done.json")
}

func (b *Builder) readDoneSteps(domain string) (doneSteps, error) {
	data, err := os.ReadFile(b.doneStepsPath(domain))
	if errors.Is(err, fs.ErrNotExist) {
		return doneSteps{}, nil
	}
	if err != nil {
		return nil, err
	}
	steps := doneSteps{}
	if err := json.Unmarshal(data, &steps); err != nil {
		return nil, fmt.Errorf("%s: %w", b.doneStepsPath(domain), err)
	}
	return steps, nil
}

// stepDone reports whether step name of domain finished at generation
// (never for generation 0).
func (b *Builder) stepDone(domain, name string, generation uint64) (bool, error) {
	if generation == 0 {
		return false, nil
	}
	b.stepsMu.Lock()
	defer b.stepsMu.Unlock()
	steps, err := b.readDoneSteps(domain)
	if err != nil {
		return false, err
	}
	return steps[name] == generation, nil
}

func (b *Builder) markStepDone(domain, name string, generation uint64) error {
	if generation == 0 {
		return nil
	}
	return b.editDoneSteps(domain, func(s doneSteps) { s[name] = generation })
}

func (b *Builder) forgetStep(domain, name string) error {
	return b.editDoneSteps(domain, func(s doneSteps) { delete(s, name) })
}

func (b *Builder) editDoneSteps(domain string, edit func(doneSteps)) error {
	b.stepsMu.Lock()
	defer b.stepsMu.Unlock()
	steps, err := b.readDoneSteps(domain)
	if err != nil {
		return err
	}
	n := len(steps)
	edit(steps)
	path := b.doneStepsPath(domain)
	if len(steps) == 0 {
		if n == 0 {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return syncDir(b.cfg.SeedDir)
	}
	if err := os.MkdirAll(b.cfg.SeedDir, 0o755); err != nil {
		return err
	}
	data, _ := json.Marshal(steps)
	return atomicfile.Write(path, data, 0o600)
}
