package client

import "github.com/regentcloud/regent/pkg/api"

// Paths of the DNS services (CloudCIX /iaas/).
const (
	DomainPath    = "/iaas/domain/"
	RecordPath    = "/iaas/record/"
	PTRRecordPath = "/iaas/ptr_record/"
)

// Domains is the domain (zone) service of self-managed members. A domain
// is not updated (its Update and Replace are refused): create and delete
// it; deleting it removes its records.
func (c *Client) Domains() *Service[*api.Domain, api.NameInput] {
	return NewService[*api.Domain, api.NameInput](c, DomainPath)
}

// Records is the record service of the members' domains (every type but
// PTR).
func (c *Client) Records() *Service[*api.Record, api.RecordInput] {
	return NewService[*api.Record, api.RecordInput](c, RecordPath)
}

// PTRRecords is the PTR record service: the reverse name of an address
// the member holds, in the region's reverse zones.
func (c *Client) PTRRecords() *Service[*api.Record, api.PTRRecordInput] {
	return NewService[*api.Record, api.PTRRecordInput](c, PTRRecordPath)
}
