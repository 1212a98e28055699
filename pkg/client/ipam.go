package client

import "github.com/regentcloud/regent/pkg/api"

// Paths of the CloudCIX IPAM services.
const (
	ASNPath        = "/iaas/asn/"
	AllocationPath = "/iaas/allocation/"
	SubnetPath     = "/iaas/subnet/"
	IPAddressPath  = "/iaas/ip_address/"
)

// ASNs is the ASN service.
func (c *Client) ASNs() *Service[*api.ASNView, api.ASNInput] {
	return NewService[*api.ASNView, api.ASNInput](c, ASNPath)
}

// Allocations is the allocation service: the blocks of an ASN.
func (c *Client) Allocations() *Service[*api.AllocationView, api.AllocationInput] {
	return NewService[*api.AllocationView, api.AllocationInput](c, AllocationPath)
}

// Subnets is the subnet service: the blocks of an allocation (or of a
// parent subnet).
func (c *Client) Subnets() *Service[*api.SubnetView, api.SubnetInput] {
	return NewService[*api.SubnetView, api.SubnetInput](c, SubnetPath)
}

// IPAddresses is the IP address service: create one without an address
// to take the subnet's lowest free one.
func (c *Client) IPAddresses() *Service[*api.IPAddressView, api.IPAddressInput] {
	return NewService[*api.IPAddressView, api.IPAddressInput](c, IPAddressPath)
}
