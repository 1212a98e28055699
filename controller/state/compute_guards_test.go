package state

import (
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

// runningCloud is a cloud of one VM ("a", root 20 GB primary) whose VM
// and virtual router a robot has built (RUNNING).
func runningCloud(t *testing.T) (*computeFixture, *CloudResult) {
	t.Helper()
	x := newComputeFixture(t, [3]int{64, 1000, 16})
	res, err := x.create(x.cloud("p", x.vm("a", "10.0.0.10", false)))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		kind string
		id   uint64
	}{{api.KindVM, res.VMs[0].ID}, {api.KindVirtualRouter, res.VirtualRouter.ID}} {
		for _, s := range [][2]int{{api.StateBuilding, api.StateRequested}, {api.StateRunning, api.StateBuilding}} {
			x.ok("build", func(t *Txn) error {
				_, err := t.SetState(&StateChange{Kind: o.kind, ID: o.id, To: s[0], Expected: ptr(s[1]), Actor: Actor{Robot: true}})
				return err
			})
		}
	}
	return x, res
}

// snapshotOf takes a snapshot of vm and, with build, lets a robot build it.
func (x *computeFixture) snapshotOf(vm uint64, build bool) *api.Snapshot {
	x.t.Helper()
	var sn *api.Snapshot
	x.ok("snapshot", func(t *Txn) (err error) {
		sn, err = t.SnapshotCreate(&SnapshotCreatePayload{VMID: vm, Name: "s"})
		return
	})
	if build {
		for _, s := range [][2]int{{api.StateBuilding, api.StateRequested}, {api.StateRunning, api.StateBuilding}} {
			x.ok("snapshot build", func(t *Txn) error {
				_, err := t.SetState(&StateChange{Kind: api.KindSnapshot, ID: sn.ID, To: s[0], Expected: ptr(s[1]), Actor: Actor{Robot: true}})
				return err
			})
		}
	}
	return sn
}

// TestVMSpecChangeWaitsForSnapshots: a spec change moves the VM to
// RUNNING_UPDATE, a state change, so it is refused (110) while a snapshot
// is not RUNNING, as SetState refuses one; nothing changes.
func TestVMSpecChangeWaitsForSnapshots(t *testing.T) {
	x, res := runningCloud(t)
	vm := res.VMs[0]
	x.snapshotOf(vm.ID, false) // REQUESTED
	before := x.counts()
	err := x.do(func(t *Txn) error {
		_, err := t.VMUpdate(&VMUpdatePayload{Change: VMChange{ID: vm.ID, CPU: ptr(3)}, Placement: api.DefaultPlacement}, 0)
		return err
	})
	wantErr(t, "spec change with a busy snapshot", err, 400, "", "iaas_vm_update_110")
	err = x.do(func(t *Txn) error {
		_, err := t.StorageCreate(&StorageCreatePayload{VMID: vm.ID, Storage: StorageSpec{Name: "data", GB: 5}, Placement: api.DefaultPlacement})
		return err
	})
	wantErr(t, "disk added with a busy snapshot", err, 400, "", "iaas_storage_create_110")
	if got, _ := x.s.Read().VM(vm.ID); got.State != api.StateRunning || got.CPU != vm.CPU || got.Generation != vm.Generation {
		t.Errorf("a refused spec change changed the VM: %+v", got)
	}
	if after := x.counts(); after != before {
		t.Errorf("a refused spec change wrote: %s → %s", before, after)
	}
	// A name alone is no spec change: allowed.
	x.ok("rename", func(t *Txn) error {
		_, err := t.VMUpdate(&VMUpdatePayload{Change: VMChange{ID: vm.ID, Name: ptr("b")}, Placement: api.DefaultPlacement}, 0)
		return err
	})
}

// TestProjectDeleteWithSnapshots: deleting a whole project refuses, as a
// VM's own delete does, while a VM has a snapshot that is not CLOSED;
// nothing changes.
func TestProjectDeleteWithSnapshots(t *testing.T) {
	x, res := runningCloud(t)
	sn := x.snapshotOf(res.VMs[0].ID, true)
	del := func() error {
		return x.do(func(t *Txn) error {
			_, err := t.SetState(&StateChange{Kind: KindProject, ID: res.Project.ID, To: api.StateScrub, Actor: Actor{UserID: 2}})
			return err
		})
	}
	wantErr(t, "project delete with a snapshot", del(), 400, "state", "iaas_project_update_111")
	r := x.s.Read()
	if vm, _ := r.VM(res.VMs[0].ID); vm.State != api.StateRunning {
		t.Errorf("VM in state %d after a refused project delete", vm.State)
	}
	if vr, _ := r.VirtualRouter(res.VirtualRouter.ID); vr.State != api.StateRunning {
		t.Errorf("virtual router in state %d after a refused project delete", vr.State)
	}
	for _, s := range [][2]int{{api.StateScrub, api.StateRunning}, {api.StateScrubbing, api.StateScrub}, {api.StateClosed, api.StateScrubbing}} {
		x.ok("snapshot delete", func(t *Txn) error {
			ch := &StateChange{Kind: api.KindSnapshot, ID: sn.ID, To: s[0], Expected: ptr(s[1]), Actor: Actor{Robot: true}}
			if s[0] == api.StateScrub {
				ch.Expected, ch.Actor = nil, Actor{UserID: 2}
			}
			_, err := t.SetState(ch)
			return err
		})
	}
	if err := del(); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotRobotMap: a robot cannot take a snapshot or backup through
// SCRUB_PREP into the delete queue; SCRUB goes straight to SCRUBBING.
func TestSnapshotRobotMap(t *testing.T) {
	x, res := runningCloud(t)
	sn := x.snapshotOf(res.VMs[0].ID, true)
	x.ok("scrub", func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: api.KindSnapshot, ID: sn.ID, To: api.StateScrub, Actor: Actor{UserID: 2}})
		return err
	})
	err := x.do(func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: api.KindSnapshot, ID: sn.ID, To: api.StateScrubPrep, Expected: ptr(api.StateScrub), Actor: Actor{Robot: true}})
		return err
	})
	wantErr(t, "snapshot to SCRUB_PREP", err, 400, "state", "iaas_snapshot_update_107")
}

// TestVMSpecChangeStorages: a VM update names its existing disks by id or
// by name; it never duplicates a disk, shrinks one, moves the primary or
// adds a second primary. A refused change changes nothing.
func TestVMSpecChangeStorages(t *testing.T) {
	x, res := runningCloud(t)
	vm := res.VMs[0]
	root := x.s.Read().StoragesOfVM(vm.ID)[0]
	update := func(st ...StorageSpec) error {
		return x.do(func(t *Txn) error {
			_, err := t.VMUpdate(&VMUpdatePayload{Change: VMChange{ID: vm.ID, Storages: st}, Placement: api.DefaultPlacement}, 0)
			return err
		})
	}
	before := x.counts()
	for _, tc := range []struct {
		name string
		st   []StorageSpec
		code string
	}{
		{"shrink by name", []StorageSpec{{Name: "root", GB: 5, Primary: true}}, "iaas_vm_update_121"},
		{"shrink by id", []StorageSpec{{ID: root.ID, GB: 5}}, "iaas_vm_update_121"},
		{"new primary", []StorageSpec{{Name: "data", GB: 5, Primary: true}}, "iaas_vm_update_122"},
		{"same disk twice", []StorageSpec{{ID: root.ID, GB: 30}, {Name: "root", GB: 40}}, "iaas_vm_update_113"},
		{"new name twice", []StorageSpec{{Name: "data", GB: 5}, {Name: "data", GB: 6}}, "iaas_vm_update_113"},
		{"rename by id", []StorageSpec{{ID: root.ID, Name: "boot", GB: 30}}, "iaas_vm_update_120"},
	} {
		wantErr(t, tc.name, update(tc.st...), 400, "storages", tc.code)
	}
	if after := x.counts(); after != before {
		t.Fatalf("refused storage changes wrote: %s → %s", before, after)
	}
	// Growing root by name and adding data: two disks, root still primary.
	if err := update(StorageSpec{Name: "root", GB: 30, Primary: true}, StorageSpec{Name: "data", GB: 5}); err != nil {
		t.Fatal(err)
	}
	disks := x.s.Read().StoragesOfVM(vm.ID)
	if len(disks) != 2 || disks[0].Name != "root" || disks[0].GB != 30 || !disks[0].Primary || disks[1].Name != "data" || disks[1].Primary {
		t.Fatalf("disks after the update: %+v %+v", disks[0], disks[1:])
	}
	// data is not the primary, and cannot become it.
	x.ok("back to RUNNING", func(t *Txn) error {
		for _, s := range [][2]int{{api.StateRunningUpdating, api.StateRunningUpdate}, {api.StateRunning, api.StateRunningUpdating}} {
			if _, err := t.SetState(&StateChange{Kind: api.KindVM, ID: vm.ID, To: s[0], Expected: ptr(s[1]), Actor: Actor{Robot: true}}); err != nil {
				return err
			}
		}
		return nil
	})
	wantErr(t, "second primary", update(StorageSpec{Name: "data", GB: 5, Primary: true}), 400, "storages", "iaas_vm_update_122")
	// A storage create of a name the VM has is refused.
	err := x.do(func(t *Txn) error {
		_, err := t.StorageCreate(&StorageCreatePayload{VMID: vm.ID, Storage: StorageSpec{Name: "data", GB: 50}, Placement: api.DefaultPlacement})
		return err
	})
	wantErr(t, "storage create of a taken name", err, 400, "name", "iaas_storage_create_106")
}

// backupOf requests a backup of vm and lets a robot move it to each of
// states in turn (from REQUESTED).
func (x *computeFixture) backupOf(vm uint64, states ...int) *api.Backup {
	x.t.Helper()
	var b *api.Backup
	x.ok("backup", func(t *Txn) (err error) {
		b, err = t.BackupCreate(&BackupCreatePayload{VMID: vm, Name: "b"})
		return
	})
	from := api.StateRequested
	for _, to := range states {
		x.ok("backup state", func(t *Txn) error {
			ch := &StateChange{Kind: api.KindBackup, ID: b.ID, To: to, Expected: ptr(from), Actor: Actor{Robot: true}}
			if to == api.StateRunningUpdate || to == api.StateScrub {
				ch.Expected, ch.Actor = nil, Actor{UserID: 2} // the user's restore and delete
			}
			_, err := t.SetState(ch)
			return err
		})
		from = to
	}
	return b
}

// TestBackupLocksVM: while a backup of a VM is busy (being built,
// restored or deleted: any state but RUNNING, UNRESOURCED and CLOSED), the
// VM's disks are in use, so a user's state change of the VM (stop,
// restart, delete), a spec change (cpu, ram, disks) and the delete of its
// project are refused (400, nothing changed), as for a busy snapshot (facts §2.2 names snapshots only;
// docs/compute-model.md). A RUNNING backup (a finished copy) and a
// failed one lock nothing but the VM's delete (TestVMDeleteWithBackups);
// snapshots and backups of one VM may still be requested together (its
// agent runs them one after the other).
func TestBackupLocksVM(t *testing.T) {
	busy := map[string][]int{
		"requested":       nil,
		"building":        {api.StateBuilding},
		"restoring":       {api.StateBuilding, api.StateRunning, api.StateRunningUpdate},
		"restore running": {api.StateBuilding, api.StateRunning, api.StateRunningUpdate, api.StateRunningUpdating},
		"deleting":        {api.StateBuilding, api.StateRunning, api.StateScrub},
	}
	user := Actor{UserID: 2}
	for name, states := range busy {
		t.Run(name, func(t *testing.T) {
			x, res := runningCloud(t)
			vm := res.VMs[0]
			b := x.backupOf(vm.ID, states...)
			before := x.counts()
			vmBefore, _ := x.s.Read().VM(vm.ID)
			tries := []struct {
				what, field, code string
				op                func(*Txn) error
			}{
				{"stop", "state", "iaas_vm_update_110", func(t *Txn) error {
					_, err := t.SetState(&StateChange{Kind: api.KindVM, ID: vm.ID, To: api.StateQuiesce, Actor: user})
					return err
				}},
				{"delete", "state", "iaas_vm_update_110", func(t *Txn) error {
					_, err := t.SetState(&StateChange{Kind: api.KindVM, ID: vm.ID, To: api.StateScrub, Actor: user})
					return err
				}},
				{"spec change", "", "iaas_vm_update_110", func(t *Txn) error {
					_, err := t.VMUpdate(&VMUpdatePayload{Change: VMChange{ID: vm.ID, CPU: ptr(3)}, Placement: api.DefaultPlacement}, 0)
					return err
				}},
				{"disk added", "", "iaas_storage_create_110", func(t *Txn) error {
					_, err := t.StorageCreate(&StorageCreatePayload{VMID: vm.ID, Storage: StorageSpec{Name: "data", GB: 5}, Placement: api.DefaultPlacement})
					return err
				}},
				{"project delete", "state", "iaas_project_update_111", func(t *Txn) error {
					_, err := t.SetState(&StateChange{Kind: KindProject, ID: res.Project.ID, To: api.StateScrub, Actor: user})
					return err
				}},
			}
			for _, try := range tries {
				wantErr(t, try.what+" with backup "+name, x.do(try.op), 400, try.field, try.code)
			}
			if after := x.counts(); after != before {
				t.Errorf("refused changes wrote: %s → %s", before, after)
			}
			if got, _ := x.s.Read().VM(vm.ID); *got != *vmBefore {
				t.Errorf("refused changes changed the VM:\n%+v\n%+v", vmBefore, got)
			}
			if got, _ := x.s.Read().Backup(b.ID); got.State == api.StateRunning || got.State == api.StateClosed {
				t.Fatalf("backup in state %d is not busy", got.State)
			}
		})
	}

	// A finished backup (RUNNING) and a failed one (UNRESOURCED) do not
	// hold a spec change (the delete they do hold: TestVMDeleteWithBackups).
	x, res := runningCloud(t)
	vm := res.VMs[0]
	x.backupOf(vm.ID, api.StateBuilding, api.StateRunning)
	x.backupOf(vm.ID, api.StateBuilding, api.StateUnresourced)
	x.ok("spec change beside idle backups", func(t *Txn) error {
		_, err := t.VMUpdate(&VMUpdatePayload{Change: VMChange{ID: vm.ID, CPU: ptr(3)}, Placement: api.DefaultPlacement}, 0)
		return err
	})
}

// TestFailedSnapshotOrBackupIsDeletable: a snapshot or backup that failed
// (UNRESOURCED) is deleted by its user (3 → 8; the agent deletes whatever
// is left of it, 8 → 17 → 99). Otherwise a failed snapshot, which is not
// CLOSED, would hold the VM's delete (109) and its project's (111) for
// ever, with only an operator able to move it.
func TestFailedSnapshotOrBackupIsDeletable(t *testing.T) {
	x, res := runningCloud(t)
	vm := res.VMs[0]
	user := Actor{UserID: 2}
	sn := x.snapshotOf(vm.ID, false)
	x.ok("snapshot fails", func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: api.KindSnapshot, ID: sn.ID, To: api.StateUnresourced, Expected: ptr(api.StateRequested),
			ErrorCode: "vm_libvirt", ErrorDetail: "no room", Actor: Actor{Robot: true}})
		return err
	})
	b := x.backupOf(vm.ID, api.StateBuilding, api.StateUnresourced)
	err := x.do(func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: api.KindVM, ID: vm.ID, To: api.StateScrub, Actor: user})
		return err
	})
	wantErr(t, "VM delete with a failed snapshot", err, 400, "state", "iaas_vm_update_109")
	for _, o := range []struct {
		kind string
		id   uint64
	}{{api.KindSnapshot, sn.ID}, {api.KindBackup, b.ID}} {
		var got api.Object
		x.ok("user deletes the failed "+o.kind, func(t *Txn) (err error) {
			got, err = t.SetState(&StateChange{Kind: o.kind, ID: o.id, To: api.StateScrub, Actor: user})
			return
		})
		switch g := got.(type) {
		case *api.Snapshot:
			if g.State != api.StateScrub || g.ErrorCode != "" {
				t.Errorf("failed snapshot after the user's delete: %+v", g)
			}
		case *api.Backup:
			if g.State != api.StateScrub || g.ErrorCode != "" {
				t.Errorf("failed backup after the user's delete: %+v", g)
			}
		}
		for _, s := range [][2]int{{api.StateScrubbing, api.StateScrub}, {api.StateClosed, api.StateScrubbing}} {
			x.ok("robot deletes the "+o.kind, func(t *Txn) error {
				_, err := t.SetState(&StateChange{Kind: o.kind, ID: o.id, To: s[0], Expected: ptr(s[1]), Actor: Actor{Robot: true}})
				return err
			})
		}
	}
	x.ok("VM delete once they are gone", func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: api.KindVM, ID: vm.ID, To: api.StateScrub, Actor: user})
		return err
	})
}

// TestVMDeleteWithBackups: a VM with a backup that is not CLOSED cannot be
// deleted (109), nor its project (111), as with a snapshot: a deleted VM's
// backups would be stranded (the agent drives backups inside their VM's
// spec, and a CLOSED VM has none), their copies never removed. Nothing
// changes; once the user has deleted the backups (a failed one too), the
// VM goes.
func TestVMDeleteWithBackups(t *testing.T) {
	x, res := runningCloud(t)
	vm := res.VMs[0]
	user := Actor{UserID: 2}
	done := x.backupOf(vm.ID, api.StateBuilding, api.StateRunning)
	failed := x.backupOf(vm.ID, api.StateBuilding, api.StateUnresourced)
	before := x.counts()
	vmBefore, _ := x.s.Read().VM(vm.ID)
	err := x.do(func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: api.KindVM, ID: vm.ID, To: api.StateScrub, Actor: user})
		return err
	})
	wantErr(t, "VM delete with a backup", err, 400, "state", "iaas_vm_update_109")
	err = x.do(func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: KindProject, ID: res.Project.ID, To: api.StateScrub, Actor: user})
		return err
	})
	wantErr(t, "project delete with a backup", err, 400, "state", "iaas_project_update_111")
	if after := x.counts(); after != before {
		t.Errorf("refused deletes wrote: %s → %s", before, after)
	}
	if got, _ := x.s.Read().VM(vm.ID); *got != *vmBefore {
		t.Errorf("refused deletes changed the VM:\n%+v\n%+v", vmBefore, got)
	}
	if vr, _ := x.s.Read().VirtualRouter(res.VirtualRouter.ID); vr.State != api.StateRunning {
		t.Errorf("virtual router in state %d after a refused project delete", vr.State)
	}
	// A stop is no delete: a finished or failed backup does not hold it.
	x.ok("stop beside idle backups", func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: api.KindVM, ID: vm.ID, To: api.StateQuiesce, Actor: user})
		return err
	})
	for _, s := range [][2]int{{api.StateQuiescing, api.StateQuiesce}, {api.StateQuiesced, api.StateQuiescing}} {
		x.ok("robot stops the VM", func(t *Txn) error {
			_, err := t.SetState(&StateChange{Kind: api.KindVM, ID: vm.ID, To: s[0], Expected: ptr(s[1]), Actor: Actor{Robot: true}})
			return err
		})
	}
	for _, b := range []*api.Backup{done, failed} {
		x.ok("user deletes the backup", func(t *Txn) error {
			_, err := t.SetState(&StateChange{Kind: api.KindBackup, ID: b.ID, To: api.StateScrub, Actor: user})
			return err
		})
		for _, s := range [][2]int{{api.StateScrubbing, api.StateScrub}, {api.StateClosed, api.StateScrubbing}} {
			x.ok("robot deletes the backup", func(t *Txn) error {
				_, err := t.SetState(&StateChange{Kind: api.KindBackup, ID: b.ID, To: s[0], Expected: ptr(s[1]), Actor: Actor{Robot: true}})
				return err
			})
		}
	}
	x.ok("project delete once the backups are gone", func(t *Txn) error {
		_, err := t.SetState(&StateChange{Kind: KindProject, ID: res.Project.ID, To: api.StateScrub, Actor: user})
		return err
	})
}

// TestRestoreNeedsAStableVM: a backup restore or a snapshot revert
// (RUNNING → RUNNING_UPDATE) goes onto a RUNNING or QUIESCED VM only, whose
// domain exists and is not being changed. Onto a VM being built, stopped,
// started, updated or deleted, failed, in the delete queue or CLOSED it is
// 400 (iaas_backup_update_117, iaas_snapshot_update_117) and nothing
// changes; before, it was accepted whatever the VM's state.
func TestRestoreNeedsAStableVM(t *testing.T) {
	x, res := runningCloud(t)
	vm := res.VMs[0]
	sn := x.snapshotOf(vm.ID, true) // before the backup, which holds it (else 116)
	b := x.backupOf(vm.ID, api.StateBuilding, api.StateRunning)
	user := Actor{UserID: 2}
	setVM := func(st int) {
		x.ok("VM to "+api.StateNames[st], func(t *Txn) error {
			cur, _ := t.VM(vm.ID)
			n := *cur
			n.State = st
			return replace(t, VMs, &n, 0, "iaas_vm_update")
		})
	}
	restore := func(kind string, id uint64) error {
		return x.do(func(t *Txn) error {
			_, err := t.SetState(&StateChange{Kind: kind, ID: id, To: api.StateRunningUpdate, Actor: user})
			return err
		})
	}
	for _, st := range []int{api.StateRequested, api.StateBuilding, api.StateUnresourced, api.StateQuiesce, api.StateQuiescing,
		api.StateRestart, api.StateRestarting, api.StateRunningUpdate, api.StateRunningUpdating, api.StateQuiescedUpdate,
		api.StateQuiescedUpdating, api.StateScrub, api.StateScrubPrep, api.StateScrubQueue, api.StateScrubbing, api.StateClosed} {
		setVM(st)
		before := x.counts()
		r := x.s.Read()
		bBefore, _ := r.Backup(b.ID)
		snBefore, _ := r.Snapshot(sn.ID)
		wantErr(t, "restore onto a VM in "+api.StateNames[st], restore(api.KindBackup, b.ID), 400, "state", "iaas_backup_update_117")
		wantErr(t, "revert of a VM in "+api.StateNames[st], restore(api.KindSnapshot, sn.ID), 400, "state", "iaas_snapshot_update_117")
		r = x.s.Read()
		if got, _ := r.Backup(b.ID); *got != *bBefore {
			t.Errorf("a refused restore changed the backup:\n%+v\n%+v", bBefore, got)
		}
		if got, _ := r.Snapshot(sn.ID); *got != *snBefore {
			t.Errorf("a refused revert changed the snapshot:\n%+v\n%+v", snBefore, got)
		}
		if after := x.counts(); after != before {
			t.Errorf("a refused restore wrote: %s → %s", before, after)
		}
	}
	for _, st := range []int{api.StateQuiesced, api.StateRunning} {
		setVM(st)
		for _, o := range []struct {
			kind string
			id   uint64
		}{{api.KindBackup, b.ID}, {api.KindSnapshot, sn.ID}} {
			if err := restore(o.kind, o.id); err != nil {
				t.Fatalf("%s onto a %s VM: %v", o.kind, api.StateNames[st], err)
			}
			for _, s := range [][2]int{{api.StateRunningUpdating, api.StateRunningUpdate}, {api.StateRunning, api.StateRunningUpdating}} {
				x.ok("robot restores", func(t *Txn) error {
					_, err := t.SetState(&StateChange{Kind: o.kind, ID: o.id, To: s[0], Expected: ptr(s[1]), Actor: Actor{Robot: true}})
					return err
				})
			}
		}
	}
}
