package api

import "encoding/json"

// Request bodies and expanded responses of the compute services, shared by
// the server and the SDK. Request fields are pointers: nil is "not sent"
// (PATCH keeps the value). State fields of update bodies are decoded by
// the server itself (an integer or a quoted integer); StateChangeInput is
// their SDK form.

// StorageInput is a disk in a VM body.
type StorageInput struct {
	ID      *uint64 `json:"id,omitempty"`
	Name    *string `json:"name,omitempty"`
	GB      *int    `json:"gb,omitempty"`
	Primary *bool   `json:"primary,omitempty"`
}

// IPInput is an address in a VM body.
type IPInput struct {
	Address *string `json:"address,omitempty"`
	NAT     *bool   `json:"nat,omitempty"`
}

// VMInput is the body of a VM create (and a VM of a cloud body).
type VMInput struct {
	ID            *uint64        `json:"id,omitempty"`
	ProjectID     *uint64        `json:"project_id,omitempty"`
	Name          *string        `json:"name,omitempty"`
	ImageID       *uint64        `json:"image_id,omitempty"`
	StorageTypeID *uint64        `json:"storage_type_id,omitempty"`
	Storages      []StorageInput `json:"storages,omitempty"`
	CPU           *int           `json:"cpu,omitempty"`
	RAM           *int           `json:"ram,omitempty"`
	GPU           *int           `json:"gpu,omitempty"`
	DNS           *string        `json:"dns,omitempty"`
	PublicKey     *string        `json:"public_key,omitempty"`
	GatewaySubnet *string        `json:"gateway_subnet,omitempty"`
	IPAddresses   []IPInput      `json:"ip_addresses,omitempty"`
	Userdata      *string        `json:"userdata,omitempty"`
}

// IPView is an address of a VM.
type IPView struct {
	ID         uint64  `json:"id"`
	Address    string  `json:"address"`
	MACAddress string  `json:"mac_address"`
	SubnetID   uint64  `json:"subnet_id"`
	PublicIP   *PubRef `json:"public_ip"`
}

// PubRef is a NAT public address.
type PubRef struct {
	ID      uint64 `json:"id"`
	Address string `json:"address"`
}

// VMView is a VM with its disks and addresses.
type VMView struct {
	*VM
	Stable      bool       `json:"stable"`
	Storages    []*Storage `json:"storages"`
	IPAddresses []IPView   `json:"ip_addresses"`
}

// SubnetRef is a project subnet as a router or cloud view shows it.
type SubnetRef struct {
	ID           uint64 `json:"id"`
	Name         string `json:"name"`
	AddressRange string `json:"address_range"`
	VLAN         uint32 `json:"vlan"`
	VXLAN        uint32 `json:"vxlan"`
	// VirtualRouterID is the virtual router the subnet belongs to (0: none).
	VirtualRouterID uint64 `json:"virtual_router_id"`
}

// VRView is a virtual router with its subnets.
type VRView struct {
	*VirtualRouter
	Stable  bool        `json:"stable"`
	Subnets []SubnetRef `json:"subnets"`
}

// ProjectView is a project with its derived state (cloudcix-facts §2.6).
type ProjectView struct {
	*Project
	Stable   bool `json:"stable"`
	MinState int  `json:"min_state"`
	ShutDown bool `json:"shut_down"`
}

// NameInput is the body of a storage type create or update.
type NameInput struct {
	Name *string `json:"name,omitempty"`
}

// ImageInput is the body of an image create or update.
type ImageInput struct {
	DisplayName    *string `json:"display_name,omitempty"`
	Filename       *string `json:"filename,omitempty"`
	AnswerFileName *string `json:"answer_file_name,omitempty"`
	CloudInit      *bool   `json:"cloud_init,omitempty"`
	MultipleIPs    *bool   `json:"multiple_ips,omitempty"`
	OSVariant      *string `json:"os_variant,omitempty"`
	Public         *bool   `json:"public,omitempty"`
	Windows        *bool   `json:"windows,omitempty"`
	ServerTypeID   *uint64 `json:"server_type_id,omitempty"`
	Source         *string `json:"source"`
	SHA256         *string `json:"sha256"`
}

// RegionImageInput is the body of a region image create.
type RegionImageInput struct {
	RegionID *uint64 `json:"region_id,omitempty"`
	ImageID  *uint64 `json:"image_id,omitempty"`
}

// ServerInput is the body of a server create or update.
type ServerInput struct {
	RegionID      *uint64 `json:"region_id,omitempty"`
	TypeID        *uint64 `json:"type_id,omitempty"`
	StorageTypeID *uint64 `json:"storage_type_id,omitempty"`
	Cores         *int    `json:"cores,omitempty"`
	RAM           *int    `json:"ram,omitempty"`
	GB            *int    `json:"gb,omitempty"`
	Enabled       *bool   `json:"enabled,omitempty"`
	AssetTag      *string `json:"asset_tag,omitempty"`
	Model         *string `json:"model,omitempty"`
}

// InterfaceInput is the body of an interface create or update.
type InterfaceInput struct {
	ServerID   *uint64 `json:"server_id,omitempty"`
	Hostname   *string `json:"hostname,omitempty"`
	IPAddress  *string `json:"ip_address,omitempty"`
	MACAddress *string `json:"mac_address,omitempty"`
	Enabled    *bool   `json:"enabled,omitempty"`
	Details    *string `json:"details,omitempty"`
}

// RouterInput is the body of a router create or update. capacity null
// (as CloudCIX) or phantom true makes a phantom router (unlimited).
type RouterInput struct {
	RegionID            *uint64   `json:"region_id,omitempty"`
	Capacity            NullInt   `json:"capacity,omitzero"`
	Phantom             *bool     `json:"phantom,omitempty"`
	Enabled             *bool     `json:"enabled,omitempty"`
	FloatingSubnetIDs   *[]uint64 `json:"floating_subnet_ids,omitempty"`
	AssetTag            *string   `json:"asset_tag,omitempty"`
	Model               *string   `json:"model,omitempty"`
	Username            *string   `json:"username,omitempty"`
	ManagementInterface *string   `json:"management_interface,omitempty"`
	PublicInterface     *string   `json:"public_interface,omitempty"`
	PrivateInterface    *string   `json:"private_interface,omitempty"`
	OOBInterface        *string   `json:"oob_interface,omitempty"`
}

// ProjectInput is the body of a project create or update (and the project
// of a cloud create).
type ProjectInput struct {
	Name        *string `json:"name,omitempty"`
	RegionID    *uint64 `json:"region_id,omitempty"`
	Note        *string `json:"note,omitempty"`
	GracePeriod *int    `json:"grace_period,omitempty"`
	ManagerID   *uint64 `json:"manager_id,omitempty"`
}

// SubnetSpecInput is a subnet of a cloud body.
type SubnetSpecInput struct {
	ID           *uint64 `json:"id,omitempty"`
	Name         *string `json:"name,omitempty"`
	AddressRange *string `json:"address_range,omitempty"`
}

// RuleInput is a firewall rule of a cloud body.
type RuleInput struct {
	Order        *int    `json:"order,omitempty"`
	Allow        *bool   `json:"allow,omitempty"`
	Source       *string `json:"source,omitempty"`
	Destination  *string `json:"destination,omitempty"`
	Protocol     *string `json:"protocol,omitempty"`
	Port         *string `json:"port,omitempty"`
	Description  *string `json:"description,omitempty"`
	PCILogging   *bool   `json:"pci_logging,omitempty"`
	DebugLogging *bool   `json:"debug_logging,omitempty"`
}

// CloudInput is the body of a cloud create or update.
type CloudInput struct {
	Project       *ProjectInput     `json:"project,omitempty"`
	Subnets       []SubnetSpecInput `json:"subnets,omitempty"`
	VMs           []VMInput         `json:"vms,omitempty"`
	FirewallRules *[]RuleInput      `json:"firewall_rules,omitempty"`
}

// CloudView is a whole project: its router, subnets and VMs.
type CloudView struct {
	Project       ProjectView `json:"project"`
	VirtualRouter *VRView     `json:"virtual_router"`
	Subnets       []SubnetRef `json:"subnets"`
	VMs           []VMView    `json:"vms"`
}

// CapacityEntry is the largest VM one server can still build.
type CapacityEntry struct {
	RAM     int64 `json:"ram"`
	Storage int64 `json:"storage"`
	CPU     int64 `json:"cpu"`
}

// Metrics is what /iaas/metrics/<region_id>/ reports.
type Metrics struct {
	RegionID uint64 `json:"region_id"`
	// Index is the raft index of the region's last compute change.
	Index          uint64        `json:"index"`
	Projects       int           `json:"projects"`
	Servers        int           `json:"servers"`
	Routers        int           `json:"routers"`
	Subnets        int           `json:"subnets"`
	VMs            []StateCount  `json:"vms"`
	VirtualRouters []StateCount  `json:"virtual_routers"`
	Capacity       []ServerUsage `json:"server_usage"`
}

// StateCount is how many VMs (virtual routers) of a host are in a state.
type StateCount struct {
	HostID uint64 `json:"host_id"`
	State  int    `json:"state"`
	Count  int    `json:"count"`
}

// ServerUsage is a server's remaining create capacity.
type ServerUsage struct {
	ServerID uint64 `json:"server_id"`
	RAM      int64  `json:"ram"`
	Storage  int64  `json:"storage"`
	CPU      int64  `json:"cpu"`
}

// RouteInput is a route of a VPN body.
type RouteInput struct {
	LocalSubnetID *uint64 `json:"local_subnet_id,omitempty"`
	RemoteSubnet  *string `json:"remote_subnet,omitempty"`
}

// VPNInput is the body of a VPN create or update.
type VPNInput struct {
	VirtualRouterID     *uint64       `json:"virtual_router_id,omitempty"`
	VPNType             *string       `json:"vpn_type,omitempty"`
	Description         *string       `json:"description,omitempty"`
	DNS                 *string       `json:"dns,omitempty"`
	SendEmail           *bool         `json:"send_email,omitempty"`
	TrafficSelector     *bool         `json:"traffic_selector,omitempty"`
	IKEVersion          *string       `json:"ike_version,omitempty"`
	IKEAuthentication   *string       `json:"ike_authentication,omitempty"`
	IKEEncryption       *string       `json:"ike_encryption,omitempty"`
	IKEDHGroups         *string       `json:"ike_dh_groups,omitempty"`
	IKELifetime         *int          `json:"ike_lifetime,omitempty"`
	IKEGatewayType      *string       `json:"ike_gateway_type,omitempty"`
	IKEGatewayValue     *string       `json:"ike_gateway_value,omitempty"`
	IKELocalIdentifier  *string       `json:"ike_local_identifier,omitempty"`
	IKERemoteIdentifier *string       `json:"ike_remote_identifier,omitempty"`
	IKEPreSharedKey     *string       `json:"ike_pre_shared_key,omitempty"`
	IPSecAuthentication *string       `json:"ipsec_authentication,omitempty"`
	IPSecEncryption     *string       `json:"ipsec_encryption,omitempty"`
	IPSecPFSGroups      *string       `json:"ipsec_pfs_groups,omitempty"`
	IPSecEstablishTime  *string       `json:"ipsec_establish_time,omitempty"`
	IPSecLifetime       *int          `json:"ipsec_lifetime,omitempty"`
	Routes              *[]RouteInput `json:"routes,omitempty"`
}

// SnapshotInput is the body of a snapshot or backup create.
type SnapshotInput struct {
	VMID       *uint64 `json:"vm_id,omitempty"`
	Name       *string `json:"name,omitempty"`
	Repository *int    `json:"repository,omitempty"`
}

// StorageCreateInput is the body of a storage create: a disk added to a VM.
type StorageCreateInput struct {
	VMID *uint64 `json:"vm_id,omitempty"`
	Name *string `json:"name,omitempty"`
	GB   *int    `json:"gb,omitempty"`
}

// StateChangeInput is the SDK form of an update of a VM, virtual router,
// snapshot or backup: a state change, where robots send ExpectedState
// (compare-and-swap) and alone send ObservedGeneration, ErrorCode and
// ErrorDetail; or what else the kind's update takes (the API refuses a
// field of another kind).
type StateChangeInput struct {
	State              *int    `json:"state,omitempty"`
	ExpectedState      *int    `json:"expected_state,omitempty"`
	ObservedGeneration *uint64 `json:"observed_generation,omitempty"`
	ErrorCode          *string `json:"error_code,omitempty"`
	ErrorDetail        *string `json:"error_detail,omitempty"`
	// RemoveSubtree is for snapshots only.
	RemoveSubtree *bool `json:"remove_subtree,omitempty"`
	// Name renames a snapshot or backup (with a state change or alone).
	Name *string `json:"name,omitempty"`
	// Subnets is a virtual router's whole list of subnets, as a cloud's
	// (an existing one by ID; not with a state change).
	Subnets *[]SubnetSpecInput `json:"subnets,omitempty"`
}

// VMChangeInput is the SDK form of a VM update: a state change or a spec
// change (cpu, ram, gpu, name, dns, storages), not both.
type VMChangeInput struct {
	StateChangeInput
	CPU      *int           `json:"cpu,omitempty"`
	RAM      *int           `json:"ram,omitempty"`
	GPU      *int           `json:"gpu,omitempty"`
	Name     *string        `json:"name,omitempty"`
	DNS      *string        `json:"dns,omitempty"`
	Storages []StorageInput `json:"storages,omitempty"`
}

// NullInt is an optional JSON integer that tells null from absent: Set
// when the field was sent, Null when it was sent as null.
type NullInt struct {
	Set, Null bool
	V         int
}

// Int is a NullInt holding v.
func Int(v int) NullInt { return NullInt{Set: true, V: v} }

// UnmarshalJSON implements json.Unmarshaler.
func (n *NullInt) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Null = true
		return nil
	}
	return json.Unmarshal(b, &n.V)
}

// MarshalJSON implements json.Marshaler (null when not set or null; the
// omitzero tag leaves an unset one out).
func (n NullInt) MarshalJSON() ([]byte, error) {
	if !n.Set || n.Null {
		return []byte("null"), nil
	}
	return json.Marshal(n.V)
}

// IsZero reports whether n was not set (for omitzero).
func (n NullInt) IsZero() bool { return !n.Set }
