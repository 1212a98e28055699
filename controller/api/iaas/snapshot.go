package iaas

// snapshot, snapshot_tree, snapshot_history, backup and backup_history.

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// SnapshotUpdateInput is the body of a snapshot or backup update: a state
// change, a new name, or both; snapshots also take remove_subtree.
type SnapshotUpdateInput struct {
	StateInput
	RemoveSubtree *bool   `json:"remove_subtree"`
	Name          *string `json:"name"`
}

// snapshotShape checks vm_id (101 missing, 102 unknown) and name (103);
// state adds 104 (VM not RUNNING), 105 (GPUs), and for snapshots 106/107
// (the active snapshot is not unique or busy).
func snapshotShape(q *api.Request, in *wire.SnapshotInput) (uint64, string, error) {
	fe := wire.FieldErrors{}
	var vm uint64
	if required(fe, q, "vm_id", in.VMID != nil, 101) {
		if v, ok := q.Txn.VM(*in.VMID); !ok || !seesTenant(q, v.MemberID, v.RegionID) {
			fe.Add("vm_id", q.Code(102), "VM %d does not exist.", *in.VMID)
		} else {
			vm = v.ID
		}
	}
	name := ""
	if msg := nameFault(in.Name, 128); msg != "" {
		fe.Add("name", q.Code(103), "%s", msg)
	} else {
		name = strings.TrimSpace(*in.Name)
	}
	return vm, name, fe.Err()
}

// snapshotStateCommand builds the state change of a snapshot or backup of
// vm with the same generic path as a VM's (stateCommand, then SetState:
// robots the ROBOT map with compare-and-swap, observed_generation and the
// error of UNRESOURCED); remove_subtree alone (snapshots, users) keeps the
// state and sets the flag.
func snapshotStateCommand(q *api.Request, holders AgentHolders, kind string, id, vm uint64, curState int, in *SnapshotUpdateInput) (*fsm.Command, error) {
	if v, ok := q.Txn.VM(vm); ok {
		if err := robotOnServer(q, v); err != nil {
			return nil, err
		}
	}
	if in.RemoveSubtree != nil && kind != wire.KindSnapshot {
		return nil, wire.Errorf(http.StatusBadRequest, q.Code(115), "remove_subtree is a snapshot field.")
	}
	if (in.RemoveSubtree != nil || in.Name != nil) && q.P.Role == auth.Robot {
		return nil, wire.Errorf(http.StatusForbidden, q.Code(203), "remove_subtree and name are the user's choice.")
	}
	var name *string
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if msg := nameFault(&n, 128); msg != "" {
			fe := wire.FieldErrors{}
			fe.Add("name", q.Code(103), "%s", msg)
			return nil, fe.Err()
		}
		name = &n
	}
	if !in.present() {
		if in.RemoveSubtree == nil && name == nil {
			fe := wire.FieldErrors{}
			or := "name"
			if kind == wire.KindSnapshot {
				or = "name, or remove_subtree"
			}
			fe.Add("state", q.Code(104), "state is required (or %s).", or)
			return nil, fe.Err()
		}
	}
	ch, err := stateCommand(q, holders, kind, id, curState, &in.StateInput)
	if err != nil {
		return nil, err
	}
	ch.RemoveSubtree, ch.Name = in.RemoveSubtree, name
	return q.Command(fsm.StateChangeIfType, ch)
}

func registerSnapshot(a *api.API, opts Options) {
	api.Register(a, api.Service[*wire.Snapshot]{
		App: App, Name: "snapshot", Tables: []string{state.Snapshots},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"vm_id": query.Number, "project_id": query.Number,
			"member_id": query.Number, "region_id": query.Number, "parent_id": query.Number, "state": query.Number,
			"active": query.Bool, "name": query.String}),
			Ordering:   []string{"id", "vm_id", "name", "state", "created", "updated"},
			ZeroIsNull: []string{"parent_id"}},
		All:     (*state.ReadTxn).SnapshotList,
		Get:     (*state.ReadTxn).Snapshot,
		Visible: func(q *api.Request, s *wire.Snapshot) bool { return seesTenant(q, s.MemberID, s.RegionID) },
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.SnapshotInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if in.Repository != nil {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(108), "repository is a backup field.")
			}
			vm, name, err := snapshotShape(q, &in)
			if err != nil {
				return nil, err
			}
			return q.Command(fsm.SnapshotCreateType, &state.SnapshotCreatePayload{VMID: vm, Name: name})
		},
		Update: func(q *api.Request, cur *wire.Snapshot, _ bool) (*fsm.Command, error) {
			var in SnapshotUpdateInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			return snapshotStateCommand(q, opts.AgentHolders, wire.KindSnapshot, cur.ID, cur.VMID, cur.State, &in)
		},
	})
	handle(a, "GET /iaas/snapshot_tree/{vm_id}/{$}", "snapshot_tree", auth.Read, func(q *api.Request) error {
		if err := q.Blocking(state.Snapshots); err != nil {
			return err
		}
		id, err := strconv.ParseUint(q.PathValue("vm_id"), 10, 64)
		vm, ok := q.Txn.VM(id)
		if err != nil || !ok || !seesTenant(q, vm.MemberID, vm.RegionID) {
			return wire.NotFound(q.Code(1))
		}
		q.W.Header().Set("X-Regent-Index", strconv.FormatUint(max(q.Txn.MaxIndex(state.Snapshots), 1), 10))
		api.WriteJSON(q.W, http.StatusOK, wire.Item[any]{Content: map[string]any{"branches": q.Txn.SnapshotTree(vm.ID)}})
		return nil
	})
	api.Register(a, api.Service[*wire.ObjectHistory]{
		App: App, Name: "snapshot_history", NoRead: true, Tables: []string{state.SnapshotHistories},
		Query: historyQuery(),
		All:   (*state.ReadTxn).SnapshotHistoryList,
		Get: func(r *state.ReadTxn, id uint64) (*wire.ObjectHistory, bool) {
			return r.ObjectHistory(state.SnapshotHistories, id)
		},
		Visible: historyVisible,
	})
}

func historyQuery() query.Spec {
	return query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"object_id": query.Number, "vm_id": query.Number,
		"project_id": query.Number, "member_id": query.Number, "state": query.Number, "user_id": query.Number, "robot": query.Bool}),
		Ordering: []string{"id", "object_id", "vm_id", "created"}}
}

func historyVisible(q *api.Request, h *wire.ObjectHistory) bool {
	p, ok := q.Txn.Project(h.ProjectID)
	return ok && seesTenant(q, h.MemberID, p.RegionID)
}

func registerBackup(a *api.API, opts Options) {
	api.Register(a, api.Service[*wire.Backup]{
		App: App, Name: "backup", Tables: []string{state.Backups},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"vm_id": query.Number, "project_id": query.Number,
			"member_id": query.Number, "region_id": query.Number, "state": query.Number, "repository": query.Number,
			"name": query.String}),
			Ordering: []string{"id", "vm_id", "name", "state", "created", "updated"}},
		All:     (*state.ReadTxn).BackupList,
		Get:     (*state.ReadTxn).Backup,
		Visible: func(q *api.Request, b *wire.Backup) bool { return seesTenant(q, b.MemberID, b.RegionID) },
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.SnapshotInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			vm, name, err := snapshotShape(q, &in)
			if err != nil {
				return nil, err
			}
			repo := 1
			if in.Repository != nil {
				if *in.Repository < 1 {
					fe := wire.FieldErrors{}
					fe.Add("repository", q.Code(108), "repository must be a positive integer.")
					return nil, fe.Err()
				}
				repo = *in.Repository
			}
			return q.Command(fsm.BackupCreateType, &state.BackupCreatePayload{VMID: vm, Name: name, Repository: repo})
		},
		Update: func(q *api.Request, cur *wire.Backup, _ bool) (*fsm.Command, error) {
			var in SnapshotUpdateInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			return snapshotStateCommand(q, opts.AgentHolders, wire.KindBackup, cur.ID, cur.VMID, cur.State, &in)
		},
	})
	api.Register(a, api.Service[*wire.ObjectHistory]{
		App: App, Name: "backup_history", NoRead: true, Tables: []string{state.BackupHistories},
		Query: historyQuery(),
		All:   (*state.ReadTxn).BackupHistoryList,
		Get: func(r *state.ReadTxn, id uint64) (*wire.ObjectHistory, bool) {
			return r.ObjectHistory(state.BackupHistories, id)
		},
		Visible: historyVisible,
	})
}
