package state

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// VPN tables.
const (
	VPNs         = "compute_vpns"
	VPNHistories = "compute_vpn_histories"
)

// VPNRecord is a stored VPN: the API view plus its pre-shared key, which
// no tenant response carries (like a token's hash).
type VPNRecord struct {
	api.VPN
	PreSharedKey string `json:"pre_shared_key"`
}

func vpnSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		VPNs: {Name: VPNs, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "virtual_router": uintIndex("virtual_router", "VirtualRouterID"),
			"region": uintIndex("region", "RegionID"),
		}},
		VPNHistories: {Name: VPNHistories, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(), "vpn": uintIndex("vpn", "VPNID"),
		}},
	}
}

// VPN returns a VPN (without its key) by id.
func (r *ReadTxn) VPN(id uint64) (*api.VPN, bool) {
	rec, ok := get[*VPNRecord](r, VPNs, id)
	if !ok {
		return nil, false
	}
	return &rec.VPN, true
}

// VPNRecord returns a VPN with its pre-shared key: for the agent protocol
// only (robots of the VPN's region).
func (r *ReadTxn) VPNRecord(id uint64) (*VPNRecord, bool) { return get[*VPNRecord](r, VPNs, id) }

// VPNList returns every VPN (without keys), by id.
func (r *ReadTxn) VPNList() []*api.VPN {
	var out []*api.VPN
	for _, rec := range all[*VPNRecord](r, VPNs, "id") {
		out = append(out, &rec.VPN)
	}
	return out
}

// VPNsOfVirtualRouter returns the VPNs (with keys) of a virtual router: what
// an agent of the network role builds.
func (r *ReadTxn) VPNsOfVirtualRouter(vr uint64) []*VPNRecord {
	return all[*VPNRecord](r, VPNs, "virtual_router", vr)
}

// VPNHistoryList returns every VPN history row, by id.
func (r *ReadTxn) VPNHistoryList() []*api.VPNHistory {
	return all[*api.VPNHistory](r, VPNHistories, "id")
}

// VPNHistory returns a VPN history row by id.
func (r *ReadTxn) VPNHistory(id uint64) (*api.VPNHistory, bool) {
	return get[*api.VPNHistory](r, VPNHistories, id)
}

// VPNPayload is the payload of a VPN create or update. PreSharedKey empty
// on update keeps the key.
type VPNPayload struct {
	VPN          api.VPN `json:"vpn"`
	PreSharedKey string  `json:"pre_shared_key,omitempty"`
	Actor        Actor   `json:"actor"`
}

// VPNCreate stores a VPN of a virtual router: its routes are checked
// against the project (local subnets are the project's; remote networks
// overlap neither a project subnet nor another VPN's remote network), it
// gets the lowest stif number free on the physical router, and the
// virtual router is moved to its update state.
func (t *Txn) VPNCreate(p *VPNPayload) (*api.VPN, error) {
	vr, ok := t.VirtualRouter(p.VPN.VirtualRouterID)
	if !ok {
		return nil, fieldErr("virtual_router_id", "iaas_vpn_create_102", "Virtual router %d does not exist.", p.VPN.VirtualRouterID)
	}
	if err := vrTakesVPNs(vr, "create"); err != nil {
		return nil, err
	}
	rec := &VPNRecord{VPN: p.VPN, PreSharedKey: p.PreSharedKey}
	rec.ProjectID, rec.MemberID, rec.RegionID = vr.ProjectID, vr.MemberID, vr.RegionID
	if err := t.vpnRoutes(&rec.VPN, "create"); err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for _, o := range t.VirtualRoutersOnRouter(vr.RouterID) {
		if o.State == api.StateClosed && t.since(Rules1) {
			continue // its VPNs are gone from the router (and from state since it closes them)
		}
		for _, v := range t.VPNsOfVirtualRouter(o.ID) {
			used[v.STIFNumber] = true
		}
	}
	for n := api.STIFMin; n <= api.STIFMax; n++ {
		if !used[n] {
			rec.STIFNumber = n
			break
		}
	}
	if rec.STIFNumber == 0 {
		return nil, api.Errorf(http.StatusBadRequest, "iaas_vpn_create_128", "Router %d has no stif number left (%d–%d).", vr.RouterID, api.STIFMin, api.STIFMax)
	}
	if err := insertNew(t, VPNs, rec); err != nil {
		return nil, err
	}
	if err := t.touchVR(vr.ID); err != nil {
		return nil, err
	}
	return &rec.VPN, t.vpnHistory(&rec.VPN, "create", p.Actor)
}

// VPNUpdate replaces a VPN's settings and routes; its router, project and
// stif number stay.
func (t *Txn) VPNUpdate(p *VPNPayload, expect uint64) (*api.VPN, error) {
	old, ok := t.VPNRecord(p.VPN.ID)
	if !ok {
		return nil, api.NotFound("iaas_vpn_update_001")
	}
	rec := &VPNRecord{VPN: p.VPN, PreSharedKey: old.PreSharedKey}
	if p.PreSharedKey != "" {
		rec.PreSharedKey = p.PreSharedKey
	}
	rec.VirtualRouterID, rec.ProjectID, rec.MemberID, rec.RegionID, rec.STIFNumber =
		old.VirtualRouterID, old.ProjectID, old.MemberID, old.RegionID, old.STIFNumber
	if vr, ok := t.VirtualRouter(rec.VirtualRouterID); ok {
		if err := vrTakesVPNs(vr, "update"); err != nil {
			return nil, err
		}
	}
	if err := t.vpnRoutes(&rec.VPN, "update"); err != nil {
		return nil, err
	}
	if err := replace(t, VPNs, rec, expect, "iaas_vpn_update"); err != nil {
		return nil, err
	}
	if err := t.touchVR(rec.VirtualRouterID); err != nil {
		return nil, err
	}
	return &rec.VPN, t.vpnHistory(&rec.VPN, "update", p.Actor)
}

// vrTakesVPNs refuses a VPN change on a virtual router that is being
// deleted or is gone (SCRUB and after, CLOSED): it would be stored and
// never built. Deleting a VPN stays possible.
func vrTakesVPNs(vr *api.VirtualRouter, method string) error {
	if slices.Contains(api.ShutDownStates, vr.State) {
		return fieldErr("virtual_router_id", code("iaas", "vpn", method, 129), "Virtual router %d is deleted or being deleted (state %d, %s): its VPNs cannot change.", vr.ID, vr.State, api.StateNames[vr.State])
	}
	return nil
}

// VPNDeletePayload deletes a VPN.
type VPNDeletePayload struct {
	ID    uint64 `json:"id"`
	Actor Actor  `json:"actor"`
}

// VPNDelete removes a VPN; the virtual router must tear it down.
func (t *Txn) VPNDelete(p *VPNDeletePayload) error {
	old, ok := t.VPN(p.ID)
	if !ok {
		return api.NotFound("iaas_vpn_delete_001")
	}
	if err := remove(t, VPNs, p.ID, "iaas_vpn_delete"); err != nil {
		return err
	}
	if err := t.touchVR(old.VirtualRouterID); err != nil {
		return err
	}
	return t.vpnHistory(old, "delete", p.Actor)
}

// vpnRoutes checks the routes of v against its project. Each prefix is
// parsed once; the overlap checks among the routes stay pairwise (the API
// bounds their number).
func (t *Txn) vpnRoutes(v *api.VPN, method string) error {
	c := func(n int) string { return code("iaas", "vpn", method, n) }
	p, ok := t.Project(v.ProjectID)
	if !ok {
		return fmt.Errorf("vpn of a missing project %d", v.ProjectID)
	}
	subnets := t.ProjectSubnets(p)
	// Every prefix is parsed once: the checks below are pairwise.
	subnetPrefixes := make([]netip.Prefix, len(subnets))
	for i, s := range subnets {
		subnetPrefixes[i] = netip.MustParsePrefix(s.CIDR)
	}
	routes := make([]netip.Prefix, len(v.Routes))
	for i, r := range v.Routes {
		routes[i] = netip.MustParsePrefix(r.RemoteSubnet)
	}
	type remote struct {
		prefix netip.Prefix
		vpn    uint64
	}
	var others []remote // a slice, not a map: Apply never depends on map order
	for _, o := range t.VPNsOfVirtualRouter(v.VirtualRouterID) {
		if o.ID == v.ID {
			continue
		}
		for _, r := range o.Routes {
			others = append(others, remote{netip.MustParsePrefix(r.RemoteSubnet), o.ID})
		}
	}
	// The tunnel's own endpoints must stay outside its remote networks:
	// the router would route the IKE and ESP packets to the peer into the
	// tunnel they carry (and its VPN fence drops them), so it never comes up.
	var endpoints []netip.Addr
	if a, err := netip.ParseAddr(v.IKEGatewayValue); err == nil && v.IKEGatewayType == "public_ip" {
		endpoints = append(endpoints, a)
	}
	if vr, ok := t.VirtualRouter(v.VirtualRouterID); ok {
		if a, err := netip.ParseAddr(vr.IPAddress); err == nil {
			endpoints = append(endpoints, a)
		}
	}
	fe := api.FieldErrors{}
	for i, r := range v.Routes {
		f := fmt.Sprintf("routes[%d].", i)
		local := false
		for _, s := range subnets {
			local = local || s.ID == r.LocalSubnetID
		}
		if !local {
			fe.Add(f+"local_subnet_id", c(125), "Subnet %d is not a subnet of the project.", r.LocalSubnetID)
			continue
		}
		rp := routes[i]
		for k, s := range subnets {
			if netx.Overlaps(rp, subnetPrefixes[k]) {
				fe.Add(f+"remote_subnet", c(126), "%s overlaps the project subnet %s.", rp, s.CIDR)
			}
		}
		for _, a := range endpoints {
			if rp.Contains(a) {
				fe.Add(f+"remote_subnet", c(130), "%s holds %s, an end of the tunnel itself (the peer's gateway or the virtual router's public address).", rp, a)
			}
		}
		for _, o := range others {
			if netx.Overlaps(rp, o.prefix) {
				fe.Add(f+"remote_subnet", c(127), "%s overlaps a remote network of VPN %d.", rp, o.vpn)
			}
		}
		for j := 0; j < i; j++ {
			if netx.Overlaps(rp, routes[j]) {
				fe.Add(f+"remote_subnet", c(127), "%s overlaps routes[%d].", rp, j)
			}
		}
	}
	return fe.Err()
}

func (t *Txn) vpnHistory(v *api.VPN, action string, a Actor) error {
	h := &api.VPNHistory{VPNID: v.ID, ProjectID: v.ProjectID, MemberID: v.MemberID, Action: action, VPNQuantity: 1,
		UserID: a.UserID, TokenID: a.TokenID, Robot: a.Robot}
	if action == "delete" {
		h.VPNQuantity = 0
	}
	if p, ok := t.Project(v.ProjectID); ok {
		h.ProjectName = p.Name
	}
	return insertNew(t, VPNHistories, h)
}

// closedVPNs are the VPNs of CLOSED virtual routers: ones closed before
// Rules1, when closing a router left its VPNs, pre-shared keys included,
// in state.
func (r *ReadTxn) closedVPNs() []*VPNRecord {
	var out []*VPNRecord
	closed := map[uint64]bool{}
	for _, rec := range all[*VPNRecord](r, VPNs, "id") {
		c, seen := closed[rec.VirtualRouterID]
		if !seen {
			vr, ok := r.VirtualRouter(rec.VirtualRouterID)
			c = ok && vr.State == api.StateClosed
			closed[rec.VirtualRouterID] = c
		}
		if c {
			out = append(out, rec)
		}
	}
	return out
}

// ClosedVPNsDue reports whether a CLOSED virtual router still holds VPNs
// (ClosedVPNsPurge): the leader then proposes the purge.
func (r *ReadTxn) ClosedVPNsDue() bool { return len(r.closedVPNs()) > 0 }

// ClosedVPNsPurge deletes the VPNs of CLOSED virtual routers, each with a
// delete history row, as closing a router has done since Rules1: their
// pre-shared keys stay nowhere. It returns how many went.
func (t *Txn) ClosedVPNsPurge() (int, error) {
	vpns := t.closedVPNs()
	for _, v := range vpns {
		if err := remove(t, VPNs, v.ID, "iaas_vpn_delete"); err != nil {
			return 0, err
		}
		if err := t.vpnHistory(&v.VPN, "delete", Actor{}); err != nil {
			return 0, err
		}
	}
	return len(vpns), nil
}
