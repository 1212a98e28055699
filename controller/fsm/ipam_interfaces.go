package fsm

import (
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// Melange interface, network and route command types. 31–40 are reserved
// (DNS). Never renumber. Each interface command is one transaction: the
// interface, its MAC and its addresses change together or not at all.
const (
	InterfaceCreateType           MessageType = 41 // payload InterfaceCreatePayload
	InterfaceDeleteType           MessageType = 42 // payload VIFPayload; frees the MAC, soft-deallocates the addresses
	IPAddressAllocateOnIfaceType  MessageType = 43 // payload InterfaceAllocatePayload; creates the interface when missing
	NetworkAllocateType           MessageType = 44 // payload NetworkAllocatePayload; creates the interface when missing
	NetworkDeallocateType         MessageType = 45 // payload NetworkDeallocatePayload
	InstanceInterfacesReplaceType MessageType = 46 // payload InstanceInterfacesPayload; VIFs are chosen by the proposer
	InstanceInterfacesDeleteType  MessageType = 47 // payload InstanceInterfacesPayload (DeviceID only)
	IPRouteCreateType             MessageType = 48
	IPRouteUpdateType             MessageType = 49
	IPRouteDeleteType             MessageType = 50
	NATLinkType                   MessageType = 51 // payload NATPayload
	NATUnlinkType                 MessageType = 52 // payload NATUnlinkPayload
	AllowedIPCreateType           MessageType = 53 // payload AllowedIPPayload
	AllowedIPDeleteType           MessageType = 54 // payload AllowedIPPayload
)

// NATPayload links every address of Locals to every address of Globals
// (address row ids).
type NATPayload struct {
	Locals  []uint64 `json:"locals"`
	Globals []uint64 `json:"globals"`
}

// NATUnlinkPayload removes the link LocalID–GlobalID; a zero side means
// every partner of the other.
type NATUnlinkPayload struct {
	LocalID  uint64 `json:"local_id,omitempty"`
	GlobalID uint64 `json:"global_id,omitempty"`
}

// AllowedIPPayload allows (or disallows) address AddressID on interface VIF.
type AllowedIPPayload struct {
	VIF       string `json:"vif"`
	AddressID uint64 `json:"address_id"`
}

// InterfaceCreatePayload creates Interface and, with Network, allocates
// its addresses there.
type InterfaceCreatePayload struct {
	Interface api.Interface     `json:"interface"`
	Network   *state.NetworkRef `json:"network,omitempty"`
}

// VIFPayload names an interface by its virtual interface id.
type VIFPayload struct {
	VIF string `json:"vif"`
}

// InterfaceAllocatePayload allocates Address (or the next free address)
// of BlockID on interface Interface.VIF, created from Interface if missing.
//
// Scope, in this payload and the two below, is set when the caller is a
// tenant acting for itself (not a global caller): an existing interface
// must then be that tenant's (state.Txn.ensureInterface).
type InterfaceAllocatePayload struct {
	Interface api.Interface `json:"interface"`
	BlockID   uint64        `json:"block_id"`
	Address   string        `json:"address,omitempty"`
	Scope     string        `json:"scope,omitempty"`
}

// NetworkAllocatePayload allocates addresses of Network on interface
// Interface.VIF, created from Interface if missing.
type NetworkAllocatePayload struct {
	Interface api.Interface    `json:"interface"`
	Network   state.NetworkRef `json:"network"`
	Scope     string           `json:"scope,omitempty"`
}

// NetworkDeallocatePayload soft-deallocates the addresses of interface VIF
// in network NetworkID of tenant MemberID.
type NetworkDeallocatePayload struct {
	MemberID  uint64 `json:"member_id"`
	NetworkID string `json:"network_id"`
	VIF       string `json:"vif"`
	Scope     string `json:"scope,omitempty"`
}

// InstanceInterfacesPayload replaces (or, for a delete, removes) the
// interfaces of device DeviceID.
type InstanceInterfacesPayload struct {
	DeviceID   string                    `json:"device_id"`
	TenantID   string                    `json:"tenant_id,omitempty"`
	Interfaces []state.InstanceInterface `json:"interfaces,omitempty"`
}

func interfaceHandlers() map[MessageType]handler {
	return map[MessageType]handler{
		InterfaceCreateType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[InterfaceCreatePayload](c)
			if err != nil {
				return nil, err
			}
			return t.InterfaceCreate(p.Interface, p.Network)
		},
		InterfaceDeleteType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[VIFPayload](c)
			if err != nil {
				return nil, err
			}
			return nil, t.InterfaceDelete(p.VIF)
		},
		IPAddressAllocateOnIfaceType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[InterfaceAllocatePayload](c)
			if err != nil {
				return nil, err
			}
			return t.IPAddressAllocateOnInterface(p.Interface, p.BlockID, p.Address, p.Scope)
		},
		NetworkAllocateType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[NetworkAllocatePayload](c)
			if err != nil {
				return nil, err
			}
			return t.NetworkAllocate(p.Interface, p.Network, p.Scope)
		},
		NetworkDeallocateType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[NetworkDeallocatePayload](c)
			if err != nil {
				return nil, err
			}
			return nil, t.NetworkDeallocate(p.MemberID, p.NetworkID, p.VIF, p.Scope)
		},
		InstanceInterfacesReplaceType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[InstanceInterfacesPayload](c)
			if err != nil {
				return nil, err
			}
			return t.InstanceInterfacesReplace(p.DeviceID, p.TenantID, p.Interfaces)
		},
		InstanceInterfacesDeleteType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[InstanceInterfacesPayload](c)
			if err != nil {
				return nil, err
			}
			return nil, t.InstanceInterfacesDelete(p.DeviceID)
		},
		IPRouteCreateType: create((*state.Txn).IPRouteCreate),
		IPRouteUpdateType: update((*state.Txn).IPRouteUpdate),
		IPRouteDeleteType: del((*state.Txn).IPRouteDelete),
		NATLinkType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[NATPayload](c)
			if err != nil {
				return nil, err
			}
			return nil, t.NATLink(p.Locals, p.Globals)
		},
		NATUnlinkType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[NATUnlinkPayload](c)
			if err != nil {
				return nil, err
			}
			return nil, t.NATUnlink(p.LocalID, p.GlobalID)
		},
		AllowedIPCreateType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[AllowedIPPayload](c)
			if err != nil {
				return nil, err
			}
			return t.AllowIP(p.VIF, p.AddressID)
		},
		AllowedIPDeleteType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[AllowedIPPayload](c)
			if err != nil {
				return nil, err
			}
			return nil, t.DisallowIP(p.VIF, p.AddressID)
		},
	}
}
