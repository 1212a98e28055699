package fsm

import (
	"fmt"

	"github.com/regentcloud/regent/controller/state"
)

// BootstrapPayload creates the global member, root user and root token.
type BootstrapPayload struct {
	MemberName string             `json:"member_name"`
	Username   string             `json:"username"`
	Token      *state.TokenRecord `json:"token"`
}

var typeNames = map[MessageType]string{
	BootstrapType: "bootstrap", MemberCreateType: "member_create", MemberUpdateType: "member_update",
	MemberDeleteType: "member_delete", UserCreateType: "user_create", UserUpdateType: "user_update",
	UserDeleteType: "user_delete", TokenCreateType: "token_create", TokenDeleteType: "token_delete",
	RegionCreateType: "region_create", RegionUpdateType: "region_update", RegionDeleteType: "region_delete",
	NodeUpsertType: "node_upsert", NodeDeleteType: "node_delete", NoopType: "noop",
	IPBlockCreateType: "ip_block_create", IPBlockUpdateType: "ip_block_update", IPBlockDeleteType: "ip_block_delete", IPBlockCascadeDeleteType: "ip_block_cascade_delete",
	IPAddressAllocateType: "ip_address_allocate", IPAddressReleaseType: "ip_address_release",
	IPAddressRestoreType: "ip_address_restore", IPAddressPurgeType: "ip_address_purge",
	IPPolicyCreateType: "ip_policy_create", IPPolicyUpdateType: "ip_policy_update", IPPolicyDeleteType: "ip_policy_delete",
	MACRangeCreateType: "mac_range_create", MACRangeDeleteType: "mac_range_delete",
	ASNCreateType: "asn_create", ASNDeleteType: "asn_delete", IPAddressDeleteType: "ip_address_delete",
	DomainCreateType: "domain_create", DomainDeleteType: "domain_delete", RecordCreateType: "record_create",
	RecordUpdateType: "record_update", RecordDeleteType: "record_delete", PTRCreateType: "ptr_create",
	DNSSettingsType:     "dns_settings",
	InterfaceCreateType: "interface_create", InterfaceDeleteType: "interface_delete",
	IPAddressAllocateOnIfaceType: "ip_address_allocate_on_interface", NetworkAllocateType: "network_allocate",
	NetworkDeallocateType: "network_deallocate", InstanceInterfacesReplaceType: "instance_interfaces_replace",
	InstanceInterfacesDeleteType: "instance_interfaces_delete", IPRouteCreateType: "ip_route_create",
	IPRouteUpdateType: "ip_route_update", IPRouteDeleteType: "ip_route_delete",
	NATLinkType: "nat_link", NATUnlinkType: "nat_unlink", AllowedIPCreateType: "allowed_ip_create",
	AllowedIPDeleteType: "allowed_ip_delete",
	ProjectCreateType:   "project_create", ProjectUpdateType: "project_update", CloudCreateType: "cloud_create",
	CloudUpdateType: "cloud_update", VMCreateType: "vm_create", VMUpdateType: "vm_update",
	StateChangeType: "state_change", StateChangeIfType: "state_change_if", ClosedVPNsPurgeType: "closed_vpns_purge", StorageCreateType: "storage_create", VirtualRouterSubnetsType: "virtual_router_subnets",
	StorageTypeCreateType: "storage_type_create", StorageTypeUpdateType: "storage_type_update",
	ImageCreateType: "image_create", ImageUpdateType: "image_update",
	RegionImageCreateType: "region_image_create", RegionImageDeleteType: "region_image_delete",
	ServerCreateType: "server_create", ServerUpdateType: "server_update",
	ServerInterfaceCreateType: "server_interface_create", ServerInterfaceUpdateType: "server_interface_update",
	ServerInterfaceDeleteType: "server_interface_delete",
	RouterCreateType:          "router_create", RouterUpdateType: "router_update",
	ASNUpdateType: "asn_update", IPAddressUpdateType: "ip_address_update",
	CIXBlacklistCreateType: "cix_blacklist_create", CIXBlacklistDeleteType: "cix_blacklist_delete",
	CIXWhitelistCreateType: "cix_whitelist_create", CIXWhitelistDeleteType: "cix_whitelist_delete",
	AgentRegisterType: "agent_register", AgentStatusType: "agent_status",
	VPNCreateType: "vpn_create", VPNUpdateType: "vpn_update", VPNDeleteType: "vpn_delete",
	SnapshotCreateType: "snapshot_create", BackupCreateType: "backup_create",
}

func typeName(t MessageType) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type_%d", t)
}

func handlers() map[MessageType]handler {
	return withHandlers(withHandlers(withHandlers(withHandlers(withHandlers(withHandlers(ipamHandlers(), dnsHandlers()), interfaceHandlers()), ipamRESTHandlers()), computeHandlers()), agentHandlers()), map[MessageType]handler{
		BootstrapType: func(t *state.Txn, c *Command) (any, error) {
			p, err := decode[BootstrapPayload](c)
			if err != nil {
				return nil, err
			}
			return t.Bootstrap(p.MemberName, p.Username, p.Token)
		},
		MemberCreateType: create((*state.Txn).MemberCreate),
		MemberUpdateType: update((*state.Txn).MemberUpdate),
		MemberDeleteType: del((*state.Txn).MemberDelete),
		UserCreateType:   create((*state.Txn).UserCreate),
		UserUpdateType:   update((*state.Txn).UserUpdate),
		UserDeleteType:   del((*state.Txn).UserDelete),
		TokenCreateType:  create((*state.Txn).TokenCreate),
		TokenDeleteType:  del((*state.Txn).TokenDelete),
		RegionCreateType: create((*state.Txn).RegionCreate),
		RegionUpdateType: update((*state.Txn).RegionUpdate),
		RegionDeleteType: del((*state.Txn).RegionDelete),
		NodeUpsertType: func(t *state.Txn, c *Command) (any, error) {
			n, err := decode[*state.Node](c)
			if err != nil {
				return nil, err
			}
			return n, t.NodeUpsert(n)
		},
		NodeDeleteType: func(t *state.Txn, c *Command) (any, error) {
			n, err := decode[state.Node](c)
			if err != nil {
				return nil, err
			}
			return nil, t.NodeDelete(n.ID)
		},
		NoopType: func(*state.Txn, *Command) (any, error) { return nil, nil },
	})
}
