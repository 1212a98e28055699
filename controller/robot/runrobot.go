package robot

import (
	"sort"
	"time"

	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// Bucket is CloudCIX's run_robot bucket: object ids by what to do.
type Bucket struct {
	Build          []uint64 `json:"build"`
	Quiesce        []uint64 `json:"quiesce"`
	Restart        []uint64 `json:"restart"`
	Scrub          []uint64 `json:"scrub"`
	ScrubPrep      []uint64 `json:"scrubprep"`
	UpdateQuiesced []uint64 `json:"updatequiesced"`
	UpdateRunning  []uint64 `json:"updaterunning"`
	QuiescedUpdate []uint64 `json:"quiesced_update"`
	RunningUpdate  []uint64 `json:"running_update"`
}

func newBucket() *Bucket {
	return &Bucket{Build: []uint64{}, Quiesce: []uint64{}, Restart: []uint64{}, Scrub: []uint64{}, ScrubPrep: []uint64{},
		UpdateQuiesced: []uint64{}, UpdateRunning: []uint64{}, QuiescedUpdate: []uint64{}, RunningUpdate: []uint64{}}
}

// add files id by state; it reports whether the state asks for work.
func (b *Bucket) add(id uint64, s int, scrubDue bool) bool {
	switch s {
	case api.StateRequested:
		b.Build = append(b.Build, id)
	case api.StateQuiesce:
		b.Quiesce = append(b.Quiesce, id)
	case api.StateRestart:
		b.Restart = append(b.Restart, id)
	case api.StateScrub:
		b.ScrubPrep = append(b.ScrubPrep, id)
		b.Scrub = append(b.Scrub, id)
	case api.StateScrubQueue:
		if !scrubDue {
			return false
		}
		b.Scrub = append(b.Scrub, id)
	case api.StateQuiescedUpdate:
		b.UpdateQuiesced = append(b.UpdateQuiesced, id)
		b.QuiescedUpdate = append(b.QuiescedUpdate, id)
	case api.StateRunningUpdate:
		b.UpdateRunning = append(b.UpdateRunning, id)
		b.RunningUpdate = append(b.RunningUpdate, id)
	default:
		return false
	}
	return true
}

// addObject files a snapshot, backup or ceph id: like add, but SCRUB goes
// to scrub alone (CloudCIX lists scrubprep for VMs and routers only).
func (b *Bucket) addObject(id uint64, s int, scrubDue bool) bool {
	if s == api.StateScrub {
		b.Scrub = append(b.Scrub, id)
		return true
	}
	return b.add(id, s, scrubDue)
}

func (b *Bucket) merge(o *Bucket) {
	b.Build = append(b.Build, o.Build...)
	b.Quiesce = append(b.Quiesce, o.Quiesce...)
	b.Restart = append(b.Restart, o.Restart...)
	b.Scrub = append(b.Scrub, o.Scrub...)
	b.ScrubPrep = append(b.ScrubPrep, o.ScrubPrep...)
	b.UpdateQuiesced = append(b.UpdateQuiesced, o.UpdateQuiesced...)
	b.UpdateRunning = append(b.UpdateRunning, o.UpdateRunning...)
	b.QuiescedUpdate = append(b.QuiescedUpdate, o.QuiescedUpdate...)
	b.RunningUpdate = append(b.RunningUpdate, o.RunningUpdate...)
}

// RunRobot is the CloudCIX run_robot listing: per-driver buckets under
// resource, and the legacy merged keys.
type RunRobot struct {
	ProjectIDs     []uint64           `json:"project_ids"`
	Resource       map[string]*Bucket `json:"resource"`
	VirtualRouters *Bucket            `json:"virtual_routers"`
	VMs            *Bucket            `json:"vms"`
	Snapshots      *Bucket            `json:"snapshots"`
	Backups        *Bucket            `json:"backups"`
	Ceph           *Bucket            `json:"ceph"`
}

// RunRobotTables are what the listing depends on (blocking queries).
var RunRobotTables = []string{state.VMs, state.VirtualRouters, state.Projects, state.Snapshots, state.Backups}

// ListRunRobot lists what the robots of a region have to do, derived from
// object states alone (level-triggered: nothing is cleared by reading, so
// nothing can be lost between a read and an acknowledgement). Objects in
// SCRUB_QUEUE are listed once the project's grace period has passed at now.
func ListRunRobot(r *state.ReadTxn, region uint64, now time.Time) RunRobot {
	res := map[string]*Bucket{}
	for _, k := range []string{"virtual_router", "virtual_router_phantom", "vm_kvm", "vm_hyperv", "vm_phantom",
		"snapshot_kvm", "snapshot_hyperv", "backup_kvm", "backup_hyperv", "ceph", "gpu"} {
		res[k] = newBucket()
	}
	// CloudCIX lists projects and objects ordered by updated: the
	// modified_index orders them the same way, exactly (updated is stamped
	// by the leader at that index).
	type item struct {
		bucket  string
		id, mod uint64
		state   int
		due     bool
		object  bool // a snapshot or backup (addObject)
		project *api.Project
	}
	var items []item
	for _, p := range r.ProjectsInRegion(region) {
		if vr, ok := r.VirtualRouter(p.VirtualRouterID); ok {
			key := "virtual_router"
			if rt, ok := r.Router(vr.RouterID); ok && rt.Capacity == nil {
				key = "virtual_router_phantom"
			}
			items = append(items, item{key, vr.ID, vr.ModifiedIndex, vr.State, api.ScrubDue(vr.State, vr.StateChanged, p.GracePeriod, now), false, p})
		}
		for _, vm := range r.VMsOfProject(p.ID) {
			key := "vm_kvm"
			if s, ok := r.Server(vm.ServerID); ok {
				switch s.TypeID {
				case api.ServerTypeHyperV:
					key = "vm_hyperv"
				case api.ServerTypePhantom:
					key = "vm_phantom"
				}
			}
			items = append(items, item{key, vm.ID, vm.ModifiedIndex, vm.State, api.ScrubDue(vm.State, vm.StateChanged, p.GracePeriod, now), false, p})
			// Snapshots and backups go by their VM's driver; they have no
			// phantom bucket (a phantom VM's are filed as KVM's) and, with
			// no delete queue, SCRUB is listed under scrub only.
			driver := "_kvm"
			if key == "vm_hyperv" {
				driver = "_hyperv"
			}
			for _, s := range r.SnapshotsOfVM(vm.ID) {
				items = append(items, item{"snapshot" + driver, s.ID, s.ModifiedIndex, s.State, api.ScrubDue(s.State, s.StateChanged, p.GracePeriod, now), true, p})
			}
			for _, b := range r.BackupsOfVM(vm.ID) {
				items = append(items, item{"backup" + driver, b.ID, b.ModifiedIndex, b.State, api.ScrubDue(b.State, b.StateChanged, p.GracePeriod, now), true, p})
			}
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].mod != items[j].mod {
			return items[i].mod < items[j].mod
		}
		return items[i].id < items[j].id
	})
	projects := map[uint64]*api.Project{}
	for _, it := range items {
		var work bool
		if it.object {
			work = res[it.bucket].addObject(it.id, it.state, it.due)
		} else {
			work = res[it.bucket].add(it.id, it.state, it.due)
		}
		if work {
			projects[it.project.ID] = it.project
		}
	}
	out := RunRobot{ProjectIDs: []uint64{}, Resource: res, VirtualRouters: newBucket(), VMs: newBucket(),
		Snapshots: newBucket(), Backups: newBucket(), Ceph: newBucket()}
	ps := make([]*api.Project, 0, len(projects))
	for _, p := range projects {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].ModifiedIndex != ps[j].ModifiedIndex {
			return ps[i].ModifiedIndex < ps[j].ModifiedIndex
		}
		return ps[i].ID < ps[j].ID
	})
	for _, p := range ps {
		out.ProjectIDs = append(out.ProjectIDs, p.ID)
	}
	out.VirtualRouters.merge(res["virtual_router"])
	out.VirtualRouters.merge(res["virtual_router_phantom"])
	for _, k := range []string{"vm_kvm", "vm_hyperv", "vm_phantom"} {
		out.VMs.merge(res[k])
	}
	for _, k := range []string{"snapshot_kvm", "snapshot_hyperv"} {
		out.Snapshots.merge(res[k])
	}
	for _, k := range []string{"backup_kvm", "backup_hyperv"} {
		out.Backups.merge(res[k])
	}
	out.Ceph.merge(res["ceph"])
	return out
}
