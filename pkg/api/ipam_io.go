package api

// The CloudCIX IPAM services (/iaas/asn/, /iaas/allocation/, /iaas/subnet/,
// /iaas/ip_address/) as the API shows them and the SDK's request bodies.
// Nil fields of an input are left out: on update (PATCH) they keep their
// value.

// ASNView is an ASN as the API shows it.
type ASNView struct {
	Meta
	MemberID uint64 `json:"member_id"`
	Number   uint64 `json:"number"`
	// IsPseudo: a project's pseudo-ASN (PseudoASNBase + project id).
	IsPseudo bool `json:"is_pseudo"`
}

// ASNInput is the body of an ASN create or update.
type ASNInput struct {
	MemberID *uint64 `json:"member_id,omitempty"`
	Number   *uint64 `json:"number,omitempty"`
}

// AllocationView is an allocation (a root block of an ASN) as the API
// shows it.
type AllocationView struct {
	Meta
	// AddressRange is the network, e.g. 203.0.113.0/24.
	AddressRange string `json:"address_range"`
	ASNID        uint64 `json:"asn_id"`
	MemberID     uint64 `json:"member_id"`
	// AddressID is CloudCIX's name of the owner (MemberID).
	AddressID    uint64 `json:"address_id"`
	Name         string `json:"name"`
	Type         string `json:"type"` // public or private
	SubnetsInUse int    `json:"subnets_in_use"`
	Modified
}

// AllocationInput is the body of an allocation create or update (an update
// changes the name; the other fields only with their current value).
type AllocationInput struct {
	AddressRange *string `json:"address_range,omitempty"`
	ASNID        *uint64 `json:"asn_id,omitempty"`
	Name         *string `json:"name,omitempty"`
	Type         *string `json:"type,omitempty"`
}

// SubnetView is a subnet as the API shows it.
type SubnetView struct {
	Meta
	// AddressRange is in gateway notation: the network with the gateway
	// as host part (10.0.0.1/24).
	AddressRange string `json:"address_range"`
	Gateway      string `json:"gateway"`
	AllocationID uint64 `json:"allocation_id"`
	// ParentID is the parent subnet, nil for one directly in its
	// allocation.
	ParentID        *uint64 `json:"parent_id,omitempty"`
	MemberID        uint64  `json:"member_id"`
	AddressID       uint64  `json:"address_id"`
	Name            string  `json:"name"`
	VLAN            uint32  `json:"vlan"`
	VXLAN           uint32  `json:"vxlan"`
	VirtualRouterID uint64  `json:"virtual_router_id"`
	RouterID        uint64  `json:"router_id"`
	IPsInUse        int     `json:"ips_in_use"`
	SubnetsInUse    int     `json:"subnets_in_use"`
	Modified
}

// SubnetInput is the body of a subnet create or update.
type SubnetInput struct {
	AddressRange    *string `json:"address_range,omitempty"`
	AllocationID    *uint64 `json:"allocation_id,omitempty"`
	ParentID        *uint64 `json:"parent_id,omitempty"`
	Name            *string `json:"name,omitempty"`
	VLAN            *uint32 `json:"vlan,omitempty"`
	VXLAN           *uint32 `json:"vxlan,omitempty"`
	VirtualRouterID *uint64 `json:"virtual_router_id,omitempty"`
	RouterID        *uint64 `json:"router_id,omitempty"`
}

// IPAddressView is an IP address as the API shows it, with its NAT
// partner and subnet nested (nil when it has none).
type IPAddressView struct {
	Meta
	Address    string     `json:"address"`
	Version    int        `json:"version"`
	SubnetID   uint64     `json:"subnet_id"`
	MemberID   uint64     `json:"member_id"`
	Name       string     `json:"name"`
	MACAddress string     `json:"mac_address"`
	VMID       uint64     `json:"vm_id"`
	PublicIPID uint64     `json:"public_ip_id"`
	PublicIP   *PubRef    `json:"public_ip"`
	Subnet     *SubnetRef `json:"subnet"`
	Modified
}

// IPAddressInput is the body of an IP address create or update. A create
// without Address takes the subnet's lowest free address.
type IPAddressInput struct {
	SubnetID   *uint64 `json:"subnet_id,omitempty"`
	Address    *string `json:"address,omitempty"`
	Name       *string `json:"name,omitempty"`
	MACAddress *string `json:"mac_address,omitempty"`
	VMID       *uint64 `json:"vm_id,omitempty"`
	PublicIPID *uint64 `json:"public_ip_id,omitempty"`
}
