package fsm

import (
	"github.com/regentcloud/regent/controller/state"
)

// Compute command types, 64 onwards (41–63 are reserved for IPAM work).
// Never renumber.
const (
	ProjectCreateType         MessageType = 64 // payload state.ProjectSpec; also creates the VR, pseudo-ASN and allocations
	ProjectUpdateType         MessageType = 65 // payload api.Project
	CloudCreateType           MessageType = 66 // payload state.CloudSpec: the whole project, atomically
	CloudUpdateType           MessageType = 67 // payload state.CloudSpec (ProjectID set)
	VMCreateType              MessageType = 68 // payload state.VMCreatePayload
	VMUpdateType              MessageType = 69 // payload state.VMUpdatePayload: a spec change
	StateChangeType           MessageType = 70 // payload state.StateChange: VM or virtual router, per-actor map, CAS
	StorageCreateType         MessageType = 71 // payload state.StorageCreatePayload
	StorageTypeCreateType     MessageType = 72
	StorageTypeUpdateType     MessageType = 73
	ImageCreateType           MessageType = 74
	ImageUpdateType           MessageType = 75
	RegionImageCreateType     MessageType = 76
	RegionImageDeleteType     MessageType = 77
	ServerCreateType          MessageType = 78
	ServerUpdateType          MessageType = 79
	ServerInterfaceCreateType MessageType = 80
	ServerInterfaceUpdateType MessageType = 81
	ServerInterfaceDeleteType MessageType = 82
	RouterCreateType          MessageType = 83
	RouterUpdateType          MessageType = 84
	VPNCreateType             MessageType = 85 // payload state.VPNPayload (carries the pre-shared key)
	VPNUpdateType             MessageType = 86 // payload state.VPNPayload; an empty key keeps the key
	VPNDeleteType             MessageType = 87 // payload state.VPNDeletePayload
	SnapshotCreateType        MessageType = 88 // payload state.SnapshotCreatePayload
	BackupCreateType          MessageType = 89 // payload state.BackupCreatePayload
	VirtualRouterSubnetsType  MessageType = 90 // payload state.VRSubnetsPayload: a virtual router's subnets, CAS on the router
	// StateChangeIfType is StateChangeType whose command Expect (If-Match, or
	// the modified_index the API read) is checked too. A new number, so that
	// StateChangeType entries already in logs, whose Expect was ignored,
	// replay as they were first applied.
	StateChangeIfType MessageType = 91 // payload state.StateChange
	// ClosedVPNsPurgeType deletes the VPNs of CLOSED virtual routers (ones
	// closed before state.Rules1 kept theirs, keys included). No payload;
	// proposed by the leader while state.ReadTxn.ClosedVPNsDue.
	ClosedVPNsPurgeType MessageType = 92
)

// ClosedVPNsPurged is the result of a ClosedVPNsPurgeType command.
type ClosedVPNsPurged struct {
	VPNs int `json:"vpns"` // how many VPNs were deleted
}

// stateActor is the command's caller as state records it.
func stateActor(c *Command) state.Actor {
	return state.Actor{UserID: c.Actor.UserID, TokenID: c.Actor.TokenID, MemberID: c.Actor.MemberID, Robot: c.Actor.Robot}
}

// withActor decodes a payload whose Actor field the command's actor
// overwrites: the caller is what the leader authenticated, never what the
// body says.
func withActor[T any](op func(*state.Txn, *T, uint64) (any, error), set func(*T, state.Actor)) handler {
	return func(t *state.Txn, c *Command) (any, error) {
		v, err := decode[T](c)
		if err != nil {
			return nil, err
		}
		set(&v, stateActor(c))
		return op(t, &v, c.Expect)
	}
}

func computeHandlers() map[MessageType]handler {
	return map[MessageType]handler{
		ProjectCreateType: func(t *state.Txn, c *Command) (any, error) {
			v, err := decode[state.ProjectSpec](c)
			if err != nil {
				return nil, err
			}
			return t.ProjectCreate(&v, stateActor(c))
		},
		ProjectUpdateType: update((*state.Txn).ProjectUpdate),
		ClosedVPNsPurgeType: func(t *state.Txn, _ *Command) (any, error) {
			n, err := t.ClosedVPNsPurge()
			return &ClosedVPNsPurged{VPNs: n}, err
		},
		CloudCreateType: withActor(cloudResult(func(t *state.Txn, s *state.CloudSpec, _ uint64) (*state.CloudResult, error) { return t.CloudCreate(s) }),
			func(s *state.CloudSpec, a state.Actor) { s.Actor = a }),
		CloudUpdateType: withActor(cloudResult((*state.Txn).CloudUpdate),
			func(s *state.CloudSpec, a state.Actor) { s.Actor = a }),
		VMCreateType: withActor(func(t *state.Txn, s *state.VMCreatePayload, _ uint64) (any, error) { return t.VMCreate(s) },
			func(s *state.VMCreatePayload, a state.Actor) { s.Actor = a }),
		VMUpdateType: withActor(func(t *state.Txn, s *state.VMUpdatePayload, e uint64) (any, error) { return t.VMUpdate(s, e) },
			func(s *state.VMUpdatePayload, a state.Actor) { s.Actor = a }),
		StateChangeType: withActor(func(t *state.Txn, s *state.StateChange, _ uint64) (any, error) { return t.SetState(s) },
			func(s *state.StateChange, a state.Actor) { s.Actor = a }),
		StateChangeIfType: withActor(func(t *state.Txn, s *state.StateChange, e uint64) (any, error) { return t.SetStateIf(s, e) },
			func(s *state.StateChange, a state.Actor) { s.Actor = a }),
		StorageCreateType: withActor(func(t *state.Txn, s *state.StorageCreatePayload, _ uint64) (any, error) { return t.StorageCreate(s) },
			func(s *state.StorageCreatePayload, a state.Actor) { s.Actor = a }),
		StorageTypeCreateType:     create((*state.Txn).StorageTypeCreate),
		StorageTypeUpdateType:     update((*state.Txn).StorageTypeUpdate),
		ImageCreateType:           create((*state.Txn).ImageCreate),
		ImageUpdateType:           update((*state.Txn).ImageUpdate),
		RegionImageCreateType:     create((*state.Txn).RegionImageCreate),
		RegionImageDeleteType:     del((*state.Txn).RegionImageDelete),
		ServerCreateType:          create((*state.Txn).ServerCreate),
		ServerUpdateType:          update((*state.Txn).ServerUpdate),
		ServerInterfaceCreateType: create((*state.Txn).ServerInterfaceCreate),
		ServerInterfaceUpdateType: update((*state.Txn).ServerInterfaceUpdate),
		ServerInterfaceDeleteType: del((*state.Txn).ServerInterfaceDelete),
		RouterCreateType:          create((*state.Txn).RouterCreate),
		RouterUpdateType:          update((*state.Txn).RouterUpdate),
		VPNCreateType: withActor(func(t *state.Txn, p *state.VPNPayload, _ uint64) (any, error) { return t.VPNCreate(p) },
			func(p *state.VPNPayload, a state.Actor) { p.Actor = a }),
		VPNUpdateType: withActor(func(t *state.Txn, p *state.VPNPayload, e uint64) (any, error) { return t.VPNUpdate(p, e) },
			func(p *state.VPNPayload, a state.Actor) { p.Actor = a }),
		SnapshotCreateType: withActor(func(t *state.Txn, p *state.SnapshotCreatePayload, _ uint64) (any, error) { return t.SnapshotCreate(p) },
			func(p *state.SnapshotCreatePayload, a state.Actor) { p.Actor = a }),
		BackupCreateType: withActor(func(t *state.Txn, p *state.BackupCreatePayload, _ uint64) (any, error) { return t.BackupCreate(p) },
			func(p *state.BackupCreatePayload, a state.Actor) { p.Actor = a }),
		VirtualRouterSubnetsType: withActor(func(t *state.Txn, p *state.VRSubnetsPayload, e uint64) (any, error) {
			return t.VirtualRouterSubnets(p, e)
		},
			func(p *state.VRSubnetsPayload, a state.Actor) { p.Actor = a }),
		VPNDeleteType: withActor(func(t *state.Txn, p *state.VPNDeletePayload, _ uint64) (any, error) { return nil, t.VPNDelete(p) },
			func(p *state.VPNDeletePayload, a state.Actor) { p.Actor = a }),
	}
}

// cloudResult answers a cloud command with its project: the API renders
// the whole cloud from the state the command made.
func cloudResult(op func(*state.Txn, *state.CloudSpec, uint64) (*state.CloudResult, error)) func(*state.Txn, *state.CloudSpec, uint64) (any, error) {
	return func(t *state.Txn, s *state.CloudSpec, e uint64) (any, error) {
		res, err := op(t, s, e)
		if err != nil {
			return nil, err
		}
		return res.Project, nil
	}
}
