package melange

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// Interfaces, networks and instance interfaces (melange-facts §12).
//
// POST /ipam/interfaces, DELETE /ipam/interfaces/{vif} and the instance
// routes are provider routes (no tenant in the URL): global callers only.
// GET /ipam/tenants/{t}/interfaces/{vif} shows the interface to its owner.
// Every write is one command (fsm.InterfaceCreateType and its siblings):
// the interface, its MAC and its addresses change together.

// Permission-table services of these routes.
const (
	ServiceInterface = "melange_interface"
	ServiceNetwork   = "melange_network"
	ServiceInstance  = "melange_instance"
)

// InterfaceView is a Melange interface as the API shows it: id is the vif
// id, mac_address the UNIX form, ip_addresses allocation views.
type InterfaceView struct {
	ID          string  `json:"id"`
	DeviceID    *string `json:"device_id"`
	TenantID    string  `json:"tenant_id"`
	MACAddress  *string `json:"mac_address"`
	IPAddresses []any   `json:"ip_addresses"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

// AllocationBlockView is the block of an allocation view.
type AllocationBlockView struct {
	ID        string  `json:"id"`
	CIDR      string  `json:"cidr"`
	Broadcast string  `json:"broadcast"`
	Gateway   *string `json:"gateway"`
	NetworkID *string `json:"network_id"`
	Netmask   string  `json:"netmask"`
	DNS1      *string `json:"dns1"`
	DNS2      *string `json:"dns2"`
	IPRoutes  []any   `json:"ip_routes"`
}

// AllocationView is an address with its block and the block's routes.
type AllocationView struct {
	ID          string              `json:"id"`
	InterfaceID *string             `json:"interface_id"`
	Address     string              `json:"address"`
	Version     int                 `json:"version"`
	IPBlock     AllocationBlockView `json:"ip_block"`
}

// allocationView renders ip with its block as seen by r.
func allocationView(r *state.ReadTxn, ip *wire.IPAddress) any {
	v := &AllocationView{ID: idString(ip.ID), InterfaceID: optional(ip.InterfaceID), Address: ip.Address, Version: ip.Version}
	if a, err := netip.ParseAddr(ip.Address); err == nil {
		v.Address = netx.Expand(a)
	}
	v.IPBlock.IPRoutes = []any{}
	if b, ok := r.IPBlock(ip.BlockID); ok {
		bv := blockView(b).(*BlockView)
		v.IPBlock = AllocationBlockView{ID: bv.ID, CIDR: bv.CIDR, Broadcast: bv.Broadcast, Gateway: bv.Gateway,
			NetworkID: bv.NetworkID, Netmask: bv.Netmask, DNS1: bv.DNS1, DNS2: bv.DNS2, IPRoutes: []any{}}
		for _, rt := range r.IPRouteList(b.ID) {
			v.IPBlock.IPRoutes = append(v.IPBlock.IPRoutes, routeView(rt))
		}
	}
	return v
}

func allocationViews(r *state.ReadTxn, ips []*wire.IPAddress) []any {
	out := make([]any, 0, len(ips))
	for _, ip := range ips {
		out = append(out, allocationView(r, ip))
	}
	return out
}

// interfaceView renders ifc with the addresses allocated on it.
func interfaceView(r *state.ReadTxn, ifc *wire.Interface, ips []*wire.IPAddress) any {
	return &InterfaceView{ID: ifc.VIF, DeviceID: optional(ifc.DeviceID), TenantID: ifc.TenantID,
		MACAddress: optional(ifc.MACAddress), IPAddresses: allocationViews(r, ips), CreatedAt: ifc.Created, UpdatedAt: ifc.Updated}
}

// current is a read transaction that sees the command just applied.
func (q *request) current() *state.ReadTxn { return q.API.Store().Read() }

// ifaces are the handlers that may create a network's default block.
type ifaces struct {
	defaultCIDR string
	opts        Options
}

// defaultBlock is the block created for an unknown network (nil when no
// default CIDR is configured): private, with the dialect's defaults.
func (h *ifaces) defaultBlock() *wire.IPBlock {
	if h.defaultCIDR == "" {
		return nil
	}
	b := &wire.IPBlock{Dialect: wire.DialectMelange, CIDR: h.defaultCIDR, Type: wire.BlockPrivate}
	defaults(b, h.opts)
	return b
}

// known reports whether the URL tenant's network net exists or would be
// created.
func (h *ifaces) known(q *request, net string) bool {
	return h.defaultCIDR != "" || len(q.Txn.NetworkBlocks(q.tenant, net)) > 0
}

func registerInterfaces(a *api.API, opts Options) {
	h := &ifaces{defaultCIDR: opts.DefaultCIDR, opts: opts}
	handle(a, "POST", "/interfaces", ServiceInterface, auth.Create, h.createInterface)
	handle(a, "DELETE", "/interfaces/{vif}", ServiceInterface, auth.Delete, deleteInterface)
	handle(a, "GET", "/tenants/{tenant_id}/interfaces/{vif}", ServiceInterface, auth.Read, readInterface((*request).tenantInterface))

	const net = "/tenants/{tenant_id}/networks/{network_id}"
	handle(a, "GET", net, ServiceNetwork, auth.Read, readNetwork)
	handle(a, "POST", net+"/interfaces/{vif}/ip_allocations", ServiceNetwork, auth.Create, h.allocateInNetwork)
	handle(a, "GET", net+"/interfaces/{vif}/ip_allocations", ServiceNetwork, auth.List, listNetworkAllocations)
	handle(a, "DELETE", net+"/interfaces/{vif}/ip_allocations", ServiceNetwork, auth.Delete, deallocateInNetwork)
	// melange-api-spec "Interfaces": the tenant-scoped forms.
	handle(a, "POST", net+"/interfaces", ServiceNetwork, auth.Create, h.createNetworkInterface)
	handle(a, "GET", net+"/interfaces/{vif}", ServiceNetwork, auth.Read, readInterface((*request).networkInterface))
	handle(a, "DELETE", net+"/interfaces/{vif}", ServiceNetwork, auth.Delete, deleteTenantInterface)

	const inst = "/instances/{device_id}/interfaces"
	handle(a, "PUT", inst, ServiceInstance, auth.Update, h.putInstanceInterfaces)
	handle(a, "GET", inst, ServiceInstance, auth.Read, readInstanceInterfaces)
	handle(a, "DELETE", inst, ServiceInstance, auth.Delete, deleteInstanceInterfaces)
}

// --- body helpers ---

// obj returns field as a nested object (absent or null: nil).
func (b body) obj(field string) (body, error) {
	raw, ok := b[field]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var out body
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, invalid(field, field+" should be an object")
	}
	return out, nil
}

// strs returns field as a list of at most max strings (absent or null:
// nil); a longer list is 400 (tooMany).
func (b body) strs(field string, max int) ([]string, error) {
	raw, ok := b[field]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, invalid(field, field+" should be a list of addresses")
	}
	if len(out) > max {
		return nil, tooMany(field, max)
	}
	return out, nil
}

// fields reads the string fields named in dst.
func (b body) fields(dst map[string]*string) error {
	for name, p := range dst {
		v, _, err := b.str(name)
		if err != nil {
			return err
		}
		*p = v
	}
	return nil
}

// networkRef reads {"id", "tenant_id", "addresses"}; the tenant defaults
// to def. A tenant that is not a member id names no network: 404.
func networkRef(b body, def string) (*state.NetworkRef, error) {
	var id, tenant string
	if err := b.fields(map[string]*string{"id": &id, "tenant_id": &tenant}); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, invalid("network", "id should be present")
	}
	addrs, err := b.strs("addresses", maxAddresses)
	if err != nil {
		return nil, err
	}
	if tenant == "" {
		tenant = def
	}
	m, perr := strconv.ParseUint(tenant, 10, 64)
	if perr != nil {
		return nil, fault(http.StatusNotFound, "Network %s not found", id)
	}
	return &state.NetworkRef{ID: id, MemberID: m, Addresses: addrs}, nil
}

// newVIF is a random virtual interface id for interfaces the caller does
// not name (instance interfaces). It is chosen before the command is
// replicated, so Apply stays deterministic.
func newVIF() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// --- interfaces ---

// createInterface: body {"interface": {id, tenant_id, device_id,
// mac_address, network: {id, tenant_id, addresses}}} → 201.
func (h *ifaces) createInterface(q *request) error {
	b, err := decode(q, "interface")
	if err != nil {
		return err
	}
	var in wire.Interface
	if err := b.fields(map[string]*string{"id": &in.VIF, "tenant_id": &in.TenantID, "device_id": &in.DeviceID, "mac_address": &in.MACAddress}); err != nil {
		return err
	}
	if in.VIF == "" {
		return invalid("virtual_interface_id", "virtual_interface_id should be present")
	}
	if in.TenantID == "" {
		return invalid("tenant_id", "tenant_id should be present")
	}
	p := fsm.InterfaceCreatePayload{Interface: in}
	nb, err := b.obj("network")
	if err != nil {
		return err
	}
	if nb != nil {
		if p.Network, err = networkRef(nb, in.TenantID); err != nil {
			return err
		}
		p.Network.DefaultBlock = h.defaultBlock()
	}
	v, index, err := apply(q, fsm.InterfaceCreateType, p, 0)
	if err != nil {
		return err
	}
	d := v.(*state.InterfaceDetail)
	reply(q, http.StatusCreated, index, map[string]any{"interface": interfaceView(q.current(), d.Interface, d.Addresses)})
	return nil
}

// deleteInterface: 200 with an empty body; the MAC is freed and the
// addresses soft-deallocated.
func deleteInterface(q *request) error {
	vif := q.PathValue("vif")
	if _, ok := q.Txn.InterfaceByVIF(vif); !ok {
		return fault(http.StatusNotFound, "Interface Not Found")
	}
	_, index, err := apply(q, fsm.InterfaceDeleteType, fsm.VIFPayload{VIF: vif}, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}

// createNetworkInterface is createInterface in the URL tenant's network
// {network_id} (melange-api-spec "Create an Interface and allocate ips on
// the network"): body {"interface": {id, tenant_id, device_id, mac_address,
// network: {addresses}}}; the owner defaults to the URL tenant. 404 Network
// <id> not found when the tenant has no block in it.
func (h *ifaces) createNetworkInterface(q *request) error {
	net := q.PathValue("network_id")
	b, err := decode(q, "interface")
	if err != nil {
		return err
	}
	var in wire.Interface
	if err := b.fields(map[string]*string{"id": &in.VIF, "tenant_id": &in.TenantID, "device_id": &in.DeviceID, "mac_address": &in.MACAddress}); err != nil {
		return err
	}
	if in.VIF == "" {
		return invalid("virtual_interface_id", "virtual_interface_id should be present")
	}
	if err := q.forTenant(in.TenantID, "interfaces"); err != nil {
		return err
	}
	if in.TenantID == "" {
		in.TenantID = idString(q.tenant)
	}
	ref := &state.NetworkRef{ID: net, MemberID: q.tenant, DefaultBlock: h.defaultBlock()}
	nb, err := b.obj("network")
	if err != nil {
		return err
	}
	if nb != nil {
		if ref.Addresses, err = nb.strs("addresses", maxAddresses); err != nil {
			return err
		}
	}
	if !h.known(q, net) {
		return fault(http.StatusNotFound, "Network %s not found", net)
	}
	v, index, err := apply(q, fsm.InterfaceCreateType, fsm.InterfaceCreatePayload{Interface: in, Network: ref}, 0)
	if err != nil {
		return err
	}
	d := v.(*state.InterfaceDetail)
	reply(q, http.StatusCreated, index, map[string]any{"interface": interfaceView(q.current(), d.Interface, d.Addresses)})
	return nil
}

// deleteTenantInterface deletes {vif} of the URL tenant's network
// {network_id} (networkInterface), as DELETE /ipam/interfaces/{vif}.
func deleteTenantInterface(q *request) error {
	ifc, err := q.networkInterface()
	if err != nil {
		return err
	}
	_, index, err := apply(q, fsm.InterfaceDeleteType, fsm.VIFPayload{VIF: ifc.VIF}, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}

// tenantInterface finds {vif} owned by the URL tenant: 404 otherwise.
func (q *request) tenantInterface() (*wire.Interface, error) {
	ifc, ok := q.Txn.InterfaceByVIF(q.PathValue("vif"))
	if !ok || ifc.TenantID != idString(q.tenant) {
		return nil, fault(http.StatusNotFound, "Interface Not Found")
	}
	return ifc, nil
}

// networkInterface finds {vif} owned by the URL tenant in the tenant's
// network {network_id}: 404 Network <id> not found when the tenant has no
// block in it (as the other network routes), 404 Interface Not Found when
// the interface is not the tenant's or holds no address of the network
// (melange-api-spec "Get details of interface" names the network; the
// 2012 code served only the route without it, so there is no behaviour of
// Melange's to follow).
func (q *request) networkInterface() (*wire.Interface, error) {
	net := q.PathValue("network_id")
	blocks := q.Txn.NetworkBlocks(q.tenant, net)
	if len(blocks) == 0 {
		return nil, fault(http.StatusNotFound, "Network %s not found", net)
	}
	ifc, err := q.tenantInterface()
	if err != nil {
		return nil, err
	}
	in := map[uint64]bool{}
	for _, b := range blocks {
		in[b.ID] = true
	}
	for _, ip := range q.Txn.InterfaceAddresses(ifc.VIF) {
		if in[ip.BlockID] {
			return ifc, nil
		}
	}
	return nil, fault(http.StatusNotFound, "Interface Not Found")
}

// readInterface answers one interface, found by find: {vif} of the tenant
// (tenantInterface) or of the network {network_id} (networkInterface).
func readInterface(find func(*request) (*wire.Interface, error)) func(*request) error {
	return func(q *request) error {
		ifc, err := find(q)
		if err != nil {
			return err
		}
		reply(q, http.StatusOK, 0, map[string]any{"interface": interfaceView(q.Txn, ifc, q.Txn.InterfaceAddresses(ifc.VIF))})
		return nil
	}
}

// --- networks ---

// readNetwork: the URL tenant's blocks of the network; none → 404.
func readNetwork(q *request) error {
	net := q.PathValue("network_id")
	blocks := q.Txn.NetworkBlocks(q.tenant, net)
	if len(blocks) == 0 {
		return fault(http.StatusNotFound, "Network %s not found", net)
	}
	res, err := page(q, "ip_blocks", blocks, blockID, blockView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

// allocateInNetwork: body {"network": {addresses, mac_address, tenant_id,
// used_by_device}} → 201 {"ip_addresses": [allocation view...]}. The
// interface {vif} is created when missing, owned by tenant_id (default the
// URL tenant).
func (h *ifaces) allocateInNetwork(q *request) error {
	net := q.PathValue("network_id")
	b, err := decode(q, "network")
	if err != nil {
		return err
	}
	in := wire.Interface{VIF: q.PathValue("vif")}
	if err := b.fields(map[string]*string{"tenant_id": &in.TenantID, "used_by_device": &in.DeviceID, "mac_address": &in.MACAddress}); err != nil {
		return err
	}
	if err := q.forTenant(in.TenantID, "interfaces"); err != nil {
		return err
	}
	if in.TenantID == "" {
		in.TenantID = idString(q.tenant)
	}
	addrs, err := b.strs("addresses", maxAddresses)
	if err != nil {
		return err
	}
	if !h.known(q, net) {
		return fault(http.StatusNotFound, "Network %s not found", net)
	}
	v, index, err := apply(q, fsm.NetworkAllocateType, fsm.NetworkAllocatePayload{Interface: in,
		Network: state.NetworkRef{ID: net, MemberID: q.tenant, Addresses: addrs, DefaultBlock: h.defaultBlock()}, Scope: q.scope()}, 0)
	if err != nil {
		return err
	}
	d := v.(*state.InterfaceDetail)
	reply(q, http.StatusCreated, index, map[string]any{"ip_addresses": allocationViews(q.current(), d.Addresses)})
	return nil
}

// listNetworkAllocations: limit/marker paging like every collection GET
// (melange-facts §13).
func listNetworkAllocations(q *request) error {
	ips, err := q.Txn.NetworkAddresses(q.tenant, q.PathValue("network_id"), q.PathValue("vif"), q.scope())
	if err != nil {
		return err
	}
	res, err := page(q, "ip_addresses", ips, addressID, func(ip *wire.IPAddress) any { return allocationView(q.Txn, ip) })
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

// deallocateInNetwork soft-deallocates the interface's addresses in the
// network. 200, empty body.
func deallocateInNetwork(q *request) error {
	p := fsm.NetworkDeallocatePayload{MemberID: q.tenant, NetworkID: q.PathValue("network_id"), VIF: q.PathValue("vif"), Scope: q.scope()}
	if _, err := q.Txn.NetworkAddresses(p.MemberID, p.NetworkID, p.VIF, p.Scope); err != nil {
		return err
	}
	_, index, err := apply(q, fsm.NetworkDeallocateType, p, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}

// --- instance interfaces ---

func instanceView(r *state.ReadTxn, ds []*state.InterfaceDetail) map[string]any {
	out := make([]any, 0, len(ds))
	for _, d := range ds {
		out = append(out, interfaceView(r, d.Interface, d.Addresses))
	}
	return map[string]any{"instance": map[string]any{"interfaces": out}}
}

// putInstanceInterfaces: body {"instance": {tenant_id, interfaces:
// [{id?, mac_address?, network: {id, tenant_id, addresses}}]}} replaces
// every interface of the device (the old ones are deleted as by DELETE
// /interfaces/{vif}) → 200 {"instance": {"interfaces": [...]}}.
func (h *ifaces) putInstanceInterfaces(q *request) error {
	b, err := decode(q, "instance")
	if err != nil {
		return err
	}
	p := fsm.InstanceInterfacesPayload{DeviceID: q.PathValue("device_id")}
	if p.TenantID, _, err = b.str("tenant_id"); err != nil {
		return err
	}
	if p.TenantID == "" {
		return invalid("tenant_id", "tenant_id should be present")
	}
	var entries []body
	if raw, ok := b["interfaces"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return invalid("interfaces", "interfaces should be a list of objects")
		}
	}
	if len(entries) > maxInstanceInterfaces {
		return tooMany("interfaces", maxInstanceInterfaces)
	}
	addresses := 0
	for _, e := range entries {
		ii := state.InstanceInterface{}
		if err := e.fields(map[string]*string{"id": &ii.VIF, "mac_address": &ii.MACAddress}); err != nil {
			return err
		}
		if ii.VIF == "" {
			ii.VIF = newVIF()
		}
		nb, err := e.obj("network")
		if err != nil {
			return err
		}
		if nb != nil {
			if ii.Network, err = networkRef(nb, p.TenantID); err != nil {
				return err
			}
			ii.Network.DefaultBlock = h.defaultBlock()
			if addresses += len(ii.Network.Addresses); addresses > maxAddresses {
				return invalid("addresses", fmt.Sprintf("addresses should have at most %d entries over all interfaces", maxAddresses))
			}
		}
		p.Interfaces = append(p.Interfaces, ii)
	}
	v, index, err := apply(q, fsm.InstanceInterfacesReplaceType, p, 0)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, index, instanceView(q.current(), v.([]*state.InterfaceDetail)))
	return nil
}

// readInstanceInterfaces: 200 {"instance": {"interfaces": [...]}}, or 404
// Interface Not Found when the device has none (melange-api-spec "Get
// interfaces of an instance").
func readInstanceInterfaces(q *request) error {
	var ds []*state.InterfaceDetail
	for _, ifc := range q.Txn.InterfacesOfDevice(q.PathValue("device_id")) {
		ds = append(ds, &state.InterfaceDetail{Interface: ifc, Addresses: q.Txn.InterfaceAddresses(ifc.VIF)})
	}
	if len(ds) == 0 {
		return fault(http.StatusNotFound, "Interface Not Found")
	}
	reply(q, http.StatusOK, 0, instanceView(q.Txn, ds))
	return nil
}

// deleteInstanceInterfaces deletes the device's interfaces (only its). 200,
// empty body; 404 Interface Not Found when the device has none
// (melange-api-spec "Delete all interfaces of the instance"), as for GET.
func deleteInstanceInterfaces(q *request) error {
	device := q.PathValue("device_id")
	if len(q.Txn.InterfacesOfDevice(device)) == 0 {
		return fault(http.StatusNotFound, "Interface Not Found")
	}
	_, index, err := apply(q, fsm.InstanceInterfacesDeleteType, fsm.InstanceInterfacesPayload{DeviceID: device}, 0)
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}
