package daemon

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/regentcloud/regent/agent/vm"
	"github.com/regentcloud/regent/pkg/api"
)

// TestSnapshotStateMachine: a RUNNING VM's snapshots and backups go
// through the ROBOT map with libvirt names from their ids; stable ones
// are left alone.
func TestSnapshotStateMachine(t *testing.T) {
	h, b, c := newVMTest()
	c.states[7] = api.StateRunning
	spec := api.VMSpec{ID: 7, ProjectID: 3, State: api.StateRunning, Generation: 1,
		Snapshots: []api.SnapshotSpec{
			{ID: 101, State: api.StateRequested, Generation: 1},
			{ID: 102, State: api.StateRunningUpdate, Generation: 2},
			{ID: 103, State: api.StateScrub, RemoveSubtree: true, Generation: 1},
			{ID: 104, State: api.StateBuilding, Generation: 1}, // resumed after a restart
			{ID: 105, State: api.StateRunning, Generation: 1},
			{ID: 106, State: api.StateUnresourced, Generation: 1},
		},
		Backups: []api.BackupSpec{
			{ID: 201, State: api.StateRequested, Generation: 1},
			{ID: 202, State: api.StateScrub, Generation: 1},
			{ID: 203, State: api.StateScrubbing, Generation: 1},
			{ID: 204, State: api.StateRunningUpdate, Generation: 2},
		}}
	want := map[uint64]int{101: api.StateRunning, 102: api.StateRunning, 103: api.StateClosed, 104: api.StateRunning,
		105: api.StateRunning, 106: api.StateUnresourced, 201: api.StateRunning, 202: api.StateClosed, 203: api.StateClosed, 204: api.StateRunning}
	for _, s := range spec.Snapshots {
		c.states[s.ID] = s.State
	}
	for _, bk := range spec.Backups {
		c.states[bk.ID] = bk.State
	}
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	for id, st := range want {
		if got := c.state(id); got != st {
			t.Errorf("%d: state %d, want %d", id, got, st)
		}
	}
	wantCalls := []string{"build 7", "snapshot-create 7 snapshot-101", "snapshot-revert 7 snapshot-102",
		"snapshot-delete(subtree=true) 7 snapshot-103", "snapshot-create 7 snapshot-104",
		"backup 7 backup-201", "backup-delete 7 backup-202", "backup-delete 7 backup-203", "backup-restore 7 backup-204"}
	if got := b.log(); !slices.Equal(got, wantCalls) {
		t.Errorf("builder calls\n%q\nwant\n%q", got, wantCalls)
	}
	// A VM that is not built yet leaves its snapshots alone.
	h, b, c = newVMTest()
	c.states[8], c.states[111] = api.StateRequested, api.StateRequested
	if err := h.Apply(context.Background(), api.VMSpec{ID: 8, State: api.StateRequested, Generation: 1,
		Snapshots: []api.SnapshotSpec{{ID: 111, State: api.StateRequested}}}); err != nil {
		t.Fatal(err)
	}
	if c.state(111) != api.StateRequested || slices.Contains(b.log(), "snapshot-create 8 snapshot-111") {
		t.Errorf("a snapshot of an unbuilt VM was taken: %v", b.log())
	}
}

// TestBackupFailure: an unwritable backup directory puts the backup
// UNRESOURCED with its code at once; a plain libvirt error is retried; the
// VM and its other objects are not affected.
func TestBackupFailure(t *testing.T) {
	h, b, c := newVMTest()
	c.states[7], c.states[301], c.states[302] = api.StateRunning, api.StateRequested, api.StateRequested
	b.errs["backup"] = &vm.Error{Code: vm.CodeBackupDir, Err: errors.New("mkdir /backups/x: not a directory")}
	spec := api.VMSpec{ID: 7, State: api.StateRunning, Generation: 1,
		Snapshots: []api.SnapshotSpec{{ID: 302, State: api.StateRequested, Generation: 1}},
		Backups:   []api.BackupSpec{{ID: 301, State: api.StateRequested, Generation: 1}}}
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatalf("an UNRESOURCED backup is not a retry: %v", err)
	}
	if c.state(301) != api.StateUnresourced || c.state(302) != api.StateRunning || c.state(7) != api.StateRunning {
		t.Fatalf("states: backup %d snapshot %d vm %d", c.state(301), c.state(302), c.state(7))
	}
	last := c.reports[len(c.reports)-1]
	if last.ErrorCode != vm.CodeBackupDir || last.ErrorDetail == "" {
		t.Errorf("report %+v", last)
	}
	// Its user deletes it (3 → 8, same generation): the agent deletes
	// what is left and reports it CLOSED.
	c.states[301] = api.StateScrub
	del := spec
	del.Snapshots = nil
	del.Backups = []api.BackupSpec{{ID: 301, State: api.StateScrub, Generation: 1}}
	if err := h.Apply(context.Background(), del); err != nil {
		t.Fatalf("delete of the failed backup: %v", err)
	}
	if c.state(301) != api.StateClosed || !slices.Contains(b.log(), "backup-delete 7 backup-301") {
		t.Errorf("failed backup deleted by its user: state %d, calls %q", c.state(301), b.log())
	}
	// A plain libvirt error: retried (BUILDING kept) until maxLibvirtFailures.
	c.states[303] = api.StateRequested
	b.errs["backup"] = &vm.Error{Code: vm.CodeLibvirt, Err: errors.New("virDomainSnapshotCreateXML: busy")}
	spec.Backups = []api.BackupSpec{{ID: 303, State: api.StateRequested, Generation: 1}}
	for i := 1; i < maxLibvirtFailures; i++ {
		if err := h.Apply(context.Background(), spec); err == nil {
			t.Fatalf("attempt %d: no error to retry", i)
		}
		spec.Backups[0].State = c.state(303)
		if c.state(303) != api.StateBuilding {
			t.Fatalf("attempt %d: state %d", i, c.state(303))
		}
	}
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if c.state(303) != api.StateUnresourced {
		t.Errorf("after %d libvirt failures: %d", maxLibvirtFailures, c.state(303))
	}
	// A refused restore: UNRESOURCED at once, with the builder's code.
	c.states[304] = api.StateRunningUpdate
	b.errs["backup-restore"] = &vm.Error{Code: vm.CodeRestoreRefused, Err: errors.New("the VM has snapshots taken after the backup (snapshot-9)")}
	spec.Backups = []api.BackupSpec{{ID: 304, State: api.StateRunningUpdate, Generation: 2}}
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if last := c.reports[len(c.reports)-1]; c.state(304) != api.StateUnresourced || last.ErrorCode != vm.CodeRestoreRefused {
		t.Errorf("refused restore: state %d, report %+v", c.state(304), last)
	}
}

// TestSnapshotStaleSpec: a spec fetched between the claim and the report
// (RUNNING_UPDATING) does not revert the VM a second time; a new revert
// (a new generation) does.
func TestSnapshotStaleSpec(t *testing.T) {
	h, b, c := newVMTest()
	c.states[7], c.states[101] = api.StateRunning, api.StateRunningUpdate
	spec := api.VMSpec{ID: 7, State: api.StateRunning, Generation: 1,
		Snapshots: []api.SnapshotSpec{{ID: 101, State: api.StateRunningUpdate, Generation: 2}}}
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	spec.Snapshots[0].State = api.StateRunningUpdating // the claim's index
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	reverts := func() (n int) {
		for _, c := range b.log() {
			if c == "snapshot-revert 7 snapshot-101" {
				n++
			}
		}
		return n
	}
	if n := reverts(); n != 1 || c.state(101) != api.StateRunning {
		t.Fatalf("%d reverts, state %d; want 1 and RUNNING", n, c.state(101))
	}
	c.states[101] = api.StateRunningUpdate
	spec.Snapshots[0] = api.SnapshotSpec{ID: 101, State: api.StateRunningUpdate, Generation: 3}
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if n := reverts(); n != 2 {
		t.Errorf("a second revert request: %d reverts, want 2", n)
	}
}

// TestClosedIsForgotten: a snapshot, backup or VM the agent reported
// CLOSED leaves nothing in its machine (the agent runs for months and
// every snapshot ever taken would stay).
func TestClosedIsForgotten(t *testing.T) {
	h, _, c := newVMTest()
	c.states[7] = api.StateRunning
	spec := api.VMSpec{ID: 7, ProjectID: 3, State: api.StateRunning, Generation: 1,
		Snapshots: []api.SnapshotSpec{{ID: 101, State: api.StateScrub, Generation: 1}},
		Backups:   []api.BackupSpec{{ID: 201, State: api.StateScrubbing, Generation: 1}}}
	c.states[101], c.states[201] = api.StateScrub, api.StateScrubbing
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if c.state(101) != api.StateClosed || c.state(201) != api.StateClosed {
		t.Fatalf("states %d %d, want CLOSED", c.state(101), c.state(201))
	}
	for _, m := range []*machine{h.snaps, h.backups} {
		m.mu.Lock()
		n, f := len(m.reported), len(m.finished)
		m.mu.Unlock()
		if n != 0 || f != 0 {
			t.Errorf("%s machine keeps %d reported and %d finished entries of CLOSED objects", m.kind, n, f)
		}
	}
}

// TestDeleteOfUnresourcedVMsObjects: the user deletes a snapshot and a
// backup of an UNRESOURCED VM (the controller accepts it): the agent
// deletes them (a missing domain counts as deleted) and reports them
// CLOSED; a take or revert still waits for a domain, and nothing runs
// while the VM's own step is under way.
func TestDeleteOfUnresourcedVMsObjects(t *testing.T) {
	h, b, c := newVMTest()
	c.states[7] = api.StateUnresourced
	c.states[101], c.states[102], c.states[103] = api.StateScrub, api.StateScrubbing, api.StateRunningUpdate
	c.states[201], c.states[202] = api.StateScrub, api.StateRequested
	spec := api.VMSpec{ID: 7, State: api.StateUnresourced, Generation: 1,
		Snapshots: []api.SnapshotSpec{{ID: 101, State: api.StateScrub, Generation: 1},
			{ID: 102, State: api.StateScrubbing, Generation: 1}, {ID: 103, State: api.StateRunningUpdate, Generation: 2}},
		Backups: []api.BackupSpec{{ID: 201, State: api.StateScrub, Generation: 1}, {ID: 202, State: api.StateRequested, Generation: 1}}}
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]int{101: api.StateClosed, 102: api.StateClosed, 103: api.StateRunningUpdate,
		201: api.StateClosed, 202: api.StateRequested, 7: api.StateUnresourced}
	for id, st := range want {
		if got := c.state(id); got != st {
			t.Errorf("%d: state %d, want %d", id, got, st)
		}
	}
	wantCalls := []string{"snapshot-delete(subtree=false) 7 snapshot-101", "snapshot-delete(subtree=false) 7 snapshot-102",
		"backup-delete 7 backup-201"}
	if got := b.log(); !slices.Equal(got, wantCalls) {
		t.Errorf("builder calls\n%q\nwant\n%q", got, wantCalls)
	}
	// A VM being scrubbed (its own step under way) leaves them alone.
	h, b, c = newVMTest()
	c.states[8], c.states[111] = api.StateScrubPrep, api.StateScrub
	if err := h.Apply(context.Background(), api.VMSpec{ID: 8, State: api.StateScrubPrep, Generation: 1,
		Snapshots: []api.SnapshotSpec{{ID: 111, State: api.StateScrub, Generation: 1}}}); err != nil {
		t.Fatal(err)
	}
	if c.state(111) != api.StateScrub || slices.Contains(b.log(), "snapshot-delete(subtree=false) 8 snapshot-111") {
		t.Errorf("a snapshot of a VM with its own step under way was deleted: %v", b.log())
	}
}

// TestRevertNotRepeatedWhenReportFails: a revert and a restore done whose
// report fails (the controller does not answer) are reported again at the
// retry, not done again (that would throw away what the VM did since).
func TestRevertNotRepeatedWhenReportFails(t *testing.T) {
	h, b, c := newVMTest()
	c.states[7], c.states[101], c.states[201] = api.StateRunning, api.StateRunningUpdate, api.StateRunningUpdate
	spec := api.VMSpec{ID: 7, State: api.StateRunning, Generation: 1,
		Snapshots: []api.SnapshotSpec{{ID: 101, State: api.StateRunningUpdate, Generation: 2}},
		Backups:   []api.BackupSpec{{ID: 201, State: api.StateRunningUpdate, Generation: 3}}}
	unavailable := errors.New("controller unavailable")
	c.failReport = map[uint64]error{101: unavailable, 201: unavailable}
	if err := h.Apply(context.Background(), spec); err == nil {
		t.Fatal("the failed reports are not retried")
	}
	for _, id := range []uint64{101, 201} {
		if c.state(id) != api.StateRunningUpdating {
			t.Fatalf("%d: state %d after the failed report, want RUNNING_UPDATING", id, c.state(id))
		}
	}
	// The retry: the spec of the claims' index.
	spec.Snapshots[0].State, spec.Backups[0].State = api.StateRunningUpdating, api.StateRunningUpdating
	if err := h.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{101, 201} {
		if c.state(id) != api.StateRunning {
			t.Errorf("%d: state %d after the retry, want RUNNING", id, c.state(id))
		}
	}
	n := map[string]int{}
	for _, call := range b.log() {
		n[call]++
	}
	if n["snapshot-revert 7 snapshot-101"] != 1 || n["backup-restore 7 backup-201"] != 1 {
		t.Errorf("calls %q: want one revert and one restore", b.log())
	}
}
