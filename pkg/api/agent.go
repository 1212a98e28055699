package api

import "unicode/utf8"

// Agent work specs: the desired state the controller hands to regent-agent
// (GET /v1/agent/work). They are complete, so an agent never needs a second
// request to build an object, and they carry the object's state and
// generation for compare-and-swap reports.

// RouterSpec is a project's virtual router, for agents with the network role.
type RouterSpec struct {
	ID         uint64 `json:"id"`
	ProjectID  uint64 `json:"project_id"`
	State      int    `json:"state"`
	Generation uint64 `json:"generation"`
	// PublicIP is the router's address on the region's floating subnet, with
	// that subnet's prefix length ("203.0.113.10/24"); PublicGateway is the
	// floating subnet's gateway (the default route of the namespace).
	PublicIP      string `json:"public_ip"`
	PublicGateway string `json:"public_gateway"`
	// NAT are the 1:1 NAT pairs: traffic to Public is sent to Private, and
	// Private leaves as Public. Everything else leaves SNATed to PublicIP.
	NAT     []NATSpec          `json:"nat"`
	Subnets []RouterSubnetSpec `json:"subnets"`
	// FirewallRules in ascending Order. Inbound traffic (towards a private
	// subnet) is dropped unless an allow rule matches; outbound traffic is
	// accepted unless a block rule matches. Established traffic and DNS are
	// always allowed.
	FirewallRules []FirewallRuleSpec `json:"firewall_rules"`
	// Metadata is what the router's metadata service (169.254.169.254)
	// answers to each VM, selected by the VM's private address.
	Metadata []MetadataSpec `json:"metadata"`
	// VPNs are the router's site-to-site IPsec tunnels. They have no state
	// of their own: a VPN change moves the router to RUNNING_UPDATE.
	VPNs []VPNSpec `json:"vpns"`
}

// VPNSpec is one site-to-site VPN of a virtual router, with everything
// needed to load it into strongSwan. Algorithm fields carry the API
// values (comma-separated sets, cloudcix-facts §5.11); the agent maps them
// to strongSwan keywords. The router's end is RouterSpec.PublicIP.
type VPNSpec struct {
	ID         uint64 `json:"id"`
	STIFNumber int    `json:"stif_number"`
	IKEVersion string `json:"ike_version"` // v1-only or v2-only
	// IKEAuthentication, IKEEncryption and IKEDHGroups are API value sets
	// such as "sha-256,sha-384".
	IKEAuthentication string `json:"ike_authentication"`
	IKEEncryption     string `json:"ike_encryption"`
	IKEDHGroups       string `json:"ike_dh_groups"`
	IKELifetime       int    `json:"ike_lifetime"` // seconds
	// IKEGatewayValue is the remote peer: an IPv4 address or a host name.
	IKEGatewayType      string `json:"ike_gateway_type"`
	IKEGatewayValue     string `json:"ike_gateway_value"`
	IKELocalIdentifier  string `json:"ike_local_identifier,omitempty"`
	IKERemoteIdentifier string `json:"ike_remote_identifier,omitempty"`
	// PreSharedKey is only ever sent to robots of the VPN's region. It
	// must never be logged.
	PreSharedKey        string `json:"pre_shared_key"`
	IPSecAuthentication string `json:"ipsec_authentication"`
	IPSecEncryption     string `json:"ipsec_encryption"`
	IPSecPFSGroups      string `json:"ipsec_pfs_groups"`
	IPSecEstablishTime  string `json:"ipsec_establish_time"` // immediately or on-traffic
	IPSecLifetime       int    `json:"ipsec_lifetime"`       // seconds
	// TrafficSelector: narrow the child SAs to the routes' subnets;
	// otherwise both selectors are 0.0.0.0/0 and routes steer traffic.
	TrafficSelector bool           `json:"traffic_selector"`
	Routes          []VPNRouteSpec `json:"routes"`
}

// VPNRouteSpec is one route of a VPN: a project subnet (CIDR) and the
// remote network reached through the tunnel.
type VPNRouteSpec struct {
	LocalSubnet  string `json:"local_subnet"`
	RemoteSubnet string `json:"remote_subnet"`
}

// VPNStatus is the live IPsec state of one VPN as its agent read it from
// strongSwan (list-sas): GET /iaas/vpn_status/{vpn_id}/ answers the latest
// report. An agent reports every VPN of its routers on each heartbeat.
type VPNStatus struct {
	VPNID           uint64 `json:"vpn_id"`
	VirtualRouterID uint64 `json:"virtual_router_id"`
	// Time is when the agent read the state (RFC 3339).
	Time string `json:"time"`
	// IKEState is strongSwan's IKE_SA state (ESTABLISHED, CONNECTING, …),
	// DOWN when there is no IKE SA, or UNKNOWN before the first report.
	IKEState    string `json:"ike_state"`
	IKEVersion  int    `json:"ike_version,omitempty"`
	LocalHost   string `json:"local_host,omitempty"`
	RemoteHost  string `json:"remote_host,omitempty"`
	Established int64  `json:"established_seconds,omitempty"`
	// Children are the IPsec (child) SAs.
	Children []VPNChildStatus `json:"children"`
	// Error says why the VPN could not be loaded or read, if it could not.
	Error string `json:"error,omitempty"`
}

// Bounds of a VPN status report: the controller refuses a heartbeat whose
// statuses exceed them (VPNStatus.Clip keeps a report inside).
const (
	VPNStatusMaxString   = 256  // ike_state, hosts, time, child names and states
	VPNStatusMaxError    = 1024 // error
	VPNStatusMaxChildren = 64   // children (or twice the VPN's routes), and selectors per child
)

// Clip shortens what an agent read from strongSwan to the bounds a
// heartbeat may carry, so that one long error message cannot get the
// whole heartbeat refused (and the agent judged down).
func (s *VPNStatus) Clip() {
	cut := CutUTF8
	s.IKEState, s.LocalHost, s.RemoteHost = cut(s.IKEState, VPNStatusMaxString), cut(s.LocalHost, VPNStatusMaxString), cut(s.RemoteHost, VPNStatusMaxString)
	s.Time, s.Error = cut(s.Time, VPNStatusMaxString), cut(s.Error, VPNStatusMaxError)
	if len(s.Children) > VPNStatusMaxChildren {
		s.Children = s.Children[:VPNStatusMaxChildren]
	}
	for i := range s.Children {
		c := &s.Children[i]
		c.Name, c.State = cut(c.Name, VPNStatusMaxString), cut(c.State, VPNStatusMaxString)
		if len(c.LocalTS) > VPNStatusMaxChildren {
			c.LocalTS = c.LocalTS[:VPNStatusMaxChildren]
		}
		if len(c.RemoteTS) > VPNStatusMaxChildren {
			c.RemoteTS = c.RemoteTS[:VPNStatusMaxChildren]
		}
	}
}

// CutUTF8 shortens s to at most n bytes without cutting a character in
// two (a cut one would travel as U+FFFD, three bytes, and the string would
// come out longer than n at the other end).
func CutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// IKE states that are not strongSwan's: no IKE SA, and no report yet.
const (
	VPNStateDown    = "DOWN"
	VPNStateUnknown = "UNKNOWN"
)

// VPNChildStatus is one IPsec SA of a VPN.
type VPNChildStatus struct {
	Name       string   `json:"name"`
	State      string   `json:"state"` // INSTALLED, REKEYING, …
	LocalTS    []string `json:"local_ts"`
	RemoteTS   []string `json:"remote_ts"`
	BytesIn    uint64   `json:"bytes_in"`
	BytesOut   uint64   `json:"bytes_out"`
	PacketsIn  uint64   `json:"packets_in"`
	PacketsOut uint64   `json:"packets_out"`
}

// NATSpec is one 1:1 NAT pair.
type NATSpec struct {
	Private string `json:"private"`
	Public  string `json:"public"`
	// PublicPrefixLength is the prefix length of the floating subnet
	// Public belongs to (a router may draw NAT addresses from several):
	// the address carries it on the router's public interface. 0 (an
	// older controller): the router's own prefix length when Public is in
	// the router's floating subnet, else 32.
	PublicPrefixLength int `json:"public_prefix_length,omitempty"`
}

// RouterSubnetSpec is one project subnet behind the router.
type RouterSubnetSpec struct {
	ID uint64 `json:"id"`
	// AddressRange is in gateway notation: "10.0.0.1/24" puts 10.0.0.1 on
	// the router's side of the segment.
	AddressRange string `json:"address_range"`
	VLAN         uint32 `json:"vlan"`
	VNI          uint32 `json:"vni"`
	// VTEPs are the VXLAN tunnel endpoints of the other hosts that serve
	// this segment (hypervisors with VMs on it); the agent points the
	// segment's FDB at them.
	VTEPs []string `json:"vteps"`
	// DNS servers handed out by DHCP.
	DNS []string `json:"dns"`
	// DHCP are the static MAC → address bindings of the segment.
	DHCP []DHCPHostSpec `json:"dhcp"`
}

// DHCPHostSpec is one static DHCP binding.
type DHCPHostSpec struct {
	MAC      string `json:"mac"`
	IP       string `json:"ip"`
	Hostname string `json:"hostname,omitempty"`
}

// FirewallRuleSpec is one CloudCIX firewall rule. Exactly one of Source and
// Destination is a project subnet; the other is a public address, prefix or
// "*" (any). A rule whose destination is private is inbound.
type FirewallRuleSpec struct {
	Order       int    `json:"order"`
	Allow       bool   `json:"allow"`
	Protocol    string `json:"protocol"` // any, icmp, tcp, udp
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Port        string `json:"port,omitempty"` // "N" or "N-M" for tcp and udp
	// Log sends matching packets to the router's policy log (nflog).
	Log         bool   `json:"log,omitempty"`
	Description string `json:"description,omitempty"`
}

// MetadataSpec is what one VM is told about itself by the metadata service
// and the NoCloud seed: the CloudCIX cloud-init datasource reads
// /v1/metadata (JSON) and /v1/userdata.
type MetadataSpec struct {
	// Address is the VM's private address the request comes from.
	Address    string   `json:"address"`
	InstanceID string   `json:"instance_id"` // "<project>_<vm>"
	Hostname   string   `json:"hostname"`
	PublicKeys []string `json:"public_keys,omitempty"`
	Userdata   string   `json:"userdata,omitempty"`
	// DNS are the VM's own DNS servers (its dns field), for the network
	// configuration of its gateway NIC.
	DNS []string `json:"dns,omitempty"`
	// IPAddresses are the VM's addresses with their NAT partners.
	IPAddresses []MetadataAddress `json:"ip_addresses"`
}

// MetadataAddress is one address of a VM as the metadata service shows it.
type MetadataAddress struct {
	PrivateIP string `json:"private_ip"`
	PublicIP  string `json:"public_ip,omitempty"`
	Subnet    string `json:"subnet"`
	MAC       string `json:"mac"`
	Gateway   string `json:"gateway"`
}

// Agent roles.
const (
	RoleHypervisor = "hypervisor"
	RoleNetwork    = "network"
)

// HeaderAgentID is the request header in which an agent sends its
// instance id (random, kept in <data_dir>/agent-id) on every agent call.
// The leader remembers which instance it last heard for each server and
// router and refuses another one's calls (409 ErrAgentConflict) while
// that one is alive: two hosts with one hostname, or two agents on one
// data_dir, would otherwise act as one server. A call without it (an
// older agent) is never refused.
const HeaderAgentID = "X-Regent-Agent-Id"

// ErrAgentConflict is the error_code of the 409 answered to an agent
// call for a server or router another agent instance holds.
const ErrAgentConflict = "agent_conflict_001"

// AgentRegistration is the body of POST /v1/agent/register: the agent's
// server, its network interfaces and its capacity.
type AgentRegistration struct {
	Hostname   string           `json:"hostname"`
	Roles      []string         `json:"roles"`
	VTEP       string           `json:"vtep,omitempty"`
	Version    string           `json:"version"`
	Interfaces []AgentInterface `json:"interfaces"`
	Capacity   Capacity         `json:"capacity"`
}

// AgentInterface is one network interface of a server.
type AgentInterface struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac_address"`
	Addresses []string `json:"ip_addresses"`
	Up        bool     `json:"up"`
}

// Capacity is what a server has for guests.
type Capacity struct {
	CPUCores int               `json:"cpu_cores"`
	RAMMB    uint64            `json:"ram_mb"`
	Storage  []StorageCapacity `json:"storage"`
}

// StorageCapacity is the disk space of one storage type on a server.
type StorageCapacity struct {
	Type    string `json:"type"`
	TotalGB uint64 `json:"total_gb"`
	FreeGB  uint64 `json:"free_gb"`
}

// Heartbeat is the body of POST /v1/agent/heartbeat: the ids the
// registration returned, and the server's capacity now.
type Heartbeat struct {
	ServerID uint64   `json:"server_id,omitempty"`
	RouterID uint64   `json:"router_id,omitempty"`
	Capacity Capacity `json:"capacity"`
	// PolicyLog are the firewall log entries (rules with logging on) the
	// agent's routers recorded since its last heartbeat. An agent sends
	// entries again when it cannot tell whether the heartbeat that carried
	// them was taken; their Seq lets the leader keep each once.
	PolicyLog []PolicyLogEntry `json:"policy_log,omitempty"`
	// PolicyLogEpoch names the numbering of the entries' Seq: it changes
	// whenever the agent's sequence numbers restart (a random id made at
	// each agent start), and is required when entries carry Seq.
	PolicyLogEpoch string `json:"policy_log_epoch,omitempty"`
	// VPNStatus is the current state of every VPN on the agent's routers.
	VPNStatus []VPNStatus `json:"vpn_status,omitempty"`
	// Health is "ok" or "degraded"; Detail says why.
	Health string `json:"health"`
	Detail string `json:"detail,omitempty"`
}

// AgentRegistered is the answer to a registration: the records the agent
// acts for (0 for a role it does not have) and how often to heartbeat.
type AgentRegistered struct {
	ServerID uint64 `json:"server_id"`
	RouterID uint64 `json:"router_id"`
	// HeartbeatInterval is the interval in whole seconds, rounded up
	// (at least 1), for agents that do not read HeartbeatIntervalMS.
	HeartbeatInterval int `json:"heartbeat_interval"`
	// HeartbeatIntervalMS is the interval in milliseconds: the agent's
	// heartbeat interval when set (a sub-second interval sent in seconds
	// was 0, which agents read as their 10 s default, while the controller
	// judged them down after three of its intervals).
	HeartbeatIntervalMS int64 `json:"heartbeat_interval_ms,omitempty"`
	// AgentDownAfterMS is the controller's agent_down_after in
	// milliseconds: an agent it has not heard from for that long is
	// down, and another agent instance may register and take over its
	// server and router. 0 from an older controller.
	AgentDownAfterMS int64 `json:"agent_down_after_ms,omitempty"`
	// PolicyLogSeq says the controller takes the policy log entries'
	// seq and the heartbeat's policy_log_epoch (it drops what an agent
	// sends again). An older controller, which refuses fields it does not
	// know, leaves it out, and the agent sends neither.
	PolicyLogSeq bool `json:"policy_log_seq,omitempty"`
}

// Work is the answer to GET /v1/agent/work: everything the controller
// wants built on the caller's server (VMs) and router (virtual routers),
// in any state but CLOSED. It is complete: an object the agent built that
// is not listed must go.
type Work struct {
	Index   uint64       `json:"index"`
	Routers []RouterSpec `json:"routers"`
	VMs     []VMSpec     `json:"vms"`
}

// VMSpec is a VM, for agents with the hypervisor role.
type VMSpec struct {
	ID         uint64 `json:"id"`
	ProjectID  uint64 `json:"project_id"`
	Name       string `json:"name"`
	State      int    `json:"state"`
	Generation uint64 `json:"generation"`
	CPU        int    `json:"cpu"`
	RAMMB      int    `json:"ram_mb"`
	// Image is what the primary disk is cloned from.
	Image       ImageSpec     `json:"image"`
	StorageType string        `json:"storage_type"`
	Storages    []StorageSpec `json:"storages"`
	// NICs in order: the gateway subnet's first.
	NICs     []NICSpec    `json:"nics"`
	Metadata MetadataSpec `json:"metadata"`
	// Snapshots and Backups of the VM that are not CLOSED, by id. The agent
	// reports their state changes like a VM's (PATCH /iaas/snapshot/{id}/
	// and /iaas/backup/{id}/ with expected_state).
	Snapshots []SnapshotSpec `json:"snapshots"`
	Backups   []BackupSpec   `json:"backups"`
}

// SnapshotSpec is one snapshot of a VM. The VM's snapshots form a tree by
// ParentID; the Active one is what the VM runs from. REQUESTED means take
// it, RUNNING_UPDATE revert the VM to it, SCRUB delete it (and with
// RemoveSubtree its descendants).
type SnapshotSpec struct {
	ID            uint64 `json:"id"`
	Name          string `json:"name"`
	ParentID      uint64 `json:"parent_id"`
	Active        bool   `json:"active"`
	RemoveSubtree bool   `json:"remove_subtree"`
	State         int    `json:"state"`
	Generation    uint64 `json:"generation"`
}

// BackupSpec is one backup of a VM: REQUESTED means copy the VM's disks
// into the repository, SCRUB delete the copy.
type BackupSpec struct {
	ID         uint64 `json:"id"`
	Name       string `json:"name"`
	Repository int    `json:"repository"`
	State      int    `json:"state"`
	Generation uint64 `json:"generation"`
}

// ImageSpec is an image a VM is built from.
type ImageSpec struct {
	ID        uint64 `json:"id"`
	Filename  string `json:"filename"`
	OSVariant string `json:"os_variant"`
	CloudInit bool   `json:"cloud_init"`
	Windows   bool   `json:"windows"`
	// Source is where the agent imports the image from: an absolute path
	// on the hypervisor, a path relative to the agent's image directory, or
	// a file://, http:// or https:// URL.
	Source string `json:"source"`
	// SHA256 is the hex digest of the image file; the agent refuses an
	// import that does not match.
	SHA256 string `json:"sha256"`
}

// StorageSpec is one disk of a VM.
type StorageSpec struct {
	ID      uint64 `json:"id"`
	Name    string `json:"name"`
	GB      int    `json:"gb"`
	Primary bool   `json:"primary"`
}

// NICSpec is one network interface of a VM, on one project subnet.
type NICSpec struct {
	SubnetID uint64 `json:"subnet_id"`
	MAC      string `json:"mac"`
	// Addresses are the VM's addresses on the subnet with its prefix
	// length ("10.0.0.2/24").
	Addresses []string `json:"addresses"`
	Gateway   string   `json:"gateway"`
	VLAN      uint32   `json:"vlan"`
	VNI       uint32   `json:"vni"`
	// VTEPs of the other hosts on the segment: the network agent of the
	// project's router and hypervisors with VMs on it.
	VTEPs []string `json:"vteps"`
}

// Agent liveness (Server.Status, Router.Status).
const (
	AgentUp   = "up"
	AgentDown = "down"
)

// Agent health: what an agent says of itself in its heartbeats (ok or
// degraded), and what the controller shows of it (agent_health of a server
// or router view): unknown when the answering node has no report to go by
// (it is not the leader, it became leader since the agent's last
// heartbeat, or the agent has been silent past the down-after deadline).
const (
	AgentHealthOK       = "ok"
	AgentHealthDegraded = "degraded"
	AgentHealthUnknown  = "unknown"
)

// PolicyLogMaxString bounds each string of a policy log entry (a time,
// an address with its prefix, a protocol name) and a heartbeat's
// PolicyLogEpoch: the controller refuses a heartbeat with a longer one.
const PolicyLogMaxString = 64

// PolicyLogEntry is one packet that matched a firewall rule with logging
// on (GET /iaas/policy_log/{project_id}/).
type PolicyLogEntry struct {
	// Seq is the agent's sequence number of the entry (agent protocol
	// only): increasing per virtual router within the heartbeat's
	// PolicyLogEpoch, so the leader keeps an entry sent again once. 0 (an
	// older agent): not checked. The listing does not show it.
	Seq             uint64 `json:"seq,omitempty"`
	Time            string `json:"time"` // RFC 3339
	VirtualRouterID uint64 `json:"virtual_router_id"`
	Direction       string `json:"direction"` // in or out
	Order           int    `json:"order"`     // the rule's order
	Action          string `json:"action"`    // allow or block
	Protocol        string `json:"protocol"`
	Source          string `json:"source"`
	Destination     string `json:"destination"`
	SourcePort      int    `json:"source_port,omitempty"`
	DestinationPort int    `json:"destination_port,omitempty"`
}

// ServerView is a server as /iaas/server/ shows it: the stored record and
// the health its agent reports (both fields absent while no agent has
// registered for it, like status).
type ServerView struct {
	Server
	// AgentHealth is ok, degraded or unknown (see AgentHealthUnknown).
	AgentHealth string `json:"agent_health,omitempty"`
	// AgentHealthDetail says why the agent is degraded ("" otherwise).
	AgentHealthDetail string `json:"agent_health_detail,omitempty"`
}

// RouterView is a router as /iaas/router/ shows it: the stored record,
// CloudCIX's capacity_available (capacity less its virtual routers that
// are not CLOSED; null for a phantom) and the health its agent reports.
type RouterView struct {
	Router
	CapacityAvailable *int   `json:"capacity_available"`
	AgentHealth       string `json:"agent_health,omitempty"`
	AgentHealthDetail string `json:"agent_health_detail,omitempty"`
}
