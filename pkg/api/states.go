package api

import (
	"fmt"
	"net/http"
	"slices"
)

// Numeric states of the CloudCIX compute objects (cloudcix-facts §2.1).
const (
	StateInAPI            = -1
	StateIgnore           = 0
	StateRequested        = 1
	StateBuilding         = 2
	StateUnresourced      = 3
	StateRunning          = 4
	StateQuiesce          = 5
	StateQuiesced         = 6
	StateRestart          = 7
	StateScrub            = 8
	StateScrubQueue       = 9
	StateRunningUpdate    = 10
	StateRunningUpdating  = 11
	StateQuiescing        = 12
	StateRestarting       = 13
	StateScrubPrep        = 14
	StateQuiescedUpdate   = 15
	StateQuiescedUpdating = 16
	StateScrubbing        = 17
	StateClosed           = 99
)

// StateNames names every state, for messages and docs.
var StateNames = map[int]string{
	StateInAPI: "IN_API", StateIgnore: "IGNORE", StateRequested: "REQUESTED", StateBuilding: "BUILDING",
	StateUnresourced: "UNRESOURCED", StateRunning: "RUNNING", StateQuiesce: "QUIESCE", StateQuiesced: "QUIESCED",
	StateRestart: "RESTART", StateScrub: "SCRUB", StateScrubQueue: "SCRUB_QUEUE", StateRunningUpdate: "RUNNING_UPDATE",
	StateRunningUpdating: "RUNNING_UPDATING", StateQuiescing: "QUIESCING", StateRestarting: "RESTARTING",
	StateScrubPrep: "SCRUB_PREP", StateQuiescedUpdate: "QUIESCED_UPDATE", StateQuiescedUpdating: "QUIESCED_UPDATING",
	StateScrubbing: "SCRUBBING", StateClosed: "CLOSED",
}

// AllStates lists every state value in order, IN_API included: the domain
// of the transition table test.
var AllStates = []int{StateInAPI, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, StateClosed}

// ValidState reports whether s is in CloudCIX's VALID_RANGE (0..17, 99):
// a value a PATCH may ask for.
func ValidState(s int) bool { return (s >= 0 && s <= 17) || s == StateClosed }

// RobotMap is the ROBOT transition map (from → allowed targets).
var RobotMap = map[int][]int{
	StateRequested:        {StateBuilding, StateUnresourced},
	StateBuilding:         {StateUnresourced, StateRunning},
	StateUnresourced:      {StateRequested, StateQuiesce, StateRestart, StateScrub, StateRunningUpdate, StateQuiescedUpdate},
	StateQuiesce:          {StateQuiescing},
	StateRestart:          {StateRestarting},
	StateScrub:            {StateScrubPrep, StateScrubbing},
	StateScrubQueue:       {StateScrubbing},
	StateRunningUpdate:    {StateRunningUpdating},
	StateRunningUpdating:  {StateUnresourced, StateRunning},
	StateQuiescing:        {StateUnresourced, StateQuiesced},
	StateRestarting:       {StateUnresourced, StateRunning},
	StateScrubPrep:        {StateUnresourced, StateScrubQueue},
	StateQuiescedUpdate:   {StateQuiescedUpdating},
	StateQuiescedUpdating: {StateUnresourced, StateQuiesced},
	StateScrubbing:        {StateUnresourced, StateClosed},
}

// UserMap is the USER transition map of VMs and virtual routers.
var UserMap = map[int][]int{
	StateRunning:    {StateQuiesce, StateScrub, StateRunningUpdate},
	StateQuiesced:   {StateRestart, StateScrub, StateQuiescedUpdate},
	StateScrubQueue: {StateRestart},
}

// BackupUserMap is the USER map of snapshots and backups: RUNNING →
// RUNNING_UPDATE (a snapshot: revert to it) or SCRUB; they have no delete
// queue. A failed one (UNRESOURCED) may be deleted too (3 → SCRUB), which
// the reference's map (4 only) leaves to operators: a failed snapshot is
// not CLOSED, so it would hold its VM's delete (and its project's) for
// ever (docs/compute-model.md).
var BackupUserMap = map[int][]int{
	StateRunning:     {StateRunningUpdate, StateScrub},
	StateUnresourced: {StateScrub},
}

// BackupRobotMap is the ROBOT map of snapshots and backups (cloudcix-facts
// §2.4: 1→2→4, 4→10→11→4, 4→8→17→99, no delete queue; §3.5: a failed
// step goes to UNRESOURCED). From UNRESOURCED the robot retries what
// applies to them: build (1), revert or restore (10), delete (8).
var BackupRobotMap = map[int][]int{
	StateRequested:       {StateBuilding, StateUnresourced},
	StateBuilding:        {StateUnresourced, StateRunning},
	StateUnresourced:     {StateRequested, StateScrub, StateRunningUpdate},
	StateScrub:           {StateScrubbing},
	StateRunningUpdate:   {StateRunningUpdating},
	StateRunningUpdating: {StateUnresourced, StateRunning},
	StateScrubbing:       {StateUnresourced, StateClosed},
}

// State sets (cloudcix-facts §2.3).
var (
	RobotProcessStates = []int{StateRequested, StateQuiesce, StateRestart, StateScrub, StateScrubQueue, StateRunningUpdate, StateQuiescedUpdate}
	StableStates       = []int{StateRunning, StateQuiesced, StateScrubQueue, StateClosed}
	ScrubStates        = []int{StateScrub, StateScrubPrep, StateScrubQueue, StateScrubbing}
	SendEmailStates    = []int{StateRequested, StateQuiesce, StateRestart, StateScrub, StateRunningUpdate, StateQuiescedUpdate}
	BOMCreateStates    = []int{StateRequested, StateRunningUpdate, StateQuiescedUpdate, StateScrub, StateRestart, StateQuiesced}
	// VMRestoreMap is the per-VM target when a whole project is restored.
	VMRestoreMap = map[int]int{StateRunning: StateRestart, StateQuiesced: StateQuiesced}
	// ShutDownStates: a project is shut down when its router and VMs are all in these.
	ShutDownStates = []int{StateScrub, StateScrubPrep, StateScrubQueue, StateScrubbing, StateClosed}
)

// IsStable reports whether s is a stable state.
func IsStable(s int) bool { return slices.Contains(StableStates, s) }

// InProgress maps a request state to the robot's in-progress state (§3.5).
var InProgress = map[int]int{
	StateRequested: StateBuilding, StateQuiesce: StateQuiescing, StateScrub: StateScrubPrep, StateRestart: StateRestarting,
	StateRunningUpdate: StateRunningUpdating, StateQuiescedUpdate: StateQuiescedUpdating, StateScrubQueue: StateScrubbing,
}

// Kinds of objects with a state, for Transition.
const (
	KindVM            = "vm"
	KindVirtualRouter = "virtual_router"
	KindSnapshot      = "snapshot"
	KindBackup        = "backup"
)

// Actors of a state change.
const (
	ActorUser  = "user"
	ActorRobot = "robot"
)

// TransitionMap returns the map that governs kind for actor: VMs and
// virtual routers follow the ROBOT or USER map, snapshots and backups
// their own (no quiesce, restart or delete queue).
func TransitionMap(kind, actor string) map[int][]int {
	backup := kind == KindSnapshot || kind == KindBackup
	switch {
	case actor == ActorRobot && backup:
		return BackupRobotMap
	case actor == ActorRobot:
		return RobotMap
	case backup:
		return BackupUserMap
	}
	return UserMap
}

// Transition checks a state change of an object of kind by actor, with the
// CloudCIX codes of service's update method: 105 target outside
// VALID_RANGE, 106 no transition leaves the current state, 107 the target
// is not allowed from it. Sending the current state again is a no-op:
// changed is false and err nil. Guards that depend on other objects (GPUs,
// snapshots) are the caller's.
func Transition(service, kind, actor string, from, to int) (changed bool, err error) {
	c := func(n int) string { return fmt.Sprintf("iaas_%s_update_%03d", service, n) }
	if !ValidState(to) {
		return false, stateErr(c(105), "state %d is not a valid state: valid states are 0 to 17 and 99.", to)
	}
	if from == to {
		return false, nil
	}
	m := TransitionMap(kind, actor)
	targets, ok := m[from]
	if !ok {
		return false, stateErr(c(106), "The %s is in state %d (%s), from which a %s cannot change its state.", kind, from, StateNames[from], actor)
	}
	if !slices.Contains(targets, to) {
		return false, stateErr(c(107), "A %s cannot move a %s from state %d (%s) to %d (%s); allowed: %v.", actor, kind, from, StateNames[from], to, StateNames[to], targets)
	}
	return true, nil
}

func stateErr(code, format string, args ...any) error {
	fe := FieldErrors{}
	fe.Add("state", code, format, args...)
	e := fe.Err().(*Error)
	e.Status = http.StatusBadRequest
	return e
}
