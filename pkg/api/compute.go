package api

import (
	"math"
	"time"
)

// Compute wire types: the CloudCIX project, cloud, virtual router, VM,
// storage, image, server and router services (cloudcix-facts §5). An
// object with a state also carries:
//   - Generation: bumped on every change of its spec (what an agent builds);
//   - ObservedGeneration: the generation an agent last reported building;
//   - ErrorCode/ErrorDetail: why it is UNRESOURCED (cleared on leaving it).

// Server type ids (fixed by CloudCIX).
const (
	ServerTypeHyperV  = 1
	ServerTypeKVM     = 2
	ServerTypePhantom = 3
	ServerTypeA100    = 4
	ServerTypeH100    = 5
)

// ServerType is a kind of hypervisor. The catalogue is fixed (ServerTypes).
type ServerType struct {
	Meta
	Name string `json:"name"`
}

// ServerTypes is the fixed catalogue of server types.
var ServerTypes = []*ServerType{
	{Meta: catalogueMeta(ServerTypeHyperV), Name: "HyperV"},
	{Meta: catalogueMeta(ServerTypeKVM), Name: "KVM"},
	{Meta: catalogueMeta(ServerTypePhantom), Name: "Phantom"},
	{Meta: catalogueMeta(ServerTypeA100), Name: "GPU_A100"},
	{Meta: catalogueMeta(ServerTypeH100), Name: "GPU_H100"},
}

func catalogueMeta(id uint64) Meta {
	return Meta{ID: id, Created: "2024-01-01T00:00:00Z", Updated: "2024-01-01T00:00:00Z", CreatedIndex: 1, ModifiedIndex: 1}
}

// Project defaults and limits.
const (
	ProjectDefaultGrace = 168 // hours
	VLANMin             = 1000
	VLANMax             = 2000
	// VNIs are handed out from VNIMin up, unique per region.
	VNIMin = 10000
	VNIMax = 1<<24 - 1
	// UserdataMax is the largest userdata accepted (bytes).
	UserdataMax = 16 << 10
)

// ScrubDue reports whether an object that entered SCRUB_QUEUE at
// stateChanged has waited out the project's grace period at now (CloudCIX:
// changed + grace hours < now). Robots scrub only such objects. A grace
// period longer than a time.Duration counts (about 292 years) never ends:
// it must not wrap around to a negative one that has already ended.
func ScrubDue(state int, stateChanged string, graceHours int, now time.Time) bool {
	if state != StateScrubQueue || int64(graceHours) > int64(math.MaxInt64/time.Hour) {
		return false
	}
	at, err := time.Parse(time.RFC3339Nano, stateChanged)
	if err != nil {
		return false
	}
	return at.Add(time.Duration(graceHours) * time.Hour).Before(now)
}

// Project is a tenant's cloud project in a region. Creating one also
// creates its virtual router, its pseudo-ASN (PseudoASNBase + id) and its
// three private allocations.
type Project struct {
	Meta
	MemberID uint64 `json:"member_id"`
	RegionID uint64 `json:"region_id"`
	Name     string `json:"name"`
	Note     string `json:"note"`
	// GracePeriod, in hours, is how long objects wait in SCRUB_QUEUE.
	GracePeriod     int    `json:"grace_period"`
	ManagerID       uint64 `json:"manager_id"`
	ResellerID      uint64 `json:"reseller_id"`
	Closed          bool   `json:"closed"`
	ASNID           uint64 `json:"asn_id"`
	ASN             uint64 `json:"asn"`
	VirtualRouterID uint64 `json:"virtual_router_id"`
	// AllocationIDs are the private allocations: 10/8, 172.16/12, 192.168/16.
	AllocationIDs []uint64 `json:"allocation_ids"`
	// Modified is the user of the last create or change, robots' state
	// changes included (a robot token acts for its user).
	Modified
}

// FirewallRule is one rule of a virtual router; the list is replaced as a
// whole through cloud update.
type FirewallRule struct {
	Order        int    `json:"order"`
	Allow        bool   `json:"allow"`
	Source       string `json:"source"`
	Destination  string `json:"destination"`
	Protocol     string `json:"protocol"`
	Port         string `json:"port"`
	Description  string `json:"description"`
	PCILogging   bool   `json:"pci_logging"`
	DebugLogging bool   `json:"debug_logging"`
}

// VirtualRouter is a project's router: a namespace on a physical Router.
type VirtualRouter struct {
	Meta
	ProjectID          uint64         `json:"project_id"`
	MemberID           uint64         `json:"member_id"`
	RegionID           uint64         `json:"region_id"`
	RouterID           uint64         `json:"router_id"`
	IPAddressID        uint64         `json:"ip_address_id"`
	IPAddress          string         `json:"ip_address"`
	State              int            `json:"state"`
	StateChanged       string         `json:"state_changed"`
	Generation         uint64         `json:"generation"`
	ObservedGeneration uint64         `json:"observed_generation"`
	ErrorCode          string         `json:"error_code"`
	ErrorDetail        string         `json:"error_detail"`
	FirewallRules      []FirewallRule `json:"firewall_rules"`
}

// VM is a virtual machine of a project, placed on a Server.
type VM struct {
	Meta
	ProjectID       uint64 `json:"project_id"`
	MemberID        uint64 `json:"member_id"`
	RegionID        uint64 `json:"region_id"`
	ServerID        uint64 `json:"server_id"`
	ImageID         uint64 `json:"image_id"`
	StorageTypeID   uint64 `json:"storage_type_id"`
	GatewaySubnetID uint64 `json:"gateway_subnet_id"`
	Name            string `json:"name"`
	CPU             int    `json:"cpu"`
	RAM             int    `json:"ram"`
	GPU             int    `json:"gpu"`
	DNS             string `json:"dns"`
	PublicKey       string `json:"public_key"`
	Userdata        string `json:"userdata"`
	GUID            string `json:"guid"`
	// NATCount is how many of its addresses have a NAT public address.
	NATCount int `json:"nat_count"`
	State    int `json:"state"`
	// StateChanged is when the state last changed (RFC 3339): the start
	// of the grace period in SCRUB_QUEUE.
	StateChanged       string `json:"state_changed"`
	Generation         uint64 `json:"generation"`
	ObservedGeneration uint64 `json:"observed_generation"`
	ErrorCode          string `json:"error_code"`
	ErrorDetail        string `json:"error_detail"`
}

// Storage is a disk of a VM.
type Storage struct {
	Meta
	VMID          uint64 `json:"vm_id"`
	ProjectID     uint64 `json:"project_id"`
	MemberID      uint64 `json:"member_id"`
	StorageTypeID uint64 `json:"storage_type_id"`
	Name          string `json:"name"`
	GB            int    `json:"gb"`
	Primary       bool   `json:"primary"`
}

// StorageType is a kind of disk (HDD, SSD).
type StorageType struct {
	Meta
	Name string `json:"name"`
}

// Image is an operating system image VMs are built from.
type Image struct {
	Meta
	DisplayName    string `json:"display_name"`
	Filename       string `json:"filename"`
	AnswerFileName string `json:"answer_file_name"`
	CloudInit      bool   `json:"cloud_init"`
	MultipleIPs    bool   `json:"multiple_ips"`
	OSVariant      string `json:"os_variant"`
	Public         bool   `json:"public"`
	// Windows images need a primary disk of at least 32 GB.
	Windows      bool   `json:"windows"`
	ServerTypeID uint64 `json:"server_type_id"`
	// Source is where hypervisors import the image from: an absolute
	// path, a path relative to the agent's image directory, or a file://,
	// http:// or https:// URL. SHA256 is the hex digest of the file.
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
}

// RegionImage says an image is available in a region.
type RegionImage struct {
	Meta
	RegionID uint64 `json:"region_id"`
	ImageID  uint64 `json:"image_id"`
}

// Server is a hypervisor of a region.
type Server struct {
	Meta
	RegionID      uint64 `json:"region_id"`
	TypeID        uint64 `json:"type_id"`
	StorageTypeID uint64 `json:"storage_type_id"`
	Cores         int    `json:"cores"`
	RAM           int    `json:"ram"`
	GB            int    `json:"gb"`
	Enabled       bool   `json:"enabled"`
	AssetTag      string `json:"asset_tag"`
	Model         string `json:"model"`
	// Set by the agent that registers it (POST /v1/agent/register).
	Hostname     string `json:"hostname,omitempty"`
	VTEP         string `json:"vtep,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
	// AgentID is the instance id (HeaderAgentID) of the agent that last
	// registered it: a new leader takes it as the holder until it has
	// heard that agent or another has registered.
	AgentID string `json:"agent_id,omitempty"`
	// Status is the agent's liveness as the leader last judged it from
	// heartbeats: "up" or "down" ("" before its first registration).
	Status string `json:"status,omitempty"`
}

// Interface is a network interface of a Server.
type ServerInterface struct {
	Meta
	ServerID   uint64 `json:"server_id"`
	RegionID   uint64 `json:"region_id"`
	Hostname   string `json:"hostname"`
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address"`
	Enabled    bool   `json:"enabled"`
	Details    string `json:"details"`
}

// Router is a physical network appliance (PodNet) hosting virtual routers.
type Router struct {
	Meta
	RegionID uint64 `json:"region_id"`
	// Capacity is the most virtual routers it hosts; nil: a phantom
	// router, unlimited.
	Capacity *int `json:"capacity"`
	Enabled  bool `json:"enabled"`
	// FloatingSubnetIDs are the public (cloudcix) subnets the router's
	// virtual router and NAT addresses come from, lowest free first.
	FloatingSubnetIDs   []uint64 `json:"floating_subnet_ids"`
	AssetTag            string   `json:"asset_tag"`
	Model               string   `json:"model"`
	Username            string   `json:"username"`
	ManagementInterface string   `json:"management_interface"`
	PublicInterface     string   `json:"public_interface"`
	PrivateInterface    string   `json:"private_interface"`
	OOBInterface        string   `json:"oob_interface"`
	// Set by the agent that registers it (POST /v1/agent/register).
	Hostname     string `json:"hostname,omitempty"`
	VTEP         string `json:"vtep,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
	// AgentID is the instance id (HeaderAgentID) of the agent that last
	// registered it: a new leader takes it as the holder until it has
	// heard that agent or another has registered.
	AgentID string `json:"agent_id,omitempty"`
	// Status is the agent's liveness as the leader last judged it from
	// heartbeats: "up" or "down" ("" before its first registration).
	Status string `json:"status,omitempty"`
}

// StorageHistory is a disk of a VM as a history row records it.
type StorageHistory struct {
	StorageID uint64 `json:"storage_id"`
	Name      string `json:"name"`
	GB        int    `json:"gb"`
}

// VMHistory is written on every state change of a VM, with the actor.
type VMHistory struct {
	Meta
	VMID          uint64 `json:"vm_id"`
	ProjectID     uint64 `json:"project_id"`
	MemberID      uint64 `json:"member_id"`
	ProjectVMName string `json:"project_vm_name"`
	State         int    `json:"state"`
	// The quantities billed, under CloudCIX's names (cloudcix-facts
	// §5.13); snapshots written before carry cpu, ram and gpu, which
	// state's snapshot loader still reads.
	CPUQuantity int              `json:"cpu_quantity"`
	RAMQuantity int              `json:"ram_quantity"`
	GPUQuantity int              `json:"gpu_quantity"`
	ImageID     uint64           `json:"image_id"`
	NATQuantity int              `json:"nat_quantity"`
	Storages    []StorageHistory `json:"storage_histories"`
	// The actor: the user and token that caused the change; Robot is set
	// when it was a robot token.
	UserID  uint64 `json:"user_id"`
	TokenID uint64 `json:"token_id"`
	Robot   bool   `json:"robot"`
}

// PlacementFactors are the knobs of the CloudCIX placement score (§6.1).
// The leader stamps them into each command, so every node places alike.
type PlacementFactors struct {
	CPUOversubscription int     `json:"cpu_oversubscription"`
	RAMReserveGB        int     `json:"ram_reserve_gb"`
	DiskReserveGB       int     `json:"disk_reserve_gb"`
	RAMFactor           float64 `json:"ram_factor"`
	DiskFactor          float64 `json:"disk_factor"`
	CPUFactor           float64 `json:"cpu_factor"`
}

// DefaultPlacement is CloudCIX's create limits.
var DefaultPlacement = PlacementFactors{CPUOversubscription: 8, RAMReserveGB: 8, DiskReserveGB: 100,
	RAMFactor: 0.85, DiskFactor: 0.77, CPUFactor: 0.77}

// Upper bounds of the compute sizes the API accepts (400 above them): far
// above any host, and low enough that capacity and placement arithmetic on
// them stays exact. The agent's capacity reports are held to the same.
const (
	MaxCores     = 1 << 20 // a server's cores, a VM's cpu
	MaxRAMGB     = 1 << 32 // a server's ram, a VM's ram (GB)
	MaxStorageGB = 1 << 40 // a server's gb, one storage's gb, a VM's storages together (GB)
)

// MaxVMStorages is the most disks (storages) a VM may have (400 beyond, on
// create, update and storage create). The agent attaches each disk as a
// virtio-blk PCI device (agent/vm: targets vda, vdb, …), on the guest's
// root bus, also while it runs (a hot attach, where libvirt adds no PCI
// bridge): the default i440fx machine has 32 slots, three taken by the
// host bridge, the PIIX3 (IDE for the seed CD, USB) and the balloon, and
// one by each NIC (one per subnet of the VM's addresses). 16 disks leave
// 13 slots for NICs and keep single-letter targets (vda–vdp).
const MaxVMStorages = 16
