package fsm

import (
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// IPAM update, CIX list and Melange cascade-delete command types. 41–54 are
// Melange interfaces, 64 and up compute; 62–63 are free for this domain.
// Never renumber.
const (
	ASNUpdateType          MessageType = 55 // payload api.ASN; Expect is the modified_index read
	IPAddressUpdateType    MessageType = 56 // payload api.IPAddress; only the descriptive fields change
	CIXBlacklistCreateType MessageType = 57 // payload api.CIXListEntry
	CIXBlacklistDeleteType MessageType = 58 // payload IDPayload
	CIXWhitelistCreateType MessageType = 59 // payload api.CIXListEntry
	CIXWhitelistDeleteType MessageType = 60 // payload IDPayload
	// IPBlockCascadeDeleteType deletes a Melange block with its subnets,
	// their addresses, the references to those and their routes.
	IPBlockCascadeDeleteType MessageType = 61 // payload IDPayload
)

func ipamRESTHandlers() map[MessageType]handler {
	cixCreate := func(table string) handler {
		return create(func(t *state.Txn, e *api.CIXListEntry) (*api.CIXListEntry, error) {
			return t.CIXEntryCreate(table, e)
		})
	}
	cixDelete := func(table string) handler {
		return del(func(t *state.Txn, id uint64) error { return t.CIXEntryDelete(table, id) })
	}
	return map[MessageType]handler{
		ASNUpdateType:            update((*state.Txn).ASNUpdate),
		IPAddressUpdateType:      update((*state.Txn).IPAddressUpdate),
		CIXBlacklistCreateType:   cixCreate(state.CIXBlacklist),
		CIXBlacklistDeleteType:   cixDelete(state.CIXBlacklist),
		CIXWhitelistCreateType:   cixCreate(state.CIXWhitelist),
		CIXWhitelistDeleteType:   cixDelete(state.CIXWhitelist),
		IPBlockCascadeDeleteType: del((*state.Txn).IPBlockDeleteCascade),
	}
}
