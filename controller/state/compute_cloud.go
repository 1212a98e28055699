package state

// Project, cloud and VM operations. Each runs inside the one memdb
// transaction of its command: a validation error anywhere aborts the whole
// transaction, so a cloud create that fails on its last VM leaves nothing
// behind (no project, router, ASN, allocation, subnet, address or VM).
// Everything chosen here is deterministic: routers, servers, VLANs, VNIs,
// public addresses and MACs are the lowest or best candidates in id order.

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// Actor is who caused a change, recorded in histories.
type Actor struct {
	UserID   uint64 `json:"user_id,omitempty"`
	TokenID  uint64 `json:"token_id,omitempty"`
	MemberID uint64 `json:"member_id,omitempty"`
	Robot    bool   `json:"robot,omitempty"`
}

// actorGlobal reports whether a acts for the whole region: a user (not a
// robot) who is global by the same rule as the API's (api.User.IsGlobal),
// as the user is at this index. A user of the global member without
// global_active is a tenant like any other.
func (r *ReadTxn) actorGlobal(a Actor) bool {
	if a.Robot {
		return false
	}
	u, ok := r.User(a.UserID)
	return ok && u.IsGlobal()
}

// ProjectSpec is a project to create (the API has validated its fields).
type ProjectSpec struct {
	MemberID    uint64 `json:"member_id"`
	RegionID    uint64 `json:"region_id"`
	Name        string `json:"name"`
	Note        string `json:"note,omitempty"`
	GracePeriod int    `json:"grace_period"`
	ManagerID   uint64 `json:"manager_id,omitempty"`
	ResellerID  uint64 `json:"reseller_id,omitempty"`
}

// SubnetSpec is a project subnet of a cloud create or update. ID set:
// an existing subnet (only its name changes).
type SubnetSpec struct {
	ID           uint64 `json:"id,omitempty"`
	Name         string `json:"name"`
	AddressRange string `json:"address_range"`
}

// StorageSpec is a disk of a VM. ID set (update): an existing disk, which
// may only grow.
type StorageSpec struct {
	ID      uint64 `json:"id,omitempty"`
	Name    string `json:"name"`
	GB      int    `json:"gb"`
	Primary bool   `json:"primary"`
}

// IPSpec is a private address of a VM; NAT asks for a public address.
type IPSpec struct {
	Address string `json:"address"`
	NAT     bool   `json:"nat"`
}

// VMSpec is a VM to create (ID 0) or, in a cloud update, to change. The API
// has checked the shape of every field; what depends on state is checked
// here, in the documented order.
type VMSpec struct {
	ID            uint64        `json:"id,omitempty"`
	ProjectID     uint64        `json:"project_id,omitempty"`
	Name          string        `json:"name"`
	ImageID       uint64        `json:"image_id"`
	StorageTypeID uint64        `json:"storage_type_id"`
	Storages      []StorageSpec `json:"storages"`
	CPU           int           `json:"cpu"`
	RAM           int           `json:"ram"`
	GPU           int           `json:"gpu,omitempty"`
	DNS           string        `json:"dns"`
	PublicKey     string        `json:"public_key,omitempty"`
	GatewaySubnet string        `json:"gateway_subnet"`
	IPAddresses   []IPSpec      `json:"ip_addresses"`
	Userdata      string        `json:"userdata,omitempty"`
	// GUID is random material stamped by the leader.
	GUID string `json:"guid"`
}

// CloudSpec is the payload of a cloud create (Project set) or update
// (ProjectID set). FirewallRules nil on update keeps the rules.
type CloudSpec struct {
	Project       *ProjectSpec         `json:"project,omitempty"`
	ProjectID     uint64               `json:"project_id,omitempty"`
	Subnets       []SubnetSpec         `json:"subnets"`
	VMs           []VMSpec             `json:"vms"`
	FirewallRules *[]api.FirewallRule  `json:"firewall_rules,omitempty"`
	Placement     api.PlacementFactors `json:"placement"`
	Actor         Actor                `json:"actor"`
}

// CloudResult is what a cloud create or update returns.
type CloudResult struct {
	Project       *api.Project       `json:"project"`
	VirtualRouter *api.VirtualRouter `json:"virtual_router"`
	Subnets       []*api.IPBlock     `json:"subnets"`
	VMs           []*api.VM          `json:"vms"`
}

// GetMeta makes a CloudResult an api.Object (the project's meta).
func (c *CloudResult) GetMeta() *api.Meta { return c.Project.GetMeta() }

// privateRanges are the allocations every project gets (cloudcix-facts §5.9).
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}

// ProjectPrivateRange is the private range every project gets as its own
// allocation that p overlaps, "" if none: a public allocation there would
// stop every project create (public ranges overlap nothing).
func ProjectPrivateRange(p netip.Prefix) string {
	for _, r := range privateRanges {
		if netx.Overlaps(netip.MustParsePrefix(r), p) {
			return r
		}
	}
	return ""
}

// ProjectCreate creates a project with its pseudo-ASN, its three private
// allocations and its virtual router (REQUESTED) on a router of the region.
// The actor must be global or its member a customer of the region.
func (t *Txn) ProjectCreate(s *ProjectSpec, a Actor) (*api.Project, error) {
	p, _, err := t.projectCreate(s, a, "project")
	return p, err
}

func (t *Txn) projectCreate(s *ProjectSpec, a Actor, service string) (*api.Project, *api.VirtualRouter, error) {
	c := func(n int) string { return code("iaas", service, "create", n) }
	fe := api.FieldErrors{}
	reg, ok := t.Region(s.RegionID)
	if !ok {
		fe.Add("region_id", c(103), "Region %d does not exist.", s.RegionID)
	} else if !t.actorGlobal(a) && !slices.Contains(reg.Customers, s.MemberID) {
		fe.Add("region_id", c(104), "Your member is not a customer of region %d.", s.RegionID)
	}
	for _, o := range all[*api.Project](&t.ReadTxn, Projects, "member", s.MemberID) {
		if !o.Closed && strings.EqualFold(o.Name, s.Name) {
			fe.Add("name", c(107), "A project named %q already exists.", s.Name)
		}
	}
	t.checkManager(fe, s.MemberID, s.ManagerID, c(131))
	if err := fe.Err(); err != nil {
		return nil, nil, err
	}
	router, err := t.pickRouter(s.RegionID, c(108))
	if err != nil {
		return nil, nil, err
	}
	p := &api.Project{MemberID: s.MemberID, RegionID: s.RegionID, Name: s.Name, Note: s.Note,
		GracePeriod: s.GracePeriod, ManagerID: s.ManagerID, ResellerID: s.ResellerID, AllocationIDs: []uint64{}}
	if err := insertNew(t, Projects, p); err != nil {
		return nil, nil, err
	}
	asn, err := t.asnCreate(&api.ASN{MemberID: s.MemberID, Number: api.PseudoASNBase + p.ID}, true)
	if err != nil {
		return nil, nil, err
	}
	p.ASNID, p.ASN = asn.ID, asn.Number
	for i, cidr := range privateRanges {
		b, err := t.IPBlockCreate(&api.IPBlock{MemberID: s.MemberID, Dialect: api.DialectCloudCIX, CIDR: cidr,
			Type: api.BlockPrivate, ASNID: asn.ID, Name: fmt.Sprintf("Private Range %d", i+1)})
		if err != nil {
			// A public allocation inside RFC 1918 space (made before the
			// allocation API refused one) overlaps every project's own
			// range: say so, not state's block code on a field the
			// tenant never sent.
			for _, o := range all[*BlockRecord](&t.ReadTxn, IPBlocks, "parent", uint64(0)) {
				if o.Dialect == api.DialectCloudCIX && o.Type == api.BlockPublic && netx.Overlaps(netip.MustParsePrefix(cidr), netip.MustParsePrefix(o.CIDR)) {
					return nil, nil, api.Errorf(http.StatusConflict, c(147),
						"Public allocation %d (%s) lies in %s, the private range every project gets as its own: no project can be created while it is there. An operator must delete it (a public allocation must be globally routable).", o.ID, o.CIDR, cidr)
				}
			}
			return nil, nil, err
		}
		p.AllocationIDs = append(p.AllocationIDs, b.ID)
	}
	pub, err := t.floatingAddress(router, &api.IPAddress{Name: fmt.Sprintf("virtual router of project %d", p.ID)}, c(109))
	if err != nil {
		return nil, nil, err
	}
	vr := &api.VirtualRouter{ProjectID: p.ID, MemberID: p.MemberID, RegionID: p.RegionID, RouterID: router.ID,
		IPAddressID: pub.ID, IPAddress: pub.Address, State: api.StateRequested, StateChanged: t.stamp(), Generation: 1,
		FirewallRules: []api.FirewallRule{}}
	if err := insertNew(t, VirtualRouters, vr); err != nil {
		return nil, nil, err
	}
	p.VirtualRouterID = vr.ID
	if err := t.txn.Insert(Projects, p); err != nil {
		return nil, nil, err
	}
	return p, vr, nil
}

// pickRouter is CloudCIX's choice (§6.4): a phantom router of the region
// if there is one (lowest id), else the enabled router with the most
// capacity available (≥ 1; ties: lowest id).
func (t *Txn) pickRouter(region uint64, errCode string) (*api.Router, error) {
	var best *api.Router
	bestAvail := 0
	for _, r := range t.RoutersInRegion(region) {
		if !r.Enabled {
			continue
		}
		avail, limited := t.RouterCapacityAvailable(r)
		if !limited {
			return r, nil
		}
		if avail >= 1 && (best == nil || avail > bestAvail) {
			best, bestAvail = r, avail
		}
	}
	if best == nil {
		return nil, fieldErr("region_id", errCode, "No router of region %d has room for another virtual router.", region)
	}
	return best, nil
}

// floatingAddress takes the lowest free address of the router's floating
// subnets, in their order, for a (VMID, Name...). It never races: Apply is
// serial.
func (t *Txn) floatingAddress(r *api.Router, a *api.IPAddress, errCode string) (*api.IPAddress, error) {
	for _, sid := range r.FloatingSubnetIDs {
		row := *a
		got, err := t.AllocateNext(sid, &row)
		var e *api.Error
		if err != nil && errors.As(err, &e) && (e.Status == http.StatusUnprocessableEntity || e.Status == http.StatusNotFound) {
			continue // full (or gone): try the next subnet
		}
		if err != nil {
			return nil, err
		}
		return got, nil
	}
	return nil, api.Errorf(http.StatusBadRequest, errCode, "Router %d has no free public address left.", r.ID)
}

// cloudCtx carries what a cloud command computes once and updates as it
// allocates: the project, its router and the region's used segments.
type cloudCtx struct {
	t       *Txn
	p       *api.Project
	vr      *api.VirtualRouter
	router  *api.Router
	vlans   map[uint32]bool
	vnis    map[uint32]bool
	subnets []*api.IPBlock
	factors api.PlacementFactors
	actor   Actor
	// vrChanged: subnets, NAT or rules changed; the router must be rebuilt.
	vrChanged bool
}

func (t *Txn) newCloudCtx(p *api.Project, vr *api.VirtualRouter, place api.PlacementFactors, a Actor) (*cloudCtx, error) {
	router, ok := t.Router(vr.RouterID)
	if !ok {
		return nil, fmt.Errorf("virtual router %d: router %d does not exist", vr.ID, vr.RouterID)
	}
	x := &cloudCtx{t: t, p: p, vr: vr, router: router, vlans: map[uint32]bool{}, vnis: map[uint32]bool{},
		factors: place, actor: a}
	// A CLOSED router's segments are free: its agent has torn it down
	// (SCRUBBING → CLOSED), and work never lists a CLOSED router.
	for _, o := range t.VirtualRoutersInRegion(p.RegionID) {
		if o.State == api.StateClosed && t.since(Rules1) {
			continue
		}
		op, ok := t.Project(o.ProjectID)
		if !ok {
			continue
		}
		for _, s := range t.ProjectSubnets(op) {
			x.vlans[s.VLAN], x.vnis[s.VXLAN] = true, true
		}
	}
	x.subnets = t.ProjectSubnets(p)
	return x, nil
}

func (x *cloudCtx) freeSegment(used map[uint32]bool, lo, hi uint32) (uint32, bool) {
	for v := lo; v <= hi; v++ {
		if !used[v] {
			used[v] = true
			return v, true
		}
	}
	return 0, false
}

// CloudCreate creates a whole project in one command: the project (with
// its router, ASN and allocations), its subnets (each with the lowest free
// VLAN of the region, 1000–2000, and VNI), its VMs (placed, addressed,
// NATed) and its firewall rules. Any error aborts everything.
func (t *Txn) CloudCreate(s *CloudSpec) (*CloudResult, error) {
	if s.Project == nil {
		return nil, api.Errorf(http.StatusBadRequest, "iaas_cloud_create_101", "project is required.")
	}
	p, vr, err := t.projectCreate(s.Project, s.Actor, "cloud")
	if err != nil {
		return nil, prefixErr(err, "project.")
	}
	x, err := t.newCloudCtx(p, vr, s.Placement, s.Actor)
	if err != nil {
		return nil, err
	}
	return x.apply(s, "create")
}

// CloudUpdate changes a project in one command: subnets with an id are
// renamed, without one created; VMs with an id are updated (cpu, ram,
// storages), without one created; firewall_rules, when sent, replace the
// router's rules. When subnets, NAT or rules change the virtual router
// moves to RUNNING_UPDATE (QUIESCED_UPDATE when stopped) and its
// generation is bumped.
func (t *Txn) CloudUpdate(s *CloudSpec, expect uint64) (*CloudResult, error) {
	p, ok := t.Project(s.ProjectID)
	if !ok {
		return nil, api.NotFound("iaas_cloud_update_001")
	}
	if expect != 0 && p.ModifiedIndex != expect {
		return nil, api.Errorf(http.StatusConflict, "iaas_cloud_update_002", "The project was modified by another request.")
	}
	if p.Closed {
		return nil, api.Errorf(http.StatusBadRequest, "iaas_cloud_update_102", "The project is closed.")
	}
	vr, ok := t.VirtualRouter(p.VirtualRouterID)
	if !ok {
		return nil, fmt.Errorf("project %d has no virtual router", p.ID)
	}
	if t.vrDeleting(vr) {
		return nil, api.Errorf(http.StatusBadRequest, "iaas_cloud_update_102", "%s", deletingDetail(p, vr))
	}
	x, err := t.newCloudCtx(p, vr, s.Placement, s.Actor)
	if err != nil {
		return nil, err
	}
	return x.apply(s, "update")
}

// vrDeleting reports whether a project's virtual router is deleted or
// being deleted (SCRUB and after): nothing is added to its project then
// (VMs, subnets, rules), as no VPN is (vrTakesVPNs). It would be stored
// and never built, and a VM added would hold the router's scrub (003)
// for ever.
func (t *Txn) vrDeleting(vr *api.VirtualRouter) bool {
	return t.since(Rules1) && slices.Contains(api.ShutDownStates, vr.State)
}

func deletingDetail(p *api.Project, vr *api.VirtualRouter) string {
	return fmt.Sprintf("Project %d is being deleted (its virtual router %d is in state %d, %s): nothing can be added to it or changed in it.", p.ID, vr.ID, vr.State, api.StateNames[vr.State])
}

// VRSubnetsPayload is a virtual router update of its subnets (PUT or PATCH
// /iaas/virtual_router/{id}/ with subnets, as CloudCIX's virtual router
// update takes them): items with an id are renamed, items without one
// created, others are kept.
type VRSubnetsPayload struct {
	ID      uint64       `json:"id"`
	Subnets []SubnetSpec `json:"subnets"`
	Actor   Actor        `json:"actor"`
}

// VirtualRouterSubnets changes a virtual router's subnets in one command,
// through the subnet path of CloudUpdate (same rules, same codes, a new
// subnet moves the router to RUNNING_UPDATE or QUIESCED_UPDATE and bumps
// its generation). expect, when not 0, is the router's modified_index.
func (t *Txn) VirtualRouterSubnets(p *VRSubnetsPayload, expect uint64) (*api.VirtualRouter, error) {
	vr, ok := t.VirtualRouter(p.ID)
	if !ok {
		return nil, api.NotFound("iaas_virtual_router_update_001")
	}
	if expect != 0 && vr.ModifiedIndex != expect {
		return nil, api.Errorf(http.StatusConflict, "iaas_virtual_router_update_002", "The virtual router was modified by another request.")
	}
	proj, ok := t.Project(vr.ProjectID)
	if !ok {
		return nil, fmt.Errorf("virtual router %d: project %d does not exist", vr.ID, vr.ProjectID)
	}
	if proj.Closed {
		return nil, api.Errorf(http.StatusBadRequest, "iaas_cloud_update_102", "The project is closed.")
	}
	if t.vrDeleting(vr) {
		return nil, api.Errorf(http.StatusBadRequest, "iaas_cloud_update_102", "%s", deletingDetail(proj, vr))
	}
	x, err := t.newCloudCtx(proj, vr, api.PlacementFactors{}, p.Actor)
	if err != nil {
		return nil, err
	}
	res, err := x.apply(&CloudSpec{ProjectID: proj.ID, Subnets: p.Subnets}, "update")
	if err != nil {
		return nil, err
	}
	return res.VirtualRouter, nil
}

func (x *cloudCtx) apply(s *CloudSpec, method string) (*CloudResult, error) {
	t := x.t
	res := &CloudResult{}
	fe := api.FieldErrors{}
	for i, ss := range s.Subnets {
		b, err := x.subnet(ss, method)
		if err != nil {
			if !isAPIErr(err) {
				return nil, err
			}
			mergeErr(fe, err, fmt.Sprintf("subnets[%d].", i))
			continue
		}
		res.Subnets = append(res.Subnets, b)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	for i := range s.VMs {
		vs := &s.VMs[i]
		var vm *api.VM
		var err error
		if vs.ID != 0 {
			vm, err = x.updateVM(vs)
		} else {
			vs.ProjectID = x.p.ID
			vm, err = x.createVM(vs, "vm", "create")
		}
		if err != nil {
			if !isAPIErr(err) {
				return nil, err
			}
			mergeErr(fe, err, fmt.Sprintf("vms[%d].", i))
			continue
		}
		res.VMs = append(res.VMs, vm)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	vr := *x.vr
	if s.FirewallRules != nil {
		rules := slices.Clone(*s.FirewallRules)
		if err := x.checkRules(rules, method); err != nil {
			return nil, err
		}
		if x.t.since(Rules1) {
			slices.SortStableFunc(rules, func(a, b api.FirewallRule) int { return cmp.Compare(a.Order, b.Order) })
		} else {
			slices.SortStableFunc(rules, func(a, b api.FirewallRule) int { return a.Order - b.Order })
		}
		if !slices.Equal(rules, vr.FirewallRules) {
			vr.FirewallRules = rules
			x.vrChanged = true
		}
	}
	if method == "update" && x.vrChanged {
		vr.Generation++
		if s := updateState(vr.State); s != vr.State {
			vr.State, vr.StateChanged = s, t.stamp()
		}
	}
	if vr.FirewallRules == nil {
		vr.FirewallRules = []api.FirewallRule{}
	}
	if err := replace(t, VirtualRouters, &vr, 0, "iaas_virtual_router_update"); err != nil {
		return nil, err
	}
	p := *x.p
	if err := replace(t, Projects, &p, 0, "iaas_project_update"); err != nil {
		return nil, err
	}
	res.Project, res.VirtualRouter = &p, &vr
	return res, nil
}

// subnet creates or renames a project subnet.
func (x *cloudCtx) subnet(ss SubnetSpec, method string) (*api.IPBlock, error) {
	t := x.t
	c := func(n int) string { return code("iaas", "cloud", method, n) }
	if ss.ID != 0 {
		for _, b := range x.subnets {
			if b.ID != ss.ID {
				continue
			}
			if ss.AddressRange != "" && ss.AddressRange != netx.FormatGatewayPrefix(netip.MustParsePrefix(b.CIDR), netip.MustParseAddr(b.Gateway)) {
				return nil, fieldErr("address_range", c(112), "The address_range of a subnet cannot change.")
			}
			n := *b
			n.Name = ss.Name
			return t.IPBlockUpdate(&n, 0)
		}
		return nil, fieldErr("id", c(111), "Subnet %d is not a subnet of this project.", ss.ID)
	}
	prefix, gw, err := netx.ParseGatewayPrefix(ss.AddressRange)
	if err != nil || !prefix.Addr().Is4() {
		return nil, fieldErr("address_range", c(113), "address_range %q is not an IPv4 CIDR in gateway notation (e.g. 10.0.0.1/24).", ss.AddressRange)
	}
	if gw == prefix.Addr() || !prefix.Contains(gw) {
		return nil, fieldErr("address_range", c(114), "The host part of address_range is the gateway; %s is the network address.", gw)
	}
	for _, v := range x.t.VPNsOfVirtualRouter(x.vr.ID) {
		for _, r := range v.Routes {
			if rp := netip.MustParsePrefix(r.RemoteSubnet); netx.Overlaps(rp, prefix) {
				return nil, fieldErr("address_range", c(132), "%s overlaps the remote network %s of VPN %d.", prefix, rp, v.ID)
			}
		}
	}
	var alloc uint64
	for i, r := range privateRanges {
		if netx.Overlaps(netip.MustParsePrefix(r), prefix) && netip.MustParsePrefix(r).Bits() <= prefix.Bits() {
			alloc = x.p.AllocationIDs[i]
		}
	}
	if alloc == 0 {
		return nil, fieldErr("address_range", c(115), "%s is not inside a private range (RFC 1918).", prefix)
	}
	// The cloud's own code, naming the subnet, not IPBlockCreate's
	// (ipam_block_create_118/119, "refused: overlap") for the same refusal.
	for _, o := range all[*BlockRecord](&t.ReadTxn, IPBlocks, "parent", alloc) {
		if o.Dialect == api.DialectCloudCIX && netx.Overlaps(netip.MustParsePrefix(o.CIDR), prefix) {
			return nil, fieldErr("address_range", c(133), "%s overlaps subnet %d (%s) of the project.", ss.AddressRange, o.ID, blockRaw(&o.IPBlock))
		}
	}
	vlan, ok := x.freeSegment(x.vlans, api.VLANMin, api.VLANMax)
	if !ok {
		return nil, fieldErr("address_range", c(116), "No VLAN is free in region %d (%d–%d).", x.p.RegionID, api.VLANMin, api.VLANMax)
	}
	vni, ok := x.freeSegment(x.vnis, api.VNIMin, api.VNIMax)
	if !ok {
		return nil, fieldErr("address_range", c(117), "No VXLAN VNI is free in region %d.", x.p.RegionID)
	}
	b, err := t.IPBlockCreate(&api.IPBlock{MemberID: x.p.MemberID, Dialect: api.DialectCloudCIX, ParentID: alloc,
		CIDR: prefix.String(), Gateway: gw.String(), Type: api.BlockPrivate, Name: ss.Name,
		VLAN: vlan, VXLAN: vni, VirtualRouterID: x.vr.ID, RouterID: x.vr.RouterID})
	if err != nil {
		return nil, relabel(err, "cidr", "address_range")
	}
	x.subnets = append(x.subnets, b)
	x.vrChanged = true
	return b, nil
}

// checkRules validates firewall rules against the project's subnets:
// exactly one side is a project subnet, the other public (or "*"), both of
// one IP version.
func (x *cloudCtx) checkRules(rules []api.FirewallRule, method string) error {
	c := func(n int) string { return code("iaas", "cloud", method, n) }
	fe := api.FieldErrors{}
	inProject := func(p netip.Prefix) bool {
		for _, s := range x.subnets {
			if netip.MustParsePrefix(s.CIDR).Bits() <= p.Bits() && netip.MustParsePrefix(s.CIDR).Contains(p.Addr()) {
				return true
			}
		}
		return false
	}
	for i, r := range rules {
		f := fmt.Sprintf("firewall_rules[%d].", i)
		var src, dst netip.Prefix
		var err error
		if r.Source != "*" {
			if src, err = netx.ParsePrefixOrAddr(r.Source); err != nil {
				fe.Add(f+"source", c(121), "source %q is not an address, a CIDR or *.", r.Source)
				continue
			}
		}
		if r.Destination != "*" {
			if dst, err = netx.ParsePrefixOrAddr(r.Destination); err != nil {
				fe.Add(f+"destination", c(122), "destination %q is not an address, a CIDR or *.", r.Destination)
				continue
			}
		}
		srcProj := src.IsValid() && inProject(src)
		dstProj := dst.IsValid() && inProject(dst)
		if srcProj == dstProj {
			fe.Add(f+"source", c(123), "Exactly one of source and destination must be a project subnet.")
			continue
		}
		other := dst
		if dstProj {
			other = src
		}
		if other.IsValid() && other.Addr().IsPrivate() {
			fe.Add(f+"source", c(124), "The side that is not a project subnet must be public or *.")
			continue
		}
		if src.IsValid() && dst.IsValid() && src.Addr().Is4() != dst.Addr().Is4() {
			fe.Add(f+"destination", c(125), "source and destination must be of the same IP version.")
		}
	}
	return fe.Err()
}

// --- VMs ---

// VMCreate creates a VM in an existing project (POST /iaas/vm/). The
// virtual router is moved to an update state: it serves the DHCP entries
// (MAC → address), metadata and NAT of its VMs.
func (t *Txn) VMCreate(s *VMCreatePayload) (*api.VM, error) {
	p, ok := t.Project(s.VM.ProjectID)
	if !ok || (!t.actorGlobal(s.Actor) && p.MemberID != s.Actor.MemberID) {
		return nil, fieldErr("project_id", "iaas_vm_create_103", "Project %d does not exist.", s.VM.ProjectID)
	}
	if p.Closed {
		return nil, fieldErr("project_id", "iaas_vm_create_104", "Project %d is closed.", p.ID)
	}
	vr, ok := t.VirtualRouter(p.VirtualRouterID)
	if !ok {
		return nil, fmt.Errorf("project %d has no virtual router", p.ID)
	}
	if t.vrDeleting(vr) {
		return nil, fieldErr("project_id", "iaas_vm_create_104", "%s", deletingDetail(p, vr))
	}
	x, err := t.newCloudCtx(p, vr, s.Placement, s.Actor)
	if err != nil {
		return nil, err
	}
	vm, err := x.createVM(&s.VM, "vm", "create")
	if err != nil {
		return nil, err
	}
	if x.vrChanged {
		if err := t.touchVR(vr.ID); err != nil {
			return nil, err
		}
	}
	return vm, nil
}

// VMCreatePayload is the payload of a VM create.
type VMCreatePayload struct {
	VM        VMSpec               `json:"vm"`
	Placement api.PlacementFactors `json:"placement"`
	Actor     Actor                `json:"actor"`
}

// touchVR bumps a virtual router's generation and moves it to its update
// state when it is stable (RUNNING or QUIESCED).
func (t *Txn) touchVR(id uint64) error {
	cur, ok := t.VirtualRouter(id)
	if !ok {
		return api.NotFound("iaas_virtual_router_update_001")
	}
	vr := *cur
	vr.Generation++
	vr.State = updateState(vr.State)
	if vr.State != cur.State {
		vr.StateChanged = t.stamp()
	}
	return replace(t, VirtualRouters, &vr, 0, "iaas_virtual_router_update")
}

// createVM validates a new VM in the documented order (cloudcix-facts
// §5.3; the shape was checked by the API) and creates it with its disks,
// addresses, MACs, NAT addresses and a first history row.
func (x *cloudCtx) createVM(s *VMSpec, service, method string) (*api.VM, error) {
	t := x.t
	c := func(n int) string { return code("iaas", service, method, n) }
	fe := api.FieldErrors{}
	img, ok := t.Image(s.ImageID)
	if !ok {
		fe.Add("image_id", c(107), "Image %d does not exist.", s.ImageID)
	} else if !t.ImageInRegion(x.p.RegionID, img.ID) {
		fe.Add("image_id", c(108), "Image %d is not available in region %d.", img.ID, x.p.RegionID)
		img = nil
	}
	if _, ok := t.StorageType(s.StorageTypeID); !ok {
		fe.Add("storage_type_id", c(111), "Storage type %d does not exist.", s.StorageTypeID)
	}
	totalGB := 0
	for _, st := range s.Storages {
		totalGB += st.GB
		if img != nil && img.Windows && st.Primary && st.GB < 32 {
			fe.Add("storages", c(116), "A Windows image needs a primary storage of at least 32 GB.")
		}
	}
	var server *api.Server
	if len(fe) == 0 {
		server = x.place(img, s.StorageTypeID, s.RAM, totalGB, s.CPU)
		if server == nil {
			fe.Add("server", c(123), "No server in region %d can hold a VM of %d CPU, %d GB RAM and %d GB of storage.", x.p.RegionID, s.CPU, s.RAM, totalGB)
		}
	}
	for _, o := range t.VMsOfProject(x.p.ID) {
		if o.State != api.StateClosed && t.sameVMName(o.Name, s.Name) {
			fe.Add("name", c(128), "A VM named %q already exists in the project (names equal regardless of case, or giving one host name, clash).", o.Name)
		}
	}
	var gateway *api.IPBlock
	for _, b := range x.subnets {
		if netx.FormatGatewayPrefix(netip.MustParsePrefix(b.CIDR), netip.MustParseAddr(b.Gateway)) == s.GatewaySubnet {
			gateway = b
		}
	}
	if gateway == nil {
		fe.Add("gateway_subnet", c(131), "%q is not a subnet of the project.", s.GatewaySubnet)
	}
	if len(s.IPAddresses) > 1 && img != nil && !img.MultipleIPs {
		fe.Add("ip_addresses", c(134), "Image %d does not support more than one IP address.", img.ID)
	}
	if s.Userdata != "" && img != nil && !img.CloudInit {
		fe.Add("userdata", c(143), "Image %d does not support cloud-init userdata.", img.ID)
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	vm := &api.VM{ProjectID: x.p.ID, MemberID: x.p.MemberID, RegionID: x.p.RegionID, ServerID: server.ID,
		ImageID: img.ID, StorageTypeID: s.StorageTypeID, GatewaySubnetID: gateway.ID, Name: s.Name,
		CPU: s.CPU, RAM: s.RAM, GPU: s.GPU, DNS: s.DNS, PublicKey: s.PublicKey, Userdata: s.Userdata,
		GUID: s.GUID, State: api.StateRequested, StateChanged: t.stamp(), Generation: 1}
	if err := insertNew(t, VMs, vm); err != nil {
		return nil, err
	}
	if err := x.addresses(vm, s.IPAddresses, gateway, c); err != nil {
		return nil, err
	}
	// From Rules6 the gateway subnet holds an address of the VM (checked
	// once each address is known good, so that its own error comes
	// first): the VM's default route is via its gateway, on the NIC of
	// that address (the first there is the primary, facts §7.3).
	if t.since(Rules6) && !slices.ContainsFunc(s.IPAddresses, func(ip IPSpec) bool {
		a, err := netip.ParseAddr(ip.Address)
		return err == nil && netip.MustParsePrefix(gateway.CIDR).Contains(a)
	}) {
		return nil, fieldErr("gateway_subnet", c(131), "gateway_subnet %s holds none of the VM's ip_addresses: the VM would have no default route.", s.GatewaySubnet)
	}
	for _, st := range s.Storages {
		if err := insertNew(t, Storages, &api.Storage{VMID: vm.ID, ProjectID: vm.ProjectID, MemberID: vm.MemberID,
			StorageTypeID: vm.StorageTypeID, Name: st.Name, GB: st.GB, Primary: st.Primary}); err != nil {
			return nil, err
		}
	}
	if vm.NATCount > 0 {
		if err := t.txn.Insert(VMs, vm); err != nil {
			return nil, err
		}
	}
	return vm, t.vmHistory(vm, x.actor)
}

// sameVMName reports whether two VM names clash in a project: from Rules6
// when they are equal regardless of case or make one host name
// (netx.HostLabel: "Web 1", "web_1" and "web-1" are all web-1 to the
// router's DHCP server), before it byte for byte.
func (t *Txn) sameVMName(a, b string) bool {
	if t.since(Rules6) {
		l := netx.HostLabel(a)
		return strings.EqualFold(a, b) || l != "" && l == netx.HostLabel(b)
	}
	return a == b
}

// addresses allocates the VM's private addresses in the project's subnets,
// with one locally administered unicast MAC per subnet, and for each NAT
// entry the lowest free public address of the router's floating subnets.
func (x *cloudCtx) addresses(vm *api.VM, ips []IPSpec, gateway *api.IPBlock, c func(int) string) error {
	t := x.t
	fe := api.FieldErrors{}
	seen := map[netip.Addr]bool{}
	macs := map[uint64]netx.MAC{}
	for i, spec := range ips {
		field := fmt.Sprintf("ip_addresses[%d]", i)
		a, err := netip.ParseAddr(spec.Address)
		if err != nil {
			fe.Add(field, c(135), "%q is not an IP address.", spec.Address)
			continue
		}
		if seen[a] {
			fe.Add(field, c(133), "%s is listed twice.", a)
			continue
		}
		seen[a] = true
		if !a.IsPrivate() || !a.Is4() {
			fe.Add(field, c(136), "%s is not a private (RFC 1918) address.", a)
			continue
		}
		var sub *api.IPBlock
		for _, b := range x.subnets {
			if netip.MustParsePrefix(b.CIDR).Contains(a) {
				sub = b
			}
		}
		if sub == nil {
			fe.Add(field, c(137), "%s is not inside a subnet of the project.", a)
			continue
		}
		pfx := netip.MustParsePrefix(sub.CIDR)
		if a == pfx.Addr() || a == netx.Last(pfx) || a.String() == sub.Gateway {
			fe.Add(field, c(138), "%s is the network, broadcast or gateway address of %s.", a, sub.CIDR)
			continue
		}
		if _, used := t.IPAddressIn(sub.ID, a.String()); used {
			fe.Add(field, c(139), "%s is already in use.", a)
			continue
		}
		if spec.NAT && sub.ID != gateway.ID {
			fe.Add(field, c(140), "Only addresses of the gateway subnet can be NATed.")
			continue
		}
		mac, ok := macs[sub.ID]
		if !ok {
			mac = t.freeMAC(sub.ID, vm.ID, macs)
			macs[sub.ID] = mac
		}
		row := &api.IPAddress{VMID: vm.ID, MACAddress: mac.String(), Name: vm.Name}
		if spec.NAT {
			pub, err := t.floatingAddress(x.router, &api.IPAddress{VMID: vm.ID, Name: "NAT of " + a.String()}, c(142))
			var e *api.Error
			if errors.As(err, &e) && e.ErrorCode == c(142) {
				fe.Add(field, c(142), "%s", e.Detail)
				continue
			}
			if err != nil {
				return err
			}
			row.PublicIPID = pub.ID
			vm.NATCount++
			x.vrChanged = true
		}
		if _, err := t.AllocateAddress(sub.ID, a.String(), row); err != nil {
			fe.Add(field, c(139), "%s cannot be allocated: %v", a, err)
			continue
		}
		// The router serves DHCP (MAC → address) and metadata by address.
		x.vrChanged = true
	}
	return fe.Err()
}

// freeMAC returns the MAC of a VM's NIC on a subnet: 02:xx:xx:xx:xx:xx,
// locally administered and unicast (never CloudCIX's multicast bug). The
// low 40 bits are the VM id × 16 plus the NIC's ordinal, so VMs never
// share a MAC; the first candidate that no address of the subnet uses and
// no other NIC of the VM (mine) has is taken, so the MAC is unique on its
// segment and within the guest (cloud-init matches NICs by MAC).
func (t *Txn) freeMAC(subnet, vm uint64, mine map[uint64]netx.MAC) netx.MAC {
	used := map[netx.MAC]bool{}
	for _, m := range mine {
		used[m] = true
	}
	for _, a := range t.IPAddressList(subnet) {
		if m, err := netx.ParseMAC(a.MACAddress); err == nil && a.VMID != vm {
			used[m] = true
		}
	}
	const low = 1<<40 - 1
	for k := uint64(len(mine)); ; k++ {
		m := netx.MAC(0x02<<40 | (vm<<4+k)&low)
		if !used[m] {
			return m
		}
	}
}

// place is the CloudCIX placement (§6.1): among the enabled servers of
// the region of the image's server type and the storage type, the one
// whose remaining vector S = [ram, gb, cpu] best fits the requirement V by
// direction, V·S/|S|; a server where V does not fit scores −∞; ties go to
// the lowest id. Scores are compared exactly (integers), so every node
// chooses the same server.
func (x *cloudCtx) place(img *api.Image, storageType uint64, ram, gb, cpu int) *api.Server {
	t := x.t
	v := [3]int64{int64(ram), int64(gb), int64(cpu)}
	var best *api.Server
	var bestNum, bestDen *big.Int // score² = num/den
	for _, s := range t.ServersInRegion(x.p.RegionID) {
		if !s.Enabled || s.TypeID != img.ServerTypeID || s.StorageTypeID != storageType {
			continue
		}
		rem := t.Remaining(s, x.factors, false)
		fits := true
		// In big integers: |S|² alone reaches 2^80 at api.MaxStorageGB.
		dot, den := new(big.Int), new(big.Int)
		for i := range v {
			if v[i] > rem[i] {
				fits = false
			}
			r := big.NewInt(rem[i])
			dot.Add(dot, new(big.Int).Mul(big.NewInt(v[i]), r))
			den.Add(den, r.Mul(r, r))
		}
		if !fits {
			continue
		}
		num := new(big.Int).Mul(dot, dot)
		if den.Sign() == 0 {
			den.SetInt64(1)
		}
		// num/den > bestNum/bestDen ⇔ num·bestDen > bestNum·den
		if best == nil || new(big.Int).Mul(num, bestDen).Cmp(new(big.Int).Mul(bestNum, den)) > 0 {
			best, bestNum, bestDen = s, num, den
		}
	}
	return best
}

// Remaining is a server's remaining [ram GB, storage GB, vCPU] for a new VM
// (update false: the create limits) or a resize (update true: ram 0.95,
// disk 0.9, cpu 1.0), after its non-CLOSED VMs.
func (r *ReadTxn) Remaining(s *api.Server, f api.PlacementFactors, update bool) [3]int64 {
	rf, df, cf := f.RAMFactor, f.DiskFactor, f.CPUFactor
	if update {
		rf, df, cf = 0.95, 0.9, 1.0
	}
	ceil := func(n int64, factor float64) int64 { return capClamp(math.Ceil(float64(n) * factor)) }
	out := [3]int64{
		ceil(capSub(int64(s.RAM), int64(f.RAMReserveGB)), rf),
		ceil(capSub(int64(s.GB), int64(f.DiskReserveGB)), df),
		ceil(capMul(int64(s.Cores), int64(f.CPUOversubscription)), cf),
	}
	for _, vm := range r.VMsOnServer(s.ID) {
		if vm.State == api.StateClosed {
			continue
		}
		out[0] = capSub(out[0], int64(vm.RAM))
		out[2] = capSub(out[2], int64(vm.CPU))
		for _, st := range r.StoragesOfVM(vm.ID) {
			out[1] = capSub(out[1], int64(st.GB))
		}
	}
	return out
}

// capLimit bounds capacity arithmetic: sizes inside the API's bounds
// (api.MaxCores, MaxRAMGB, MaxStorageGB) stay far below it and are exact;
// beyond it (a server stored before the bounds, a huge
// cpu_oversubscription) results saturate instead of wrapping around.
const capLimit = 1 << 61

// capClamp converts x to an integer in [-capLimit, capLimit].
func capClamp(x float64) int64 {
	switch {
	case x >= capLimit:
		return capLimit
	case x <= -capLimit:
		return -capLimit
	}
	return int64(x)
}

// capSub is a − b, saturated to [-capLimit, capLimit].
func capSub(a, b int64) int64 {
	a, b = max(min(a, capLimit), -capLimit), max(min(b, capLimit), -capLimit)
	return max(min(a-b, capLimit), -capLimit) // |a−b| ≤ 2^62: no wrap
}

// capMul is a × b, saturated to [-capLimit, capLimit].
func capMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	p := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	if p.IsInt64() {
		return max(min(p.Int64(), capLimit), -capLimit)
	}
	if p.Sign() > 0 {
		return capLimit
	}
	return -capLimit
}

// updateVM applies a spec change (cpu, ram, storages) of a cloud update.
func (x *cloudCtx) updateVM(s *VMSpec) (*api.VM, error) {
	cur, ok := x.t.VM(s.ID)
	if !ok || cur.ProjectID != x.p.ID {
		return nil, fieldErr("id", "iaas_cloud_update_118", "VM %d is not a VM of this project.", s.ID)
	}
	return x.t.vmSpecChange(cur, &VMChange{CPU: &s.CPU, RAM: &s.RAM, Storages: s.Storages}, x.factors, x.actor, "vm", "update")
}

// VMChange is a change of a VM's spec; nil fields are unchanged. Storages,
// when not empty, lists disks: an existing one (named by id or by name)
// keeps or grows its size (never shrinks, 121) and stays primary or not
// (122); one of a new name is added, never primary (122). A disk listed
// twice is refused (113); disks left out are kept.
type VMChange struct {
	ID       uint64        `json:"id"`
	CPU      *int          `json:"cpu,omitempty"`
	RAM      *int          `json:"ram,omitempty"`
	GPU      *int          `json:"gpu,omitempty"`
	Name     *string       `json:"name,omitempty"`
	DNS      *string       `json:"dns,omitempty"`
	Storages []StorageSpec `json:"storages,omitempty"`
	// AllStorages (PUT): Storages lists every disk of the VM; one left
	// out would be a removal, which is refused (123).
	AllStorages bool `json:"all_storages,omitempty"`
}

// VMUpdatePayload is the payload of a VM spec update.
type VMUpdatePayload struct {
	Change    VMChange             `json:"change"`
	Placement api.PlacementFactors `json:"placement"`
	Actor     Actor                `json:"actor"`
}

// VMUpdate changes a VM's spec (PATCH /iaas/vm/<id>/ without state).
func (t *Txn) VMUpdate(p *VMUpdatePayload, expect uint64) (*api.VM, error) {
	cur, ok := t.VM(p.Change.ID)
	if !ok {
		return nil, api.NotFound("iaas_vm_update_001")
	}
	if expect != 0 && cur.ModifiedIndex != expect {
		return nil, api.Errorf(http.StatusConflict, "iaas_vm_update_002", "The VM was modified by another request.")
	}
	return t.vmSpecChange(cur, &p.Change, p.Placement, p.Actor, "vm", "update")
}

// vmSpecChange applies a change. A change of cpu, ram, gpu or storages
// (a spec change the hypervisor must apply) bumps the generation and moves
// RUNNING → RUNNING_UPDATE, QUIESCED → QUIESCED_UPDATE; in any other state
// it is refused (118), as it is while a snapshot of the VM is busy (110).
// Growth must fit the server's update limits (119).
func (t *Txn) vmSpecChange(cur *api.VM, ch *VMChange, f api.PlacementFactors, a Actor, service, method string) (*api.VM, error) {
	c := func(n int) string { return code("iaas", service, method, n) }
	vm := *cur
	setIf(&vm.CPU, ch.CPU)
	setIf(&vm.RAM, ch.RAM)
	setIf(&vm.GPU, ch.GPU)
	setIf(&vm.Name, ch.Name)
	setIf(&vm.DNS, ch.DNS)
	disks := t.StoragesOfVM(cur.ID)
	var grow []*api.Storage
	var add []StorageSpec
	addGB := 0
	matched := map[uint64]bool{}
	added := map[string]bool{}
	for _, st := range ch.Storages {
		// An existing disk is named by its id or by its name (names are
		// unique in a VM); anything else is a new disk.
		i := -1
		if st.ID != 0 {
			if i = slices.IndexFunc(disks, func(d *api.Storage) bool { return d.ID == st.ID }); i < 0 {
				return nil, fieldErr("storages", c(120), "Storage %d is not a disk of VM %d.", st.ID, cur.ID)
			}
			if st.Name != "" && st.Name != disks[i].Name {
				return nil, fieldErr("storages", c(120), "Storage %d is named %q; a storage's name does not change.", st.ID, disks[i].Name)
			}
		} else {
			i = slices.IndexFunc(disks, func(d *api.Storage) bool { return d.Name == st.Name })
		}
		if i < 0 {
			if added[st.Name] {
				return nil, fieldErr("storages", c(113), "Storage %q is listed twice.", st.Name)
			}
			added[st.Name] = true
			add = append(add, st)
			addGB += st.GB
			continue
		}
		d := disks[i]
		if matched[d.ID] {
			return nil, fieldErr("storages", c(113), "Storage %q (%d) is listed twice.", d.Name, d.ID)
		}
		matched[d.ID] = true
		if st.Primary && !d.Primary {
			return nil, fieldErr("storages", c(122), "A VM has exactly one primary storage; %q is not it, and the primary storage does not move.", d.Name)
		}
		if st.GB < d.GB {
			return nil, fieldErr("storages", c(121), "Storage %q cannot shrink from %d to %d GB: disks only grow.", d.Name, d.GB, st.GB)
		}
		if st.GB > d.GB {
			n := *d
			addGB += st.GB - n.GB
			n.GB = st.GB
			grow = append(grow, &n)
		}
	}
	if t.since(Rules6) && len(add) > 0 && len(disks)+len(add) > api.MaxVMStorages {
		return nil, fieldErr("storages", c(113), "A VM has at most %d storages; it has %d and %d would be added.", api.MaxVMStorages, len(disks), len(add))
	}
	if slices.ContainsFunc(add, func(s StorageSpec) bool { return s.Primary }) {
		return nil, fieldErr("storages", c(122), "A VM has exactly one primary storage; added storages cannot be primary.")
	}
	if ch.AllStorages {
		for _, d := range disks {
			if !matched[d.ID] {
				return nil, fieldErr("storages", c(123), "Storage %q (%d) is not listed: a VM's disks cannot be removed.", d.Name, d.ID)
			}
		}
	}
	spec := vm.CPU != cur.CPU || vm.RAM != cur.RAM || vm.GPU != cur.GPU || len(grow) > 0 || len(add) > 0
	if spec {
		if vm.State = updateState(cur.State); vm.State == cur.State {
			return nil, api.Errorf(http.StatusBadRequest, c(118), "The spec of a VM can only change while it is RUNNING or QUIESCED; it is %s.", api.StateNames[cur.State])
		}
		// A spec change is a state change (→ 10/15): refused, as SetState
		// refuses one, while a snapshot of the VM is busy (facts §2.2).
		if sn := t.busySnapshot(cur.ID); sn != nil {
			return nil, api.Errorf(http.StatusBadRequest, c(110), "%s", snapshotBusy(sn))
		}
		if b := t.busyBackup(cur.ID); b != nil {
			return nil, api.Errorf(http.StatusBadRequest, c(110), "Backup %d of the VM is busy (state %d); wait until it is RUNNING.", b.ID, b.State)
		}
		vm.StateChanged = t.stamp()
		vm.Generation++
		if s, ok := t.Server(vm.ServerID); ok {
			rem := t.Remaining(s, f, true)
			if d := [3]int{vm.RAM - cur.RAM, addGB, vm.CPU - cur.CPU}; int64(d[0]) > rem[0] || int64(d[1]) > rem[1] || int64(d[2]) > rem[2] {
				return nil, api.Errorf(http.StatusBadRequest, c(119), "Server %d has no room for this change.", s.ID)
			}
		}
	}
	if vm.Name != cur.Name {
		for _, o := range t.VMsOfProject(vm.ProjectID) {
			if o.ID != vm.ID && o.State != api.StateClosed && t.sameVMName(o.Name, vm.Name) {
				return nil, fieldErr("name", c(128), "A VM named %q already exists in the project (names equal regardless of case, or giving one host name, clash).", o.Name)
			}
		}
	}
	for _, n := range grow {
		if err := replace(t, Storages, n, 0, "iaas_storage_update"); err != nil {
			return nil, err
		}
	}
	for _, st := range add {
		if err := insertNew(t, Storages, &api.Storage{VMID: vm.ID, ProjectID: vm.ProjectID, MemberID: vm.MemberID,
			StorageTypeID: vm.StorageTypeID, Name: st.Name, GB: st.GB}); err != nil {
			return nil, err
		}
	}
	if err := replace(t, VMs, &vm, 0, "iaas_vm_update"); err != nil {
		return nil, err
	}
	if vm.State != cur.State {
		return &vm, t.vmHistory(&vm, a)
	}
	return &vm, nil
}

// StorageCreatePayload adds a disk to a VM (POST /iaas/storage/).
type StorageCreatePayload struct {
	VMID      uint64               `json:"vm_id"`
	Storage   StorageSpec          `json:"storage"`
	Placement api.PlacementFactors `json:"placement"`
	Actor     Actor                `json:"actor"`
}

// StorageCreate adds a disk to a VM: a spec change of the VM, with the
// codes of a storage create. Its name must be new in the VM (106).
func (t *Txn) StorageCreate(p *StorageCreatePayload) (*api.Storage, error) {
	vm, ok := t.VM(p.VMID)
	if !ok {
		return nil, fieldErr("vm_id", "iaas_storage_create_103", "VM %d does not exist.", p.VMID)
	}
	for _, d := range t.StoragesOfVM(vm.ID) {
		if d.Name == p.Storage.Name {
			return nil, fieldErr("name", "iaas_storage_create_106", "VM %d has a storage named %q already (%d).", vm.ID, d.Name, d.ID)
		}
	}
	if n := len(t.StoragesOfVM(vm.ID)); t.since(Rules6) && n >= api.MaxVMStorages {
		return nil, fieldErr("vm_id", "iaas_storage_create_108", "VM %d has %d storages, the most a VM may have.", vm.ID, n)
	}
	if _, err := t.vmSpecChange(vm, &VMChange{ID: vm.ID, Storages: []StorageSpec{p.Storage}}, p.Placement, p.Actor, "storage", "create"); err != nil {
		return nil, err
	}
	disks := t.StoragesOfVM(vm.ID)
	return disks[len(disks)-1], nil
}

// vmHistory writes a history row of the VM as it is now.
func (t *Txn) vmHistory(vm *api.VM, a Actor) error {
	h := &api.VMHistory{VMID: vm.ID, ProjectID: vm.ProjectID, MemberID: vm.MemberID, ProjectVMName: vm.Name,
		State: vm.State, CPUQuantity: vm.CPU, RAMQuantity: vm.RAM, GPUQuantity: vm.GPU, ImageID: vm.ImageID, NATQuantity: vm.NATCount,
		Storages: []api.StorageHistory{}, UserID: a.UserID, TokenID: a.TokenID, Robot: a.Robot}
	for _, s := range t.StoragesOfVM(vm.ID) {
		h.Storages = append(h.Storages, api.StorageHistory{StorageID: s.ID, Name: s.Name, GB: s.GB})
	}
	return insertNew(t, VMHistories, h)
}

// --- state changes ---

// StateChange asks for a state change of a VM or virtual router. Robots
// must send Expected (compare-and-swap: a mismatch is 409); they may report
// the generation they built (ObservedGeneration) and, with UNRESOURCED,
// why (ErrorCode, ErrorDetail).
type StateChange struct {
	Kind               string  `json:"kind"`
	ID                 uint64  `json:"id"`
	To                 int     `json:"to"`
	Expected           *int    `json:"expected,omitempty"`
	ObservedGeneration *uint64 `json:"observed_generation,omitempty"`
	ErrorCode          string  `json:"error_code,omitempty"`
	ErrorDetail        string  `json:"error_detail,omitempty"`
	// RemoveSubtree (snapshots, users) is set together with the change.
	RemoveSubtree *bool `json:"remove_subtree,omitempty"`
	// Name (snapshots and backups, users) renames the object together
	// with the change: its libvirt names come from its id, so a rename
	// is the record's only.
	Name  *string `json:"name,omitempty"`
	Actor Actor   `json:"actor"`
}

// CodeStateConflict is the suffix of the 409 of a failed compare-and-swap
// on the state (iaas_<kind>_update_004).
const CodeStateConflict = "_update_004"

// SetState applies a state change after the actor's transition map (a
// robot: the ROBOT map and compare-and-swap on Expected). Sending the
// current state is a no-op, except that a robot's observed generation is
// recorded. A VM's change writes a history row; a VM that becomes CLOSED
// frees its addresses and moves its virtual router to an update state (the
// router serves its DHCP entries and NAT).
func (t *Txn) SetState(ch *StateChange) (api.Object, error) {
	return t.SetStateIf(ch, 0)
}

// SetStateIf is SetState with the caller's If-Match: expect, when not 0,
// must be the object's modified_index (else 409 iaas_<kind>_update_002,
// nothing changed). A robot's change compared by modified_index needs no
// expected state: the index pins the state it read.
func (t *Txn) SetStateIf(ch *StateChange, expect uint64) (api.Object, error) {
	if expect != 0 {
		var cur uint64
		var found bool
		index := func(o api.Object, ok bool) {
			if ok {
				cur, found = o.GetMeta().ModifiedIndex, true
			}
		}
		switch ch.Kind {
		case KindProject:
			index(t.Project(ch.ID))
		case api.KindVM:
			index(t.VM(ch.ID))
		case api.KindVirtualRouter:
			index(t.VirtualRouter(ch.ID))
		case api.KindSnapshot:
			index(t.Snapshot(ch.ID))
		case api.KindBackup:
			index(t.Backup(ch.ID))
		}
		if found && cur != expect {
			return nil, api.Errorf(http.StatusConflict, code("iaas", ch.Kind, "update", 2),
				"The %s was modified by another request (modified_index %d, expected %d).", ch.Kind, cur, expect)
		}
	}
	actor := api.ActorUser
	if ch.Actor.Robot {
		actor = api.ActorRobot
	}
	c := func(n int) string { return code("iaas", ch.Kind, "update", n) }
	var cur int
	var gen uint64
	switch ch.Kind {
	case KindProject:
		return t.setProjectState(ch)
	case api.KindVM:
		vm, ok := t.VM(ch.ID)
		if !ok {
			return nil, api.NotFound(c(1))
		}
		cur, gen = vm.State, vm.Generation
	case api.KindVirtualRouter:
		vr, ok := t.VirtualRouter(ch.ID)
		if !ok {
			return nil, api.NotFound(c(1))
		}
		cur, gen = vr.State, vr.Generation
	case api.KindSnapshot:
		sn, ok := t.Snapshot(ch.ID)
		if !ok {
			return nil, api.NotFound(c(1))
		}
		cur, gen = sn.State, sn.Generation
	case api.KindBackup:
		b, ok := t.Backup(ch.ID)
		if !ok {
			return nil, api.NotFound(c(1))
		}
		cur, gen = b.State, b.Generation
	default:
		return nil, fmt.Errorf("state change of unknown kind %q", ch.Kind)
	}
	if ch.Actor.Robot && ch.Expected == nil && expect == 0 {
		return nil, fieldErr("expected_state", c(111), "A robot must send expected_state (or If-Match) with a state change.")
	}
	if ch.Expected != nil && *ch.Expected != cur {
		return nil, api.Errorf(http.StatusConflict, "iaas_"+ch.Kind+CodeStateConflict,
			"The %s is in state %d (%s), not the expected %d: another agent or user changed it.", ch.Kind, cur, api.StateNames[cur], *ch.Expected)
	}
	changed, err := api.Transition(ch.Kind, ch.Kind, actor, cur, ch.To)
	if err != nil {
		return nil, err
	}
	if ch.ObservedGeneration != nil && *ch.ObservedGeneration > gen {
		return nil, fieldErr("observed_generation", c(112), "observed_generation %d is ahead of generation %d.", *ch.ObservedGeneration, gen)
	}
	if ch.ErrorCode != "" && ch.To != api.StateUnresourced {
		return nil, fieldErr("error_code", c(113), "error_code is only kept with state 3 (UNRESOURCED).")
	}
	if changed && cur == api.StateScrubQueue && ch.To == api.StateScrubbing && !t.scrubDue(ch) {
		return nil, fieldErr("state", c(114), "The %s is in its project's grace period; it cannot be scrubbed before it ends.", ch.Kind)
	}
	switch ch.Kind {
	case api.KindVM:
		return t.setVMState(ch, changed)
	case api.KindSnapshot:
		return t.setSnapshotState(ch, changed)
	case api.KindBackup:
		return t.setBackupState(ch, changed)
	default:
		return t.setVRState(ch, changed)
	}
}

func (t *Txn) setVMState(ch *StateChange, changed bool) (api.Object, error) {
	cur, _ := t.VM(ch.ID)
	vm := *cur
	if ch.ObservedGeneration != nil {
		vm.ObservedGeneration = *ch.ObservedGeneration
	}
	if !changed {
		if vm.ObservedGeneration == cur.ObservedGeneration {
			return cur, nil
		}
		return &vm, replace(t, VMs, &vm, 0, "iaas_vm_update")
	}
	if ch.To == api.StateScrub && vm.GPU > 0 {
		return nil, fieldErr("state", "iaas_vm_update_108", "A VM with GPUs cannot be scrubbed.")
	}
	// A user's change, or a robot's request (an operator's retry from
	// UNRESOURCED with a robot token), is held by the VM's snapshots and
	// backups; a robot's report of what the host did is not.
	if !ch.Actor.Robot || (robotRequest(ch.To) && t.since(Rules1)) {
		if sn := t.liveSnapshot(vm.ID); ch.To == api.StateScrub && sn != nil {
			return nil, fieldErr("state", "iaas_vm_update_109", "VM %d has snapshot %d; delete its snapshots first.", vm.ID, sn.ID)
		}
		if sn := t.busySnapshot(vm.ID); sn != nil {
			return nil, fieldErr("state", "iaas_vm_update_110", "%s", snapshotBusy(sn))
		}
		if b := t.busyBackup(vm.ID); b != nil {
			return nil, fieldErr("state", "iaas_vm_update_110", "Backup %d of the VM is busy (state %d); wait until it is RUNNING.", b.ID, b.State)
		}
		if b := t.liveBackup(vm.ID); ch.To == api.StateScrub && b != nil {
			return nil, fieldErr("state", "iaas_vm_update_109", "VM %d has backup %d; delete its backups first.", vm.ID, b.ID)
		}
	}
	vm.State, vm.StateChanged = ch.To, t.stamp()
	vm.ErrorCode, vm.ErrorDetail = "", ""
	if ch.To == api.StateUnresourced {
		vm.ErrorCode, vm.ErrorDetail = ch.ErrorCode, ch.ErrorDetail
	}
	if ch.To == api.StateClosed {
		priv, pub := t.VMAddresses(cur)
		for _, a := range priv {
			if err := t.IPAddressDelete(IPRef{ID: a.ID}); err != nil {
				return nil, err
			}
		}
		for _, a := range priv {
			if p, ok := pub[a.ID]; ok {
				if err := t.IPAddressDelete(IPRef{ID: p.ID}); err != nil {
					return nil, err
				}
			}
		}
		if len(priv) > 0 { // its DHCP entries, metadata and NAT go
			if p, ok := t.Project(vm.ProjectID); ok {
				if err := t.touchVR(p.VirtualRouterID); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := replace(t, VMs, &vm, 0, "iaas_vm_update"); err != nil {
		return nil, err
	}
	return &vm, t.vmHistory(&vm, ch.Actor)
}

// robotRequest reports whether a robot moving an object to state to asks
// for work (REQUESTED, QUIESCE, RESTART, SCRUB, RUNNING_UPDATE,
// QUIESCED_UPDATE: the ROBOT map's retries from UNRESOURCED) rather than
// reporting what the host did (an in-progress state, a result, a failure).
func robotRequest(to int) bool {
	switch to {
	case api.StateRequested, api.StateQuiesce, api.StateRestart, api.StateScrub, api.StateRunningUpdate, api.StateQuiescedUpdate:
		return true
	}
	return false
}

// liveSnapshot is the first snapshot of a VM that is not CLOSED (a VM
// with one cannot be deleted: facts §2.2, 109), or nil.
func (r *ReadTxn) liveSnapshot(vm uint64) *api.Snapshot {
	for _, sn := range r.SnapshotsOfVM(vm) {
		if sn.State != api.StateClosed {
			return sn
		}
	}
	return nil
}

// liveBackup is the first backup of a VM that is not CLOSED, or nil. A
// VM with one cannot be deleted (109, as with a snapshot; the reference
// is silent on backups): the agent drives backups inside their VM's work
// spec, so those of a deleted VM would stay listed and their copies on
// the host would never be removed. Deleting them is the user's choice,
// and the VM's delete queue stays an undo that loses nothing.
func (r *ReadTxn) liveBackup(vm uint64) *api.Backup {
	for _, b := range r.BackupsOfVM(vm) {
		if b.State != api.StateClosed {
			return b
		}
	}
	return nil
}

// diskJob reports whether a snapshot or backup in state st has a job on
// its VM's disks under way or queued: being built, reverted or restored,
// or deleted. RUNNING (done), UNRESOURCED (failed: nothing runs until a
// robot retries it) and CLOSED are not.
func diskJob(st int) bool {
	switch st {
	case api.StateRequested, api.StateBuilding, api.StateRunningUpdate, api.StateRunningUpdating, api.StateScrub, api.StateScrubbing:
		return true
	}
	return false
}

// busyBackup is the first backup of a VM with a job on the VM's disks
// (diskJob), or nil. The reference is silent on backups; like a busy
// snapshot (facts §2.2, 110) it keeps a user from changing the VM's state
// or spec, and its project from being deleted (docs/compute-model.md).
func (r *ReadTxn) busyBackup(vm uint64) *api.Backup {
	for _, b := range r.BackupsOfVM(vm) {
		if diskJob(b.State) {
			return b
		}
	}
	return nil
}

// snapshotBusy says why a busy snapshot holds its VM (110): a failed one
// (UNRESOURCED) will not become RUNNING by waiting, its user deletes it.
func snapshotBusy(sn *api.Snapshot) string {
	if sn.State == api.StateUnresourced {
		why := ""
		if sn.ErrorCode != "" {
			why = ": " + sn.ErrorCode
		}
		return fmt.Sprintf("Snapshot %d of the VM failed (UNRESOURCED%s); delete it (state 8) first.", sn.ID, why)
	}
	return fmt.Sprintf("Snapshot %d of the VM is busy (state %d); wait until it is RUNNING.", sn.ID, sn.State)
}

// busySnapshot is the first snapshot of a VM that is neither RUNNING nor
// CLOSED (the VM's state cannot change meanwhile: facts §2.2, 110), or nil.
func (r *ReadTxn) busySnapshot(vm uint64) *api.Snapshot {
	for _, sn := range r.SnapshotsOfVM(vm) {
		if sn.State != api.StateRunning && sn.State != api.StateClosed {
			return sn
		}
	}
	return nil
}

func (t *Txn) setVRState(ch *StateChange, changed bool) (api.Object, error) {
	cur, _ := t.VirtualRouter(ch.ID)
	vr := *cur
	if ch.ObservedGeneration != nil {
		vr.ObservedGeneration = *ch.ObservedGeneration
	}
	if !changed {
		if vr.ObservedGeneration == cur.ObservedGeneration {
			return cur, nil
		}
		return &vr, replace(t, VirtualRouters, &vr, 0, "iaas_virtual_router_update")
	}
	if ch.To == api.StateScrub || ch.To == api.StateScrubbing {
		for _, vm := range t.VMsOfProject(vr.ProjectID) {
			if vm.State != api.StateClosed {
				return nil, fieldErr("state", "iaas_virtual_router_update_003", "The virtual router cannot be scrubbed while VM %d of the project is not CLOSED.", vm.ID)
			}
		}
	}
	vr.State, vr.StateChanged = ch.To, t.stamp()
	vr.ErrorCode, vr.ErrorDetail = "", ""
	if ch.To == api.StateUnresourced {
		vr.ErrorCode, vr.ErrorDetail = ch.ErrorCode, ch.ErrorDetail
	}
	if ch.To == api.StateClosed {
		if err := t.IPAddressDelete(IPRef{ID: vr.IPAddressID}); err != nil && !isNotFound(err) {
			return nil, err
		}
		if t.since(Rules5) {
			vr.IPAddressID, vr.IPAddress = 0, ""
		}
		// Its VPNs go (by id, each with a delete history row): their
		// pre-shared keys stay nowhere and their stif numbers are free.
		// The agent tore them down with the router.
		if t.since(Rules1) {
			for _, v := range t.VPNsOfVirtualRouter(vr.ID) {
				if err := remove(t, VPNs, v.ID, "iaas_vpn_delete"); err != nil {
					return nil, err
				}
				if err := t.vpnHistory(&v.VPN, "delete", ch.Actor); err != nil {
					return nil, err
				}
			}
		}

		if p, ok := t.Project(vr.ProjectID); ok {
			n := *p
			n.Closed = true
			if err := replace(t, Projects, &n, 0, "iaas_project_update"); err != nil {
				return nil, err
			}
		}
	}
	return &vr, replace(t, VirtualRouters, &vr, 0, "iaas_virtual_router_update")
}

// KindProject is the StateChange kind of a whole project.
const KindProject = "project"

// setProjectState is CloudCIX's project-level state (§2.6): only 8 (scrub
// everything) or 4 (restore), only when the project is stable and its
// min_state ≥ RUNNING. 8 moves every RUNNING or QUIESCED VM and the
// virtual router to SCRUB, refused (111, nothing changed) while a VM has
// a snapshot or backup that is not CLOSED, as a VM's own delete is (109); 4 moves
// every VM and the router in SCRUB_QUEUE to RESTART. A user action: robots
// are refused.
func (t *Txn) setProjectState(ch *StateChange) (api.Object, error) {
	c := func(n int) string { return code("iaas", "project", "update", n) }
	p, ok := t.Project(ch.ID)
	if !ok {
		return nil, api.NotFound(c(1))
	}
	if ch.Actor.Robot {
		return nil, api.Errorf(http.StatusForbidden, c(203), "Robots change the state of VMs and virtual routers, not of projects.")
	}
	if ch.To != api.StateRunning && ch.To != api.StateScrub {
		return nil, fieldErr("state", c(108), "A project's state can only be set to 4 (restore) or 8 (delete).")
	}
	vr, ok := t.VirtualRouter(p.VirtualRouterID)
	if !ok {
		return nil, fmt.Errorf("project %d has no virtual router", p.ID)
	}
	vms := t.VMsOfProject(p.ID)
	for _, s := range append([]int{vr.State}, vmStates(vms)...) {
		if !api.IsStable(s) || s < api.StateRunning {
			return nil, fieldErr("state", c(109), "The project must be stable, with everything RUNNING, QUIESCED, in SCRUB_QUEUE or CLOSED; something is in state %d (%s).", s, api.StateNames[s])
		}
	}
	move := func(from int) (int, bool) {
		if ch.To == api.StateScrub && (from == api.StateRunning || from == api.StateQuiesced) {
			return api.StateScrub, true
		}
		if ch.To == api.StateRunning && from == api.StateScrubQueue {
			return api.StateRestart, true
		}
		return 0, false
	}
	for _, cur := range vms {
		if to, ok := move(cur.State); ok {
			if to == api.StateRestart {
				// VM_RESTORE_MAP: a VM comes back as it was before its
				// delete (RUNNING → RESTART, QUIESCED stays QUIESCED: the
				// delete shut it down already).
				to = api.VMRestoreMap[t.stateBeforeDelete(cur.ID)]
			}
			vm := *cur
			if to == api.StateScrub && vm.GPU > 0 {
				return nil, fieldErr("state", "iaas_vm_update_108", "VM %d has GPUs and cannot be scrubbed.", vm.ID)
			}
			// The guards of a VM's own delete (SetState) hold here too:
			// a VM with a snapshot that is not CLOSED is not deleted.
			if sn := t.liveSnapshot(vm.ID); to == api.StateScrub && sn != nil {
				return nil, fieldErr("state", c(111), "VM %d has snapshot %d; delete its snapshots first.", vm.ID, sn.ID)
			}
			if b := t.busyBackup(vm.ID); to == api.StateScrub && b != nil {
				return nil, fieldErr("state", c(111), "Backup %d of VM %d is busy (state %d); wait until it is RUNNING.", b.ID, vm.ID, b.State)
			}
			if b := t.liveBackup(vm.ID); to == api.StateScrub && b != nil {
				return nil, fieldErr("state", c(111), "VM %d has backup %d; delete its backups first.", vm.ID, b.ID)
			}
			vm.State, vm.StateChanged = to, t.stamp()
			if err := replace(t, VMs, &vm, 0, "iaas_vm_update"); err != nil {
				return nil, err
			}
			if err := t.vmHistory(&vm, ch.Actor); err != nil {
				return nil, err
			}
		}
	}
	if to, ok := move(vr.State); ok {
		n := *vr
		n.State, n.StateChanged = to, t.stamp()
		if err := replace(t, VirtualRouters, &n, 0, "iaas_virtual_router_update"); err != nil {
			return nil, err
		}
	}
	n := *p
	return &n, replace(t, Projects, &n, 0, "iaas_project_update")
}

// stateBeforeDelete is the state a VM in the delete queue was in when its
// delete was asked for (the history row before its last SCRUB row:
// every state change writes one): QUIESCED or RUNNING.
func (t *Txn) stateBeforeDelete(vm uint64) int {
	h := t.VMHistoryOf(vm)
	for i := len(h) - 1; i > 0; i-- {
		if h[i].State == api.StateScrub {
			if h[i-1].State == api.StateQuiesced {
				return api.StateQuiesced
			}
			break
		}
	}
	return api.StateRunning
}

// scrubDue: has the object of ch waited out its grace period at the
// command's time?
func (t *Txn) scrubDue(ch *StateChange) bool {
	switch ch.Kind {
	case api.KindVM:
		vm, ok := t.VM(ch.ID)
		return ok && t.VMScrubDue(vm, t.Now)
	case api.KindVirtualRouter:
		vr, ok := t.VirtualRouter(ch.ID)
		return ok && t.VirtualRouterScrubDue(vr, t.Now)
	case api.KindSnapshot:
		if s, ok := t.Snapshot(ch.ID); ok {
			p, ok := t.Project(s.ProjectID)
			return ok && api.ScrubDue(s.State, s.StateChanged, p.GracePeriod, t.Now)
		}
	case api.KindBackup:
		if b, ok := t.Backup(ch.ID); ok {
			p, ok := t.Project(b.ProjectID)
			return ok && api.ScrubDue(b.State, b.StateChanged, p.GracePeriod, t.Now)
		}
	}
	return false
}

func vmStates(vms []*api.VM) []int {
	out := make([]int, len(vms))
	for i, v := range vms {
		out[i] = v.State
	}
	return out
}

// VMScrubDue reports whether a VM in SCRUB_QUEUE has waited out its
// project's grace period at now (a robot may take it to SCRUBBING).
func (r *ReadTxn) VMScrubDue(vm *api.VM, now time.Time) bool {
	p, ok := r.Project(vm.ProjectID)
	return ok && api.ScrubDue(vm.State, vm.StateChanged, p.GracePeriod, now)
}

// VirtualRouterScrubDue is VMScrubDue for a virtual router.
func (r *ReadTxn) VirtualRouterScrubDue(vr *api.VirtualRouter, now time.Time) bool {
	p, ok := r.Project(vr.ProjectID)
	return ok && api.ScrubDue(vr.State, vr.StateChanged, p.GracePeriod, now)
}

func isNotFound(err error) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// --- projects ---

// ProjectUpdate replaces a project's name, note, grace period and manager.
func (t *Txn) ProjectUpdate(p *api.Project, expect uint64) (*api.Project, error) {
	cur, ok := t.Project(p.ID)
	if !ok {
		return nil, api.NotFound("iaas_project_update_001")
	}
	n := *cur
	n.Name, n.Note, n.GracePeriod, n.ManagerID = p.Name, p.Note, p.GracePeriod, p.ManagerID
	fe := api.FieldErrors{}
	for _, o := range all[*api.Project](&t.ReadTxn, Projects, "member", n.MemberID) {
		if o.ID != n.ID && !o.Closed && strings.EqualFold(o.Name, n.Name) {
			fe.Add("name", "iaas_project_update_107", "A project named %q already exists.", n.Name)
		}
	}
	if n.ManagerID != cur.ManagerID {
		t.checkManager(fe, n.MemberID, n.ManagerID, "iaas_project_update_131")
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	return &n, replace(t, Projects, &n, expect, "iaas_project_update")
}

// checkManager: a project's manager (the user its emails go to) is a user
// of the member that owns it; 0 is none.
func (r *ReadTxn) checkManager(fe api.FieldErrors, member, manager uint64, code string) {
	if manager == 0 {
		return
	}
	if u, ok := r.User(manager); !ok || u.MemberID != member {
		fe.Add("manager_id", code, "User %d is not a user of the project's member.", manager)
	}
}

// --- error helpers ---

// prefixErr prefixes the field names of a validation error.
func prefixErr(err error, prefix string) error {
	var e *api.Error
	if !errors.As(err, &e) || len(e.Errors) == 0 {
		return err
	}
	fe := api.FieldErrors{}
	for k, v := range e.Errors {
		fe[prefix+k] = v
	}
	return fe.Err()
}

// mergeErr adds err's field errors, prefixed, to fe; any other error is
// recorded under the prefix itself.
func mergeErr(fe api.FieldErrors, err error, prefix string) {
	var e *api.Error
	if errors.As(err, &e) && len(e.Errors) > 0 {
		for k, v := range e.Errors {
			if _, ok := fe[prefix+k]; !ok {
				fe[prefix+k] = v
			}
		}
		return
	}
	if errors.As(err, &e) {
		fe[strings.TrimSuffix(prefix, ".")] = api.FieldError{ErrorCode: e.ErrorCode, Detail: e.Detail}
		return
	}
	fe[strings.TrimSuffix(prefix, ".")] = api.FieldError{ErrorCode: "regent_internal_001", Detail: err.Error()}
}

// relabel renames a field of a validation error.
func relabel(err error, from, to string) error {
	var e *api.Error
	if !errors.As(err, &e) || len(e.Errors) == 0 {
		return err
	}
	if v, ok := e.Errors[from]; ok {
		fe := api.FieldErrors{to: v}
		return fe.Err()
	}
	return err
}

// updateState is the state a spec change moves a stable object to:
// RUNNING → RUNNING_UPDATE, QUIESCED → QUIESCED_UPDATE; others keep theirs
// (an agent busy with it sees the generation move).
func updateState(s int) int {
	switch s {
	case api.StateRunning:
		return api.StateRunningUpdate
	case api.StateQuiesced:
		return api.StateQuiescedUpdate
	}
	return s
}

func isAPIErr(err error) bool {
	var e *api.Error
	return errors.As(err, &e)
}

// setIf copies *v into *dst when v is not nil.
func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
