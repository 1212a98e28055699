package fsm

import (
	"fmt"
	"time"

	"github.com/regentcloud/regent/controller/state"
)

// IPAM command types, appended after NoopType (15). Never renumber.
const (
	IPBlockCreateType     MessageType = 16
	IPBlockUpdateType     MessageType = 17
	IPBlockDeleteType     MessageType = 18
	IPAddressAllocateType MessageType = 19 // payload api.IPAddress; an empty address means the next free one
	IPAddressReleaseType  MessageType = 20 // payload state.IPRef; soft deallocation at the command's time
	IPAddressRestoreType  MessageType = 21 // payload state.IPRef
	IPAddressPurgeType    MessageType = 22 // payload IPPurgePayload; proposed by the leader on a timer
	IPPolicyCreateType    MessageType = 23
	IPPolicyUpdateType    MessageType = 24
	IPPolicyDeleteType    MessageType = 25
	MACRangeCreateType    MessageType = 26
	MACRangeDeleteType    MessageType = 27
	ASNCreateType         MessageType = 28
	ASNDeleteType         MessageType = 29
	IPAddressDeleteType   MessageType = 30 // payload state.IPRef; frees the address at once (CloudCIX delete)
)

// IPPurgePayload purges the soft-deallocated addresses released at or
// before Cutoff (the leader computes now − keep), in block BlockID or, when
// 0, in every block. Apply never reads the clock.
type IPPurgePayload struct {
	BlockID uint64    `json:"block_id,omitempty"`
	Cutoff  time.Time `json:"cutoff"`
}

func ipamHandlers() map[MessageType]handler {
	ref := func(op func(*state.Txn, state.IPRef) (any, error)) handler {
		return func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[state.IPRef](c)
			if err != nil {
				return nil, err
			}
			return op(t, p)
		}
	}
	return map[MessageType]handler{
		IPBlockCreateType:     create((*state.Txn).IPBlockCreate),
		IPBlockUpdateType:     update((*state.Txn).IPBlockUpdate),
		IPBlockDeleteType:     del((*state.Txn).IPBlockDelete),
		IPAddressAllocateType: create((*state.Txn).IPAddressCreate),
		IPAddressReleaseType: ref(func(t *state.Txn, r state.IPRef) (any, error) {
			return t.IPAddressRelease(r)
		}),
		IPAddressDeleteType: ref(func(t *state.Txn, r state.IPRef) (any, error) {
			return nil, t.IPAddressDelete(r)
		}),
		IPAddressRestoreType: ref(func(t *state.Txn, r state.IPRef) (any, error) {
			return t.IPAddressRestore(r)
		}),
		IPAddressPurgeType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[IPPurgePayload](c)
			if err != nil {
				return nil, err
			}
			return t.IPAddressPurge(p.BlockID, p.Cutoff)
		},
		IPPolicyCreateType: create((*state.Txn).IPPolicyCreate),
		IPPolicyUpdateType: update((*state.Txn).IPPolicyUpdate),
		IPPolicyDeleteType: del((*state.Txn).IPPolicyDelete),
		MACRangeCreateType: create((*state.Txn).MACRangeCreate),
		MACRangeDeleteType: del((*state.Txn).MACRangeDelete),
		ASNCreateType:      create((*state.Txn).ASNCreate),
		ASNDeleteType:      del((*state.Txn).ASNDelete),
	}
}

// withHandlers returns base with extra merged in; a type registered twice
// is a programming error.
func withHandlers(base, extra map[MessageType]handler) map[MessageType]handler {
	for t, h := range extra {
		if _, dup := base[t]; dup {
			panic(fmt.Sprintf("fsm: command type %d has two handlers", t))
		}
		base[t] = h
	}
	return base
}
