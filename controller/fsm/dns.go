package fsm

import (
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// DNS command types, 31–40. Never renumber.
const (
	DomainCreateType MessageType = 31
	DomainDeleteType MessageType = 32 // deletes the domain's records too
	RecordCreateType MessageType = 33
	RecordUpdateType MessageType = 34 // forward and PTR records
	RecordDeleteType MessageType = 35 // forward and PTR records
	PTRCreateType    MessageType = 36 // payload PTRPayload; creates the reverse zone when missing
	// DNSSettingsType sets the zone apex settings (payload
	// state.DNSSettings): a leader writes its configured dns_nameservers
	// and dns_hostmaster when they differ from the replicated ones.
	DNSSettingsType MessageType = 38
)

// PTRPayload creates a PTR record. AnyOwner (global callers) skips the
// check that the record's member holds the address in IPAM.
type PTRPayload struct {
	Record   *api.Record `json:"record"`
	AnyOwner bool        `json:"any_owner,omitempty"`
}

func dnsHandlers() map[MessageType]handler {
	return map[MessageType]handler{
		DomainCreateType: create((*state.Txn).DomainCreate),
		DomainDeleteType: del((*state.Txn).DomainDelete),
		RecordCreateType: create((*state.Txn).RecordCreate),
		RecordUpdateType: update((*state.Txn).RecordUpdate),
		RecordDeleteType: del((*state.Txn).RecordDelete),
		DNSSettingsType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[state.DNSSettings](c)
			if err != nil {
				return nil, err
			}
			return t.DNSSettingsSet(&p)
		},
		PTRCreateType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[PTRPayload](c)
			if err != nil {
				return nil, err
			}
			if p.Record == nil {
				return nil, api.Errorf(400, "iaas_ptr_record_create_100", "The command carries no record.")
			}
			return t.PTRCreate(p.Record, p.AnyOwner)
		},
	}
}
