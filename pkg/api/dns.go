package api

// DNS wire types: the CloudCIX Domain, Record and PTR Record services.
// Names are stored lower case without the trailing dot.

// Record types accepted by /iaas/record/ (PTR only through /iaas/ptr_record/).
var RecordTypes = []string{"NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "SPF", "SSHFP", "LOC", "NAPTR"}

// Record defaults and limits (CloudCIX).
const (
	RecordDefaultTTL      = 3600
	RecordMinTTL          = 180
	RecordMaxTTL          = 1<<31 - 1 // RFC 2181
	RecordDefaultPriority = 1
)

// Domain is a forward or reverse zone served by the region's name servers.
type Domain struct {
	Meta
	MemberID uint64 `json:"member_id"`
	Name     string `json:"name"`
	Modified
	// Serial is the SOA serial: the raft index of the last change to the
	// zone's records (or of its creation).
	Serial uint64 `json:"serial"`
}

// Record is a DNS record of a domain. A PTR record (type PTR) also carries
// the address it names and the member that owns it.
type Record struct {
	Meta
	DomainID        uint64 `json:"domain_id"`
	MemberID        uint64 `json:"member_id"`
	Name            string `json:"name"`
	Type            string `json:"type"`
	Content         string `json:"content"`
	TTL             uint32 `json:"ttl"`
	Priority        uint32 `json:"priority"`
	Failover        bool   `json:"failover"`
	FailoverContent string `json:"failover_content"`
	Georegion       int    `json:"georegion"`
	IPAddress       string `json:"ip_address,omitempty"`
	Modified
}

// RecordInput is the SDK's body of a record create or update (PATCH sends
// the fields set). Nil fields are left out: the API's defaults apply
// (ttl RecordDefaultTTL, priority RecordDefaultPriority).
type RecordInput struct {
	DomainID        *uint64 `json:"domain_id,omitempty"`
	Name            *string `json:"name,omitempty"`
	Type            *string `json:"type,omitempty"`
	Content         *string `json:"content,omitempty"`
	TTL             *uint32 `json:"ttl,omitempty"`
	Priority        *uint32 `json:"priority,omitempty"`
	Failover        *bool   `json:"failover,omitempty"`
	FailoverContent *string `json:"failover_content,omitempty"`
}

// PTRRecordInput is the SDK's body of a PTR record create or update: the
// address, the name it points to and the TTL.
type PTRRecordInput struct {
	IPAddress *string `json:"ip_address,omitempty"`
	Content   *string `json:"content,omitempty"`
	TTL       *uint32 `json:"ttl,omitempty"`
}
