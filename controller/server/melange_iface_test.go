package server_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"fmt"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	"sync"
)

// --- objects of the auth matrix rows of interfaces, networks and routes ---

// melangeIfaceFixture: block N (10.224.0.0/20, network net-M) of tenant A,
// interface I (vif-I, device dev-I, owned by tenant A) with an address in
// net-M, and route R of block M.
type melangeIfaceFixture struct {
	blockN uint64
	routeR uint64
	// addrJ: an address of net-M on interface vif-J (tenant A), allowed on
	// interface I.
	addrJ string
}

var (
	melangeIfaceMu  sync.Mutex
	melangeIfaceFix = map[*fixture]*melangeIfaceFixture{}
)

const (
	melangeNet      = "net-M"
	melangeVIF      = "vif-I"
	melangeDevice   = "dev-I"
	melangeIfaces   = "/v0.1/ipam/interfaces"
	melangeAllocAll = "/v0.1/ipam/allocated_ip_addresses"
)

func melangeIfaceOf(f *fixture) *melangeIfaceFixture {
	melangeIfaceMu.Lock()
	defer melangeIfaceMu.Unlock()
	if x, ok := melangeIfaceFix[f]; ok {
		return x
	}
	m := melangeOf(f)
	x := &melangeIfaceFixture{}
	a := f.r.MemberA
	x.blockN = melangeID(melangeCreate(f.c, f.root, melangeBlocks(a), "ip_block", map[string]any{"ip_block": map[string]any{"cidr": "10.224.0.0/20", "type": "private", "network_id": melangeNet}}))
	melangeCreate(f.c, f.root, melangeIfaces, "interface", map[string]any{"interface": map[string]any{"id": melangeVIF,
		"tenant_id": fmt.Sprint(a), "device_id": melangeDevice, "network": map[string]any{"id": melangeNet, "tenant_id": fmt.Sprint(a)}}})
	x.routeR = melangeID(melangeCreate(f.c, f.root, melangeBlock(a, m.blockM)+"/ip_routes", "ip_route", map[string]any{"ip_route": map[string]any{"destination": "192.168.0.0", "netmask": "255.255.255.0", "gateway": "10.220.0.1"}}))
	j := f.c.Do("POST", melangeAllocations(a, melangeNet, "vif-J"), nil, f.root).Expect(201).Map()["ip_addresses"].([]any)
	x.addrJ = j[0].(map[string]any)["address"].(string)
	f.c.Do("POST", melangeAllowed(a, melangeVIF), map[string]any{"allowed_ip": map[string]any{"network_id": melangeNet, "ip_address": x.addrJ}}, f.root).Expect(201)
	melangeIfaceFix[f] = x
	return x
}

func newMelangeInterfaceBody(f *fixture) request {
	return request{path: melangeIfaces, body: map[string]any{"interface": map[string]any{"id": f.n.Unique("vif"), "tenant_id": fmt.Sprint(f.r.MemberA), "device_id": "dev"}}}
}

func newMelangeInterface(f *fixture) request {
	b := newMelangeInterfaceBody(f)
	return request{path: melangeIfaces + "/" + melangeCreate(f.c, f.root, b.path, "interface", b.body)["id"].(string)}
}

func melangeInterfaceI(f *fixture) request {
	melangeIfaceOf(f)
	return request{path: fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/%s", f.r.MemberA, melangeVIF)}
}

func melangeNetwork(tenant uint64, net string) string {
	return fmt.Sprintf("/v0.1/ipam/tenants/%d/networks/%s", tenant, net)
}

func melangeNetworkM(f *fixture) request {
	melangeIfaceOf(f)
	return request{path: melangeNetwork(f.r.MemberA, melangeNet)}
}

func melangeAllocations(tenant uint64, net, vif string) string {
	return melangeNetwork(tenant, net) + "/interfaces/" + vif + "/ip_allocations"
}

func melangeAllocationsI(f *fixture) request {
	melangeIfaceOf(f)
	return request{path: melangeAllocations(f.r.MemberA, melangeNet, melangeVIF)}
}

func newMelangeAllocationBody(f *fixture) request {
	melangeIfaceOf(f)
	return request{path: melangeAllocations(f.r.MemberA, melangeNet, f.n.Unique("vif")), body: map[string]any{"network": map[string]any{"used_by_device": "dev"}}}
}

func newMelangeAllocation(f *fixture) request {
	b := newMelangeAllocationBody(f)
	f.c.Do("POST", b.path, b.body, f.root).Expect(201)
	return request{path: b.path}
}

func melangeInstance(device string) string { return "/v0.1/ipam/instances/" + device + "/interfaces" }

func melangeInstanceI(f *fixture) request {
	melangeIfaceOf(f)
	return request{path: melangeInstance(melangeDevice)}
}

func newMelangeInstanceBody(f *fixture) request {
	melangeIfaceOf(f)
	a := fmt.Sprint(f.r.MemberA)
	return request{path: melangeInstance(f.n.Unique("dev")), body: map[string]any{"instance": map[string]any{"tenant_id": a,
		"interfaces": []any{map[string]any{"network": map[string]any{"id": melangeNet, "tenant_id": a}}}}}}
}

func newMelangeInstance(f *fixture) request {
	b := newMelangeInstanceBody(f)
	f.c.Do("PUT", b.path, b.body, f.root).Expect(200)
	return request{path: b.path}
}

func melangeAllocatedA(f *fixture) request {
	return request{path: fmt.Sprintf("/v0.1/ipam/tenants/%d/allocated_ip_addresses", f.r.MemberA)}
}

func melangeRoutesM(f *fixture) request {
	return request{path: melangeBlock(f.r.MemberA, melangeOf(f).blockM) + "/ip_routes"}
}

func newMelangeRouteBody(f *fixture) request {
	r := melangeRoutesM(f)
	r.body = map[string]any{"ip_route": map[string]any{"destination": "192.168.1.0", "netmask": "255.255.255.0", "gateway": "10.220.0.1"}}
	return r
}

func melangeRouteR(f *fixture) request {
	return request{path: fmt.Sprintf("%s/%d", melangeRoutesM(f).path, melangeIfaceOf(f).routeR)}
}

func putMelangeRouteR(f *fixture) request {
	r := melangeRouteR(f)
	r.body = map[string]any{"ip_route": map[string]any{"gateway": "10.220.0.254"}}
	return r
}

func newMelangeRoute(f *fixture) request {
	b := newMelangeRouteBody(f)
	return request{path: fmt.Sprintf("%s/%d", b.path, melangeID(melangeCreate(f.c, f.root, b.path, "ip_route", b.body)))}
}

// --- API tests of interfaces, networks, instance interfaces, allocated
// addresses and routes, named after the checklist of melange-facts §16 ---

func (e *melangeEnv) macRange(t *testing.T, cidr string) {
	t.Helper()
	melangeCreate(e.c.For(t), e.root, melangeMACRanges, "mac_address_range", map[string]any{"mac_address_range": map[string]any{"cidr": cidr}})
}

func (e *melangeEnv) iface(t *testing.T, tenant uint64, vif string) map[string]any {
	t.Helper()
	return obj(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/%s", tenant, vif), nil, e.root).Expect(200), "interface")
}

func ifaceAddrs(m map[string]any) []map[string]any {
	raw, _ := m["ip_addresses"].([]any)
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i], _ = v.(map[string]any)
	}
	return out
}

// Checklist 19, 20 and 21: POST ip_address with interface_id creates the
// interface with that vif id, owned by body tenant_id (default the block's
// tenant), with used_by_device as its device_id; an unknown interface on
// an address without one is never created by a plain allocation.
func TestMelange_AllocateCreatesInterface(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.50.0.0/24"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	ip := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-19", "used_by_device": "dev-21"}}, e.tok(apitest.MemberUser)).Expect(201), "ip_address")
	if ip["interface_id"] != "vif-19" || ip["used_by_tenant"] != a || ip["used_by_device"] != "dev-21" {
		t.Errorf("address %v", ip)
	}
	ifc := e.iface(t, e.r.MemberA, "vif-19")
	if ifc["id"] != "vif-19" || ifc["tenant_id"] != a || ifc["device_id"] != "dev-21" || ifc["mac_address"] != nil {
		t.Errorf("interface %v", ifc)
	}
	if got := ifaceAddrs(ifc); len(got) != 1 || got[0]["address"] != ip["address"] {
		t.Errorf("interface addresses %v", got)
	}
	// Body tenant_id owns the new interface: tenant A no longer sees it.
	e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-20", "tenant_id": fmt.Sprint(e.r.MemberB)}}, e.root).Expect(201)
	e.iface(t, e.r.MemberB, "vif-20")
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/vif-20", e.r.MemberA), nil, e.root), 404, "NotFound", "Interface Not Found")
}

// Checklist 24 and 25: with a MAC range, the new interface gets the range's
// first MAC; an existing interface keeps its MAC and no second interface
// or MAC is created; the next new interface gets the next MAC.
func TestMelange_AllocateWithMACRange(t *testing.T) {
	e := newMelangeEnv(t)
	e.macRange(t, "BC:76:4E:20:00:00/47")
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.51.0.0/24"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	for range 2 {
		e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-24"}}, e.root).Expect(201)
	}
	ifc := e.iface(t, e.r.MemberA, "vif-24")
	if ifc["mac_address"] != "bc:76:4e:20:00:00" || len(ifaceAddrs(ifc)) != 2 {
		t.Errorf("interface %v", ifc)
	}
	e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-25"}}, e.root).Expect(201)
	if m := e.iface(t, e.r.MemberA, "vif-25")["mac_address"]; m != "bc:76:4e:20:00:01" {
		t.Errorf("second interface MAC %v", m)
	}
	// The /47 is used up: a third interface cannot get a MAC (checklist 79),
	// and nothing of the failed request remains.
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-26"}}, e.root), 422, "UnprocessableEntity", "No more mac Addresses")
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/vif-26", e.r.MemberA), nil, e.root), 404, "NotFound", "Interface Not Found")
	if l := items(t, e.c.Do("GET", base, nil, e.root).Expect(200), "ip_addresses"); len(l) != 3 {
		t.Errorf("a failed allocation left an address: %v", l)
	}
	// A freed MAC is reused (checklist 79).
	e.c.Do("DELETE", melangeIfaces+"/vif-24", nil, e.root).Expect(200)
	e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-27"}}, e.root).Expect(201)
	if m := e.iface(t, e.r.MemberA, "vif-27")["mac_address"]; m != "bc:76:4e:20:00:00" {
		t.Errorf("reused MAC %v", m)
	}
}

// Checklist 22, 23 and 25 on an interface: an IPv6 block uses the
// interface's MAC (from the ranges) and its tenant for the generator.
func TestMelange_AllocateIPv6UsesInterfaceMAC(t *testing.T) {
	e := newMelangeEnv(t)
	e.macRange(t, "00:ff:12:89:67:34/48")
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "fe::/64"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	lessee := fmt.Sprint(e.r.MemberB)
	ip := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-6", "tenant_id": lessee}}, e.root).Expect(201), "ip_address")
	if want := tenantV6("fe::/64", lessee, 0x00ff12896734); ip["address"] != want {
		t.Errorf("IPv6 address %v, want %s", ip, want)
	}
	// The range is used up; a new interface has no MAC, so its IPv6
	// allocation needs one from the body.
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-7", "tenant_id": lessee}}, e.root), 422, "UnprocessableEntity", "No more mac Addresses")
}

// Checklist 30 and §3 rule 18 for interfaces: a duplicate vif is 400 and
// the interface of another tenant cannot be read.
func TestMelange_CreateInterfaceErrors(t *testing.T) {
	e := newMelangeEnv(t)
	body := map[string]any{"interface": map[string]any{"id": "vif-x", "tenant_id": fmt.Sprint(e.r.MemberA)}}
	e.c.Do("POST", melangeIfaces, body, e.root).Expect(201)
	wantFault(t, e.c.Do("POST", melangeIfaces, body, e.root), 400, "BadRequest", "Virtual Interface vif-x already exists")
	wantFault(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-y"}}, e.root), 400, "BadRequest", "tenant_id should be present")
	wantFault(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"tenant_id": "1"}}, e.root), 400, "BadRequest", "virtual_interface_id should be present")
	wantFault(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-z", "tenant_id": "1", "mac_address": "zz"}}, e.root), 400, "BadRequest", "mac_address is invalid")
	e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-m", "tenant_id": "1", "mac_address": "02-00-00-00-00-01"}}, e.root).Expect(201)
	wantFault(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-n", "tenant_id": "1", "mac_address": "02:00:00:00:00:01"}}, e.root), 409, "Conflict", "already in use")
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/vif-x", e.r.MemberB), nil, e.root), 404, "NotFound", "Interface Not Found")
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/nope", e.r.MemberA), nil, e.root), 404, "NotFound", "Interface Not Found")
	wantFault(t, e.c.Do("DELETE", melangeIfaces+"/nope", nil, e.root), 404, "NotFound", "Interface Not Found")
}

// Checklist 58 and 60: POST /ipam/interfaces → 201 echo of tenant and
// device; with MAC ranges the MAC is allocated and shown in UNIX form.
func TestMelange_CreateInterface(t *testing.T) {
	e := newMelangeEnv(t)
	tnt := fmt.Sprint(e.r.MemberB)
	r := obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-58", "tenant_id": tnt, "device_id": "dev"}}, e.root).Expect(201), "interface")
	if r["id"] != "vif-58" || r["tenant_id"] != tnt || r["device_id"] != "dev" || r["mac_address"] != nil || len(ifaceAddrs(r)) != 0 {
		t.Errorf("interface %v", r)
	}
	e.macRange(t, "AD:BC:CE:0:0:0/24")
	r = obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-60", "tenant_id": tnt}}, e.root).Expect(201), "interface")
	if r["mac_address"] != "ad:bc:ce:00:00:00" {
		t.Errorf("MAC %v", r["mac_address"])
	}
	// A caller's MAC bypasses the ranges.
	r = obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-61", "tenant_id": tnt, "mac_address": "10-23-56-78-90-01"}}, e.root).Expect(201), "interface")
	if r["mac_address"] != "10:23:56:78:90:01" {
		t.Errorf("given MAC %v", r["mac_address"])
	}
}

// Checklist 59, 61 and 62: with network, addresses are allocated in the
// network (given ones, or the next free), used by the interface's tenant;
// the IPv6 block of the network gets the interface MAC and tenant.
func TestMelange_CreateInterfaceWithNetwork(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.59.0.0/24", "network_id": "net59"})
	e.macRange(t, "00:ff:12:89:67:00/40") // vif-59 gets :00, vif-61 :01
	e.block(t, e.r.MemberA, map[string]any{"cidr": "fe::/64", "network_id": "net59"})
	lessee := fmt.Sprint(e.r.MemberB)
	r := obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-59", "tenant_id": lessee, "device_id": "d",
		"network": map[string]any{"id": "net59", "tenant_id": a, "addresses": []string{"10.59.0.9"}}}}, e.root).Expect(201), "interface")
	got := ifaceAddrs(r)
	if len(got) != 1 || got[0]["address"] != "10.59.0.9" || got[0]["interface_id"] != "vif-59" {
		t.Errorf("addresses %v", got)
	}
	blk, _ := got[0]["ip_block"].(map[string]any)
	if blk["cidr"] != "10.59.0.0/24" || blk["network_id"] != "net59" {
		t.Errorf("block view %v", blk)
	}
	r = obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-61", "tenant_id": lessee,
		"network": map[string]any{"id": "net59", "tenant_id": a}}}, e.root).Expect(201), "interface")
	got = ifaceAddrs(r)
	if len(got) != 2 || got[0]["address"] != "10.59.0.0" || got[1]["address"] != tenantV6("fe::/64", lessee, 0x00ff12896701) {
		t.Errorf("v4 + v6 addresses %v", got)
	}
	// used_by_tenant is the interface's tenant.
	l := items(t, e.c.Do("GET", "/v0.1/ipam/tenants/"+lessee+"/allocated_ip_addresses", nil, e.root).Expect(200), "ip_addresses")
	if len(l) != 3 {
		t.Errorf("addresses used by tenant %s: %v", lessee, l)
	}
	// An unknown network (no default_cidr is configured) is 404 and
	// nothing is created.
	wantFault(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-63", "tenant_id": lessee,
		"network": map[string]any{"id": "nope", "tenant_id": a}}}, e.root), 404, "NotFound", "Network nope not found")
	e.c.Do("DELETE", melangeIfaces+"/vif-63", nil, e.root).Expect(404)
}

// Checklist 64 and 65: GET shows vif, UNIX MAC and the allocation views;
// DELETE → 200, the MAC is freed and the addresses soft-deallocated.
func TestMelange_GetAndDeleteInterface(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.64.0.0/24", "network_id": "net64"})
	base := melangeBlock(e.r.MemberA, melangeID(b))
	e.c.Do("POST", base+"/ip_routes", map[string]any{"ip_route": map[string]any{"destination": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "10.64.0.1"}}, e.root).Expect(201)
	e.macRange(t, "02:00:00:00:00:00/46")
	e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-64", "tenant_id": a, "device_id": "dev",
		"network": map[string]any{"id": "net64", "tenant_id": a}}}, e.root).Expect(201)
	ifc := obj(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/interfaces/vif-64", a), nil, e.tok(apitest.MemberUser)).Expect(200), "interface")
	got := ifaceAddrs(ifc)
	if ifc["id"] != "vif-64" || ifc["mac_address"] != "02:00:00:00:00:00" || len(got) != 1 {
		t.Fatalf("interface %v", ifc)
	}
	blk, _ := got[0]["ip_block"].(map[string]any)
	routes, _ := blk["ip_routes"].([]any)
	if blk["gateway"] != "10.64.0.1" || blk["netmask"] != "255.255.255.0" || len(routes) != 1 || routes[0].(map[string]any)["destination"] != "10.0.0.0" {
		t.Errorf("allocation view %v", got[0])
	}
	wantFault(t, e.c.Do("DELETE", melangeIfaces+"/vif-64", nil, e.tok(apitest.MemberAdmin)), 403, "Forbidden", "")
	if r := e.c.Do("DELETE", melangeIfaces+"/vif-64", nil, e.root).Expect(200); len(r.Body) != 0 {
		t.Errorf("delete body %q", r.Body)
	}
	ip := obj(t, e.c.Do("GET", base+"/ip_addresses/10.64.0.0", nil, e.root).Expect(200), "ip_address")
	if ip["interface_id"] != nil {
		t.Errorf("the address keeps its interface: %v", ip)
	}
	if l := items(t, e.c.Do("GET", melangeAllocAll, nil, e.root).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("a deleted interface's address is still allocated: %v", l)
	}
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/interfaces/vif-64", a), nil, e.root), 404, "NotFound", "Interface Not Found")
	r := obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-65", "tenant_id": a}}, e.root).Expect(201), "interface")
	if r["mac_address"] != "02:00:00:00:00:00" {
		t.Errorf("the freed MAC is not reused: %v", r["mac_address"])
	}
}

// Checklist 66: an interface of tenant T allocated in a network of another
// tenant keeps its owner; its addresses are used by T; it is plugged into
// that network and cannot take addresses of another one (422).
func TestMelange_InterfaceInAnotherTenantsNetwork(t *testing.T) {
	e := newMelangeEnv(t)
	a, bt := fmt.Sprint(e.r.MemberA), fmt.Sprint(e.r.MemberB)
	e.block(t, e.r.MemberB, map[string]any{"cidr": "10.66.0.0/24", "network_id": "pub"})
	other := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.67.0.0/24", "network_id": "priv"})
	e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-66", "tenant_id": a, "device_id": "vm"}}, e.root).Expect(201)
	l := items(t, e.c.Do("POST", melangeAllocations(e.r.MemberB, "pub", "vif-66"), map[string]any{"network": map[string]any{}}, e.root).Expect(201), "ip_addresses")
	if len(l) != 1 || l[0]["address"] != "10.66.0.0" {
		t.Fatalf("allocations %v", l)
	}
	ifc := e.iface(t, e.r.MemberA, "vif-66")
	if ifc["tenant_id"] != a || len(ifaceAddrs(ifc)) != 1 {
		t.Errorf("interface %v", ifc)
	}
	used := items(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/allocated_ip_addresses", a), nil, e.root).Expect(200), "ip_addresses")
	if len(used) != 1 || used[0]["used_by_tenant"] != a || used[0]["used_by_device"] != "vm" {
		t.Errorf("used by tenant A: %v", used)
	}
	if l := items(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/allocated_ip_addresses", bt), nil, e.root).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("used by tenant B: %v", l)
	}
	wantFault(t, e.c.Do("POST", melangeBlock(e.r.MemberA, melangeID(other))+"/ip_addresses", map[string]any{"ip_address": map[string]any{"interface_id": "vif-66"}}, e.root),
		422, "UnprocessableEntity", "Interface vif-66 is configured on another network")
}

// TestMelange_TenantCannotUseAnotherTenantsInterface: Melange let any
// tenant put an address of its own block on another tenant's interface,
// and claim that interface for its network (after which the owner's own
// network allocation was refused). Here another tenant's interface is 404
// to a tenant's token, as its other objects are, and nothing changes; the
// owner allocates as before, and a global caller still acts for anyone.
func TestMelange_TenantCannotUseAnotherTenantsInterface(t *testing.T) {
	e := newMelangeEnv(t)
	a, bt := e.r.MemberA, e.r.MemberB
	blockA := e.block(t, a, map[string]any{"cidr": "10.81.0.0/24", "network_id": "na"})
	e.block(t, bt, map[string]any{"cidr": "10.82.0.0/24", "network_id": "nb"})
	e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-b", "tenant_id": fmt.Sprint(bt), "device_id": "vm-b"}}, e.root).Expect(201)
	userA, adminB := e.tok(apitest.MemberUser), e.tok(apitest.OtherMember)
	for _, r := range []*apitest.Response{
		e.c.Do("POST", melangeBlock(a, melangeID(blockA))+"/ip_addresses", map[string]any{"ip_address": map[string]any{"interface_id": "vif-b"}}, userA),
		e.c.Do("POST", melangeAllocations(a, "na", "vif-b"), map[string]any{"network": map[string]any{}}, userA),
		e.c.Do("GET", melangeAllocations(a, "na", "vif-b"), nil, userA),
		e.c.Do("DELETE", melangeAllocations(a, "na", "vif-b"), nil, userA),
	} {
		wantFault(t, r, 404, "NotFound", "Interface Not Found")
	}
	if ifc := e.iface(t, bt, "vif-b"); len(ifaceAddrs(ifc)) != 0 {
		t.Fatalf("tenant B's interface after tenant A's attempts: %v", ifc)
	}
	l := items(t, e.c.Do("POST", melangeAllocations(bt, "nb", "vif-b"), map[string]any{"network": map[string]any{}}, adminB).Expect(201), "ip_addresses")
	if len(l) != 1 || l[0]["address"] != "10.82.0.0" {
		t.Fatalf("tenant B's own allocation: %v", l)
	}
	// A tenant's own interface, made by its first allocation, is its own.
	e.c.Do("POST", melangeAllocations(a, "na", "vif-a"), map[string]any{"network": map[string]any{}}, userA).Expect(201)
	e.c.Do("GET", melangeAllocations(a, "na", "vif-a"), nil, userA).Expect(200)
}

// TestMelange_TenantCannotCreateForAnotherTenant: a tenant's own token
// that names another member as tenant_id (the owner of a new interface,
// the lessee of an address) is 403, as for a subnet, and nothing changes:
// the other member could neither find such an interface in its networks
// nor remove it, and could not be deleted while it held it. Its own
// tenant_id is accepted, and a global caller still acts for anyone.
func TestMelange_TenantCannotCreateForAnotherTenant(t *testing.T) {
	e := newMelangeEnv(t)
	a, bt := e.r.MemberA, e.r.MemberB
	block := e.block(t, a, map[string]any{"cidr": "10.83.0.0/24", "network_id": "nc"})
	addrs := melangeBlock(a, melangeID(block)) + "/ip_addresses"
	userA, other := e.tok(apitest.MemberUser), fmt.Sprint(bt)
	for _, r := range []*apitest.Response{
		e.c.Do("POST", addrs, map[string]any{"ip_address": map[string]any{"tenant_id": other}}, userA),
		e.c.Do("POST", addrs, map[string]any{"ip_address": map[string]any{"interface_id": "vif-c1", "tenant_id": other}}, userA),
		e.c.Do("POST", melangeNetwork(a, "nc")+"/interfaces", map[string]any{"interface": map[string]any{"id": "vif-c2", "tenant_id": other}}, userA),
		e.c.Do("POST", melangeAllocations(a, "nc", "vif-c3"), map[string]any{"network": map[string]any{"tenant_id": other}}, userA),
	} {
		wantFault(t, r, 403, "Forbidden", fmt.Sprintf("User with tenant id %d cannot create", a))
	}
	if l := items(t, e.c.Do("GET", addrs, nil, e.root).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("addresses after the refused requests: %v", l)
	}
	for _, vif := range []string{"vif-c1", "vif-c2", "vif-c3"} {
		wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/%s", bt, vif), nil, e.root), 404, "NotFound", "Interface Not Found")
	}
	own := obj(t, e.c.Do("POST", addrs, map[string]any{"ip_address": map[string]any{"interface_id": "vif-c4", "tenant_id": fmt.Sprint(a)}}, userA).Expect(201), "ip_address")
	if own["used_by_tenant"] != fmt.Sprint(a) {
		t.Errorf("address with the token's own tenant_id: %v", own)
	}
	e.c.Do("POST", melangeAllocations(a, "nc", "vif-c5"), map[string]any{"network": map[string]any{"tenant_id": other}}, e.root).Expect(201)
	if ifc := e.iface(t, bt, "vif-c5"); ifc["tenant_id"] != other {
		t.Errorf("a global caller's interface for tenant B: %v", ifc)
	}
}

// Checklist 49: GET network → the tenant's blocks of that network; none →
// 404 Network <id> not found.
func TestMelange_GetNetwork(t *testing.T) {
	e := newMelangeEnv(t)
	b1 := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.49.0.0/24", "network_id": "1"})
	b2 := e.block(t, e.r.MemberA, map[string]any{"cidr": "fe49::/64", "network_id": "1"})
	e.block(t, e.r.MemberB, map[string]any{"cidr": "10.49.1.0/24", "network_id": "1"})
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.49.2.0/24", "network_id": "2"})
	l := items(t, e.c.Do("GET", melangeNetwork(e.r.MemberA, "1"), nil, e.tok(apitest.MemberUser)).Expect(200), "ip_blocks")
	if got := strs(l, "id"); !slices.Equal(got, []string{b1["id"].(string), b2["id"].(string)}) {
		t.Errorf("network blocks %v", got)
	}
	wantFault(t, e.c.Do("GET", melangeNetwork(e.r.MemberA, "9"), nil, e.root), 404, "NotFound", "Network 9 not found")
	wantFault(t, e.c.Do("GET", melangeNetwork(e.r.MemberA, "1"), nil, e.tok(apitest.OtherMember)), 403, "Forbidden", "cannot access this resource")
}

// Checklist 50, 52, 53, 54 and 57: POST ip_allocations → 201 with one v4
// and one v6 address and their blocks; the interface is created with the
// vif id, owned by the URL tenant unless body tenant_id, with
// used_by_device; a MAC from the ranges feeds the v6 generator with the
// tenant; GET lists both addresses.
func TestMelange_NetworkAllocate(t *testing.T) {
	e := newMelangeEnv(t)
	e.macRange(t, "AD:BC:CE:0:0:0/24")
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.50.0.0/30", "network_id": "n50", "gateway": "10.50.0.3"})
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.50.1.0/24", "network_id": "n50"})
	e.block(t, e.r.MemberA, map[string]any{"cidr": "fe::/64", "network_id": "n50"})
	path := melangeAllocations(e.r.MemberA, "n50", "vif-50")
	lessee := fmt.Sprint(e.r.MemberB)
	// Another tenant as the owner: a global caller's (Melange's nova); a
	// tenant's own token is 403 (TestMelange_TenantCannotCreateForAnotherTenant).
	l := items(t, e.c.Do("POST", path, map[string]any{"network": map[string]any{"tenant_id": lessee, "used_by_device": "vm-52"}}, e.root).Expect(201), "ip_addresses")
	if got := strs(l, "address"); !slices.Equal(got, []string{"10.50.0.0", tenantV6("fe::/64", lessee, 0xadbcce000000)}) {
		t.Errorf("addresses %v", got)
	}
	ifc := e.iface(t, e.r.MemberB, "vif-50")
	if ifc["tenant_id"] != lessee || ifc["device_id"] != "vm-52" || ifc["mac_address"] != "ad:bc:ce:00:00:00" {
		t.Errorf("interface %v", ifc)
	}
	got := items(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_addresses")
	if len(got) != 2 || got[1]["version"] != float64(6) {
		t.Errorf("GET ip_allocations %v", got)
	}
	// Paged like every collection: limit 1 gives the first and a next link.
	first := e.c.Do("GET", path+"?limit=1", nil, e.root).Expect(200)
	if got := items(t, first, "ip_addresses"); len(got) != 1 || got[0]["address"] != "10.50.0.0" || first.Map()["ip_addresses_links"] == nil {
		t.Errorf("GET ip_allocations?limit=1: %s", first)
	}
	// The first block fills up (.0 .1 .2 with gateway .3): the next one is used.
	for _, want := range []string{"10.50.0.1", "10.50.0.2", "10.50.1.0"} {
		vif := "vif-" + want
		l := items(t, e.c.Do("POST", melangeAllocations(e.r.MemberA, "n50", vif), nil, e.root).Expect(201), "ip_addresses")
		if len(l) != 2 || l[0]["address"] != want {
			t.Errorf("%s: %v", vif, l)
		}
	}
	// Owner defaults to the URL tenant.
	if o := e.iface(t, e.r.MemberA, "vif-10.50.0.1")["tenant_id"]; o != fmt.Sprint(e.r.MemberA) {
		t.Errorf("owner %v", o)
	}
	wantFault(t, e.c.Do("POST", melangeAllocations(e.r.MemberA, "nope", "vif-x"), nil, e.root), 404, "NotFound", "Network nope not found")
	wantFault(t, e.c.Do("POST", melangeAllocations(e.r.MemberB, "n50", "vif-x"), nil, e.root), 404, "NotFound", "Network n50 not found")
}

// TestMelange_NextLinkKeepsEscapes: a network id may be any string, "/"
// included (escaped in the URL); the next link of its allocations is the
// request's URL with the escape kept, so following it gives the next page.
func TestMelange_NextLinkKeepsEscapes(t *testing.T) {
	e := newMelangeEnv(t)
	e.macRange(t, "AD:BC:CF:0:0:0/24")
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.53.0.0/24", "network_id": "net/53"})
	e.block(t, e.r.MemberA, map[string]any{"cidr": "fd53::/64", "network_id": "net/53"})
	path := melangeAllocations(e.r.MemberA, "net%2F53", "vif-53")
	e.c.Do("POST", path, nil, e.root).Expect(201)
	first := e.c.Do("GET", path+"?limit=1", nil, e.root).Expect(200)
	links, _ := first.Map()["ip_addresses_links"].([]any)
	if len(links) != 1 {
		t.Fatalf("links %v", first)
	}
	href := links[0].(map[string]any)["href"].(string)
	if !strings.Contains(href, "/networks/net%2F53/interfaces/") {
		t.Errorf("next link %s lost the escape", href)
	}
	u, err := url.Parse(href)
	if err != nil {
		t.Fatal(err)
	}
	second := items(t, e.c.Do("GET", u.RequestURI(), nil, e.root).Expect(200), "ip_addresses")
	if len(second) != 1 || second[0]["version"] != float64(6) {
		t.Errorf("the next page: %v", second)
	}
}

// Checklist 51: network.addresses → those addresses, each in the block that
// holds it; duplicates are skipped; a taken one is 409 and nothing is kept.
func TestMelange_NetworkAllocateAddresses(t *testing.T) {
	e := newMelangeEnv(t)
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.51.0.0/24", "network_id": "n51"})
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.52.0.0/24", "network_id": "n51"})
	path := melangeAllocations(e.r.MemberA, "n51", "vif-51")
	l := items(t, e.c.Do("POST", path, map[string]any{"network": map[string]any{"addresses": []string{"10.52.0.7", "10.51.0.9", "10.52.0.7"}}}, e.root).Expect(201), "ip_addresses")
	if got := strs(l, "address"); !slices.Equal(got, []string{"10.52.0.7", "10.51.0.9"}) {
		t.Errorf("addresses %v", got)
	}
	wantFault(t, e.c.Do("POST", melangeAllocations(e.r.MemberA, "n51", "vif-52"), map[string]any{"network": map[string]any{"addresses": []string{"10.51.0.10", "10.51.0.9"}}}, e.root),
		409, "Conflict", "Address is already allocated")
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/vif-52", e.r.MemberA), nil, e.root), 404, "NotFound", "Interface Not Found")
	wantFault(t, e.c.Do("POST", melangeAllocations(e.r.MemberA, "n51", "vif-53"), map[string]any{"network": map[string]any{"addresses": []string{"10.99.0.1"}}}, e.root),
		422, "UnprocessableEntity", "does not belong to network")
}

// Checklist 54: an IPv6-only network needs a MAC: the body's mac_address
// feeds the generator with the interface tenant; full networks are 422.
func TestMelange_NetworkAllocateIPv6(t *testing.T) {
	e := newMelangeEnv(t)
	e.block(t, e.r.MemberA, map[string]any{"cidr": "fe::/64", "network_id": "n54"})
	path := melangeAllocations(e.r.MemberA, "n54", "vif-54")
	wantDetail(t, e.c.Do("POST", path, nil, e.root), 400, "BadRequest", "Required params are missing: mac_address")
	lessee := fmt.Sprint(e.r.MemberB)
	l := items(t, e.c.Do("POST", path, map[string]any{"network": map[string]any{"mac_address": "00:ff:12:89:67:34", "tenant_id": lessee}}, e.root).Expect(201), "ip_addresses")
	if len(l) != 1 || l[0]["address"] != tenantV6("fe::/64", lessee, 0x00ff12896734) {
		t.Errorf("addresses %v", l)
	}
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.54.0.0/31", "network_id": "n55", "gateway": "10.54.0.1"})
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n55", "vif-55"), nil, e.root).Expect(201)
	wantFault(t, e.c.Do("POST", melangeAllocations(e.r.MemberA, "n55", "vif-56"), nil, e.root), 422, "UnprocessableEntity", "ip blocks in this network are full")
}

// Checklist 55 (not implemented: no default_cidr) and 56: DELETE
// ip_allocations → 200, the interface's addresses in the network are
// soft-deallocated; an unknown network is 404.
func TestMelange_NetworkDeallocate(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.56.0.0/24", "network_id": "n56"})
	path := melangeAllocations(e.r.MemberA, "n56", "vif-56")
	e.c.Do("POST", path, nil, e.root).Expect(201)
	if r := e.c.Do("DELETE", path, nil, e.tok(apitest.MemberUser)).Expect(200); len(r.Body) != 0 {
		t.Errorf("body %q", r.Body)
	}
	ip := obj(t, e.c.Do("GET", melangeBlock(e.r.MemberA, melangeID(b))+"/ip_addresses/10.56.0.0", nil, e.root).Expect(200), "ip_address")
	if ip["interface_id"] != nil {
		t.Errorf("address %v", ip)
	}
	if l := items(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("after delete %v", l)
	}
	wantFault(t, e.c.Do("DELETE", melangeAllocations(e.r.MemberA, "nope", "vif-56"), nil, e.root), 404, "NotFound", "Network nope not found")
	wantFault(t, e.c.Do("GET", melangeAllocations(e.r.MemberA, "n56", "nope"), nil, e.root), 404, "NotFound", "Interface Not Found")
}

// Checklist 67, 68 and 69: PUT with three networks → three interfaces, each
// plugged into its network, owned by the instance tenant; PUT again → the
// previous addresses are soft-deallocated; GET shows the interfaces;
// DELETE removes only that device's interfaces.
func TestMelange_InstanceInterfaces(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	var nets []any
	for i := range 3 {
		net := fmt.Sprintf("i%d", i)
		e.block(t, e.r.MemberA, map[string]any{"cidr": fmt.Sprintf("10.67.%d.0/24", i), "network_id": net})
		nets = append(nets, map[string]any{"network": map[string]any{"id": net, "tenant_id": a}})
	}
	e.c.Do("PUT", melangeInstance("other-vm"), map[string]any{"instance": map[string]any{"tenant_id": a, "interfaces": nets[:1]}}, e.root).Expect(200)
	tnt := fmt.Sprint(e.r.MemberB)
	body := map[string]any{"instance": map[string]any{"tenant_id": tnt, "interfaces": nets}}
	r := e.c.Do("PUT", melangeInstance("vm-67"), body, e.root).Expect(200)
	inst, _ := obj(t, r, "instance")["interfaces"].([]any)
	if len(inst) != 3 {
		t.Fatalf("instance %v", r)
	}
	var first []string
	for i, raw := range inst {
		ifc := raw.(map[string]any)
		addrs := ifaceAddrs(ifc)
		if ifc["tenant_id"] != tnt || ifc["device_id"] != "vm-67" || len(addrs) != 1 || !strings.HasPrefix(addrs[0]["address"].(string), fmt.Sprintf("10.67.%d.", i)) {
			t.Errorf("interface %d: %v", i, ifc)
		}
		first = append(first, addrs[0]["address"].(string))
	}
	r = e.c.Do("PUT", melangeInstance("vm-67"), body, e.root).Expect(200)
	inst, _ = obj(t, r, "instance")["interfaces"].([]any)
	if len(inst) != 3 || ifaceAddrs(inst[0].(map[string]any))[0]["address"] == first[0] {
		t.Errorf("second PUT %v", inst)
	}
	alloc := items(t, e.c.Do("GET", melangeAllocAll+"?used_by_device=vm-67", nil, e.root).Expect(200), "ip_addresses")
	if len(alloc) != 3 {
		t.Errorf("allocated after the second PUT: %v", alloc)
	}
	got, _ := obj(t, e.c.Do("GET", melangeInstance("vm-67"), nil, e.root).Expect(200), "instance")["interfaces"].([]any)
	if len(got) != 3 {
		t.Errorf("GET %v", got)
	}
	wantFault(t, e.c.Do("GET", melangeInstance("vm-67"), nil, e.tok(apitest.MemberAdmin)), 403, "Forbidden", "")
	e.c.Do("DELETE", melangeInstance("vm-67"), nil, e.root).Expect(200)
	// melange-api-spec: GET of a device without interfaces is 404.
	wantFault(t, e.c.Do("GET", melangeInstance("vm-67"), nil, e.root), 404, "NotFound", "Interface Not Found")
	if got, _ := obj(t, e.c.Do("GET", melangeInstance("other-vm"), nil, e.root).Expect(200), "instance")["interfaces"].([]any); len(got) != 1 {
		t.Errorf("another device lost its interfaces: %v", got)
	}
	wantFault(t, e.c.Do("PUT", melangeInstance("vm-68"), map[string]any{"instance": map[string]any{"interfaces": nets}}, e.root), 400, "BadRequest", "tenant_id should be present")
	wantFault(t, e.c.Do("PUT", melangeInstance("vm-68"), map[string]any{"instance": map[string]any{"tenant_id": a,
		"interfaces": []any{map[string]any{"network": map[string]any{"id": "nope", "tenant_id": a}}}}}, e.root), 404, "NotFound", "Network nope not found")
}

// Checklist 35, 36, 37 and 38: allocated addresses across blocks by id,
// paged; the tenant variant lists those used by the tenant; used_by_device
// filters; soft-deallocated addresses are left out.
func TestMelange_AllocatedIPAddresses(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	x := fmt.Sprint(e.r.MemberB)
	b1 := melangeBlock(e.r.MemberA, melangeID(e.block(t, e.r.MemberA, map[string]any{"cidr": "10.35.0.0/24"}))) + "/ip_addresses"
	b2 := melangeBlock(e.r.MemberB, melangeID(e.block(t, e.r.MemberB, map[string]any{"cidr": "10.36.0.0/24"}))) + "/ip_addresses"
	var ids []string
	for i, p := range []struct{ base, tenant, dev string }{{b1, a, "d1"}, {b2, a, "d2"}, {b1, x, "d1"}, {b2, x, "d1"}, {b1, a, "d1"}, {b2, a, "d3"}} {
		ip := obj(t, e.c.Do("POST", p.base, map[string]any{"ip_address": map[string]any{"interface_id": fmt.Sprint("v", i), "tenant_id": p.tenant, "used_by_device": p.dev}}, e.root).Expect(201), "ip_address")
		ids = append(ids, ip["id"].(string))
	}
	all := items(t, e.c.Do("GET", melangeAllocAll, nil, e.root).Expect(200), "ip_addresses")
	if got := strs(all, "id"); !slices.Equal(got, ids) {
		t.Errorf("all %v, want %v", got, ids)
	}
	r := e.c.Do("GET", melangeAllocAll+"?limit=4&marker="+ids[0], nil, e.root).Expect(200)
	if got := strs(items(t, r, "ip_addresses"), "id"); !slices.Equal(got, ids[1:5]) {
		t.Errorf("page %v", got)
	}
	links, _ := r.Map()["ip_addresses_links"].([]any)
	if len(links) != 1 || !strings.Contains(links[0].(map[string]any)["href"].(string), "marker="+ids[4]) {
		t.Errorf("links %v", links)
	}
	tenantPath := fmt.Sprintf("/v0.1/ipam/tenants/%s/allocated_ip_addresses", a)
	if got := strs(items(t, e.c.Do("GET", tenantPath, nil, e.tok(apitest.MemberUser)).Expect(200), "ip_addresses"), "id"); !slices.Equal(got, []string{ids[0], ids[1], ids[4], ids[5]}) {
		t.Errorf("tenant %v", got)
	}
	if got := strs(items(t, e.c.Do("GET", melangeAllocAll+"?used_by_device=d1", nil, e.root).Expect(200), "ip_addresses"), "id"); !slices.Equal(got, []string{ids[0], ids[2], ids[3], ids[4]}) {
		t.Errorf("device d1 %v", got)
	}
	if got := strs(items(t, e.c.Do("GET", tenantPath+"?used_by_device=d1", nil, e.root).Expect(200), "ip_addresses"), "id"); !slices.Equal(got, []string{ids[0], ids[4]}) {
		t.Errorf("tenant and device d1 %v", got)
	}
	e.c.Do("DELETE", b1+"/10.35.0.0", nil, e.root).Expect(200)
	if got := strs(items(t, e.c.Do("GET", melangeAllocAll, nil, e.root).Expect(200), "ip_addresses"), "id"); !slices.Equal(got, ids[1:]) {
		t.Errorf("after deallocation %v", got)
	}
	wantFault(t, e.c.Do("GET", melangeAllocAll, nil, e.tok(apitest.MemberAdmin)), 403, "Forbidden", "")
}

// TestMelange_AllocatedIPAddressesOnInterfaces: the tenant and device of
// allocated_ip_addresses are the interface's (Melange joined the
// interfaces for them, checklist 36 and 37), so with either only addresses
// on an interface are listed: one allocated without interface_id, or
// restored after a deallocation (which leaves it on none), was listed as
// the tenant's, and by its body used_by_device. The provider list without
// filters still lists every allocated address.
func TestMelange_AllocatedIPAddressesOnInterfaces(t *testing.T) {
	e := newMelangeEnv(t)
	base := melangeBlock(e.r.MemberA, melangeID(e.block(t, e.r.MemberA, map[string]any{"cidr": "10.37.0.0/24"}))) + "/ip_addresses"
	add := func(fields map[string]any) string {
		return obj(t, e.c.Do("POST", base, map[string]any{"ip_address": fields}, e.root).Expect(201), "ip_address")["id"].(string)
	}
	bare := add(map[string]any{})
	on := add(map[string]any{"interface_id": "v-on", "used_by_device": "d1"})
	deviceOnly := add(map[string]any{"used_by_device": "d1"})
	restored := add(map[string]any{"interface_id": "v-r", "used_by_device": "d1"})
	e.c.Do("DELETE", base+"/10.37.0.4", nil, e.root).Expect(200) // restored's
	e.c.Do("PUT", base+"/10.37.0.4/restore", nil, e.root).Expect(200)
	tenantPath := fmt.Sprintf("/v0.1/ipam/tenants/%d/allocated_ip_addresses", e.r.MemberA)
	for path, want := range map[string][]string{
		melangeAllocAll:                        {bare, on, deviceOnly, restored},
		melangeAllocAll + "?used_by_device=d1": {on},
		tenantPath:                             {on},
		tenantPath + "?used_by_device=d1":      {on},
	} {
		if got := strs(items(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_addresses"), "id"); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

// Checklist 31, 32, 33 and 34: routes of a block: paged list, create
// (source_block_id ignored), read, update, delete; another tenant's block
// is 404 IpBlock Not Found, an unknown route 404 IpRoute Not Found; a
// block delete removes its routes.
func TestMelange_IPRoutes(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.31.0.0/24"})
	other := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.32.0.0/24"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_routes"
	tok := e.tok(apitest.MemberUser)
	var ids []string
	for i := range 4 {
		rt := obj(t, e.c.Do("POST", base, map[string]any{"ip_route": map[string]any{"destination": fmt.Sprintf("192.168.%d.0", i), "netmask": "255.255.255.0",
			"gateway": "10.31.0.1", "source_block_id": other["id"]}}, tok).Expect(201), "ip_route")
		if rt["destination"] != fmt.Sprintf("192.168.%d.0", i) || rt["gateway"] != "10.31.0.1" || rt["netmask"] != "255.255.255.0" {
			t.Errorf("route %v", rt)
		}
		ids = append(ids, rt["id"].(string))
	}
	if l := items(t, e.c.Do("GET", melangeBlock(e.r.MemberA, melangeID(other))+"/ip_routes", nil, tok).Expect(200), "ip_routes"); len(l) != 0 {
		t.Errorf("source_block_id was not ignored: %v", l)
	}
	r := e.c.Do("GET", base+"?limit=2&marker="+ids[0], nil, tok).Expect(200)
	if got := strs(items(t, r, "ip_routes"), "id"); !slices.Equal(got, ids[1:3]) {
		t.Errorf("page %v", got)
	}
	if links, _ := r.Map()["ip_routes_links"].([]any); len(links) != 1 || !strings.Contains(links[0].(map[string]any)["href"].(string), "marker="+ids[2]) {
		t.Errorf("links %v", links)
	}
	one := base + "/" + ids[0]
	if got := obj(t, e.c.Do("GET", one, nil, tok).Expect(200), "ip_route"); got["id"] != ids[0] {
		t.Errorf("GET %v", got)
	}
	up := obj(t, e.c.Do("PUT", one, map[string]any{"ip_route": map[string]any{"gateway": "10.31.0.254", "source_block_id": other["id"]}}, tok).Expect(200), "ip_route")
	if up["gateway"] != "10.31.0.254" || up["destination"] != "192.168.0.0" {
		t.Errorf("PUT %v", up)
	}
	wantFault(t, e.c.Do("PUT", one, map[string]any{"ip_route": map[string]any{"gateway": ""}}, tok), 400, "BadRequest", "gateway should be present")
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_route": map[string]any{"gateway": "10.31.0.1"}}, tok), 400, "BadRequest", "destination should be present")
	e.c.Do("DELETE", one, nil, tok).Expect(200)
	wantFault(t, e.c.Do("GET", one, nil, tok), 404, "NotFound", "IpRoute Not Found")
	wantFault(t, e.c.Do("GET", base+"/abc", nil, tok), 404, "NotFound", "IpRoute Not Found")
	ob := e.block(t, e.r.MemberB, map[string]any{"cidr": "10.33.0.0/24"})
	wrong := melangeBlock(e.r.MemberA, melangeID(ob)) + "/ip_routes"
	for _, mp := range [][2]string{{"GET", wrong}, {"POST", wrong}, {"GET", wrong + "/" + ids[1]}, {"PUT", wrong + "/" + ids[1]}, {"DELETE", wrong + "/" + ids[1]}} {
		wantFault(t, e.c.Do(mp[0], mp[1], nil, e.root), 404, "NotFound", "IpBlock Not Found")
	}
	// A route of one block is not reachable through another.
	wantFault(t, e.c.Do("GET", melangeBlock(e.r.MemberA, melangeID(other))+"/ip_routes/"+ids[1], nil, tok), 404, "NotFound", "IpRoute Not Found")
	e.c.Do("DELETE", melangeBlock(e.r.MemberA, melangeID(b)), nil, tok).Expect(200)
	wantFault(t, e.c.Do("GET", base+"/"+ids[1], nil, tok), 404, "NotFound", "IpBlock Not Found")
}

// Malformed bodies on the new routes are 4xx in the Melange shape, never 5xx.
func TestMelange_InterfaceNoServerErrors(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.41.0.0/24", "network_id": "n"})
	e.macRange(t, "02:00:00:00:00:00/40")
	bodies := []string{``, `{}`, `[]`, `"x"`, `{"interface":[]}`, `{"interface":{"id":1,"tenant_id":2}}`, `{"interface":{"id":"v","tenant_id":"1","network":"x"}}`,
		`{"interface":{"id":"v2","tenant_id":"1","network":{"id":"n","tenant_id":"` + a + `","addresses":"x"}}}`,
		`{"interface":{"id":"v3","tenant_id":"1","network":{"id":"n","tenant_id":"` + a + `","addresses":["bogus"]}}}`,
		`{"interface":{"id":"v4","tenant_id":"1","network":{"id":"n","tenant_id":"abc"}}}`,
		`{"network":{"addresses":[1]}}`, `{"network":{"addresses":["::1"]}}`, `{"network":{"mac_address":"zz"}}`, `{"network":[]}`,
		`{"instance":{"tenant_id":"t","interfaces":"x"}}`, `{"instance":{"tenant_id":"t","interfaces":[1]}}`, `{"instance":{"tenant_id":"t","interfaces":[{"network":1}]}}`,
		`{"instance":{"tenant_id":"t","interfaces":[{"network":{"id":"n","tenant_id":"` + a + `"}},{"network":{"id":"n","tenant_id":"` + a + `"}, "id": "dup"},{"id":"dup"}]}}`,
		`{"ip_route":[]}`, `{"ip_route":{"destination":{"a":1}}}`, `{"ip_address":{"interface_id":{"a":1}}}`, `{"ip_address":{"interface_id":"v9","mac_address":"zz"}}`,
		`{"ip_addresses":"x"}`, `{"ip_addresses":[1]}`, `{"ip_addresses":[{"ip_block_id":{"a":1},"ip_address":"x"}]}`, `{"allowed_ip":{"network_id":[],"ip_address":"x"}}`,
		`{"allowed_ip":{"network_id":"n","ip_address":"bogus"}}`, "{\"interface\":{\"id\":\"\xff\xfe\"}}"}
	paths := [][2]string{{"POST", melangeIfaces}, {"POST", melangeAllocations(e.r.MemberA, "n", "vif")}, {"PUT", melangeInstance("vm")},
		{"POST", melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_routes"}, {"POST", melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"},
		{"POST", melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses/10.41.0.0/inside_globals"}, {"POST", melangeAllowed(e.r.MemberA, "vif0")}}
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n", "vif0"), map[string]any{"network": map[string]any{"addresses": []string{"10.41.0.0"}}}, e.root).Expect(201)
	for _, body := range bodies {
		for _, mp := range paths {
			if r := e.c.Do(mp[0], mp[1], body, e.root); r.Status >= 500 {
				t.Errorf("%s", r)
			}
		}
	}
	for _, q := range []string{"?limit=0", "?marker=abc"} {
		wantFault(t, e.c.Do("GET", melangeAllocAll+q, nil, e.root), 400, "BadRequest", "")
		wantFault(t, e.c.Do("GET", melangeNetwork(e.r.MemberA, "n")+q, nil, e.root), 400, "BadRequest", "")
	}
}

func melangeAllowed(tenant uint64, vif string) string {
	return fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/%s/allowed_ips", tenant, vif)
}

func melangeAllowedI(f *fixture) request {
	melangeIfaceOf(f)
	return request{path: melangeAllowed(f.r.MemberA, melangeVIF)}
}

func newMelangeAllowedBody(f *fixture) request {
	r := melangeAllowedI(f)
	r.body = map[string]any{"allowed_ip": map[string]any{"network_id": melangeNet, "ip_address": melangeIfaceOf(f).addrJ}}
	return r
}

func melangeAllowedJ(f *fixture) request {
	return request{path: melangeAllowedI(f).path + "/" + melangeIfaceOf(f).addrJ}
}

func newMelangeAllowed(f *fixture) request {
	b := newMelangeAllocationBody(f)
	addr := f.c.Do("POST", b.path, b.body, f.root).Expect(201).Map()["ip_addresses"].([]any)[0].(map[string]any)["address"].(string)
	r := melangeAllowedI(f)
	f.c.Do("POST", r.path, map[string]any{"allowed_ip": map[string]any{"network_id": melangeNet, "ip_address": addr}}, f.root).Expect(201)
	return request{path: r.path + "/" + addr}
}

func melangeNATM(dir string) func(f *fixture) request {
	return func(f *fixture) request { return request{path: melangeAddressM(f).path + "/" + dir} }
}

// newMelangeNATBody links a new address of block M to address M.
func newMelangeNATBody(dir string) func(f *fixture) request {
	return func(f *fixture) request {
		addr := newMelangeAddress(f).path
		addr = addr[strings.LastIndexByte(addr, '/')+1:]
		return request{path: melangeAddressM(f).path + "/" + dir, body: map[string]any{"ip_addresses": []any{
			map[string]any{"ip_block_id": fmt.Sprint(melangeOf(f).blockM), "ip_address": addr}}}}
	}
}

func newMelangeNATLink(dir string) func(f *fixture) request {
	return func(f *fixture) request {
		b := newMelangeNATBody(dir)(f)
		f.c.Do("POST", b.path, b.body, f.root).Expect(200)
		addr := b.body.(map[string]any)["ip_addresses"].([]any)[0].(map[string]any)["ip_address"].(string)
		return request{path: b.path + "/" + addr}
	}
}

func natRef(block map[string]any, addr string) map[string]any {
	return map[string]any{"ip_block_id": block["id"], "ip_address": addr}
}

// Checklist 39, 40, 41, 42 and 43: POST links → 200 and both directions
// see them; lists page; unknown or other tenant's blocks 404 IpBlock Not
// Found, unknown addresses 404 IpAddress Not Found, a soft-deallocated
// address 422 Address is locked; DELETE all and DELETE one.
func TestMelange_NAT(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	priv := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.39.0.0/24"})
	pub := e.block(t, e.r.MemberA, map[string]any{"cidr": "192.0.2.0/24", "type": "public"})
	privBase := melangeBlock(e.r.MemberA, melangeID(priv)) + "/ip_addresses"
	pubBase := melangeBlock(e.r.MemberA, melangeID(pub)) + "/ip_addresses"
	e.c.Do("POST", privBase, map[string]any{"ip_address": map[string]any{"address": "10.39.0.5"}}, e.root).Expect(201)
	for _, a := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
		e.c.Do("POST", pubBase, map[string]any{"ip_address": map[string]any{"address": a}}, e.root).Expect(201)
	}
	globals := privBase + "/10.39.0.5/inside_globals"
	if r := e.c.Do("POST", globals, map[string]any{"ip_addresses": []any{natRef(pub, "192.0.2.10"), natRef(pub, "192.0.2.11"), natRef(pub, "192.0.2.12")}}, tok).Expect(200); len(r.Body) != 0 {
		t.Errorf("body %q", r.Body)
	}
	if got := strs(items(t, e.c.Do("GET", globals, nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"}) {
		t.Errorf("globals %v", got)
	}
	r := e.c.Do("GET", globals+"?limit=2", nil, tok).Expect(200)
	if l := items(t, r, "ip_addresses"); len(l) != 2 || r.Map()["ip_addresses_links"] == nil {
		t.Errorf("page %v", r)
	}
	locals := pubBase + "/192.0.2.11/inside_locals"
	if got := strs(items(t, e.c.Do("GET", locals, nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"10.39.0.5"}) {
		t.Errorf("locals of a global %v", got)
	}
	// inside_locals is the mirror: a second local for .10.
	e.c.Do("POST", privBase, map[string]any{"ip_address": map[string]any{"address": "10.39.0.6"}}, e.root).Expect(201)
	e.c.Do("POST", pubBase+"/192.0.2.10/inside_locals", map[string]any{"ip_addresses": []any{natRef(priv, "10.39.0.6")}}, tok).Expect(200)
	if got := strs(items(t, e.c.Do("GET", pubBase+"/192.0.2.10/inside_locals", nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"10.39.0.5", "10.39.0.6"}) {
		t.Errorf("locals %v", got)
	}
	// Errors (40, 42).
	other := e.block(t, e.r.MemberB, map[string]any{"cidr": "198.51.100.0/24", "type": "public"})
	e.c.Do("POST", melangeBlock(e.r.MemberB, melangeID(other))+"/ip_addresses", nil, e.root).Expect(201)
	wantFault(t, e.c.Do("POST", globals, map[string]any{"ip_addresses": []any{natRef(other, "198.51.100.0")}}, e.root), 404, "NotFound", "IpBlock Not Found")
	wantFault(t, e.c.Do("POST", globals, map[string]any{"ip_addresses": []any{natRef(pub, "192.0.2.99")}}, e.root), 404, "NotFound", "IpAddress Not Found")
	wantFault(t, e.c.Do("POST", globals, map[string]any{"ip_addresses": []any{map[string]any{"ip_block_id": "999", "ip_address": "1.2.3.4"}}}, e.root), 404, "NotFound", "IpBlock Not Found")
	wantFault(t, e.c.Do("POST", globals, map[string]any{"ip_addresses": []any{map[string]any{"ip_address": "1.2.3.4"}}}, e.root), 400, "BadRequest", "Required params are missing")
	wantFault(t, e.c.Do("GET", privBase+"/10.39.0.77/inside_globals", nil, tok), 404, "NotFound", "IpAddress Not Found")
	wantFault(t, e.c.Do("GET", melangeBlock(e.r.MemberA, melangeID(other))+"/ip_addresses/198.51.100.0/inside_globals", nil, e.root), 404, "NotFound", "IpBlock Not Found")
	e.c.Do("DELETE", pubBase+"/192.0.2.12", nil, e.root).Expect(200)
	wantFault(t, e.c.Do("GET", pubBase+"/192.0.2.12/inside_locals", nil, tok), 422, "UnprocessableEntity", "Address is locked")
	wantFault(t, e.c.Do("POST", pubBase+"/10.39.0.6/inside_locals", nil, tok), 404, "NotFound", "IpAddress Not Found")
	// DELETE one leaves the others; DELETE all removes every link (43).
	e.c.Do("DELETE", globals+"/192.0.2.11", nil, tok).Expect(200)
	if got := strs(items(t, e.c.Do("GET", globals, nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"192.0.2.10", "192.0.2.12"}) {
		t.Errorf("after deleting one %v", got)
	}
	wantFault(t, e.c.Do("DELETE", globals+"/192.0.2.11", nil, tok), 404, "NotFound", "IpAddress Not Found")
	e.c.Do("DELETE", globals, nil, tok).Expect(200)
	if l := items(t, e.c.Do("GET", globals, nil, tok).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("after deleting all %v", l)
	}
	if got := strs(items(t, e.c.Do("GET", pubBase+"/192.0.2.10/inside_locals", nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"10.39.0.6"}) {
		t.Errorf("the other local's link went too: %v", got)
	}
}

// Checklist 71, 72 and 73: allowed IPs = explicit ∪ allocated; POST → 201
// {"ip_address": ...}; an address not used by the tenant in that network
// → 404; not plugged into its network → 422; GET/DELETE of an address not
// allowed → 404 Ip Address ... hasnt been allowed on interface ...
func TestMelange_AllowedIPs(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	tok := e.tok(apitest.MemberUser)
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.71.0.0/24", "network_id": "n71"})
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.72.0.0/24", "network_id": "n72"})
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n71", "vif_id"), nil, e.root).Expect(201) // 10.71.0.0
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n71", "vif-2"), nil, e.root).Expect(201)  // 10.71.0.2 (.1 is the gateway)
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n72", "vif-3"), nil, e.root).Expect(201)  // 10.72.0.0
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n71", "vif-4"), map[string]any{"network": map[string]any{"tenant_id": fmt.Sprint(e.r.MemberB)}}, e.root).Expect(201)
	base := melangeAllowed(e.r.MemberA, "vif_id")
	ip := obj(t, e.c.Do("POST", base, map[string]any{"allowed_ip": map[string]any{"network_id": "n71", "ip_address": "10.71.0.2"}}, tok).Expect(201), "ip_address")
	if ip["address"] != "10.71.0.2" || ip["interface_id"] != "vif-2" {
		t.Errorf("allowed %v", ip)
	}
	if got := strs(items(t, e.c.Do("GET", base, nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"10.71.0.0", "10.71.0.2"}) {
		t.Errorf("allowed list %v", got)
	}
	e.c.Do("GET", base+"/10.71.0.2", nil, tok).Expect(200)
	e.c.Do("GET", base+"/10.71.0.0", nil, tok).Expect(200)
	wantFault(t, e.c.Do("POST", base, map[string]any{"allowed_ip": map[string]any{"network_id": "n71", "ip_address": "10.71.0.3"}}, tok),
		404, "NotFound", "IpAddress with {'used_by_tenant_id': '"+a+"', 'address': '10.71.0.3'} for network n71 not found")
	wantFault(t, e.c.Do("POST", base, map[string]any{"allowed_ip": map[string]any{"network_id": "n72", "ip_address": "10.72.0.0"}}, tok),
		422, "UnprocessableEntity", "Ip 10.72.0.0 cannot be allowed on interface vif_id as interface is not configured for ip's network")
	wantFault(t, e.c.Do("GET", base+"/10.1.1.1", nil, tok), 404, "NotFound", "Ip Address 10.1.1.1 hasnt been allowed on interface vif_id")
	wantFault(t, e.c.Do("DELETE", base+"/10.1.1.1", nil, tok), 404, "NotFound", "Ip Address 10.1.1.1 hasnt been allowed on interface vif_id")
	wantFault(t, e.c.Do("DELETE", base+"/10.71.0.0", nil, tok), 404, "NotFound", "hasnt been allowed on interface vif_id")
	wantFault(t, e.c.Do("GET", melangeAllowed(e.r.MemberA, "nope"), nil, tok), 404, "NotFound", "Interface Not Found")
	wantFault(t, e.c.Do("GET", melangeAllowed(e.r.MemberB, "vif_id"), nil, e.root), 404, "NotFound", "Interface Not Found")
	e.c.Do("DELETE", base+"/10.71.0.2", nil, tok).Expect(200)
	if got := strs(items(t, e.c.Do("GET", base, nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"10.71.0.0"}) {
		t.Errorf("after delete %v", got)
	}
	// Deleting the interface removes its allowances with it.
	e.c.Do("POST", base, map[string]any{"allowed_ip": map[string]any{"network_id": "n71", "ip_address": "10.71.0.2"}}, tok).Expect(201)
	e.c.Do("DELETE", melangeIfaces+"/vif_id", nil, e.root).Expect(200)
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n71", "vif_id"), map[string]any{"network": map[string]any{"addresses": []string{"10.71.0.9"}}}, e.root).Expect(201)
	if got := strs(items(t, e.c.Do("GET", base, nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"10.71.0.9"}) {
		t.Errorf("a re-created interface inherited allowances: %v", got)
	}
}

func newMelangeNetworkInterfaceBody(f *fixture) request {
	melangeIfaceOf(f)
	return request{path: melangeNetwork(f.r.MemberA, melangeNet) + "/interfaces", body: map[string]any{"interface": map[string]any{"id": f.n.Unique("vif"), "device_id": "dev"}}}
}

func melangeNetworkInterfaceI(f *fixture) request {
	melangeIfaceOf(f)
	return request{path: melangeNetwork(f.r.MemberA, melangeNet) + "/interfaces/" + melangeVIF}
}

func newMelangeNetworkInterface(f *fixture) request {
	b := newMelangeNetworkInterfaceBody(f)
	return request{path: b.path + "/" + melangeCreate(f.c, f.root, b.path, "interface", b.body)["id"].(string)}
}

// melange-api-spec "Interfaces" (the tenant-scoped forms of checklist 58,
// 61, 64 and 65): POST in the URL tenant's network → 201, owner the URL
// tenant unless tenant_id, an address of the network; GET; DELETE → 200
// and the addresses soft-deallocated; other tenants' interfaces are 404.
func TestMelange_NetworkInterfaces(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	tok := e.tok(apitest.MemberUser)
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.58.0.0/24", "network_id": "n58"})
	base := melangeNetwork(e.r.MemberA, "n58") + "/interfaces"
	r := obj(t, e.c.Do("POST", base, map[string]any{"interface": map[string]any{"id": "virt_iface", "device_id": "instance"}}, tok).Expect(201), "interface")
	addrs := ifaceAddrs(r)
	if r["id"] != "virt_iface" || r["tenant_id"] != a || r["device_id"] != "instance" || len(addrs) != 1 || addrs[0]["address"] != "10.58.0.0" {
		t.Errorf("interface %v", r)
	}
	r = obj(t, e.c.Do("POST", base, map[string]any{"interface": map[string]any{"id": "v2", "network": map[string]any{"addresses": []string{"10.58.0.9"}}}}, tok).Expect(201), "interface")
	if addrs := ifaceAddrs(r); len(addrs) != 1 || addrs[0]["address"] != "10.58.0.9" {
		t.Errorf("given address %v", r)
	}
	if got := obj(t, e.c.Do("GET", base+"/virt_iface", nil, tok).Expect(200), "interface"); got["id"] != "virt_iface" || len(ifaceAddrs(got)) != 1 {
		t.Errorf("GET %v", got)
	}
	wantFault(t, e.c.Do("POST", melangeNetwork(e.r.MemberA, "nope")+"/interfaces", map[string]any{"interface": map[string]any{"id": "v3"}}, tok), 404, "NotFound", "Network nope not found")
	wantFault(t, e.c.Do("POST", base, map[string]any{"interface": map[string]any{"id": "v2"}}, tok), 400, "BadRequest", "Virtual Interface v2 already exists")
	e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "b-vif", "tenant_id": fmt.Sprint(e.r.MemberB)}}, e.root).Expect(201)
	wantFault(t, e.c.Do("GET", base+"/b-vif", nil, tok), 404, "NotFound", "Interface Not Found")
	wantFault(t, e.c.Do("DELETE", base+"/b-vif", nil, tok), 404, "NotFound", "Interface Not Found")
	e.c.Do("DELETE", base+"/virt_iface", nil, tok).Expect(200)
	wantFault(t, e.c.Do("GET", base+"/virt_iface", nil, tok), 404, "NotFound", "Interface Not Found")
	if l := items(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/allocated_ip_addresses", a), nil, tok).Expect(200), "ip_addresses"); len(l) != 1 || l[0]["address"] != "10.58.0.9" {
		t.Errorf("allocated after delete %v", l)
	}
}

// providerNAT turns a tenant NAT request into the spec's provider form
// (/ipam/ip_blocks/...: no tenant in the URL).
func providerNAT(req func(*fixture) request) func(*fixture) request {
	return func(f *fixture) request {
		r := req(f)
		r.path = strings.Replace(r.path, fmt.Sprintf("/tenants/%d/ip_blocks/", f.r.MemberA), "/ip_blocks/", 1)
		return r
	}
}

// The spec's NAT paths (/ipam/ip_blocks/{id}/ip_addresses/{a}/inside_*):
// global callers only; addresses are found in any tenant's blocks.
func TestMelange_ProviderNAT(t *testing.T) {
	e := newMelangeEnv(t)
	pa := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.42.0.0/24"})
	pb := e.block(t, e.r.MemberB, map[string]any{"cidr": "192.0.2.0/24", "type": "public"})
	e.c.Do("POST", melangeBlock(e.r.MemberA, melangeID(pa))+"/ip_addresses", nil, e.root).Expect(201)
	e.c.Do("POST", melangeBlock(e.r.MemberB, melangeID(pb))+"/ip_addresses", nil, e.root).Expect(201)
	globals := fmt.Sprintf("/v0.1/ipam/ip_blocks/%d/ip_addresses/10.42.0.0/inside_globals", melangeID(pa))
	e.c.Do("POST", globals, map[string]any{"ip_addresses": []any{natRef(pb, "192.0.2.0")}}, e.root).Expect(200)
	if got := strs(items(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/ip_blocks/%d/ip_addresses/192.0.2.0/inside_locals", melangeID(pb)), nil, e.root).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"10.42.0.0"}) {
		t.Errorf("locals %v", got)
	}
	wantFault(t, e.c.Do("GET", globals, nil, e.tok(apitest.MemberAdmin)), 403, "Forbidden", "")
	wantFault(t, e.c.Do("GET", "/v0.1/ipam/ip_blocks/999/ip_addresses/10.42.0.0/inside_globals", nil, e.root), 404, "NotFound", "IpBlock Not Found")
	e.c.Do("DELETE", globals+"/192.0.2.0", nil, e.root).Expect(200)
	if l := items(t, e.c.Do("GET", globals, nil, e.root).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("after delete %v", l)
	}
}

// Checklist 55 and 63: with melange_default_cidr configured, an unknown
// network gets a private block with that CIDR, the network id and the
// network's tenant, created in the same command as the allocation.
func TestMelange_DefaultCIDR(t *testing.T) {
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) { c.MelangeDefaultCIDR = "10.99.0.0/24" }})
	c := n.Client(t)
	e := &melangeEnv{c: c, n: n, r: c.Roles(), root: n.RootToken}
	a, b := fmt.Sprint(e.r.MemberA), fmt.Sprint(e.r.MemberB)
	l := items(t, e.c.Do("POST", melangeAllocations(e.r.MemberA, "fresh", "vif-55"), nil, e.tok(apitest.MemberUser)).Expect(201), "ip_addresses")
	if len(l) != 1 || l[0]["address"] != "10.99.0.0" {
		t.Fatalf("allocations %v", l)
	}
	blk := items(t, e.c.Do("GET", melangeNetwork(e.r.MemberA, "fresh"), nil, e.root).Expect(200), "ip_blocks")
	if len(blk) != 1 || blk[0]["cidr"] != "10.99.0.0/24" || blk[0]["type"] != "private" || blk[0]["tenant_id"] != a || blk[0]["network_id"] != "fresh" {
		t.Errorf("default block %v", blk)
	}
	// POST /ipam/interfaces: the block belongs to the network's tenant.
	r := obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-63", "tenant_id": a,
		"network": map[string]any{"id": "other", "tenant_id": b}}}, e.root).Expect(201), "interface")
	if addrs := ifaceAddrs(r); len(addrs) != 1 || addrs[0]["address"] != "10.99.0.0" {
		t.Errorf("interface %v", r)
	}
	if blk := items(t, e.c.Do("GET", melangeNetwork(e.r.MemberB, "other"), nil, e.root).Expect(200), "ip_blocks"); len(blk) != 1 || blk[0]["tenant_id"] != b {
		t.Errorf("default block of tenant B %v", blk)
	}
	// A tenant that is no member cannot own the block: 400, nothing made.
	wantFault(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-64", "tenant_id": a,
		"network": map[string]any{"id": "x", "tenant_id": "999999"}}}, e.root), 400, "BadRequest", "tenant_id")
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/interfaces/vif-64", a), nil, e.root), 404, "NotFound", "Interface Not Found")
}

// melange-facts §8 "delete IpBlock cascades to subnets and all their
// addresses (hard)": one DELETE of the top block removes its subnet, the
// subnet's addresses (an interface's, a soft-deallocated one), the NAT link
// and the allowance on them and the block's routes. The interfaces, the
// public block on the other end of the NAT link and another tenant's block
// stay, and the freed range can be created and allocated again.
func TestMelange_DeleteBlockCascades(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	tok := e.tok(apitest.MemberUser)
	top := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.90.0.0/16", "network_id": "n90"})
	topPath := melangeBlock(e.r.MemberA, melangeID(top))
	sub := obj(t, e.c.Do("POST", topPath+"/subnets", map[string]any{"subnet": map[string]any{"cidr": "10.90.1.0/24"}}, tok).Expect(201), "subnet")
	subPath := melangeBlock(e.r.MemberA, melangeID(sub))
	e.c.Do("POST", topPath+"/ip_routes", map[string]any{"ip_route": map[string]any{"destination": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.90.1.1"}}, tok).Expect(201)
	e.c.Do("POST", subPath+"/ip_routes", map[string]any{"ip_route": map[string]any{"destination": "192.169.0.0", "netmask": "255.255.0.0", "gateway": "10.90.1.1"}}, tok).Expect(201)
	// two interfaces take addresses of the subnet through the network
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n90", "vif-c"), nil, e.root).Expect(201)
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "n90", "vif-d"), nil, e.root).Expect(201)
	ifaceIPs := func(vif string) []string {
		ifc := obj(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/interfaces/%s", a, vif), nil, tok).Expect(200), "interface")
		var out []string
		for _, ip := range ifaceAddrs(ifc) {
			out = append(out, ip["address"].(string))
		}
		return out
	}
	c := ifaceIPs("vif-c")
	if len(c) != 1 || !strings.HasPrefix(c[0], "10.90.1.") || len(ifaceIPs("vif-d")) != 1 {
		t.Fatalf("interfaces before: vif-c %v, vif-d %v", c, ifaceIPs("vif-d"))
	}
	// vif-d is also allowed vif-c's address; vif-c's address has a floating IP
	e.c.Do("POST", melangeAllowed(e.r.MemberA, "vif-d"), map[string]any{"allowed_ip": map[string]any{"network_id": "n90", "ip_address": c[0]}}, tok).Expect(201)
	pub := e.block(t, e.r.MemberA, map[string]any{"cidr": "192.0.2.0/24", "type": "public"})
	pubBase := melangeBlock(e.r.MemberA, melangeID(pub)) + "/ip_addresses"
	e.c.Do("POST", pubBase, map[string]any{"ip_address": map[string]any{"address": "192.0.2.20"}}, e.root).Expect(201)
	e.c.Do("POST", subPath+"/ip_addresses/"+c[0]+"/inside_globals", map[string]any{"ip_addresses": []any{natRef(pub, "192.0.2.20")}}, tok).Expect(200)
	// and one address of the subnet is soft-deallocated (still held)
	e.c.Do("POST", subPath+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": "10.90.1.77"}}, tok).Expect(201)
	e.c.Do("DELETE", subPath+"/ip_addresses/10.90.1.77", nil, tok).Expect(200)
	other := e.block(t, e.r.MemberB, map[string]any{"cidr": "10.91.0.0/24"})
	e.c.Do("POST", melangeBlock(e.r.MemberB, melangeID(other))+"/ip_addresses", nil, e.root).Expect(201)

	if r := e.c.Do("DELETE", topPath, nil, tok).Expect(200); len(r.Body) != 0 {
		t.Errorf("delete body %q", r.Body)
	}
	wantFault(t, e.c.Do("GET", topPath, nil, tok), 404, "NotFound", "IpBlock Not Found")
	wantFault(t, e.c.Do("GET", subPath, nil, tok), 404, "NotFound", "IpBlock Not Found")
	wantFault(t, e.c.Do("GET", subPath+"/ip_routes", nil, tok), 404, "NotFound", "IpBlock Not Found")
	if got := ifaceIPs("vif-c"); len(got) != 0 {
		t.Errorf("vif-c still holds %v", got)
	}
	if got := ifaceIPs("vif-d"); len(got) != 0 {
		t.Errorf("vif-d still holds %v", got)
	}
	if l := items(t, e.c.Do("GET", melangeAllowed(e.r.MemberA, "vif-d"), nil, tok).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("allowances on deleted addresses remain: %v", l)
	}
	if l := items(t, e.c.Do("GET", pubBase+"/192.0.2.20/inside_locals", nil, tok).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("the floating IP keeps a link to a deleted address: %v", l)
	}
	if l := items(t, e.c.Do("GET", melangeBlock(e.r.MemberB, melangeID(other))+"/ip_addresses", nil, e.root).Expect(200), "ip_addresses"); len(l) != 1 {
		t.Errorf("another tenant's block changed: %v", l)
	}
	// the range is free again, down to the address that was soft-deallocated
	again := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.90.0.0/16"})
	e.c.Do("POST", melangeBlock(e.r.MemberA, melangeID(again))+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": "10.90.1.77"}}, tok).Expect(201)
}

// TestMemberDeleteKeepsMelangeInterfaces: a member that is the tenant of a
// Melange interface cannot be deleted (400 membership_member_delete_107,
// nothing changed): the interface would name a member that is gone. Once
// the interface is deleted, the member may be.
func TestMemberDeleteKeepsMelangeInterfaces(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	m := c.CreateMember(root, n.Unique("tenant"))
	vif := n.Unique("vif")
	melangeCreate(c, root, melangeIfaces, "interface", map[string]any{"interface": map[string]any{"id": vif, "tenant_id": fmt.Sprint(m)}})
	member := apitest.Path("/membership/member/", m)
	before := fmt.Sprint(c.Do("GET", member, nil, root).Expect(200).Content())
	r := c.Do("DELETE", member, nil, root).Expect(400)
	if got := r.ErrorCode(); got != "membership_member_delete_107" || !strings.Contains(r.String(), "interfaces") {
		t.Errorf("member delete with an interface: %s", r)
	}
	if after := fmt.Sprint(c.Do("GET", member, nil, root).Expect(200).Content()); after != before {
		t.Errorf("refused delete changed the member:\n%s\n%s", before, after)
	}
	c.Do("DELETE", melangeIfaces+"/"+vif, nil, root).Expect(200)
	c.Do("DELETE", member, nil, root).Expect(204)
}
