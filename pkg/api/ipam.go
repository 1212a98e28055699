package api

// IPAM wire types. One stored model serves both API dialects; the mapping is
// written down in docs/ipam-model.md. In short:
//
//   - Melange ip_block (root or subnet)  → IPBlock{Dialect: "melange"}; a
//     subnet is an IPBlock with ParentID.
//   - CloudCIX Allocation                 → root IPBlock{Dialect: "cloudcix", ASNID}.
//   - CloudCIX Subnet                     → IPBlock{Dialect: "cloudcix", ParentID}
//     whose parent is the allocation or a parent subnet; address_range is
//     CIDR with Gateway as its host part.
//   - Melange ip_address / CloudCIX IPAddress → IPAddress in its block.
//   - Melange policy with unusable ip ranges and octets → IPPolicy.
//   - Melange mac_address_range → MACRange; CloudCIX ASN → ASN.
//
// MemberID is the owner (Melange tenant_id, CloudCIX member_id).

// IPAM dialects: which API created a block. It decides the reserved edge
// addresses and which overlap rules apply; the two dialects never see each
// other's blocks.
const (
	DialectMelange  = "melange"
	DialectCloudCIX = "cloudcix"
)

// Block types (Melange `type`; CloudCIX allocations and subnets use them too).
const (
	BlockPublic  = "public"
	BlockPrivate = "private"
)

// Address generators of a block (how the next free address is chosen).
const (
	GeneratorSequential = "sequential"  // lowest free allowed address (IPv4 and IPv6)
	GeneratorEUI64      = "eui64"       // IPv6 from the MAC, modified EUI-64 (RFC 2462)
	GeneratorTenantHash = "tenant-hash" // IPv6 from sha1(tenant) and the MAC (Melange default)
)

// IPBlock is an address block: a Melange ip_block or subnet, a CloudCIX
// allocation or subnet.
type IPBlock struct {
	Meta
	MemberID uint64 `json:"member_id"`
	Dialect  string `json:"dialect"`
	// CIDR is the network in canonical form, host bits cleared.
	CIDR string `json:"cidr"`
	// Gateway is optional (CloudCIX: the host part of address_range).
	Gateway   string `json:"gateway,omitempty"`
	ParentID  uint64 `json:"parent_id,omitempty"`
	Type      string `json:"type"`
	NetworkID string `json:"network_id,omitempty"`
	PolicyID  uint64 `json:"policy_id,omitempty"`
	Generator string `json:"generator"`
	// ASNID is set on CloudCIX allocations (root cloudcix blocks).
	ASNID uint64 `json:"asn_id,omitempty"`
	Name  string `json:"name,omitempty"`
	DNS1  string `json:"dns1,omitempty"`
	DNS2  string `json:"dns2,omitempty"`
	// CloudCIX subnet attributes, stored as given.
	VLAN            uint32 `json:"vlan,omitempty"`
	VXLAN           uint32 `json:"vxlan,omitempty"`
	VirtualRouterID uint64 `json:"virtual_router_id,omitempty"`
	RouterID        uint64 `json:"router_id,omitempty"`
	// Modified is CloudCIX's modified_by (allocations and subnets).
	Modified
}

// IPAddress is an address held in a block: allocated, or soft-deallocated
// (Deallocated) until restored or purged.
type IPAddress struct {
	Meta
	BlockID uint64 `json:"block_id"`
	// Address is canonical (netip) text; dialects render it (Melange
	// expands IPv6).
	Address string `json:"address"`
	Version int    `json:"version"`
	// MemberID is the owner: the block's member.
	MemberID uint64 `json:"member_id"`
	// UsedByTenant and UsedByDevice are Melange's; UsedByTenant also feeds
	// the tenant-hash generator.
	UsedByTenant string `json:"used_by_tenant,omitempty"`
	UsedByDevice string `json:"used_by_device,omitempty"`
	InterfaceID  string `json:"interface_id,omitempty"`
	MACAddress   string `json:"mac_address,omitempty"`
	Name         string `json:"name,omitempty"`
	VMID         uint64 `json:"vm_id,omitempty"`
	// PublicIPID is CloudCIX's NAT partner of a private address.
	PublicIPID    uint64 `json:"public_ip_id,omitempty"`
	Deallocated   bool   `json:"deallocated"`
	DeallocatedAt string `json:"deallocated_at,omitempty"`
	// Modified is CloudCIX's modified_by.
	Modified
}

// IPPolicy is a Melange policy. Its unusable ranges and octets are part of
// it; each has an id, assigned by the store when it is 0, so the Melange
// sub-resources can be addressed. Editing a policy re-applies it to every
// block that uses it.
type IPPolicy struct {
	Meta
	MemberID       uint64          `json:"member_id"`
	Name           string          `json:"name"`
	Description    string          `json:"description,omitempty"`
	UnusableRanges []UnusableRange `json:"unusable_ranges"`
	UnusableOctets []UnusableOctet `json:"unusable_octets"`
}

// UnusableRange is the Python slice block[offset : offset+length].
// Created and Updated are its own timestamps (state stamps them from the
// command's time); entries stored before they existed have none, and show
// their policy's.
type UnusableRange struct {
	ID      uint64 `json:"id"`
	Offset  int64  `json:"offset"`
	Length  int64  `json:"length"`
	Created string `json:"created,omitempty"`
	Updated string `json:"updated,omitempty"`
}

// UnusableOctet disallows addresses whose last octet (IPv6: last 16-bit
// group) equals Octet. Created and Updated as for UnusableRange.
type UnusableOctet struct {
	ID      uint64 `json:"id"`
	Octet   int64  `json:"octet"`
	Created string `json:"created,omitempty"`
	Updated string `json:"updated,omitempty"`
}

// MACRange is a Melange mac_address_range, e.g. "bc:76:4e:20:00:00/27";
// the CIDR is kept as the caller gave it ("ab-bc-cd-12-23-34/40"), host
// bits and all.
type MACRange struct {
	Meta
	CIDR string `json:"cidr"`
}

// ASN is a CloudCIX autonomous system number owned by a member; allocations
// hang off it. Numbers above PseudoASNBase are project pseudo-ASNs.
type ASN struct {
	Meta
	MemberID uint64 `json:"member_id"`
	Number   uint64 `json:"number"`
}

// PseudoASNBase: a project's pseudo-ASN is PseudoASNBase + project id.
const PseudoASNBase = 1_000_000_000_000

// IsPseudo reports whether the ASN is a project pseudo-ASN.
func (a *ASN) IsPseudo() bool { return a.Number > PseudoASNBase }

// IPPurgeResult is what a purge of soft-deallocated addresses removed.
type IPPurgeResult struct {
	Purged int `json:"purged"`
}

// Interface is a Melange interface: a virtual NIC of a device, named by the
// caller's virtual interface id (VIF, unique). Its addresses are the
// IPAddress rows whose InterfaceID is its VIF. MACAddress is allocated from
// the MAC ranges (lowest free MAC of the first range with room) when the
// caller gives none and a range exists; it is freed with the interface.
type Interface struct {
	Meta
	VIF string `json:"vif"`
	// TenantID is the owner (Melange's lessee tenant; a member id for
	// interfaces made through a tenant URL, any string otherwise).
	TenantID string `json:"tenant_id"`
	DeviceID string `json:"device_id,omitempty"`
	// MACAddress is canonical (lower case, colons), or empty.
	MACAddress string `json:"mac_address,omitempty"`
}

// IPRoute is a Melange static route of a block.
type IPRoute struct {
	Meta
	BlockID     uint64 `json:"block_id"`
	Destination string `json:"destination"`
	Netmask     string `json:"netmask,omitempty"`
	Gateway     string `json:"gateway"`
}

// IPNat links an inside local address to an inside global one (Melange
// NAT, meant for floating IPs); the pair is unique and the link symmetric.
type IPNat struct {
	Meta
	LocalID  uint64 `json:"local_id"`
	GlobalID uint64 `json:"global_id"`
}

// AllowedIP allows an address on an interface besides the ones allocated
// on it (Melange allowed_ips); the pair is unique.
type AllowedIP struct {
	Meta
	InterfaceID uint64 `json:"interface_id"`
	AddressID   uint64 `json:"address_id"`
}

// CIXListEntry is a record of the CIX blacklist (CIDRs CIX recognises as
// malicious) or the CIX whitelist (recognised as trustworthy). CIDR is
// canonical (host bits cleared) and unique within its list.
type CIXListEntry struct {
	Meta
	CIDR    string `json:"cidr"`
	Comment string `json:"comment"`
	Modified
}
