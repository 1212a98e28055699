package state

// Melange interfaces (melange-facts §12): virtual NICs named by the
// caller's vif id, their MAC addresses and the addresses allocated on them,
// and Melange networks (the blocks of a tenant sharing a network_id).
//
// Every operation here is one command: an interface is created together
// with its MAC and its first addresses, and deleted together with its MAC,
// the soft deallocation of its addresses and its allowed IPs, inside the
// command's transaction, so a failure leaves nothing half-applied.
//
// MAC engine. The MACs in use (allocated from the ranges or given by the
// caller; Melange keeps them unique) are an ipam.MACSet kept, like the
// block engines, in a memdb row that is derived state: cloned and replaced
// inside the transaction, never serialised, rebuilt from the interface rows
// on restore (which also proves the MACs unique).

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strconv"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/controller/ipam"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// macEngineTable holds the one derived macEngine row; it is not part of
// snapshots.
const macEngineTable = "ipam_mac_engine"

type macEngine struct {
	ID  uint64
	set *ipam.MACSet
}

func interfaceSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		Interfaces: {Name: Interfaces, Indexes: map[string]*memdb.IndexSchema{
			"id":     idIndex(),
			"vif":    {Name: "vif", Unique: true, Indexer: stringFieldIndex("VIF", false)},
			"device": {Name: "device", AllowMissing: true, Indexer: stringFieldIndex("DeviceID", false)},
			// tenant: the interfaces of a Melange tenant (a member, in
			// its canonical spelling): a member deleted under them would
			// strand them.
			"tenant": {Name: "tenant", AllowMissing: true, Indexer: stringFieldIndex("TenantID", false)},
		}},
		IPRoutes: {Name: IPRoutes, Indexes: map[string]*memdb.IndexSchema{
			"id":    idIndex(),
			"block": uintIndex("block", "BlockID"),
		}},
		macEngineTable: {Name: macEngineTable, Indexes: map[string]*memdb.IndexSchema{
			"id": idIndex(),
		}},
	}
}

func (r *ReadTxn) macSet() *ipam.MACSet {
	if e, ok := get[*macEngine](r, macEngineTable, 1); ok {
		return e.set
	}
	return ipam.NewMACSet(ipamSeed)
}

func (t *Txn) putMACSet(s *ipam.MACSet) error {
	return t.txn.Insert(macEngineTable, &macEngine{ID: 1, set: s})
}

// rebuildInterfaces validates the interface rows of a snapshot (MACs
// well-formed and unique, addresses linked to existing interfaces, routes
// of existing blocks) and builds the MAC engine.
func rebuildInterfaces(txn *memdb.Txn) error {
	r := &ReadTxn{txn: memTxn{Txn: txn}}
	set := ipam.NewMACSet(ipamSeed)
	for _, ifc := range all[*api.Interface](r, Interfaces, "id") {
		if ifc.VIF == "" {
			return fmt.Errorf("interface %d: no vif", ifc.ID)
		}
		if ifc.MACAddress == "" {
			continue
		}
		m, err := netx.ParseMAC(ifc.MACAddress)
		if err != nil || m.String() != ifc.MACAddress {
			return fmt.Errorf("interface %d: bad mac address %q", ifc.ID, ifc.MACAddress)
		}
		if err := set.Allocate(m); err != nil {
			return fmt.Errorf("interface %d: %v", ifc.ID, err)
		}
	}
	for _, a := range all[*api.IPAddress](r, IPAddresses, "id") {
		if a.InterfaceID == "" {
			continue
		}
		if _, ok := r.InterfaceByVIF(a.InterfaceID); !ok {
			return fmt.Errorf("address %d: interface %q does not exist", a.ID, a.InterfaceID)
		}
	}
	for _, rt := range all[*api.IPRoute](r, IPRoutes, "id") {
		if _, ok := get[*BlockRecord](r, IPBlocks, rt.BlockID); !ok {
			return fmt.Errorf("route %d: block %d does not exist", rt.ID, rt.BlockID)
		}
	}
	if set.Len() == 0 {
		return nil
	}
	return txn.Insert(macEngineTable, &macEngine{ID: 1, set: set})
}

// --- reads ---

// InterfaceByVIF returns the interface with virtual interface id vif.
func (r *ReadTxn) InterfaceByVIF(vif string) (*api.Interface, bool) {
	if vif == "" {
		return nil, false
	}
	raw, err := r.txn.First(Interfaces, "vif", vif)
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*api.Interface), true
}

// InterfaceList returns every interface ordered by id.
func (r *ReadTxn) InterfaceList() []*api.Interface { return all[*api.Interface](r, Interfaces, "id") }

// exactly keeps the rows of a lookup in a non-unique string index whose
// field (key) is v itself. go-memdb finds v in such an index as a prefix of
// the keys (value, NUL, primary key), so a value with a NUL in it ("vm1",
// NUL, "x") is found under "vm1" too. Before Rules2 Apply kept them all
// (exact false).
func exactly[T any](rows []T, key func(T) string, v string, exact bool) []T {
	if !exact {
		return rows
	}
	out := rows[:0]
	for _, x := range rows {
		if key(x) == v {
			out = append(out, x)
		}
	}
	return out
}

// InterfacesOfDevice returns the interfaces of device ordered by id.
func (r *ReadTxn) InterfacesOfDevice(device string) []*api.Interface {
	return r.interfacesOfDevice(device, true)
}

func (r *ReadTxn) interfacesOfDevice(device string, exact bool) []*api.Interface {
	if device == "" {
		return nil
	}
	out := exactly(all[*api.Interface](r, Interfaces, "device", device), func(i *api.Interface) string { return i.DeviceID }, device, exact)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// InterfaceAddresses returns the addresses allocated on interface vif (soft
// deallocation unlinks them), ordered by id.
func (r *ReadTxn) InterfaceAddresses(vif string) []*api.IPAddress {
	return r.interfaceAddresses(vif, true)
}

func (r *ReadTxn) interfaceAddresses(vif string, exact bool) []*api.IPAddress {
	if vif == "" {
		return nil
	}
	out := exactly(all[*api.IPAddress](r, IPAddresses, "interface", vif), func(a *api.IPAddress) string { return a.InterfaceID }, vif, exact)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// NetworkBlocks returns the Melange blocks of tenant member in network net,
// in Melange's order (created_at, id): id order.
func (r *ReadTxn) NetworkBlocks(member uint64, net string) []*api.IPBlock {
	if net == "" {
		return nil
	}
	var out []*api.IPBlock
	for _, rec := range all[*BlockRecord](r, IPBlocks, "member", member) {
		if rec.Dialect == api.DialectMelange && rec.NetworkID == net {
			out = append(out, &rec.IPBlock)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// IPRoute returns the route with id.
func (r *ReadTxn) IPRoute(id uint64) (*api.IPRoute, bool) { return get[*api.IPRoute](r, IPRoutes, id) }

// IPRouteList returns the routes of block ordered by id.
func (r *ReadTxn) IPRouteList(block uint64) []*api.IPRoute {
	out := all[*api.IPRoute](r, IPRoutes, "block", block)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// --- interfaces ---

// InterfaceDetail is an interface with the addresses a command allocated
// or found on it.
type InterfaceDetail struct {
	Interface *api.Interface   `json:"interface"`
	Addresses []*api.IPAddress `json:"addresses"`
}

// NetworkRef names a network (the blocks of tenant MemberID with network_id
// ID) and, optionally, the addresses wanted in it.
type NetworkRef struct {
	ID        string   `json:"id"`
	MemberID  uint64   `json:"member_id"`
	Addresses []string `json:"addresses,omitempty"`
	// DefaultBlock, when set and the network has no block, is created
	// (for MemberID, in network ID) before allocating: Melange's
	// default_cidr. The proposer fills in the dialect's defaults.
	DefaultBlock *api.IPBlock `json:"default_block,omitempty"`
}

// networkBlocks returns the blocks of net, creating its default block when
// it has none and one is given; 404 Network <id> not found otherwise.
func (t *Txn) networkBlocks(net NetworkRef, method string) ([]*api.IPBlock, error) {
	blocks := t.NetworkBlocks(net.MemberID, net.ID)
	if len(blocks) == 0 && net.DefaultBlock != nil && net.ID != "" {
		b := *net.DefaultBlock
		b.Meta, b.MemberID, b.NetworkID, b.Dialect, b.Type, b.ParentID = api.Meta{}, net.MemberID, net.ID, api.DialectMelange, api.BlockPrivate, 0
		if _, err := t.IPBlockCreate(&b); err != nil {
			return nil, err
		}
		blocks = t.NetworkBlocks(net.MemberID, net.ID)
	}
	if len(blocks) == 0 {
		return nil, networkNotFound(method, net.ID)
	}
	return blocks, nil
}

// tenantMember checks a Melange tenant id that names no URL (an
// interface's owner, an address's used_by_tenant): tenants are members, so
// it must be the id of an existing member, as a block's or a policy's
// tenant must. It returns the id's canonical spelling.
func (r *ReadTxn) tenantMember(tenant string) (string, bool) {
	id, err := strconv.ParseUint(tenant, 10, 64)
	if err != nil {
		return "", false
	}
	if _, ok := r.Member(id); !ok {
		return "", false
	}
	return strconv.FormatUint(id, 10), true
}

func ifcNotFound(method string) error {
	return api.Errorf(http.StatusNotFound, code("ipam", "interface", method, 1), "Interface Not Found")
}

// interfaceCreate stores a new interface. A caller's MAC must be free; with
// none, and at least one MAC range, the lowest free MAC of the first range
// (by id) with room is allocated (melange-facts §9).
func (t *Txn) interfaceCreate(in api.Interface) (*api.Interface, error) {
	c := func(n int) string { return code("ipam", "interface", "create", n) }
	fe := api.FieldErrors{}
	if in.VIF == "" {
		fe.Add("virtual_interface_id", c(101), "virtual_interface_id should be present")
	} else if _, dup := t.InterfaceByVIF(in.VIF); dup {
		fe.Add("virtual_interface_id", c(102), "Virtual Interface %s already exists", in.VIF)
	}
	if in.TenantID == "" {
		fe.Add("tenant_id", c(103), "tenant_id should be present")
	} else if t, ok := t.tenantMember(in.TenantID); !ok {
		fe.Add("tenant_id", c(108), "Member %s does not exist.", in.TenantID)
	} else {
		in.TenantID = t
	}
	var mac netx.MAC
	if in.MACAddress != "" {
		m, err := netx.ParseMAC(in.MACAddress)
		if err != nil {
			fe.Add("mac_address", c(104), "mac_address is invalid")
		}
		mac = m
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	set := t.macSet().Clone()
	if in.MACAddress != "" {
		if err := set.Allocate(mac); err != nil {
			return nil, api.Errorf(http.StatusConflict, c(105), "Mac address %s is already in use", mac)
		}
		in.MACAddress = mac.String()
	} else if ranges := t.MACRangeList(); len(ranges) > 0 {
		rs := make([]netx.MACRange, 0, len(ranges))
		for _, r := range ranges {
			p, err := netx.ParseMACRange(r.CIDR)
			if err != nil {
				return nil, fmt.Errorf("state: MAC range %d: %v", r.ID, err)
			}
			rs = append(rs, p)
		}
		m, _, err := set.AllocateNext(rs, ipam.AnyMAC)
		if err != nil {
			return nil, api.Errorf(http.StatusUnprocessableEntity, c(106), "No more mac Addresses")
		}
		in.MACAddress = m.String()
	}
	ifc := &in
	ifc.Meta = api.Meta{}
	if err := insertNew(t, Interfaces, ifc); err != nil {
		return nil, err
	}
	if in.MACAddress != "" {
		if err := t.putMACSet(set); err != nil {
			return nil, err
		}
	}
	return ifc, nil
}

// ensureInterface returns the interface in.VIF, creating it from in when
// it does not exist. An existing interface keeps its owner, device and MAC.
// With scope set (the request is a tenant's own, not a global caller's) an
// existing interface must be that tenant's: another tenant's is 404, as its
// other objects are, so no tenant can put addresses on, or claim the network
// of, an interface it does not own.
func (t *Txn) ensureInterface(in api.Interface, scope, method string) (*api.Interface, error) {
	if ifc, ok := t.InterfaceByVIF(in.VIF); ok {
		if scope != "" && ifc.TenantID != scope {
			return nil, ifcNotFound(method)
		}
		return ifc, nil
	}
	return t.interfaceCreate(in)
}

// interfaceDelete deletes ifc: its MAC is freed, its addresses are
// soft-deallocated (which unlinks them), its allowed IPs go.
func (t *Txn) interfaceDelete(ifc *api.Interface) error {
	for _, a := range t.interfaceAddresses(ifc.VIF, t.since(Rules2)) {
		if a.Deallocated {
			continue
		}
		if _, err := t.IPAddressRelease(IPRef{ID: a.ID}); err != nil {
			return err
		}
	}
	if ifc.MACAddress != "" {
		m, err := netx.ParseMAC(ifc.MACAddress)
		if err != nil {
			return fmt.Errorf("state: interface %d: %v", ifc.ID, err)
		}
		set := t.macSet().Clone()
		if err := set.Release(m); err != nil {
			return fmt.Errorf("state: interface %d: %v", ifc.ID, err)
		}
		if err := t.putMACSet(set); err != nil {
			return err
		}
	}
	if err := t.dropInterfaceRefs(ifc.ID); err != nil {
		return err
	}
	return remove(t, Interfaces, ifc.ID, "ipam_interface_delete")
}

// InterfaceCreate creates an interface and, when p.Network is given,
// allocates its addresses in that network (melange-facts §12).
func (t *Txn) InterfaceCreate(in api.Interface, net *NetworkRef) (*InterfaceDetail, error) {
	ifc, err := t.interfaceCreate(in)
	if err != nil {
		return nil, err
	}
	d := &InterfaceDetail{Interface: ifc, Addresses: []*api.IPAddress{}}
	if net != nil {
		if d.Addresses, err = t.networkAllocate(ifc, *net, ""); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// InterfaceDelete deletes the interface vif (interfaceDelete).
func (t *Txn) InterfaceDelete(vif string) error {
	ifc, ok := t.InterfaceByVIF(vif)
	if !ok {
		return ifcNotFound("delete")
	}
	return t.interfaceDelete(ifc)
}

// InstanceInterface is one interface of an instance PUT.
type InstanceInterface struct {
	VIF        string      `json:"vif"`
	MACAddress string      `json:"mac_address,omitempty"`
	Network    *NetworkRef `json:"network,omitempty"`
}

// InstanceInterfacesReplace deletes every interface of device (as
// InterfaceDelete does) and creates one per entry, owned by tenant, each
// plugged into its network.
func (t *Txn) InstanceInterfacesReplace(device, tenant string, ifcs []InstanceInterface) ([]*InterfaceDetail, error) {
	if device == "" {
		return nil, fieldErr("device_id", code("ipam", "interface", "create", 107), "device_id should be present")
	}
	if _, ok := t.tenantMember(tenant); !ok {
		return nil, fieldErr("tenant_id", code("ipam", "interface", "create", 108), "Member %s does not exist.", tenant)
	}
	if err := t.InstanceInterfacesDelete(device); err != nil {
		return nil, err
	}
	out := []*InterfaceDetail{}
	for _, e := range ifcs {
		d, err := t.InterfaceCreate(api.Interface{VIF: e.VIF, TenantID: tenant, DeviceID: device, MACAddress: e.MACAddress}, e.Network)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// InstanceInterfacesDelete deletes every interface of device.
func (t *Txn) InstanceInterfacesDelete(device string) error {
	for _, ifc := range t.interfacesOfDevice(device, t.since(Rules2)) {
		if err := t.interfaceDelete(ifc); err != nil {
			return err
		}
	}
	return nil
}

// --- addresses on interfaces ---

// pluggedNetwork is the network of the blocks of the addresses allocated on
// vif ("" when none has a network).
func (t *Txn) pluggedNetwork(vif string) string {
	for _, a := range t.interfaceAddresses(vif, t.since(Rules2)) {
		if b, ok := t.IPBlock(a.BlockID); ok && b.NetworkID != "" && !a.Deallocated {
			return b.NetworkID
		}
	}
	return ""
}

// allocateOn allocates addr (or the next free address) of block on ifc:
// the address is used by the interface's tenant and device, and an IPv6
// generator gets the interface's MAC (or mac when the interface has none).
func (t *Txn) allocateOn(ifc *api.Interface, block uint64, addr, mac string) (*api.IPAddress, error) {
	c := func(n int) string { return code("ipam", "ip_address", "create", n) }
	b, ok := t.IPBlock(block)
	if !ok {
		return nil, api.NotFound(c(1))
	}
	if p := t.pluggedNetwork(ifc.VIF); b.NetworkID != "" && p != "" && p != b.NetworkID {
		return nil, api.Errorf(http.StatusUnprocessableEntity, c(110), "Interface %s is configured on another network", ifc.VIF)
	}
	if ifc.MACAddress != "" {
		mac = ifc.MACAddress
	}
	return t.IPAddressCreate(&api.IPAddress{BlockID: block, Address: addr, InterfaceID: ifc.VIF,
		UsedByTenant: ifc.TenantID, UsedByDevice: ifc.DeviceID, MACAddress: mac})
}

// IPAddressAllocateOnInterface allocates addr (or the next free address)
// of block on the interface in.VIF, creating the interface from in when it
// does not exist (melange-facts §12: owner in.TenantID, device
// in.DeviceID, MAC in.MACAddress or one from the ranges). An existing
// interface keeps its MAC; in.MACAddress then only feeds an IPv6 generator
// when the interface has no MAC.
func (t *Txn) IPAddressAllocateOnInterface(in api.Interface, block uint64, addr, scope string) (*api.IPAddress, error) {
	if _, ok := t.IPBlock(block); !ok {
		return nil, api.NotFound("ipam_ip_address_create_001")
	}
	ifc, err := t.ensureInterface(in, scope, "allocate")
	if err != nil {
		return nil, err
	}
	return t.allocateOn(ifc, block, addr, in.MACAddress)
}

// --- networks ---

func networkNotFound(method, net string) error {
	return api.Errorf(http.StatusNotFound, code("ipam", "network", method, 1), "Network %s not found", net)
}

// NetworkAllocate allocates addresses of network net on the interface
// in.VIF, creating the interface from in when it does not exist.
func (t *Txn) NetworkAllocate(in api.Interface, net NetworkRef, scope string) (*InterfaceDetail, error) {
	if _, err := t.networkBlocks(net, "allocate"); err != nil {
		return nil, err
	}
	ifc, err := t.ensureInterface(in, scope, "allocate")
	if err != nil {
		return nil, err
	}
	addrs, err := t.networkAllocate(ifc, net, in.MACAddress)
	if err != nil {
		return nil, err
	}
	return &InterfaceDetail{Interface: ifc, Addresses: addrs}, nil
}

// networkAllocate: with net.Addresses, each address in the first block of
// the network that contains it (duplicates skipped); otherwise one address
// per family, from the first block of the family (in network order) that
// is not full (melange-facts §4). Blocks with subnets are passed over.
func (t *Txn) networkAllocate(ifc *api.Interface, net NetworkRef, mac string) ([]*api.IPAddress, error) {
	c := func(n int) string { return code("ipam", "network", "allocate", n) }
	blocks, err := t.networkBlocks(net, "allocate")
	if err != nil {
		return nil, err
	}
	var leaves []*api.IPBlock
	for _, b := range blocks {
		if len(t.IPBlockChildren(b.ID)) == 0 {
			leaves = append(leaves, b)
		}
	}
	out := []*api.IPAddress{}
	if len(net.Addresses) > 0 {
		seen := map[netip.Addr]bool{}
		for _, s := range net.Addresses {
			ip, err := netx.ParseAddr(s)
			if err != nil {
				return nil, fieldErr("addresses", c(101), "address %s is invalid", s)
			}
			if seen[ip] {
				continue
			}
			seen[ip] = true
			var in *api.IPBlock
			for _, b := range leaves {
				if netip.MustParsePrefix(b.CIDR).Contains(ip) {
					in = b
					break
				}
			}
			if in == nil {
				return nil, api.Errorf(http.StatusUnprocessableEntity, c(102), "Address %s does not belong to network %s", s, net.ID)
			}
			a, err := t.allocateOn(ifc, in.ID, ip.String(), mac)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	}
	for _, v6 := range []bool{false, true} {
		for _, b := range leaves {
			if netip.MustParsePrefix(b.CIDR).Addr().Is6() != v6 {
				continue
			}
			a, err := t.allocateOn(ifc, b.ID, "", mac)
			if err != nil {
				var e *api.Error
				if errors.As(err, &e) && e.ErrorCode == code("ipam", "ip_address", "create", 104) { // full
					continue
				}
				return nil, err
			}
			out = append(out, a)
			break
		}
	}
	if len(out) == 0 {
		return nil, api.Errorf(http.StatusUnprocessableEntity, c(103), "ip blocks in this network are full")
	}
	return out, nil
}

// NetworkAddresses returns the addresses of interface vif in network net
// of tenant member; 404 for an unknown network or interface, and, with
// scope set (a tenant's own request), for another tenant's interface.
func (r *ReadTxn) NetworkAddresses(member uint64, net, vif, scope string) ([]*api.IPAddress, error) {
	return r.networkAddresses(member, net, vif, scope, true)
}

func (r *ReadTxn) networkAddresses(member uint64, net, vif, scope string, exact bool) ([]*api.IPAddress, error) {
	blocks := r.NetworkBlocks(member, net)
	if len(blocks) == 0 {
		return nil, networkNotFound("read", net)
	}
	if ifc, ok := r.InterfaceByVIF(vif); !ok || (scope != "" && ifc.TenantID != scope) {
		return nil, ifcNotFound("read")
	}
	in := map[uint64]bool{}
	for _, b := range blocks {
		in[b.ID] = true
	}
	out := []*api.IPAddress{}
	for _, a := range r.interfaceAddresses(vif, exact) {
		if in[a.BlockID] && !a.Deallocated {
			out = append(out, a)
		}
	}
	return out, nil
}

// NetworkDeallocate soft-deallocates the addresses of interface vif in
// network net of tenant member.
func (t *Txn) NetworkDeallocate(member uint64, net, vif, scope string) error {
	addrs, err := t.networkAddresses(member, net, vif, scope, t.since(Rules2))
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if _, err := t.IPAddressRelease(IPRef{ID: a.ID}); err != nil {
			return err
		}
	}
	return nil
}
