package api

// VPN wire types (cloudcix-facts §5.11). The pre-shared key is write-only:
// no VPN type here carries it; the store keeps it beside the VPN and only
// the agent protocol hands it to robots of the VPN's region.

// VPN types: dynamic secure connect is refused explicitly (not built).
const (
	VPNSiteToSite = "site_to_site"
	VPNDynamic    = "dynamic_secure_connect"
)

// VPN limits and defaults.
const (
	VPNLifetimeMin          = 180
	VPNLifetimeMax          = 86400
	VPNDefaultIKELifetime   = 28800
	VPNDefaultIPSecLifetime = 3600
	STIFMin                 = 10000
	STIFMax                 = 14999
	PSKMax                  = 255
	// PSKForbidden are the characters a pre-shared key may not contain.
	PSKForbidden = "\"'@+-/\\|="
)

// Allowed values of the VPN algorithm sets, and the defaults used when a
// field is left out (those of the newer CloudCIX Compute API).
var (
	IKEAuthentications   = []string{"sha1", "sha-256", "sha-384"}
	IKEEncryptions       = []string{"aes-128-cbc", "aes-192-cbc", "aes-256-cbc"}
	IKEDHGroups          = []string{"group1", "group2", "group5", "group19", "group20", "group24"}
	IPSecAuthentications = []string{"hmac-sha1-96", "hmac-sha-256-128"}
	IPSecEncryptions     = []string{"aes-128-cbc", "aes-192-cbc", "aes-256-cbc", "aes-128-gcm", "aes-192-gcm", "aes-256-gcm"}
	IPSecPFSGroups       = []string{"group1", "group2", "group5", "group14", "group19", "group20", "group24"}
	IKEVersions          = []string{"v1-only", "v2-only"}
	IPSecEstablishTimes  = []string{"immediately", "on-traffic"}
	IKEGatewayTypes      = []string{"public_ip", "hostname"}

	VPNDefaults = VPN{IKEVersion: "v2-only", IKEAuthentication: "sha-384", IKEEncryption: "aes-256-cbc",
		IKEDHGroups: "group24", IKELifetime: VPNDefaultIKELifetime, IKEGatewayType: "public_ip",
		IPSecAuthentication: "hmac-sha-256-128", IPSecEncryption: "aes-256-gcm", IPSecPFSGroups: "group20",
		IPSecEstablishTime: "immediately", IPSecLifetime: VPNDefaultIPSecLifetime, VPNType: VPNSiteToSite}
)

// MaxVPNRoutes bounds the routes of one VPN: each is a pair of traffic
// selectors the agent loads into strongSwan and reports on (a status
// carries at most VPNStatusMaxChildren selectors per child).
const MaxVPNRoutes = VPNStatusMaxChildren

// VPNRoute is a pair of a project subnet and a remote network.
type VPNRoute struct {
	LocalSubnetID uint64 `json:"local_subnet_id"`
	RemoteSubnet  string `json:"remote_subnet"`
}

// VPN is a site-to-site IPsec tunnel of a virtual router. Algorithm
// fields are comma-separated sets, stored sorted (the agent renders one
// proposal per combination).
type VPN struct {
	Meta
	VirtualRouterID     uint64     `json:"virtual_router_id"`
	ProjectID           uint64     `json:"project_id"`
	MemberID            uint64     `json:"member_id"`
	RegionID            uint64     `json:"region_id"`
	VPNType             string     `json:"vpn_type"`
	Description         string     `json:"description"`
	DNS                 string     `json:"dns"`
	SendEmail           bool       `json:"send_email"`
	TrafficSelector     bool       `json:"traffic_selector"`
	STIFNumber          int        `json:"stif_number"`
	IKEVersion          string     `json:"ike_version"`
	IKEAuthentication   string     `json:"ike_authentication"`
	IKEEncryption       string     `json:"ike_encryption"`
	IKEDHGroups         string     `json:"ike_dh_groups"`
	IKELifetime         int        `json:"ike_lifetime"`
	IKEGatewayType      string     `json:"ike_gateway_type"`
	IKEGatewayValue     string     `json:"ike_gateway_value"`
	IKELocalIdentifier  string     `json:"ike_local_identifier"`
	IKERemoteIdentifier string     `json:"ike_remote_identifier"`
	IPSecAuthentication string     `json:"ipsec_authentication"`
	IPSecEncryption     string     `json:"ipsec_encryption"`
	IPSecPFSGroups      string     `json:"ipsec_pfs_groups"`
	IPSecEstablishTime  string     `json:"ipsec_establish_time"`
	IPSecLifetime       int        `json:"ipsec_lifetime"`
	Routes              []VPNRoute `json:"routes"`
}

// VPNHistory is written when a VPN is created, changed or deleted.
type VPNHistory struct {
	Meta
	VPNID       uint64 `json:"vpn_id"`
	ProjectID   uint64 `json:"project_id"`
	MemberID    uint64 `json:"member_id"`
	ProjectName string `json:"project_name"`
	// Action is create, update or delete.
	Action      string `json:"action"`
	VPNQuantity int    `json:"vpn_quantity"`
	UserID      uint64 `json:"user_id"`
	TokenID     uint64 `json:"token_id"`
	Robot       bool   `json:"robot"`
}
