package server_test

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// --- objects of the auth matrix rows of the Melange dialect ---

// melangeFixture: block M (10.220.0.0/16, private) of tenant A holding
// address M (its first address, 10.220.0.0), and block P (10.221.0.0/16)
// that the subnet rows create subnets in.
type melangeFixture struct {
	blockM, blockP uint64
	addrM          string
	// policy M of tenant A with range M and octet M.
	policyM, rangeM, octetM uint64
	// MAC range K (a provider object, made by root).
	macRangeK uint64
}

var (
	melangeMu  sync.Mutex
	melangeFix = map[*fixture]*melangeFixture{}
	melangeSeq atomic.Uint64
)

func melangeBlocks(tenant uint64) string {
	return fmt.Sprintf("/v0.1/ipam/tenants/%d/ip_blocks", tenant)
}

func melangeBlock(tenant, block uint64) string {
	return fmt.Sprintf("%s/%d", melangeBlocks(tenant), block)
}

// melangeCreate POSTs body to path and returns the object under key.
func melangeCreate(c *apitest.Client, token, path, key string, body any) map[string]any {
	m := c.Do("POST", path, body, token).Expect(201).Map()
	obj, _ := m[key].(map[string]any)
	if obj == nil { // Expect has reported the failure
		obj = map[string]any{"id": "0", "address": ""}
	}
	return obj
}

func melangeID(obj map[string]any) uint64 {
	var id uint64
	s, _ := obj["id"].(string)
	fmt.Sscan(s, &id)
	return id
}

func melangeOf(f *fixture) *melangeFixture {
	melangeMu.Lock()
	defer melangeMu.Unlock()
	if x, ok := melangeFix[f]; ok {
		return x
	}
	x := &melangeFixture{}
	a := f.r.MemberA
	x.blockM = melangeID(melangeCreate(f.c, f.root, melangeBlocks(a), "ip_block", map[string]any{"ip_block": map[string]any{"cidr": "10.220.0.0/16", "type": "private"}}))
	x.blockP = melangeID(melangeCreate(f.c, f.root, melangeBlocks(a), "ip_block", map[string]any{"ip_block": map[string]any{"cidr": "10.221.0.0/16", "type": "private"}}))
	x.addrM = melangeCreate(f.c, f.root, melangeBlock(a, x.blockM)+"/ip_addresses", "ip_address", map[string]any{})["address"].(string)
	x.policyM = melangeID(melangeCreate(f.c, f.root, melangePolicies(a), "policy", map[string]any{"policy": map[string]any{"name": "policy M"}}))
	x.rangeM = melangeID(melangeCreate(f.c, f.root, melangePolicy(a, x.policyM)+"/unusable_ip_ranges", "ip_range", map[string]any{"ip_range": map[string]any{"offset": 0, "length": 1}}))
	x.octetM = melangeID(melangeCreate(f.c, f.root, melangePolicy(a, x.policyM)+"/unusable_ip_octets", "ip_octet", map[string]any{"ip_octet": map[string]any{"octet": 255}}))
	x.macRangeK = melangeID(melangeCreate(f.c, f.root, melangeMACRanges, "mac_address_range", map[string]any{"mac_address_range": map[string]any{"cidr": "02:00:00:00:00:00/40"}}))
	melangeFix[f] = x
	return x
}

const melangeMACRanges = "/v0.1/ipam/mac_address_ranges"

// newMelangeMACRangeBody: a fresh range each call (ranges may overlap).
func newMelangeMACRangeBody(f *fixture) request {
	n := melangeSeq.Add(1)
	return request{path: melangeMACRanges, body: map[string]any{"mac_address_range": map[string]any{"cidr": fmt.Sprintf("06:00:00:%02x:00:00/40", n%256)}}}
}

func melangeMACRangeK(f *fixture) request {
	return request{path: fmt.Sprintf("%s/%d", melangeMACRanges, melangeOf(f).macRangeK)}
}

func newMelangeMACRange(f *fixture) request {
	b := newMelangeMACRangeBody(f)
	return request{path: fmt.Sprintf("%s/%d", melangeMACRanges, melangeID(melangeCreate(f.c, f.root, melangeMACRanges, "mac_address_range", b.body)))}
}

func melangeBlocksA(f *fixture) request { return request{path: melangeBlocks(f.r.MemberA)} }

func newMelangeBlockBody(f *fixture) request {
	return request{path: melangeBlocks(f.r.MemberA), body: map[string]any{"ip_block": map[string]any{"cidr": "10.230.0.0/24", "type": "private"}}}
}

func melangeBlockM(f *fixture) request {
	return request{path: melangeBlock(f.r.MemberA, melangeOf(f).blockM)}
}

func putMelangeBlockM(f *fixture) request {
	r := melangeBlockM(f)
	r.body = map[string]any{"ip_block": map[string]any{"dns1": "192.0.2.53"}}
	return r
}

func newMelangeBlock(f *fixture) request {
	b := newMelangeBlockBody(f)
	return request{path: melangeBlock(f.r.MemberA, melangeID(melangeCreate(f.c, f.root, b.path, "ip_block", b.body)))}
}

func melangeSubnetsP(f *fixture) request {
	return request{path: melangeBlock(f.r.MemberA, melangeOf(f).blockP) + "/subnets"}
}

func newMelangeSubnetBody(f *fixture) request {
	r := melangeSubnetsP(f)
	r.body = map[string]any{"subnet": map[string]any{"cidr": fmt.Sprintf("10.221.%d.0/24", melangeSeq.Add(1)%256)}}
	return r
}

func melangeAddressesM(f *fixture) request {
	return request{path: melangeBlock(f.r.MemberA, melangeOf(f).blockM) + "/ip_addresses"}
}

func newMelangeAddressBody(f *fixture) request {
	r := melangeAddressesM(f)
	r.body = map[string]any{"ip_address": map[string]any{"used_by_device": "vm-1"}}
	return r
}

func melangeAddressM(f *fixture) request {
	return request{path: melangeAddressesM(f).path + "/" + melangeOf(f).addrM}
}

func newMelangeAddress(f *fixture) request {
	b := newMelangeAddressBody(f)
	addr := melangeCreate(f.c, f.root, b.path, "ip_address", b.body)["address"].(string)
	return request{path: b.path + "/" + addr}
}

func newDeallocatedMelangeAddress(f *fixture) request {
	r := newMelangeAddress(f)
	f.c.Do("DELETE", r.path, nil, f.root).Expect(200)
	return request{path: r.path + "/restore"}
}

func melangePolicies(tenant uint64) string {
	return fmt.Sprintf("/v0.1/ipam/tenants/%d/policies", tenant)
}

func melangePolicy(tenant, policy uint64) string {
	return fmt.Sprintf("%s/%d", melangePolicies(tenant), policy)
}

func melangePoliciesA(f *fixture) request { return request{path: melangePolicies(f.r.MemberA)} }

func newMelangePolicyBody(f *fixture) request {
	return request{path: melangePolicies(f.r.MemberA), body: map[string]any{"policy": map[string]any{"name": "p", "description": "d"}}}
}

func melangePolicyM(f *fixture) request {
	return request{path: melangePolicy(f.r.MemberA, melangeOf(f).policyM)}
}

func putMelangePolicyM(f *fixture) request {
	r := melangePolicyM(f)
	r.body = map[string]any{"policy": map[string]any{"description": "changed"}}
	return r
}

func newMelangePolicy(f *fixture) request {
	b := newMelangePolicyBody(f)
	return request{path: melangePolicy(f.r.MemberA, melangeID(melangeCreate(f.c, f.root, b.path, "policy", b.body)))}
}

func melangeRangesM(f *fixture) request {
	return request{path: melangePolicyM(f).path + "/unusable_ip_ranges"}
}

func newMelangeRangeBody(f *fixture) request {
	r := melangeRangesM(f)
	r.body = map[string]any{"ip_range": map[string]any{"offset": "10", "length": "2"}}
	return r
}

func melangeRangeM(f *fixture) request {
	return request{path: fmt.Sprintf("%s/%d", melangeRangesM(f).path, melangeOf(f).rangeM)}
}

func putMelangeRangeM(f *fixture) request {
	r := melangeRangeM(f)
	r.body = map[string]any{"ip_range": map[string]any{"length": 2}}
	return r
}

func newMelangeRange(f *fixture) request {
	b := newMelangeRangeBody(f)
	return request{path: fmt.Sprintf("%s/%d", b.path, melangeID(melangeCreate(f.c, f.root, b.path, "ip_range", b.body)))}
}

func melangeOctetsM(f *fixture) request {
	return request{path: melangePolicyM(f).path + "/unusable_ip_octets"}
}

func newMelangeOctetBody(f *fixture) request {
	r := melangeOctetsM(f)
	r.body = map[string]any{"ip_octet": map[string]any{"octet": 7}}
	return r
}

func melangeOctetM(f *fixture) request {
	return request{path: fmt.Sprintf("%s/%d", melangeOctetsM(f).path, melangeOf(f).octetM)}
}

func putMelangeOctetM(f *fixture) request {
	r := melangeOctetM(f)
	r.body = map[string]any{"ip_octet": map[string]any{"octet": 254}}
	return r
}

func newMelangeOctet(f *fixture) request {
	b := newMelangeOctetBody(f)
	return request{path: fmt.Sprintf("%s/%d", b.path, melangeID(melangeCreate(f.c, f.root, b.path, "ip_octet", b.body)))}
}

// --- API tests, named after the checklist of melange-facts §16 ---

// melangeEnv: a node, tenants A and B (members A and B) and their callers.
type melangeEnv struct {
	c    *apitest.Client
	n    *apitest.Node
	r    *apitest.Roles
	root string
}

func newMelangeEnv(t *testing.T) *melangeEnv {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	return &melangeEnv{c: c, n: n, r: c.Roles(), root: n.RootToken}
}

func (e *melangeEnv) tok(role apitest.Role) string { return e.r.Token(role) }

// block creates a block of tenant with the fields of body (as root); type,
// which is mandatory, is private unless fields give one.
func (e *melangeEnv) block(t *testing.T, tenant uint64, fields map[string]any) map[string]any {
	t.Helper()
	if _, ok := fields["type"]; !ok {
		fields["type"] = "private"
	}
	return melangeCreate(e.c.For(t), e.root, melangeBlocks(tenant), "ip_block", map[string]any{"ip_block": fields})
}

// melangeFault returns the single fault of a Melange error body and its name.
func melangeFault(t *testing.T, r *apitest.Response) (string, map[string]any) {
	t.Helper()
	m := r.Map()
	if len(m) != 1 {
		t.Errorf("%s: want one fault, got %v", r, m)
	}
	for name, v := range m {
		f, _ := v.(map[string]any)
		return name, f
	}
	return "", nil
}

// wantFault checks status, fault name and that detail contains want.
func wantFault(t *testing.T, r *apitest.Response, status int, name, want string) {
	t.Helper()
	if !r.Check(status) {
		return
	}
	got, f := melangeFault(t, r)
	if got != name {
		t.Errorf("%s: fault %q, want %q", r, got, name)
	}
	if code, _ := f["code"].(float64); int(code) != status {
		t.Errorf("%s: code %v, want %d", r, f["code"], status)
	}
	if d, _ := f["detail"].(string); !strings.Contains(d, want) {
		t.Errorf("%s: detail %q, want it to contain %q", r, d, want)
	}
}

func obj(t *testing.T, r *apitest.Response, key string) map[string]any {
	t.Helper()
	m, _ := r.Map()[key].(map[string]any)
	if m == nil {
		t.Fatalf("%s: no %q", r, key)
	}
	return m
}

func items(t *testing.T, r *apitest.Response, key string) []map[string]any {
	t.Helper()
	raw, ok := r.Map()[key].([]any)
	if !ok {
		t.Fatalf("%s: no list %q", r, key)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i], _ = v.(map[string]any)
	}
	return out
}

func strs(list []map[string]any, field string) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i], _ = m[field].(string)
	}
	return out
}

// Checklist 1: POST block → 201, echo with the URL tenant and the given dns values.
func TestMelange_CreateBlock(t *testing.T) {
	e := newMelangeEnv(t)
	r := e.c.Do("POST", melangeBlocks(e.r.MemberA), map[string]any{"ip_block": map[string]any{
		"network_id": "net-1", "cidr": "10.1.1.0/24", "type": "public", "dns1": "10.0.0.1", "dns2": "10.0.0.2"}}, e.tok(apitest.MemberUser)).Expect(201)
	b := obj(t, r, "ip_block")
	want := map[string]any{"tenant_id": fmt.Sprint(e.r.MemberA), "cidr": "10.1.1.0/24", "type": "public", "network_id": "net-1",
		"dns1": "10.0.0.1", "dns2": "10.0.0.2", "broadcast": "10.1.1.255", "netmask": "255.255.255.0", "gateway": "10.1.1.1", "parent_id": nil, "policy_id": nil}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("%s = %v, want %v", k, b[k], v)
		}
	}
	// Normalised to the network address; the IPv6 netmask in address form,
	// as the spec's example shows (fe::/96 → ffff:ffff:ffff:ffff:ffff:ffff::).
	v6 := e.block(t, e.r.MemberA, map[string]any{"cidr": "fe::1/64"})
	if v6["cidr"] != "fe::/64" || v6["netmask"] != "ffff:ffff:ffff:ffff::" || v6["broadcast"] != "fe::ffff:ffff:ffff:ffff" {
		t.Errorf("IPv6 block %v", v6)
	}
	if v96 := e.block(t, e.r.MemberA, map[string]any{"cidr": "fe:1::/96"}); v96["netmask"] != "ffff:ffff:ffff:ffff:ffff:ffff::" {
		t.Errorf("IPv6 /96 netmask %v", v96["netmask"])
	}
}

// Checklist 2: a bad CIDR → 400 containing "cidr is invalid".
func TestMelange_CreateBlockBadCIDR(t *testing.T) {
	e := newMelangeEnv(t)
	for _, cidr := range []string{"10...", "10.1.1.1////", "10.0.0.0/33"} {
		r := e.c.Do("POST", melangeBlocks(e.r.MemberA), map[string]any{"ip_block": map[string]any{"cidr": cidr, "type": "private"}}, e.root)
		wantFault(t, r, 400, "BadRequest", "cidr is invalid")
	}
	r := e.c.Do("POST", melangeBlocks(e.r.MemberA), map[string]any{"ip_block": map[string]any{"cidr": "10.0.0.0/24", "type": "shared"}}, e.root)
	wantFault(t, r, 400, "BadRequest", "type should be one among public, private")
}

// Checklist 3: POST block ignores body tenant_id and parent_id.
func TestMelange_CreateBlockIgnoresTenantAndParent(t *testing.T) {
	e := newMelangeEnv(t)
	p := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.2.0.0/16"})
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.3.0.0/16", "tenant_id": fmt.Sprint(e.r.MemberB), "parent_id": p["id"]})
	if b["tenant_id"] != fmt.Sprint(e.r.MemberA) || b["parent_id"] != nil {
		t.Errorf("block %v: want tenant %d and no parent", b, e.r.MemberA)
	}
}

// Checklist 4: GET block → 200 {"ip_block": {...}}.
func TestMelange_GetBlock(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.4.0.0/24"})
	got := obj(t, e.c.Do("GET", melangeBlock(e.r.MemberA, melangeID(b)), nil, e.tok(apitest.MemberAdmin)).Expect(200), "ip_block")
	if got["id"] != b["id"] || got["cidr"] != "10.4.0.0/24" || got["type"] != "private" {
		t.Errorf("got %v, created %v", got, b)
	}
}

// Checklist 5 (network_id part; policy_id in TestMelange_PolicyAppliesToAllocation) and 6: PUT
// changes network_id and ignores cidr, type, tenant_id and parent_id.
func TestMelange_UpdateBlock(t *testing.T) {
	e := newMelangeEnv(t)
	p := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.5.0.0/16"})
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.6.0.0/24", "network_id": "n1"})
	path := melangeBlock(e.r.MemberA, melangeID(b))
	got := obj(t, e.c.Do("PUT", path, map[string]any{"ip_block": map[string]any{"network_id": "n2", "cidr": "10.7.0.0/24",
		"type": "public", "tenant_id": fmt.Sprint(e.r.MemberB), "parent_id": p["id"]}}, e.tok(apitest.MemberUser)).Expect(200), "ip_block")
	if got["network_id"] != "n2" || got["cidr"] != "10.6.0.0/24" || got["type"] != "private" || got["tenant_id"] != fmt.Sprint(e.r.MemberA) || got["parent_id"] != nil {
		t.Errorf("updated %v", got)
	}
	if read := obj(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_block"); read["network_id"] != "n2" {
		t.Errorf("read after PUT: %v", read)
	}
	r := e.c.Do("PUT", path, map[string]any{"ip_block": map[string]any{"policy_id": "999999"}}, e.root)
	wantFault(t, r, 400, "BadRequest", "Policy with id = '999999' doesn't exist")
}

// Checklist 7: DELETE block → 200 with an empty body; the block is gone.
func TestMelange_DeleteBlock(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.8.0.0/24"})
	path := melangeBlock(e.r.MemberA, melangeID(b))
	if r := e.c.Do("DELETE", path, nil, e.tok(apitest.MemberUser)).Expect(200); len(r.Body) != 0 {
		t.Errorf("delete body %q", r.Body)
	}
	wantFault(t, e.c.Do("GET", path, nil, e.root), 404, "NotFound", "IpBlock Not Found")
	wantFault(t, e.c.Do("DELETE", path, nil, e.root), 404, "NotFound", "IpBlock Not Found")
}

// Checklist 8 and 12: the list holds the tenant's blocks only; ?type filters.
func TestMelange_ListBlocksTenantScopedAndTypeFilter(t *testing.T) {
	e := newMelangeEnv(t)
	a1 := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.9.0.0/24", "type": "private"})
	a2 := e.block(t, e.r.MemberA, map[string]any{"cidr": "192.0.2.0/24", "type": "public"})
	e.block(t, e.r.MemberB, map[string]any{"cidr": "10.9.0.0/24", "type": "private"})
	all := strs(items(t, e.c.Do("GET", melangeBlocks(e.r.MemberA), nil, e.tok(apitest.MemberUser)).Expect(200), "ip_blocks"), "id")
	if !slices.Equal(all, []string{a1["id"].(string), a2["id"].(string)}) {
		t.Errorf("tenant A lists %v", all)
	}
	priv := strs(items(t, e.c.Do("GET", melangeBlocks(e.r.MemberA)+"?type=private", nil, e.root).Expect(200), "ip_blocks"), "id")
	if !slices.Equal(priv, []string{a1["id"].(string)}) {
		t.Errorf("?type=private lists %v", priv)
	}
}

// Checklist 9 and 11: limit/marker paging by id, a next link with the last
// item's id as marker, and no ip_blocks_links on the last page.
func TestMelange_ListBlocksPagination(t *testing.T) {
	e := newMelangeEnv(t)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, e.block(t, e.r.MemberA, map[string]any{"cidr": fmt.Sprintf("10.10.%d.0/24", i)})["id"].(string))
	}
	r := e.c.Do("GET", melangeBlocks(e.r.MemberA)+"?limit=2&marker="+ids[1], nil, e.root).Expect(200)
	m := r.Map()
	if got := strs(items(t, r, "ip_blocks"), "id"); !slices.Equal(got, ids[2:4]) {
		t.Errorf("page after %s: %v, want %v", ids[1], got, ids[2:4])
	}
	links, _ := m["ip_blocks_links"].([]any)
	if len(links) != 1 {
		t.Fatalf("links %v", m["ip_blocks_links"])
	}
	l := links[0].(map[string]any)
	u, err := url.Parse(l["href"].(string))
	if l["rel"] != "next" || err != nil || u.Query().Get("marker") != ids[3] || u.Query().Get("limit") != "2" || u.Path != melangeBlocks(e.r.MemberA) {
		t.Errorf("next link %v", l)
	}
	last := e.c.Do("GET", melangeBlocks(e.r.MemberA)+"?limit=2&marker="+ids[3], nil, e.root).Expect(200)
	if _, ok := last.Map()["ip_blocks_links"]; ok {
		t.Errorf("last page has links: %s", last)
	}
	if got := strs(items(t, last, "ip_blocks"), "id"); !slices.Equal(got, ids[4:]) {
		t.Errorf("last page %v", got)
	}
	wantFault(t, e.c.Do("GET", melangeBlocks(e.r.MemberA)+"?limit=x", nil, e.root), 400, "BadRequest", "limit")
}

// Checklist 13: GET/PUT/DELETE of another tenant's block under one's own
// tenant → 404 IpBlock Not Found.
func TestMelange_OtherTenantsBlockNotFound(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberB, map[string]any{"cidr": "10.11.0.0/24"})
	path := melangeBlock(e.r.MemberA, melangeID(b))
	tok := e.tok(apitest.MemberAdmin)
	wantFault(t, e.c.Do("GET", path, nil, tok), 404, "NotFound", "IpBlock Not Found")
	wantFault(t, e.c.Do("PUT", path, map[string]any{"ip_block": map[string]any{"network_id": "x"}}, tok), 404, "NotFound", "IpBlock Not Found")
	wantFault(t, e.c.Do("DELETE", path, nil, tok), 404, "NotFound", "IpBlock Not Found")
	wantFault(t, e.c.Do("GET", path+"/subnets", nil, tok), 404, "NotFound", "IpBlock Not Found")
}

// §15: a member token on another tenant's URL is 403; a global token acts
// for any tenant.
func TestMelange_TenantAuthorisation(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberB, map[string]any{"cidr": "10.12.0.0/24"})
	for _, p := range []string{melangeBlocks(e.r.MemberB), melangeBlock(e.r.MemberB, melangeID(b)), melangeBlock(e.r.MemberB, melangeID(b)) + "/ip_addresses", "/v0.1/ipam/tenants/x/ip_blocks"} {
		wantFault(t, e.c.Do("GET", p, nil, e.tok(apitest.MemberUser)), 403, "Forbidden", fmt.Sprintf("User with tenant id %d cannot access this resource", e.r.MemberA))
	}
	wantFault(t, e.c.Do("POST", melangeBlocks(e.r.MemberB), map[string]any{"ip_block": map[string]any{"cidr": "10.13.0.0/24"}}, e.tok(apitest.MemberAdmin)),
		403, "Forbidden", "cannot access this resource")
	e.c.Do("GET", melangeBlock(e.r.MemberB, melangeID(b)), nil, e.root).Expect(200)
	wantFault(t, e.c.Do("GET", melangeBlocks(e.r.MemberA), nil, ""), 401, "Unauthorized", "")
}

// Checklist 14, 15 and 16: subnets are listed under their parent; a subnet
// keeps the given network_id and tenant_id and takes type and parent from
// the parent.
func TestMelange_Subnets(t *testing.T) {
	e := newMelangeEnv(t)
	p := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.14.0.0/16", "type": "public"})
	base := melangeBlock(e.r.MemberA, melangeID(p)) + "/subnets"
	s := obj(t, e.c.Do("POST", base, map[string]any{"subnet": map[string]any{"cidr": "10.14.1.0/24", "network_id": "n-sub",
		"tenant_id": fmt.Sprint(e.r.MemberB), "type": "private", "parent_id": "12345"}}, e.root).Expect(201), "subnet")
	if s["network_id"] != "n-sub" || s["tenant_id"] != fmt.Sprint(e.r.MemberB) || s["type"] != "public" || s["parent_id"] != p["id"] {
		t.Errorf("subnet %v", s)
	}
	s2 := obj(t, e.c.Do("POST", base, map[string]any{"subnet": map[string]any{"cidr": "10.14.2.0/24"}}, e.tok(apitest.MemberUser)).Expect(201), "subnet")
	if s2["tenant_id"] != fmt.Sprint(e.r.MemberA) || s2["gateway"] != "10.14.2.1" {
		t.Errorf("subnet with defaults %v", s2)
	}
	if got := strs(items(t, e.c.Do("GET", base, nil, e.tok(apitest.MemberUser)).Expect(200), "subnets"), "id"); !slices.Equal(got, []string{s["id"].(string), s2["id"].(string)}) {
		t.Errorf("subnets %v", got)
	}
	wantFault(t, e.c.Do("POST", base, map[string]any{"subnet": map[string]any{"cidr": "10.15.0.0/24"}}, e.root), 400, "BadRequest", "cidr should be within parent block's cidr")
	wantFault(t, e.c.Do("POST", base, map[string]any{"subnet": map[string]any{"cidr": "10.14.1.128/25"}}, e.root), 400, "BadRequest", "cidr overlaps with sibling")
	wantFault(t, e.c.Do("POST", base, map[string]any{"subnet": map[string]any{"cidr": "10.14.3.0/24", "tenant_id": fmt.Sprint(e.r.MemberB)}}, e.tok(apitest.MemberAdmin)), 403, "Forbidden", "")
}

// Checklist 17, 18 and 20: the first address of 10.1.1.0/28 is 10.1.1.0; a
// specific address is honoured; body tenant_id is the lessee
// (used_by_tenant, default the block's tenant).
func TestMelange_AllocateAddresses(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.1.1.0/28"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	first := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-1", "used_by_device": "dev-1"}}, e.tok(apitest.MemberUser)).Expect(201), "ip_address")
	want := map[string]any{"address": "10.1.1.0", "interface_id": "vif-1", "used_by_device": "dev-1", "used_by_tenant": fmt.Sprint(e.r.MemberA),
		"ip_block_id": b["id"], "version": float64(4)}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	second := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.1.1.2", "tenant_id": fmt.Sprint(e.r.MemberB)}}, e.root).Expect(201), "ip_address")
	if second["address"] != "10.1.1.2" || second["used_by_tenant"] != fmt.Sprint(e.r.MemberB) {
		t.Errorf("specific address %v", second)
	}
	// No body at all: the next free address (.1 is the default gateway).
	if third := obj(t, e.c.Do("POST", base, nil, e.root).Expect(201), "ip_address"); third["address"] != "10.1.1.3" {
		t.Errorf("third address %v", third)
	}
}

// Checklist 22 and 23: an IPv6 block needs a MAC (400 Required params are
// missing: mac_address); with one, the tenant-based generator uses the
// used_by_tenant and the MAC (melange-facts §7; the tenant is a member),
// shown expanded.
func TestMelange_AllocateIPv6(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "fe::/64"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	wantDetail(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{}}, e.root), 400, "BadRequest", "Required params are missing: mac_address")
	lessee := fmt.Sprint(e.r.MemberB)
	ip := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"mac_address": "00:ff:12:89:67:34", "tenant_id": lessee}}, e.root).Expect(201), "ip_address")
	want := tenantV6("fe::/64", lessee, 0x00ff12896734)
	if ip["address"] != want || ip["version"] != float64(6) {
		t.Errorf("IPv6 address %v, want %s", ip, want)
	}
	// Look-ups normalise the address.
	e.c.Do("GET", base+"/"+netip.MustParseAddr(want).String(), nil, e.root).Expect(200)
}

// Checklist 26: GET address → 200 {"ip_address": ...}; unknown → 404
// IpAddress Not Found.
func TestMelange_GetAddress(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.16.0.0/24"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	ip := obj(t, e.c.Do("POST", base, nil, e.root).Expect(201), "ip_address")
	got := obj(t, e.c.Do("GET", base+"/10.16.0.0", nil, e.tok(apitest.MemberUser)).Expect(200), "ip_address")
	if got["id"] != ip["id"] {
		t.Errorf("got %v, created %v", got, ip)
	}
	wantFault(t, e.c.Do("GET", base+"/10.16.0.9", nil, e.root), 404, "NotFound", "IpAddress Not Found")
	wantFault(t, e.c.Do("GET", base+"/nonsense", nil, e.root), 404, "NotFound", "IpAddress Not Found")
}

// Checklist 27 and 29 (and §8): DELETE soft-deallocates (200, empty body):
// the row stays, the address is still taken (409); a second DELETE is 200
// too; restore → 200 and the address is allocated again. Restore of an
// allocated address is 200 too.
func TestMelange_DeallocateAndRestore(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.17.0.0/24"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.17.0.5", "interface_id": "vif"}}, e.root).Expect(201)
	path := base + "/10.17.0.5"
	// Restoring an allocated address changes nothing and is no error (§8:
	// restore clears the mark and its timestamp).
	if r := e.c.Do("PUT", path+"/restore", nil, e.root).Expect(200); len(r.Body) != 0 {
		t.Errorf("restore body %q", r.Body)
	}
	if got := obj(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_address"); got["interface_id"] != "vif" {
		t.Errorf("restore of an allocated address changed it: %v", got)
	}
	if r := e.c.Do("DELETE", path, nil, e.tok(apitest.MemberUser)).Expect(200); len(r.Body) != 0 {
		t.Errorf("delete body %q", r.Body)
	}
	got := obj(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_address")
	if got["interface_id"] != nil {
		t.Errorf("deallocated address keeps its interface: %v", got)
	}
	if l := items(t, e.c.Do("GET", base, nil, e.root).Expect(200), "ip_addresses"); len(l) != 1 {
		t.Errorf("list after deallocation %v", l)
	}
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.17.0.5"}}, e.root), 409, "Conflict", "Address is already allocated")
	// Deallocating it again is 200, as in Melange, and a write (the
	// deallocation time is stamped again, its retention starts over); it
	// stays taken.
	index := func(r *apitest.Response) uint64 {
		n, _ := strconv.ParseUint(r.Header.Get("X-Regent-Index"), 10, 64)
		return n
	}
	first := index(e.c.Do("GET", path, nil, e.root).Expect(200))
	if r := e.c.Do("DELETE", path, nil, e.root).Expect(200); len(r.Body) != 0 || index(r) <= first {
		t.Errorf("second delete: body %q, index %d after %d", r.Body, index(r), first)
	}
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.17.0.5"}}, e.root), 409, "Conflict", "Address is already allocated")
	if r := e.c.Do("PUT", path+"/restore", nil, e.tok(apitest.MemberAdmin)).Expect(200); len(r.Body) != 0 {
		t.Errorf("restore body %q", r.Body)
	}
	e.c.Do("DELETE", path, nil, e.root).Expect(200) // allocated again, so it can be deallocated again
}

// A released address whose tenant (its tenant_id, a member) has been
// deleted since is not restored: 409 Conflict, in JSON and in XML, and
// the address stays released (Rules3). Another address of the block is
// restored as before.
func TestMelange_RestoreOfADeletedTenantsAddress(t *testing.T) {
	e := newMelangeEnv(t)
	gone := e.c.CreateMember(e.root, e.n.Unique("tenant"))
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.53.0.0/24"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.53.0.5", "tenant_id": fmt.Sprint(gone)}}, e.root).Expect(201)
	e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.53.0.6", "interface_id": "vif2"}}, e.root).Expect(201)
	path := base + "/10.53.0.5"
	e.c.Do("DELETE", path, nil, e.root).Expect(200)
	e.c.Do("DELETE", base+"/10.53.0.6", nil, e.root).Expect(200)
	e.c.Do("DELETE", apitest.Path("/membership/member/", gone), nil, e.root).Expect(204)
	before := fmt.Sprint(obj(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_address"))
	wantFault(t, e.c.Do("PUT", path+"/restore", nil, e.root), 409, "Conflict", "a member since deleted")
	wantXMLFault(t, e.c.Do("PUT", path+"/restore.xml", nil, e.root), 409, "Conflict", "a member since deleted")
	if after := fmt.Sprint(obj(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_address")); after != before {
		t.Errorf("a refused restore changed the address:\n%s\n%s", before, after)
	}
	// still taken: held until the purge
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.53.0.5"}}, e.root), 409, "Conflict", "Address is already allocated")
	e.c.Do("PUT", base+"/10.53.0.6/restore", nil, e.root).Expect(200)
}

// Checklist 28: addresses are listed by id, paged with ip_addresses_links.
func TestMelange_ListAddressesPagination(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.18.0.0/24"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	var ids []string
	for _, a := range []string{"10.18.0.9", "10.18.0.3", "10.18.0.7", "10.18.0.4", "10.18.0.5"} {
		ids = append(ids, obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": a}}, e.root).Expect(201), "ip_address")["id"].(string))
	}
	all := items(t, e.c.Do("GET", base, nil, e.root).Expect(200), "ip_addresses")
	if got := strs(all, "id"); !slices.Equal(got, ids) {
		t.Errorf("ids %v, want creation (id) order %v", got, ids)
	}
	r := e.c.Do("GET", base+"?limit=2&marker="+ids[1], nil, e.root).Expect(200)
	if got := strs(items(t, r, "ip_addresses"), "id"); !slices.Equal(got, ids[2:4]) {
		t.Errorf("page %v", got)
	}
	links, _ := r.Map()["ip_addresses_links"].([]any)
	if len(links) != 1 || !strings.Contains(links[0].(map[string]any)["href"].(string), "marker="+ids[3]) {
		t.Errorf("links %v", links)
	}
	if _, ok := e.c.Do("GET", base+"?limit=5", nil, e.root).Expect(200).Map()["ip_addresses_links"]; ok {
		t.Errorf("a complete page has links")
	}
}

// Checklist 30: every ip_address action under another tenant's block is 404
// IpBlock Not Found.
func TestMelange_AddressActionsOnOtherTenantsBlock(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberB, map[string]any{"cidr": "10.19.0.0/24"})
	e.c.Do("POST", melangeBlock(e.r.MemberB, melangeID(b))+"/ip_addresses", nil, e.root).Expect(201)
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	tok := e.tok(apitest.MemberUser)
	for _, mp := range [][2]string{{"GET", base}, {"POST", base}, {"GET", base + "/10.19.0.0"}, {"DELETE", base + "/10.19.0.0"}, {"PUT", base + "/10.19.0.0/restore"}} {
		wantFault(t, e.c.Do(mp[0], mp[1], nil, tok), 404, "NotFound", "IpBlock Not Found")
	}
}

// Checklist 74 (the parts these routes reach), 75 and 76: a /30 with the
// default gateway yields .0 and .2, then 422 IpBlock is full; gateway and
// broadcast are 409; an address outside the block 422; a subnetted block
// cannot allocate (422).
func TestMelange_AllocationErrors(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.20.0.0/30"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.20.0.1"}}, e.root), 409, "Conflict", "Address is already allocated")
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.20.0.3"}}, e.root), 409, "Conflict", "Address is already allocated")
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.21.0.1"}}, e.root), 422, "UnprocessableEntity", "Address does not belong to IpBlock")
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "bogus"}}, e.root), 400, "BadRequest", "address is invalid")
	var got []string
	for i := 0; i < 2; i++ {
		got = append(got, obj(t, e.c.Do("POST", base, nil, e.root).Expect(201), "ip_address")["address"].(string))
	}
	if !slices.Equal(got, []string{"10.20.0.0", "10.20.0.2"}) {
		t.Errorf("/30 gave %v", got)
	}
	wantFault(t, e.c.Do("POST", base, nil, e.root), 422, "UnprocessableEntity", "IpBlock is full")

	p := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.22.0.0/16"})
	pb := melangeBlock(e.r.MemberA, melangeID(p))
	e.c.Do("POST", pb+"/subnets", map[string]any{"subnet": map[string]any{"cidr": "10.22.0.0/24"}}, e.root).Expect(201)
	wantFault(t, e.c.Do("POST", pb+"/ip_addresses", nil, e.root), 422, "UnprocessableEntity", "Subnetted block cannot allocate IPAddress")
}

// The version document, for any authenticated caller.
func TestMelange_Versions(t *testing.T) {
	e := newMelangeEnv(t)
	m := e.c.Do("GET", "/v0.1/ipam", nil, e.tok(apitest.Robot)).Expect(200).Map()
	v, _ := m["versions"].([]any)
	if len(v) != 1 || v[0].(map[string]any)["name"] != "v0.1" {
		t.Errorf("versions %v", m)
	}
}

// jsonSuffix adds the .json suffix to the path of a matrix request.
func jsonSuffix(req func(*fixture) request) func(*fixture) request {
	return func(f *fixture) request {
		r := req(f)
		r.path += ".json"
		return r
	}
}

// Checklist 26 (the .json form) and §2: every route answers with a .json
// suffix, on literal and on wildcard endings alike; next links keep it.
func TestMelange_JSONSuffix(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	b := obj(t, e.c.Do("POST", melangeBlocks(e.r.MemberA)+".json", map[string]any{"ip_block": map[string]any{"cidr": "10.30.0.0/24", "type": "private"}}, tok).Expect(201), "ip_block")
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.31.0.0/24"})
	path := melangeBlock(e.r.MemberA, melangeID(b))
	if got := obj(t, e.c.Do("GET", path+".json", nil, tok).Expect(200), "ip_block"); got["id"] != b["id"] {
		t.Errorf("GET .json: %v", got)
	}
	r := e.c.Do("GET", melangeBlocks(e.r.MemberA)+".json?limit=1", nil, tok).Expect(200)
	links, _ := r.Map()["ip_blocks_links"].([]any)
	if len(links) != 1 || !strings.Contains(links[0].(map[string]any)["href"].(string), "/ip_blocks.json?") {
		t.Errorf("links %v", links)
	}
	e.c.Do("POST", path+"/ip_addresses.json", map[string]any{"ip_address": map[string]any{"address": "10.30.0.7"}}, tok).Expect(201)
	if got := obj(t, e.c.Do("GET", path+"/ip_addresses/10.30.0.7.json", nil, tok).Expect(200), "ip_address"); got["address"] != "10.30.0.7" {
		t.Errorf("GET address .json: %v", got)
	}
	wantFault(t, e.c.Do("GET", path+"/ip_addresses/10.30.0.8.json", nil, tok), 404, "NotFound", "IpAddress Not Found")
	e.c.Do("DELETE", path+"/ip_addresses/10.30.0.7.json", nil, tok).Expect(200)
	e.c.Do("PUT", path+"/ip_addresses/10.30.0.7/restore.json", nil, tok).Expect(200)
	e.c.Do("GET", path+"/subnets.json", nil, tok).Expect(200)
	e.c.Do("GET", "/v0.1/ipam.json", nil, tok).Expect(200)
	e.c.Do("DELETE", melangeBlock(e.r.MemberA, melangeID(e.block(t, e.r.MemberA, map[string]any{"cidr": "10.32.0.0/24"})))+".json", nil, tok).Expect(200)
}

// Malformed bodies and queries are 4xx in the Melange shape, never 5xx.
func TestMelange_NoServerErrors(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.40.0.0/24"})
	path := melangeBlock(e.r.MemberA, melangeID(b))
	bodies := []string{``, `{}`, `[]`, `"x"`, `{"ip_block":[]}`, `{"ip_block":"x"}`, `{"ip_block":{"cidr":1}}`, `{"ip_block":{"cidr":{"a":1}}}`,
		`{"ip_block":{"cidr":1e400}}`, `{"ip_block":{"policy_id":"abc"}}`, `{"subnet":{"tenant_id":"-1"}}`, `{"ip_address":{"address":[1]}}`,
		`{"ip_address":{"mac_address":"zz"}}`, `{"a":{"b":[` + strings.Repeat("[", 5000) + `]}}`, "{\"ip_block\":{\"cidr\":\"\xff\xfe\"}}"}
	for _, body := range bodies {
		for _, mp := range [][2]string{{"POST", melangeBlocks(e.r.MemberA)}, {"PUT", path}, {"POST", path + "/subnets"}, {"POST", path + "/ip_addresses"}} {
			r := e.c.Do(mp[0], mp[1], body, e.root)
			if r.Status >= 500 {
				t.Errorf("%s", r)
			}
		}
	}
	for _, q := range []string{"?limit=0", "?limit=-1", "?marker=abc", "?limit=99999999999999999999"} {
		wantFault(t, e.c.Do("GET", melangeBlocks(e.r.MemberA)+q, nil, e.root), 400, "BadRequest", "")
	}
}

// --- policies and unusable ip ranges and octets ---

// policy creates a policy of tenant with the fields of body (as root).
func (e *melangeEnv) policy(t *testing.T, tenant uint64, fields map[string]any) map[string]any {
	t.Helper()
	return melangeCreate(e.c.For(t), e.root, melangePolicies(tenant), "policy", map[string]any{"policy": fields})
}

// Checklist 44: the policy list is tenant-scoped; POST → 201 with the URL
// tenant, body tenant_id ignored; a policy needs a name (400).
func TestMelange_Policies(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	p := obj(t, e.c.Do("POST", melangePolicies(e.r.MemberA), map[string]any{"policy": map[string]any{"name": "rax_policy",
		"description": "policy_desc", "tenant_id": fmt.Sprint(e.r.MemberB)}}, tok).Expect(201), "policy")
	if p["name"] != "rax_policy" || p["description"] != "policy_desc" || p["tenant_id"] != fmt.Sprint(e.r.MemberA) || p["created_at"] == "" {
		t.Errorf("created %v", p)
	}
	p2 := e.policy(t, e.r.MemberA, map[string]any{"name": "second"})
	if p2["description"] != nil {
		t.Errorf("no description should be null: %v", p2)
	}
	e.policy(t, e.r.MemberB, map[string]any{"name": "b's"})
	if got := strs(items(t, e.c.Do("GET", melangePolicies(e.r.MemberA), nil, tok).Expect(200), "policies"), "id"); !slices.Equal(got, []string{p["id"].(string), p2["id"].(string)}) {
		t.Errorf("tenant A lists %v", got)
	}
	r := e.c.Do("GET", melangePolicies(e.r.MemberA)+".json?limit=1", nil, tok).Expect(200)
	links, _ := r.Map()["policies_links"].([]any)
	if len(links) != 1 || !strings.Contains(links[0].(map[string]any)["href"].(string), "marker="+p["id"].(string)) {
		t.Errorf("policies_links %v", links)
	}
	wantFault(t, e.c.Do("POST", melangePolicies(e.r.MemberA), map[string]any{"policy": map[string]any{"description": "x"}}, tok), 400, "BadRequest", "'name': ['name should be present']")
	wantFault(t, e.c.Do("GET", melangePolicies(e.r.MemberB), nil, tok), 403, "Forbidden", "cannot access this resource")
}

// Checklist 45: GET/PUT/DELETE policy → 200; PUT cannot change the
// tenant; another tenant's policy → 404 Policy Not Found.
func TestMelange_PolicyGetUpdateDelete(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberAdmin)
	p := e.policy(t, e.r.MemberA, map[string]any{"name": "p1", "description": "d1"})
	path := melangePolicy(e.r.MemberA, melangeID(p))
	if got := obj(t, e.c.Do("GET", path+".json", nil, tok).Expect(200), "policy"); got["id"] != p["id"] || got["name"] != "p1" {
		t.Errorf("read %v", got)
	}
	got := obj(t, e.c.Do("PUT", path, map[string]any{"policy": map[string]any{"name": "p2", "tenant_id": fmt.Sprint(e.r.MemberB)}}, tok).Expect(200), "policy")
	if got["name"] != "p2" || got["description"] != "d1" || got["tenant_id"] != fmt.Sprint(e.r.MemberA) {
		t.Errorf("updated %v", got)
	}
	wantFault(t, e.c.Do("PUT", path, map[string]any{"policy": map[string]any{"name": ""}}, tok), 400, "BadRequest", "name should be present")

	b := e.policy(t, e.r.MemberB, map[string]any{"name": "b"})
	other := melangePolicy(e.r.MemberA, melangeID(b))
	wantFault(t, e.c.Do("GET", other, nil, tok), 404, "NotFound", "Policy Not Found")
	wantFault(t, e.c.Do("PUT", other, map[string]any{"policy": map[string]any{"name": "x"}}, tok), 404, "NotFound", "Policy Not Found")
	wantFault(t, e.c.Do("DELETE", other, nil, tok), 404, "NotFound", "Policy Not Found")
	wantFault(t, e.c.Do("GET", melangePolicies(e.r.MemberA)+"/nonsense", nil, tok), 404, "NotFound", "Policy Not Found")

	if r := e.c.Do("DELETE", path+".json", nil, tok).Expect(200); len(r.Body) != 0 {
		t.Errorf("delete body %q", r.Body)
	}
	wantFault(t, e.c.Do("GET", path, nil, tok), 404, "NotFound", "Policy Not Found")
	wantFault(t, e.c.Do("GET", path+"/unusable_ip_ranges", nil, tok), 404, "NotFound", "Policy Not Found")
}

// Checklist 46 and 47 (and §3 rules 14 and 15): POST range {offset: "10",
// length: "2"} → 201 with integers; GET/PUT/DELETE → 200, PUT ignores
// policy_id; unknown policy → 404 Policy Not Found, unknown range → 404
// IpRange Not Found; non-integers and a negative length → 400; a negative
// offset is allowed.
func TestMelange_UnusableIPRanges(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	p := e.policy(t, e.r.MemberA, map[string]any{"name": "p"})
	p2 := e.policy(t, e.r.MemberA, map[string]any{"name": "p2"})
	base := melangePolicy(e.r.MemberA, melangeID(p)) + "/unusable_ip_ranges"
	r := obj(t, e.c.Do("POST", base, map[string]any{"ip_range": map[string]any{"offset": "10", "length": "2", "policy_id": p2["id"]}}, tok).Expect(201), "ip_range")
	if r["offset"] != float64(10) || r["length"] != float64(2) || r["policy_id"] != p["id"] || r["id"] == "" {
		t.Errorf("created %v", r)
	}
	path := fmt.Sprintf("%s/%s", base, r["id"])
	if got := obj(t, e.c.Do("GET", path+".json", nil, tok).Expect(200), "ip_range"); got["id"] != r["id"] || got["offset"] != float64(10) {
		t.Errorf("read %v", got)
	}
	got := obj(t, e.c.Do("PUT", path, map[string]any{"ip_range": map[string]any{"offset": -3, "policy_id": p2["id"]}}, tok).Expect(200), "ip_range")
	if got["offset"] != float64(-3) || got["length"] != float64(2) || got["policy_id"] != p["id"] {
		t.Errorf("updated %v", got)
	}
	r2 := obj(t, e.c.Do("POST", base+".json", map[string]any{"ip_range": map[string]any{"offset": 0, "length": 0}}, tok).Expect(201), "ip_range")
	if got := strs(items(t, e.c.Do("GET", base, nil, tok).Expect(200), "ip_ranges"), "id"); !slices.Equal(got, []string{r["id"].(string), r2["id"].(string)}) {
		t.Errorf("list %v", got)
	}
	if l := items(t, e.c.Do("GET", melangePolicy(e.r.MemberA, melangeID(p2))+"/unusable_ip_ranges", nil, tok).Expect(200), "ip_ranges"); len(l) != 0 {
		t.Errorf("policy_id in the body moved a range: %v", l)
	}
	for _, bad := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"offset": "abc", "length": 1}, "'offset': ['offset should be of type integer']"},
		{map[string]any{"offset": 1.5, "length": 1}, "offset should be of type integer"},
		{map[string]any{"offset": 1, "length": "x"}, "length should be of type integer"},
		{map[string]any{"offset": 1, "length": -1}, "'length': ['length should be a positive integer']"},
		{map[string]any{"length": 1}, "offset should be of type integer"},
		{map[string]any{"offset": 1}, "length should be of type integer"},
	} {
		wantFault(t, e.c.Do("POST", base, map[string]any{"ip_range": bad.body}, tok), 400, "BadRequest", bad.want)
	}
	wantFault(t, e.c.Do("PUT", path, map[string]any{"ip_range": map[string]any{"length": -2}}, tok), 400, "BadRequest", "length should be a positive integer")
	wantFault(t, e.c.Do("GET", base+"/999999", nil, tok), 404, "NotFound", "IpRange Not Found")
	wantFault(t, e.c.Do("PUT", base+"/999999", map[string]any{"ip_range": map[string]any{"length": 1}}, tok), 404, "NotFound", "IpRange Not Found")
	wantFault(t, e.c.Do("DELETE", base+"/x", nil, tok), 404, "NotFound", "IpRange Not Found")
	unknown := melangePolicies(e.r.MemberA) + "/999999/unusable_ip_ranges"
	wantFault(t, e.c.Do("POST", unknown, map[string]any{"ip_range": map[string]any{"offset": 1, "length": 1}}, tok), 404, "NotFound", "Policy Not Found")
	wantFault(t, e.c.Do("GET", unknown, nil, tok), 404, "NotFound", "Policy Not Found")
	b := e.policy(t, e.r.MemberB, map[string]any{"name": "b"})
	wantFault(t, e.c.Do("GET", fmt.Sprintf("%s/%s", melangePolicy(e.r.MemberA, melangeID(b))+"/unusable_ip_ranges", r["id"]), nil, tok), 404, "NotFound", "Policy Not Found")

	if resp := e.c.Do("DELETE", path+".json", nil, tok).Expect(200); len(resp.Body) != 0 {
		t.Errorf("delete body %q", resp.Body)
	}
	wantFault(t, e.c.Do("GET", path, nil, tok), 404, "NotFound", "IpRange Not Found")
}

// Checklist 48: the same for octets (IpOctet Not Found; 0-255); lists
// paginate with ip_octets_links.
func TestMelange_UnusableIPOctets(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	p := e.policy(t, e.r.MemberA, map[string]any{"name": "p"})
	base := melangePolicy(e.r.MemberA, melangeID(p)) + "/unusable_ip_octets"
	var ids []string
	for _, o := range []any{"123", 124, 0, 255} {
		got := obj(t, e.c.Do("POST", base, map[string]any{"ip_octet": map[string]any{"octet": o, "policy_id": "1"}}, tok).Expect(201), "ip_octet")
		if got["policy_id"] != p["id"] || fmt.Sprint(got["octet"]) != fmt.Sprint(o) {
			t.Errorf("created %v from %v", got, o)
		}
		ids = append(ids, got["id"].(string))
	}
	path := base + "/" + ids[0]
	if got := obj(t, e.c.Do("GET", path+".json", nil, tok).Expect(200), "ip_octet"); got["octet"] != float64(123) {
		t.Errorf("read %v", got)
	}
	if got := obj(t, e.c.Do("PUT", path, map[string]any{"ip_octet": map[string]any{"octet": 200}}, tok).Expect(200), "ip_octet"); got["octet"] != float64(200) || got["id"] != ids[0] {
		t.Errorf("updated %v", got)
	}
	r := e.c.Do("GET", base+".json?limit=2&marker="+ids[0], nil, tok).Expect(200)
	if got := strs(items(t, r, "ip_octets"), "id"); !slices.Equal(got, ids[1:3]) {
		t.Errorf("page %v, want %v", got, ids[1:3])
	}
	links, _ := r.Map()["ip_octets_links"].([]any)
	if len(links) != 1 || !strings.Contains(links[0].(map[string]any)["href"].(string), "marker="+ids[2]) {
		t.Errorf("links %v", links)
	}
	for _, bad := range []struct {
		octet any
		want  string
	}{{256, "octet should be between 0 and 255"}, {-1, "octet should be between 0 and 255"}, {"x", "'octet': ['octet should be of type integer']"}, {nil, "octet should be of type integer"}} {
		wantFault(t, e.c.Do("POST", base, map[string]any{"ip_octet": map[string]any{"octet": bad.octet}}, tok), 400, "BadRequest", bad.want)
	}
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_octet": map[string]any{}}, tok), 400, "BadRequest", "octet should be of type integer")
	wantFault(t, e.c.Do("PUT", path, map[string]any{"ip_octet": map[string]any{"octet": 300}}, tok), 400, "BadRequest", "octet should be between 0 and 255")
	wantFault(t, e.c.Do("GET", base+"/999999", nil, tok), 404, "NotFound", "IpOctet Not Found")
	wantFault(t, e.c.Do("PUT", base+"/999999", map[string]any{"ip_octet": map[string]any{"octet": 1}}, tok), 404, "NotFound", "IpOctet Not Found")
	wantFault(t, e.c.Do("POST", melangePolicies(e.r.MemberA)+"/999999/unusable_ip_octets", map[string]any{"ip_octet": map[string]any{"octet": 1}}, tok), 404, "NotFound", "Policy Not Found")
	e.c.Do("DELETE", path, nil, tok).Expect(200)
	wantFault(t, e.c.Do("DELETE", path, nil, tok), 404, "NotFound", "IpOctet Not Found")
	if l := items(t, e.c.Do("GET", base, nil, tok).Expect(200), "ip_octets"); len(l) != 3 {
		t.Errorf("after delete %v", l)
	}
}

// Checklist 5 (policy_id part), 76 (policy-disallowed → 422) and 77 (the
// §6 table): a block with a policy skips its unusable addresses on
// allocation — octet 1 skips x.x.x.1; the range (-3, 2) of a /29 takes .5
// and .6 — and refuses them when asked for (422). Editing the policy's
// ranges and octets re-applies it to the block at once; deleting the policy
// frees the block (policy_id null).
func TestMelange_PolicyAppliesToAllocation(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	p := e.policy(t, e.r.MemberA, map[string]any{"name": "p"})
	ppath := melangePolicy(e.r.MemberA, melangeID(p))
	oct := obj(t, e.c.Do("POST", ppath+"/unusable_ip_octets", map[string]any{"ip_octet": map[string]any{"octet": 1}}, tok).Expect(201), "ip_octet")
	// The gateway is put at .6 so that .1 is free but for the policy.
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.50.0.0/29", "gateway": "10.50.0.6"})
	bpath := melangeBlock(e.r.MemberA, melangeID(b))
	if got := obj(t, e.c.Do("PUT", bpath, map[string]any{"ip_block": map[string]any{"policy_id": p["id"]}}, tok).Expect(200), "ip_block"); got["policy_id"] != p["id"] {
		t.Fatalf("PUT policy_id: %v", got)
	}
	alloc := func() *apitest.Response { return e.c.Do("POST", bpath+"/ip_addresses", nil, tok) }
	var got []string
	for i := 0; i < 2; i++ {
		got = append(got, obj(t, alloc().Expect(201), "ip_address")["address"].(string))
	}
	if !slices.Equal(got, []string{"10.50.0.0", "10.50.0.2"}) {
		t.Errorf("with octet 1 unusable: %v, want .0 .2", got)
	}
	specific := func(a string) *apitest.Response {
		return e.c.Do("POST", bpath+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": a}}, tok)
	}
	wantFault(t, specific("10.50.0.1"), 422, "UnprocessableEntity", "policy")

	// A new range applies to the block at once: .5 and .6 go.
	e.c.Do("POST", ppath+"/unusable_ip_ranges", map[string]any{"ip_range": map[string]any{"offset": -3, "length": 2}}, tok).Expect(201)
	wantFault(t, specific("10.50.0.5"), 422, "UnprocessableEntity", "policy")
	got = nil
	for i := 0; i < 2; i++ {
		got = append(got, obj(t, alloc().Expect(201), "ip_address")["address"].(string))
	}
	if !slices.Equal(got, []string{"10.50.0.3", "10.50.0.4"}) {
		t.Errorf("next: %v, want .3 .4", got)
	}
	wantFault(t, alloc(), 422, "UnprocessableEntity", "")

	// Deleting the octet frees .1.
	e.c.Do("DELETE", fmt.Sprintf("%s/unusable_ip_octets/%s", ppath, oct["id"]), nil, tok).Expect(200)
	specific("10.50.0.1").Expect(201)

	// Deleting the policy nulls the block's policy_id and frees .5.
	e.c.Do("DELETE", ppath, nil, tok).Expect(200)
	if got := obj(t, e.c.Do("GET", bpath, nil, tok).Expect(200), "ip_block"); got["policy_id"] != nil {
		t.Errorf("block keeps a deleted policy: %v", got)
	}
	specific("10.50.0.5").Expect(201)

	// A block created with a policy uses it from the start; §6 table rows.
	p2 := e.policy(t, e.r.MemberA, map[string]any{"name": "p2"})
	p2path := melangePolicy(e.r.MemberA, melangeID(p2))
	for _, rg := range [][2]int{{0, 2}, {3, 2}} {
		e.c.Do("POST", p2path+"/unusable_ip_ranges", map[string]any{"ip_range": map[string]any{"offset": rg[0], "length": rg[1]}}, tok).Expect(201)
	}
	b2 := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.51.0.0/29", "gateway": "10.51.0.7", "policy_id": p2["id"]})
	b2path := melangeBlock(e.r.MemberA, melangeID(b2))
	for a, want := range map[string]int{"10.51.0.1": 422, "10.51.0.4": 422, "10.51.0.2": 201, "10.51.0.6": 201} {
		e.c.Do("POST", b2path+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": a}}, tok).Expect(want)
	}
	if a := obj(t, e.c.Do("POST", b2path+"/ip_addresses", nil, tok).Expect(201), "ip_address")["address"]; a != "10.51.0.5" {
		t.Errorf("(0,2)+(3,2): next %v, want 10.51.0.5", a)
	}
}

// Malformed policy, range and octet bodies are 4xx, never 5xx.
func TestMelange_PolicyNoServerErrors(t *testing.T) {
	e := newMelangeEnv(t)
	p := e.policy(t, e.r.MemberA, map[string]any{"name": "p"})
	pp := melangePolicy(e.r.MemberA, melangeID(p))
	rg := melangeCreate(e.c.For(t), e.root, pp+"/unusable_ip_ranges", "ip_range", map[string]any{"ip_range": map[string]any{"offset": 1, "length": 1}})
	oc := melangeCreate(e.c.For(t), e.root, pp+"/unusable_ip_octets", "ip_octet", map[string]any{"ip_octet": map[string]any{"octet": 1}})
	bodies := []string{``, `{}`, `[]`, `"x"`, `{"policy":[]}`, `{"policy":{"name":1}}`, `{"policy":{"name":{"a":1}}}`, `{"ip_range":"x"}`,
		`{"ip_range":{"offset":1e400,"length":1}}`, `{"ip_range":{"offset":"99999999999999999999","length":1}}`, `{"ip_range":{"offset":null,"length":null}}`,
		`{"ip_octet":{"octet":1e3}}`, `{"ip_octet":{"octet":[1]}}`, `{"ip_octet":{"octet":true}}`, `{"a":{"b":[` + strings.Repeat("[", 5000) + `]}}`}
	routes := [][2]string{{"POST", melangePolicies(e.r.MemberA)}, {"PUT", pp}, {"POST", pp + "/unusable_ip_ranges"}, {"PUT", fmt.Sprintf("%s/unusable_ip_ranges/%s", pp, rg["id"])},
		{"POST", pp + "/unusable_ip_octets"}, {"PUT", fmt.Sprintf("%s/unusable_ip_octets/%s", pp, oc["id"])}}
	for _, body := range bodies {
		for _, mp := range routes {
			if r := e.c.Do(mp[0], mp[1], body, e.root); r.Status >= 500 {
				t.Errorf("%s", r)
			}
		}
	}
	for _, q := range []string{"?limit=0", "?marker=abc"} {
		for _, path := range []string{melangePolicies(e.r.MemberA), pp + "/unusable_ip_ranges", pp + "/unusable_ip_octets"} {
			wantFault(t, e.c.Do("GET", path+q, nil, e.root), 400, "BadRequest", "")
		}
	}
}

func xmlSuffix(req func(*fixture) request) func(*fixture) request {
	return func(f *fixture) request {
		r := req(f)
		r.path += ".xml"
		return r
	}
}

// --- XML (melange-facts §14) ---

// xnode is an XML element read back generically.
type xnode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xnode    `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n xnode) attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

func (n xnode) children(name string) []xnode {
	var out []xnode
	for _, c := range n.Nodes {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

// xmlRoot checks that r is an XML response with root element name.
func xmlRoot(t *testing.T, r *apitest.Response, name string) xnode {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
		t.Fatalf("%s: Content-Type %q, want application/xml", r, ct)
	}
	if !strings.HasPrefix(string(r.Body), "<?xml") {
		t.Errorf("%s: no XML declaration", r)
	}
	var n xnode
	if err := xml.Unmarshal(r.Body, &n); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	if n.XMLName.Local != name {
		t.Fatalf("%s: root <%s>, want <%s>", r, n.XMLName.Local, name)
	}
	return n
}

// wantXMLFault checks an XML Melange error: <Name code="status" ...
// detail="...want..."/>.
func wantXMLFault(t *testing.T, r *apitest.Response, status int, name, want string) {
	t.Helper()
	if !r.Check(status) {
		return
	}
	n := xmlRoot(t, r, name)
	if code, _ := n.attr("code"); code != fmt.Sprint(status) {
		t.Errorf("%s: code %q, want %d", r, code, status)
	}
	if msg, _ := n.attr("message"); msg == "" {
		t.Errorf("%s: no message", r)
	}
	if d, _ := n.attr("detail"); !strings.Contains(d, want) {
		t.Errorf("%s: detail %q, want it to contain %q", r, d, want)
	}
}

func hdr(token string, kv ...string) http.Header {
	h := http.Header{}
	if token != "" {
		h.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func isJSON(t *testing.T, r *apitest.Response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
}

// Checklist 10: pagination with .xml: <ip_blocks> of <ip_block> elements
// and an Atom next link with the same href rule as JSON (the path keeps
// its .xml suffix); the last page has no link.
func TestMelange_XMLListBlocksPagination(t *testing.T) {
	e := newMelangeEnv(t)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, e.block(t, e.r.MemberA, map[string]any{"cidr": fmt.Sprintf("10.50.%d.0/24", i)})["id"].(string))
	}
	path := melangeBlocks(e.r.MemberA) + ".xml"
	root := xmlRoot(t, e.c.Do("GET", path+"?limit=2&marker="+ids[1], nil, e.root).Expect(200), "ip_blocks")
	var got []string
	for _, b := range root.children("ip_block") {
		id, _ := b.attr("id")
		got = append(got, id)
		if cidr, _ := b.attr("cidr"); !strings.HasPrefix(cidr, "10.50.") {
			t.Errorf("block %s cidr %q", id, cidr)
		}
		if tenant, _ := b.attr("tenant_id"); tenant != fmt.Sprint(e.r.MemberA) {
			t.Errorf("block %s tenant %q", id, tenant)
		}
		if _, ok := b.attr("parent_id"); ok {
			t.Errorf("block %s: a null field is an attribute", id)
		}
	}
	if !slices.Equal(got, ids[2:4]) {
		t.Errorf("page after %s: %v, want %v", ids[1], got, ids[2:4])
	}
	links := root.children("link")
	if len(links) != 1 {
		t.Fatalf("links %+v", root)
	}
	l := links[0]
	if l.XMLName.Space != "http://www.w3.org/2005/Atom" {
		t.Errorf("link namespace %q", l.XMLName.Space)
	}
	rel, _ := l.attr("rel")
	href, _ := l.attr("href")
	u, err := url.Parse(href)
	if rel != "next" || err != nil || u.Query().Get("marker") != ids[3] || u.Query().Get("limit") != "2" || u.Path != path {
		t.Errorf("next link rel=%q href=%q", rel, href)
	}
	last := xmlRoot(t, e.c.Do("GET", path+"?limit=2&marker="+ids[3], nil, e.root).Expect(200), "ip_blocks")
	if len(last.children("link")) != 0 || len(last.children("ip_block")) != 1 {
		t.Errorf("last page %+v", last)
	}
	wantXMLFault(t, e.c.Do("GET", path+"?limit=x", nil, e.root), 400, "BadRequest", "limit")
}

// Checklist 27 with .xml: DELETE address.xml → 200 with an empty body; the
// address stays (listed, taken) until restored.
func TestMelange_XMLDeallocate(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.51.0.0/24"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.51.0.5", "interface_id": "vif"}}, e.root).Expect(201)
	path := base + "/10.51.0.5"
	if r := e.c.Do("DELETE", path+".xml", nil, e.tok(apitest.MemberUser)).Expect(200); len(r.Body) != 0 {
		t.Errorf("delete body %q", r.Body)
	}
	ip := xmlRoot(t, e.c.Do("GET", path+".xml", nil, e.root).Expect(200), "ip_address")
	if a, _ := ip.attr("address"); a != "10.51.0.5" {
		t.Errorf("address %q", a)
	}
	if _, ok := ip.attr("interface_id"); ok {
		t.Errorf("deallocated address keeps its interface: %+v", ip)
	}
	list := xmlRoot(t, e.c.Do("GET", base+".xml", nil, e.root).Expect(200), "ip_addresses")
	if l := list.children("ip_address"); len(l) != 1 {
		t.Errorf("list after deallocation %+v", list)
	}
	e.c.Do("DELETE", path+".xml", nil, e.root).Expect(200) // again: Melange stamps it again
	e.c.Do("PUT", path+"/restore.xml", nil, e.root).Expect(200)
	wantXMLFault(t, e.c.Do("GET", base+"/10.51.0.99.xml", nil, e.root), 404, "NotFound", "IpAddress Not Found")
}

// §14: without a suffix, Accept chooses; JSON is the default and wins ties.
func TestMelange_XMLAcceptHeader(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.52.0.0/24", "dns1": "8.8.8.8"})
	path := melangeBlock(e.r.MemberA, melangeID(b))
	for _, accept := range []string{"application/xml", "text/xml", "application/json;q=0.5, application/xml", "application/xml, */*"} {
		n := xmlRoot(t, e.c.DoHeader("GET", path, nil, hdr(e.root, "Accept", accept)).Expect(200), "ip_block")
		if id, _ := n.attr("id"); id != b["id"] {
			t.Errorf("Accept %q: id %q", accept, id)
		}
		if d, _ := n.attr("dns1"); d != "8.8.8.8" {
			t.Errorf("Accept %q: dns1 %q", accept, d)
		}
	}
	for _, accept := range []string{"", "application/json", "*/*", "application/json, application/xml", "application/xml;q=0.1, application/json"} {
		r := e.c.DoHeader("GET", path, nil, hdr(e.root, "Accept", accept)).Expect(200)
		isJSON(t, r)
		obj(t, r, "ip_block")
	}
	v := xmlRoot(t, e.c.DoHeader("GET", "/v0.1/ipam", nil, hdr(e.root, "Accept", "application/xml")).Expect(200), "versions")
	vs := v.children("version")
	if len(vs) != 1 {
		t.Fatalf("versions %+v", v)
	}
	if name, _ := vs[0].attr("name"); name != "v0.1" || len(vs[0].children("link")) != 1 {
		t.Errorf("version %+v", vs[0])
	}
	list := xmlRoot(t, e.c.DoHeader("GET", melangeBlocks(e.r.MemberA), nil, hdr(e.root, "Accept", "application/xml")).Expect(200), "ip_blocks")
	if len(list.children("ip_block")) != 1 {
		t.Errorf("list %+v", list)
	}
}

// §14: a .xml or .json suffix wins over Accept, on literal and wildcard
// endings alike.
func TestMelange_XMLSuffixOverridesAccept(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.53.0.0/24"})
	path := melangeBlock(e.r.MemberA, melangeID(b))
	n := xmlRoot(t, e.c.DoHeader("GET", path+".xml", nil, hdr(e.root, "Accept", "application/json")).Expect(200), "ip_block")
	if id, _ := n.attr("id"); id != b["id"] {
		t.Errorf("id %q", id)
	}
	xmlRoot(t, e.c.DoHeader("GET", melangeBlocks(e.r.MemberA)+".xml", nil, hdr(e.root, "Accept", "application/json")).Expect(200), "ip_blocks")
	r := e.c.DoHeader("GET", path+".json", nil, hdr(e.root, "Accept", "application/xml")).Expect(200)
	isJSON(t, r)
	if got := obj(t, r, "ip_block"); got["id"] != b["id"] {
		t.Errorf("json %v", got)
	}
	r = e.c.DoHeader("GET", melangeBlocks(e.r.MemberA)+".json", nil, hdr(e.root, "Accept", "application/xml")).Expect(200)
	isJSON(t, r)
	items(t, r, "ip_blocks")
	wantFault(t, e.c.DoHeader("GET", melangeBlock(e.r.MemberA, 999999)+".json", nil, hdr(e.root, "Accept", "application/xml")), 404, "NotFound", "IpBlock Not Found")
}

// §14: XML request bodies, by Content-Type (or, without one, the .xml
// suffix); fields as attributes or child elements.
func TestMelange_XMLCreateBody(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	body := `<?xml version="1.0"?><ip_block cidr="10.54.0.0/24" type="private" tenant_id="999"><dns1>8.8.8.8</dns1><network_id>net-1</network_id></ip_block>`
	r := e.c.DoHeader("POST", melangeBlocks(e.r.MemberA), body, hdr(tok, "Content-Type", "application/xml")).Expect(201)
	isJSON(t, r)
	got := obj(t, r, "ip_block")
	if got["cidr"] != "10.54.0.0/24" || got["type"] != "private" || got["dns1"] != "8.8.8.8" || got["network_id"] != "net-1" || got["tenant_id"] != fmt.Sprint(e.r.MemberA) {
		t.Errorf("created %v", got)
	}
	n := xmlRoot(t, e.c.DoHeader("POST", melangeBlocks(e.r.MemberA)+".xml", `<ip_block cidr="10.55.0.0/24" type="private"/>`, hdr(tok)).Expect(201), "ip_block")
	if cidr, _ := n.attr("cidr"); cidr != "10.55.0.0/24" {
		t.Errorf("created %+v", n)
	}
	if gw, _ := n.attr("gateway"); gw != "10.55.0.1" {
		t.Errorf("gateway %q", gw)
	}
	id, _ := n.attr("id")
	addr := xmlRoot(t, e.c.DoHeader("POST", melangeBlocks(e.r.MemberA)+"/"+id+"/ip_addresses", `<ip_address address="10.55.0.7" interface_id="vif-x"/>`,
		hdr(tok, "Content-Type", "application/xml; charset=utf-8", "Accept", "application/xml")).Expect(201), "ip_address")
	if a, _ := addr.attr("address"); a != "10.55.0.7" {
		t.Errorf("address %+v", addr)
	}
	wantXMLFault(t, e.c.DoHeader("POST", melangeBlocks(e.r.MemberA)+".xml", `<ip_block cidr="10..."/>`, hdr(tok, "Content-Type", "application/xml")), 400, "BadRequest", "cidr is invalid")
	wantXMLFault(t, e.c.DoHeader("POST", melangeBlocks(e.r.MemberA)+".xml", `<ip_block cidr=`, hdr(tok, "Content-Type", "application/xml")), 400, "BadRequest", "Malformed request body")
	// A JSON body to a .xml path is read by its Content-Type.
	e.c.DoHeader("POST", melangeBlocks(e.r.MemberA)+".xml", `{"ip_block": {"cidr": "10.56.0.0/24", "type": "private"}}`, hdr(tok, "Content-Type", "application/json")).Expect(201)
}

// §14: errors are XML when XML was asked for, the code an attribute of the
// fault element; authentication and tenant errors included.
func TestMelange_XMLErrors(t *testing.T) {
	e := newMelangeEnv(t)
	missing := melangeBlock(e.r.MemberA, 999999)
	wantXMLFault(t, e.c.Do("GET", missing+".xml", nil, e.root), 404, "NotFound", "IpBlock Not Found")
	wantXMLFault(t, e.c.DoHeader("GET", missing, nil, hdr(e.root, "Accept", "application/xml")), 404, "NotFound", "IpBlock Not Found")
	wantXMLFault(t, e.c.Do("GET", melangeBlocks(e.r.MemberA)+".xml", nil, ""), 401, "Unauthorized", "")
	wantXMLFault(t, e.c.Do("GET", melangeBlocks(e.r.MemberB)+".xml", nil, e.tok(apitest.MemberUser)), 403, "Forbidden", "cannot access this resource")
	wantFault(t, e.c.Do("GET", missing, nil, e.root), 404, "NotFound", "IpBlock Not Found")
}

// --- MAC address ranges (melange-facts §9; provider routes, §15) ---

// Checklist 70: POST {cidr: "ab-bc-cd-12-23-34/40"} → 201; GET, list and
// DELETE → 200; an unknown range → 404 MacAddressRange Not Found.
func TestMelange_MACRanges(t *testing.T) {
	e := newMelangeEnv(t)
	r := e.c.Do("POST", melangeMACRanges, map[string]any{"mac_address_range": map[string]any{"cidr": "ab-bc-cd-12-23-34/40"}}, e.root).Expect(201)
	m := obj(t, r, "mac_address_range")
	// The cidr is kept as given, as Melange keeps it (not normalised).
	if m["id"] == "" || m["cidr"] != "ab-bc-cd-12-23-34/40" {
		t.Fatalf("created %v", m)
	}
	path := fmt.Sprintf("%s/%d", melangeMACRanges, melangeID(m))
	if got := obj(t, e.c.Do("GET", path, nil, e.root).Expect(200), "mac_address_range"); got["id"] != m["id"] || got["cidr"] != m["cidr"] {
		t.Errorf("GET %v, want %v", got, m)
	}
	if got := strs(items(t, e.c.Do("GET", melangeMACRanges, nil, e.root).Expect(200), "mac_address_ranges"), "id"); !slices.Contains(got, m["id"].(string)) {
		t.Errorf("list %v lacks %v", got, m["id"])
	}
	if r := e.c.Do("DELETE", path, nil, e.root).Expect(200); len(r.Body) != 0 {
		t.Errorf("delete body %q", r.Body)
	}
	wantFault(t, e.c.Do("GET", path, nil, e.root), 404, "NotFound", "MacAddressRange Not Found")
	wantFault(t, e.c.Do("DELETE", path, nil, e.root), 404, "NotFound", "MacAddressRange Not Found")
	wantFault(t, e.c.Do("GET", melangeMACRanges+"/abc", nil, e.root), 404, "NotFound", "MacAddressRange Not Found")
	if got := items(t, e.c.Do("GET", melangeMACRanges, nil, e.root).Expect(200), "mac_address_ranges"); len(got) != 0 {
		t.Errorf("list after delete %v", got)
	}
}

// §9 and checklist 70: any MAC form is read, and the cidr is kept as
// given, as Melange keeps it (its test finds the range by the cidr it
// posted); allocation uses the range it names, host bits cleared.
func TestMelange_MACRangeKeptAsGiven(t *testing.T) {
	e := newMelangeEnv(t)
	for _, cidr := range []string{"BC:76:4E:20:00:00/27", "AD:BC:CE:0:0:0/24", "bc:76:4e:20:00:07/48", "ab-bc-cd-12-23-34/40"} {
		m := obj(t, e.c.Do("POST", melangeMACRanges, map[string]any{"mac_address_range": map[string]any{"cidr": cidr}}, e.root).Expect(201), "mac_address_range")
		got := obj(t, e.c.Do("GET", fmt.Sprintf("%s/%d", melangeMACRanges, melangeID(m)), nil, e.root).Expect(200), "mac_address_range")
		if m["cidr"] != cidr || got["cidr"] != cidr {
			t.Errorf("%s: created %v, read %v", cidr, m["cidr"], got["cidr"])
		}
	}
	r := obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-k", "tenant_id": fmt.Sprint(e.r.MemberA)}}, e.root).Expect(201), "interface")
	if r["mac_address"] != "bc:76:4e:20:00:00" {
		t.Errorf("MAC from the first range: %v", r["mac_address"])
	}
}

// §3/§9: malformed MACs and MAC ranges → 400 "cidr is invalid"; a missing
// cidr → 400; nothing is created.
func TestMelange_MACRangeBadCIDR(t *testing.T) {
	e := newMelangeEnv(t)
	for _, cidr := range []string{"zz:76:4e:20:00:00/27", "bc:76:4e:20:00/27", "bc:76:4e:20:00:00:00/27", "bc:76:4e:20:00:00/49",
		"bc:76:4e:20:00:00/-1", "bc:76:4e:20:00:00/", "bc:76:4e:20:00:00", "bc:76:4e:20:00:00/abc", "10.0.0.0/24", "bc:76:4e:20:100:00/40", "/40"} {
		r := e.c.Do("POST", melangeMACRanges, map[string]any{"mac_address_range": map[string]any{"cidr": cidr}}, e.root)
		wantFault(t, r, 400, "BadRequest", "cidr is invalid")
	}
	for _, body := range []any{map[string]any{}, map[string]any{"mac_address_range": map[string]any{}}, map[string]any{"mac_address_range": map[string]any{"cidr": ""}}} {
		wantFault(t, e.c.Do("POST", melangeMACRanges, body, e.root), 400, "BadRequest", "cidr should be present")
	}
	for _, body := range []string{`[]`, `{"mac_address_range":"x"}`, `{"mac_address_range":{"cidr":[1]}}`, `{"mac_address_range":{"cidr":{"a":1}}}`} {
		if r := e.c.Do("POST", melangeMACRanges, body, e.root); r.Status != 400 {
			t.Errorf("%s: want 400", r)
		}
	}
	if got := items(t, e.c.Do("GET", melangeMACRanges, nil, e.root).Expect(200), "mac_address_ranges"); len(got) != 0 {
		t.Errorf("bad requests created %v", got)
	}
}

// §15: the range routes are not tenant-scoped, so only a global (provider)
// caller may use them; anyone else gets 403 in Melange's shape.
func TestMelange_MACRangeProviderOnly(t *testing.T) {
	e := newMelangeEnv(t)
	m := obj(t, e.c.Do("POST", melangeMACRanges, map[string]any{"mac_address_range": map[string]any{"cidr": "bc:76:4e:20:00:00/27"}}, e.root).Expect(201), "mac_address_range")
	path := fmt.Sprintf("%s/%d", melangeMACRanges, melangeID(m))
	for _, role := range []apitest.Role{apitest.MemberAdmin, apitest.MemberUser} {
		tok := e.tok(role)
		wantFault(t, e.c.Do("POST", melangeMACRanges, map[string]any{"mac_address_range": map[string]any{"cidr": "bc:76:4e:30:00:00/27"}}, tok), 403, "Forbidden", "")
		wantFault(t, e.c.Do("GET", melangeMACRanges, nil, tok), 403, "Forbidden", "")
		wantFault(t, e.c.Do("GET", path, nil, tok), 403, "Forbidden", "")
		wantFault(t, e.c.Do("DELETE", path, nil, tok), 403, "Forbidden", "")
		// a malformed body from a non-provider is still 403, not 400
		wantFault(t, e.c.Do("POST", melangeMACRanges, map[string]any{"mac_address_range": map[string]any{"cidr": "zz"}}, tok), 403, "Forbidden", "")
	}
	if got := items(t, e.c.Do("GET", melangeMACRanges, nil, e.root).Expect(200), "mac_address_ranges"); len(got) != 1 {
		t.Errorf("ranges %v, want only the root's", got)
	}
	e.c.Do("GET", path, nil, e.root).Expect(200)
}

// §13: the list is ordered by id and paged with limit and marker.
func TestMelange_MACRangesPagination(t *testing.T) {
	e := newMelangeEnv(t)
	var ids []string
	for i := 0; i < 5; i++ {
		m := obj(t, e.c.Do("POST", melangeMACRanges, map[string]any{"mac_address_range": map[string]any{"cidr": fmt.Sprintf("bc:76:4e:%02x:00:00/32", i)}}, e.root).Expect(201), "mac_address_range")
		ids = append(ids, m["id"].(string))
	}
	r := e.c.Do("GET", melangeMACRanges+"?limit=2", nil, e.root).Expect(200)
	if got := strs(items(t, r, "mac_address_ranges"), "id"); !slices.Equal(got, ids[:2]) {
		t.Errorf("page 1 %v, want %v", got, ids[:2])
	}
	links, _ := r.Map()["mac_address_ranges_links"].([]any)
	if len(links) != 1 {
		t.Fatalf("links %v", links)
	}
	href := links[0].(map[string]any)["href"].(string)
	if !strings.Contains(href, "marker="+ids[1]) {
		t.Errorf("next %s", href)
	}
	r = e.c.Do("GET", melangeMACRanges+"?limit=2&marker="+ids[3], nil, e.root).Expect(200)
	if got := strs(items(t, r, "mac_address_ranges"), "id"); !slices.Equal(got, ids[4:]) {
		t.Errorf("last page %v, want %v", got, ids[4:])
	}
	if _, ok := r.Map()["mac_address_ranges_links"]; ok {
		t.Errorf("last page has links: %v", r.Map())
	}
	for _, q := range []string{"?limit=0", "?marker=abc"} {
		wantFault(t, e.c.Do("GET", melangeMACRanges+q, nil, e.root), 400, "BadRequest", "")
	}
}

// §2, §14: .json and .xml variants, XML faults included.
func TestMelange_MACRangeSuffixes(t *testing.T) {
	e := newMelangeEnv(t)
	m := obj(t, e.c.Do("POST", melangeMACRanges+".json", map[string]any{"mac_address_range": map[string]any{"cidr": "bc:76:4e:20:00:00/40"}}, e.root).Expect(201), "mac_address_range")
	path := fmt.Sprintf("%s/%d", melangeMACRanges, melangeID(m))
	if got := obj(t, e.c.Do("GET", path+".json", nil, e.root).Expect(200), "mac_address_range"); got["id"] != m["id"] {
		t.Errorf("GET .json %v", got)
	}
	x := xmlRoot(t, e.c.Do("GET", path+".xml", nil, e.root).Expect(200), "mac_address_range")
	if id, _ := x.attr("id"); id != m["id"] {
		t.Errorf("GET .xml %+v", x)
	}
	list := xmlRoot(t, e.c.Do("GET", melangeMACRanges+".xml", nil, e.root).Expect(200), "mac_address_ranges")
	if l := list.children("mac_address_range"); len(l) != 1 {
		t.Errorf("XML list %+v", list)
	}
	wantXMLFault(t, e.c.Do("POST", melangeMACRanges+".xml", map[string]any{"mac_address_range": map[string]any{"cidr": "bc:76"}}, e.root), 400, "BadRequest", "cidr is invalid")
	wantXMLFault(t, e.c.Do("GET", melangeMACRanges+".xml", nil, e.tok(apitest.MemberAdmin)), 403, "Forbidden", "")
	e.c.Do("DELETE", path+".xml", nil, e.root).Expect(200)
	wantXMLFault(t, e.c.Do("GET", path+".xml", nil, e.root), 404, "NotFound", "MacAddressRange Not Found")
}
