package vm

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/regentcloud/regent/pkg/api"
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
func (b *Builder) SnapshotRevert(ctx context.Context, spec *api.VMSpec, name string) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	dom := b.DomainName(spec)
	return lv(b.lv.RevertSnapshot(ctx, dom, name), "revert %s to %s", dom, name)
}

// SnapshotDelete deletes a snapshot; with subtree its descendants too,
// otherwise they are re-parented to its parent (libvirt's behaviour). A
// missing snapshot or domain is already deleted.
func (b *Builder) SnapshotDelete(ctx context.Context, spec *api.VMSpec, name string, subtree bool) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	dom := b.DomainName(spec)
	return lv(done(b.lv.DeleteSnapshot(ctx, dom, name, subtree), errNoDomainSnapshot, errNoDomain),
		"delete snapshot %s of %s", name, dom)
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
			if err := b.lv.CommitActive(ctx, dom, d.Target.Dev); err != nil {
				return "", lv(err, "block commit of the leftover overlay of %s of %s", d.Target.Dev, dom)
			}
			if err := os.Remove(d.Source.File); err != nil && !os.IsNotExist(err) {
				return "", lv(err, "remove leftover overlay of %s", d.Target.Dev)
			}
			b.log.Warn("folded back the overlay of an interrupted backup", "domain", dom, "disk", d.Target.Dev, "overlay", d.Source.File)
			src := *d.Source
			src.File = strings.TrimSuffix(src.File, overlaySuffix)
			d.Source = &src
		}
		disks = append(disks, d)
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
		for _, d := range disks {
			if err := b.lv.CommitActive(ctx, dom, d.Target.Dev); err != nil {
				return "", lv(err, "block commit %s of %s", d.Target.Dev, dom)
			}
			if err := os.Remove(d.Source.File + overlaySuffix); err != nil && !os.IsNotExist(err) {
				return "", lv(err, "remove overlay of %s", d.Target.Dev)
			}
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

// BackupDelete removes a backup directory (and its partial copy).
func (b *Builder) BackupDelete(_ context.Context, spec *api.VMSpec, name string) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	dir := filepath.Join(b.cfg.BackupDir, b.DomainName(spec), name)
	// With the partial copy of a take that was killed or failed after its
	// copy (nothing else removes it once the backup is deleted).
	for _, d := range []string{dir + ".partial", dir} {
		if err := os.RemoveAll(d); err != nil {
			return lv(err, "delete backup %s", name)
		}
	}
	return nil
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

// qcow2BackingFile reads the backing file name from a qcow2 header.
func qcow2BackingFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 20)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", err
	}
	if string(hdr[:4]) != "QFI\xfb" {
		return "", fmt.Errorf("%s is not qcow2", path)
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
