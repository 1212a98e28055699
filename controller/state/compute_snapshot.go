package state

import (
	"net/http"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/pkg/api"
)

// Snapshot and backup tables.
const (
	Snapshots         = "compute_snapshots"
	Backups           = "compute_backups"
	SnapshotHistories = "compute_snapshot_histories"
	BackupHistories   = "compute_backup_histories"
)

func snapshotSchema() map[string]*memdb.TableSchema {
	hist := func(name string) *memdb.TableSchema {
		return &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "object": uintIndex("object", "ObjectID"),
		}}
	}
	return map[string]*memdb.TableSchema{
		Snapshots: {Name: Snapshots, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "vm": uintIndex("vm", "VMID"), "region": uintIndex("region", "RegionID"),
		}},
		Backups: {Name: Backups, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "vm": uintIndex("vm", "VMID"), "region": uintIndex("region", "RegionID"),
		}},
		SnapshotHistories: hist(SnapshotHistories),
		BackupHistories:   hist(BackupHistories),
	}
}

// Snapshot returns a snapshot by id.
func (r *ReadTxn) Snapshot(id uint64) (*api.Snapshot, bool) {
	return get[*api.Snapshot](r, Snapshots, id)
}

// SnapshotList returns every snapshot, by id.
func (r *ReadTxn) SnapshotList() []*api.Snapshot { return all[*api.Snapshot](r, Snapshots, "id") }

// SnapshotsOfVM returns the snapshots of a VM, by id.
func (r *ReadTxn) SnapshotsOfVM(vm uint64) []*api.Snapshot {
	return all[*api.Snapshot](r, Snapshots, "vm", vm)
}

// Backup returns a backup by id.
func (r *ReadTxn) Backup(id uint64) (*api.Backup, bool) { return get[*api.Backup](r, Backups, id) }

// BackupList returns every backup, by id.
func (r *ReadTxn) BackupList() []*api.Backup { return all[*api.Backup](r, Backups, "id") }

// BackupsOfVM returns the backups of a VM, by id.
func (r *ReadTxn) BackupsOfVM(vm uint64) []*api.Backup { return all[*api.Backup](r, Backups, "vm", vm) }

// SnapshotHistoryList returns every snapshot history row, by id.
func (r *ReadTxn) SnapshotHistoryList() []*api.ObjectHistory {
	return all[*api.ObjectHistory](r, SnapshotHistories, "id")
}

// BackupHistoryList returns every backup history row, by id.
func (r *ReadTxn) BackupHistoryList() []*api.ObjectHistory {
	return all[*api.ObjectHistory](r, BackupHistories, "id")
}

// ObjectHistory returns a history row of table (SnapshotHistories or
// BackupHistories) by id.
func (r *ReadTxn) ObjectHistory(table string, id uint64) (*api.ObjectHistory, bool) {
	return get[*api.ObjectHistory](r, table, id)
}

func (t *Txn) objectHistory(table string, id, vm, project, member uint64, st int, a Actor) error {
	return insertNew(t, table, &api.ObjectHistory{ObjectID: id, VMID: vm, ProjectID: project, MemberID: member,
		State: st, UserID: a.UserID, TokenID: a.TokenID, Robot: a.Robot})
}

// SnapshotCreatePayload creates a snapshot of a VM.
type SnapshotCreatePayload struct {
	VMID  uint64 `json:"vm_id"`
	Name  string `json:"name"`
	Actor Actor  `json:"actor"`
}

// snapshotable checks that a VM may get a snapshot or backup: RUNNING, no GPU.
func (t *Txn) snapshotable(vmID uint64, service string) (*api.VM, error) {
	c := func(n int) string { return code("iaas", service, "create", n) }
	vm, ok := t.VM(vmID)
	if !ok {
		return nil, fieldErr("vm_id", c(102), "VM %d does not exist.", vmID)
	}
	if vm.State != api.StateRunning {
		return nil, fieldErr("vm_id", c(104), "VM %d must be RUNNING; it is %s.", vm.ID, api.StateNames[vm.State])
	}
	if vm.GPU > 0 {
		return nil, fieldErr("vm_id", c(105), "VM %d has GPUs; it cannot be snapshotted or backed up.", vm.ID)
	}
	return vm, nil
}

// SnapshotCreate takes a snapshot of a RUNNING VM. Its parent is the VM's
// active snapshot (which must be RUNNING), and it becomes the active one.
func (t *Txn) SnapshotCreate(p *SnapshotCreatePayload) (*api.Snapshot, error) {
	vm, err := t.snapshotable(p.VMID, "snapshot")
	if err != nil {
		return nil, err
	}
	var active []*api.Snapshot
	for _, s := range t.SnapshotsOfVM(vm.ID) {
		if s.Active && s.State != api.StateClosed {
			active = append(active, s)
		}
	}
	sn := &api.Snapshot{VMID: vm.ID, ProjectID: vm.ProjectID, MemberID: vm.MemberID, RegionID: vm.RegionID,
		Name: p.Name, Active: true, State: api.StateRequested, StateChanged: t.stamp(), Generation: 1}
	switch {
	case len(active) > 1:
		return nil, api.Errorf(http.StatusBadRequest, "iaas_snapshot_create_106", "VM %d has %d active snapshots.", vm.ID, len(active))
	case len(active) == 1:
		if active[0].State != api.StateRunning {
			return nil, fieldErr("vm_id", "iaas_snapshot_create_107", "The active snapshot of VM %d is not RUNNING. %s", vm.ID, snapshotBusy(active[0]))
		}
		sn.ParentID = active[0].ID
		old := *active[0]
		old.Active = false
		if err := replace(t, Snapshots, &old, 0, "iaas_snapshot_update"); err != nil {
			return nil, err
		}
	}
	if err := insertNew(t, Snapshots, sn); err != nil {
		return nil, err
	}
	return sn, t.objectHistory(SnapshotHistories, sn.ID, sn.VMID, sn.ProjectID, sn.MemberID, sn.State, p.Actor)
}

// setSnapshotState applies a checked transition. Reverting (→
// RUNNING_UPDATE) makes the snapshot the active one; closing it makes its
// parent active if it, or a descendant it takes along, was active, and
// either closes its subtree (remove_subtree) or hands its children to its
// parent.
func (t *Txn) setSnapshotState(ch *StateChange, changed bool) (api.Object, error) {
	cur, _ := t.Snapshot(ch.ID)
	sn := *cur
	if ch.ObservedGeneration != nil {
		sn.ObservedGeneration = *ch.ObservedGeneration
	}
	if ch.RemoveSubtree != nil && !ch.Actor.Robot {
		sn.RemoveSubtree = *ch.RemoveSubtree
	}
	if ch.Name != nil && !ch.Actor.Robot {
		sn.Name = *ch.Name
	}
	if !changed {
		if sn == *cur {
			return cur, nil
		}
		return &sn, replace(t, Snapshots, &sn, 0, "iaas_snapshot_update")
	}
	sn.State, sn.StateChanged = ch.To, t.stamp()
	sn.ErrorCode, sn.ErrorDetail = "", ""
	if ch.To == api.StateUnresourced {
		sn.ErrorCode, sn.ErrorDetail = ch.ErrorCode, ch.ErrorDetail
	}
	all := t.SnapshotsOfVM(sn.VMID)
	put := func(s *api.Snapshot) error { return replace(t, Snapshots, s, 0, "iaas_snapshot_update") }
	switch ch.To {
	case api.StateRunningUpdate: // revert to this snapshot
		if err := t.vmSteady(sn.VMID, "snapshot", "reverted"); err != nil {
			return nil, err
		}
		for _, o := range all {
			if o.ID != sn.ID && o.Active {
				n := *o
				n.Active = false
				if err := put(&n); err != nil {
					return nil, err
				}
			}
		}
		sn.Active = true
		sn.Generation++
	case api.StateClosed:
		children := map[uint64][]*api.Snapshot{}
		for _, o := range all {
			children[o.ParentID] = append(children[o.ParentID], o)
		}
		wasActive := sn.Active
		sn.Active = false
		if sn.RemoveSubtree {
			// Close the descendants, depth first in id order.
			stack := append([]*api.Snapshot{}, children[sn.ID]...)
			for len(stack) > 0 {
				o := stack[0]
				stack = append(stack[1:], children[o.ID]...)
				if o.State == api.StateClosed {
					continue
				}
				n := *o
				wasActive = wasActive || n.Active
				n.Active, n.State, n.StateChanged = false, api.StateClosed, t.stamp()
				if err := put(&n); err != nil {
					return nil, err
				}
				if err := t.objectHistory(SnapshotHistories, n.ID, n.VMID, n.ProjectID, n.MemberID, n.State, ch.Actor); err != nil {
					return nil, err
				}
			}
		} else {
			for _, o := range children[sn.ID] {
				n := *o
				n.ParentID = sn.ParentID
				if err := put(&n); err != nil {
					return nil, err
				}
			}
		}
		if wasActive && sn.ParentID != 0 {
			if p, ok := t.Snapshot(sn.ParentID); ok && p.State != api.StateClosed {
				n := *p
				n.Active = true
				if err := put(&n); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := put(&sn); err != nil {
		return nil, err
	}
	return &sn, t.objectHistory(SnapshotHistories, sn.ID, sn.VMID, sn.ProjectID, sn.MemberID, sn.State, ch.Actor)
}

// SnapshotTree returns the roots of a VM's snapshot tree (parentless
// snapshots that are not CLOSED) with their descendants.
func (r *ReadTxn) SnapshotTree(vm uint64) []*SnapshotNode {
	children := map[uint64][]*api.Snapshot{}
	var roots []*api.Snapshot
	for _, s := range r.SnapshotsOfVM(vm) {
		if s.State == api.StateClosed {
			continue
		}
		if s.ParentID == 0 {
			roots = append(roots, s)
		} else {
			children[s.ParentID] = append(children[s.ParentID], s)
		}
	}
	var build func(s *api.Snapshot, depth int) *SnapshotNode
	build = func(s *api.Snapshot, depth int) *SnapshotNode {
		n := &SnapshotNode{Snapshot: s, Children: []*SnapshotNode{}}
		if depth < 1000 {
			for _, c := range children[s.ID] {
				n.Children = append(n.Children, build(c, depth+1))
			}
		}
		return n
	}
	out := []*SnapshotNode{}
	for _, s := range roots {
		out = append(out, build(s, 0))
	}
	return out
}

// SnapshotNode is a snapshot with its children.
type SnapshotNode struct {
	*api.Snapshot
	Children []*SnapshotNode `json:"children"`
}

// BackupCreatePayload creates a backup of a VM.
type BackupCreatePayload struct {
	VMID       uint64 `json:"vm_id"`
	Name       string `json:"name"`
	Repository int    `json:"repository"`
	Actor      Actor  `json:"actor"`
}

// BackupCreate requests a backup of a RUNNING VM.
func (t *Txn) BackupCreate(p *BackupCreatePayload) (*api.Backup, error) {
	vm, err := t.snapshotable(p.VMID, "backup")
	if err != nil {
		return nil, err
	}
	b := &api.Backup{VMID: vm.ID, ProjectID: vm.ProjectID, MemberID: vm.MemberID, RegionID: vm.RegionID,
		Name: p.Name, Repository: p.Repository, State: api.StateRequested, StateChanged: t.stamp(), Generation: 1}
	if err := insertNew(t, Backups, b); err != nil {
		return nil, err
	}
	return b, t.objectHistory(BackupHistories, b.ID, b.VMID, b.ProjectID, b.MemberID, b.State, p.Actor)
}

// setBackupState applies a checked transition; a finished build stamps
// time_valid.
func (t *Txn) setBackupState(ch *StateChange, changed bool) (api.Object, error) {
	cur, _ := t.Backup(ch.ID)
	b := *cur
	if ch.ObservedGeneration != nil {
		b.ObservedGeneration = *ch.ObservedGeneration
	}
	if ch.Name != nil && !ch.Actor.Robot {
		b.Name = *ch.Name
	}
	if !changed {
		if b == *cur {
			return cur, nil
		}
		return &b, replace(t, Backups, &b, 0, "iaas_backup_update")
	}
	if cur.State == api.StateBuilding && ch.To == api.StateRunning {
		b.TimeValid = t.stamp()
	}
	if ch.To == api.StateRunningUpdate {
		if err := t.vmSteady(cur.VMID, "backup", "restored"); err != nil {
			return nil, err
		}
		if err := t.restorable(cur); err != nil {
			return nil, err
		}
		b.Generation++
	}
	b.State, b.StateChanged = ch.To, t.stamp()
	b.ErrorCode, b.ErrorDetail = "", ""
	if ch.To == api.StateUnresourced {
		b.ErrorCode, b.ErrorDetail = ch.ErrorCode, ch.ErrorDetail
	}
	if err := replace(t, Backups, &b, 0, "iaas_backup_update"); err != nil {
		return nil, err
	}
	return &b, t.objectHistory(BackupHistories, b.ID, b.VMID, b.ProjectID, b.MemberID, b.State, ch.Actor)
}

// vmSteady refuses a snapshot's revert or a backup's restore (→
// RUNNING_UPDATE; service "snapshot" or "backup", 117) unless the VM is
// RUNNING or QUIESCED: its domain exists and nothing else changes it.
// Onto a VM being built, stopped, started, updated or deleted, failed
// (UNRESOURCED), in the delete queue or CLOSED, the agent would work on
// disks that are not there or race the VM's own step.
func (t *Txn) vmSteady(vmID uint64, service, done string) error {
	vm, ok := t.VM(vmID)
	if ok && (vm.State == api.StateRunning || vm.State == api.StateQuiesced) {
		return nil
	}
	st := api.StateClosed
	if ok {
		st = vm.State
	}
	return fieldErr("state", code("iaas", service, "update", 117),
		"VM %d is in state %d (%s); a %s can be %s only while its VM is RUNNING or QUIESCED.", vmID, st, api.StateNames[st], service, done)
}

// restorable refuses a restore (RUNNING_UPDATE) of a backup while its VM
// has a snapshot requested after the backup's copy was made: the copy
// cannot hold it, and the restored disks would lose its data while the
// snapshot stays. The agent checks the copy itself too (vm_restore_refused)
// for a snapshot requested before but taken after the copy.
func (t *Txn) restorable(b *api.Backup) error {
	valid, err := time.Parse(time.RFC3339Nano, b.TimeValid)
	if err != nil {
		return nil // never built: the agent refuses it for want of a copy
	}
	for _, sn := range t.SnapshotsOfVM(b.VMID) {
		if sn.State == api.StateClosed {
			continue
		}
		if created, err := time.Parse(time.RFC3339Nano, sn.Created); err == nil && created.After(valid) {
			return fieldErr("state", "iaas_backup_update_116",
				"Snapshot %d of the VM was taken after this backup; restoring would lose its data. Delete the snapshot first.", sn.ID)
		}
	}
	return nil
}
