package daemon

// Snapshots and backups of a VM, carried in its spec and driven by the
// same ROBOT state machine (machine) as the VM, with their own plans:
//
//	snapshot  REQUESTED → BUILDING → RUNNING          take (libvirt internal snapshot)
//	          RUNNING_UPDATE → RUNNING_UPDATING → RUNNING  revert the VM to it
//	          SCRUB → SCRUBBING → CLOSED              delete (remove_subtree: with its descendants)
//	backup    REQUESTED → BUILDING → RUNNING          copy the disks to backup_dir
//	          RUNNING_UPDATE → RUNNING_UPDATING → RUNNING  restore the VM's disks from it
//	          SCRUB → SCRUBBING → CLOSED              delete the copy
//
// Every step is idempotent: a snapshot or backup that exists counts as
// taken, one that is gone as deleted, so an agent restarted mid-step
// converges. The libvirt names come from the ids (vm.SnapshotName,
// vm.BackupName), never from the user's names.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/agent/vm"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// Actions of snapshots and backups.
const (
	actTake action = iota + 100
	actRevert
	actDelete
)

// snapshotPlans and backupPlans: no SCRUB_PREP or delete queue (CloudCIX:
// 4→8→17→99), and stable states ask nothing of the host.
var (
	snapshotPlans = map[int]statePlan{
		api.StateRequested:       {api.StateBuilding, actTake, api.StateRunning},
		api.StateBuilding:        {0, actTake, api.StateRunning},
		api.StateRunningUpdate:   {api.StateRunningUpdating, actRevert, api.StateRunning},
		api.StateRunningUpdating: {0, actRevert, api.StateRunning},
		api.StateScrub:           {api.StateScrubbing, actDelete, api.StateClosed},
		api.StateScrubbing:       {0, actDelete, api.StateClosed},
	}
	backupPlans = map[int]statePlan{
		api.StateRequested:       {api.StateBuilding, actTake, api.StateRunning},
		api.StateBuilding:        {0, actTake, api.StateRunning},
		api.StateRunningUpdate:   {api.StateRunningUpdating, actRevert, api.StateRunning},
		api.StateRunningUpdating: {0, actRevert, api.StateRunning},
		api.StateScrub:           {api.StateScrubbing, actDelete, api.StateClosed},
		api.StateScrubbing:       {0, actDelete, api.StateClosed},
	}
)

// SetSnapshotState reports a snapshot's state change to the controllers.
func (c *controllers) SetSnapshotState(ctx context.Context, id uint64, r client.StateReport) error {
	return c.do(ctx, func(ctx context.Context, cl *client.Client) error { return cl.Agent().SetSnapshotState(ctx, id, r) })
}

// SetBackupState reports a backup's state change to the controllers.
func (c *controllers) SetBackupState(ctx context.Context, id uint64, r client.StateReport) error {
	return c.do(ctx, func(ctx context.Context, cl *client.Client) error { return cl.Agent().SetBackupState(ctx, id, r) })
}

// vmHasDomain: the VM states in which its domain exists and is not being
// changed, so its snapshots and backups can be worked on. (The controller
// refuses a VM state change while a snapshot is not RUNNING, and takes
// snapshots and backups of RUNNING VMs only.)
func vmHasDomain(state int) bool { return state == api.StateRunning || state == api.StateQuiesced }

// vmIdle: the VM has no step of its own under way (a stable state, or one
// the agent does nothing for: UNRESOURCED, CLOSED, ...), so its snapshots
// and backups may be deleted even when it has no domain: the controller
// accepts a user's delete of those of an UNRESOURCED VM, and a delete
// finds a missing domain or copy already deleted.
func vmIdle(state int) bool {
	p, ok := statePlans[state]
	return !ok || p.claim == 0 && p.stable == 0
}

// isDelete: the state asks for the object's delete.
func isDelete(state int) bool { return state == api.StateScrub || state == api.StateScrubbing }

// runChild takes one snapshot or backup (kind) of a VM through its state
// machine m; do performs a step.
func (h *vmHandler) runChild(ctx context.Context, m *machine, kind string, o object,
	do func(ctx context.Context, act action) error, log hclog.Logger) error {
	key := fmt.Sprintf("%s/%d", kind, o.id)
	res, err := m.run(ctx, o, steps{do: do, failed: func(err error) string { return h.failedKey(key, err) }}, log)
	h.metrics.reconciled(kind, res)
	if err != nil {
		return fmt.Errorf("%s %d: %w", kind, o.id, err)
	}
	h.clearFailures(key)
	return nil
}

// applySnapshots drives the VM's snapshots (by id, so a parent is taken
// before its child) and then its backups. One failing does not stop the
// others; the errors are returned together (retried with backoff).
func (h *vmHandler) applySnapshots(ctx context.Context, spec *api.VMSpec, log hclog.Logger) error {
	// Takes, reverts and restores need the domain; deletes only that the
	// VM's own step is not under way.
	hasDomain := vmHasDomain(spec.State)
	if !hasDomain && !vmIdle(spec.State) {
		return nil
	}
	var errs []error
	for _, s := range spec.Snapshots {
		if _, ok := snapshotPlans[s.State]; !ok || !hasDomain && !isDelete(s.State) {
			continue
		}
		l := log.With("snapshot", s.ID, "snapshot_state", s.State)
		errs = append(errs, h.runChild(ctx, h.snaps, api.KindSnapshot, object{id: s.ID, generation: s.Generation, state: s.State},
			func(ctx context.Context, act action) error { return h.doSnapshot(ctx, spec, &s, act, l) }, l))
	}
	for _, b := range spec.Backups {
		if _, ok := backupPlans[b.State]; !ok || !hasDomain && !isDelete(b.State) {
			continue
		}
		l := log.With("backup", b.ID, "backup_state", b.State)
		errs = append(errs, h.runChild(ctx, h.backups, api.KindBackup, object{id: b.ID, generation: b.Generation, state: b.State},
			func(ctx context.Context, act action) error { return h.doBackup(ctx, spec, &b, act, l) }, l))
	}
	return errors.Join(errs...)
}

func (h *vmHandler) doSnapshot(ctx context.Context, spec *api.VMSpec, s *api.SnapshotSpec, act action, log hclog.Logger) error {
	start := time.Now()
	name := vm.SnapshotName(s.ID)
	var op string
	var err error
	switch act {
	case actTake:
		op = "take"
		err = h.b.SnapshotCreate(ctx, spec, name)
	case actRevert:
		op = "revert"
		err = h.b.SnapshotRevert(ctx, spec, name, s.Generation)
	case actDelete:
		op = "delete"
		err = h.b.SnapshotDelete(ctx, spec, name, s.RemoveSubtree)
	default:
		return nil
	}
	took := time.Since(start)
	h.metrics.built(api.KindSnapshot, op, took)
	if err == nil {
		log.Info("snapshot "+op, "domain", h.b.DomainName(spec), "name", name, "took", took.Round(time.Millisecond))
	}
	return err
}

func (h *vmHandler) doBackup(ctx context.Context, spec *api.VMSpec, b *api.BackupSpec, act action, log hclog.Logger) error {
	start := time.Now()
	name := vm.BackupName(b.ID)
	var op, dir string
	var err error
	switch act {
	case actTake:
		op = "take"
		dir, err = h.b.Backup(ctx, spec, name)
	case actRevert:
		op = "restore"
		err = h.b.BackupRestore(ctx, spec, name, b.Generation)
	case actDelete:
		op = "delete"
		err = h.b.BackupDelete(ctx, spec, name)
	default:
		return nil
	}
	took := time.Since(start)
	h.metrics.built(api.KindBackup, op, took)
	if err == nil {
		log.Info("backup "+op, "domain", h.b.DomainName(spec), "name", name, "dir", dir, "took", took.Round(time.Millisecond))
	}
	return err
}
