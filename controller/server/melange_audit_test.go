package server_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/ipam"
	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/netx"
)

// Tests of the fixes of an audit of the Melange dialect against
// melange-facts.md.

// §3 rules 6 and 9 are re-checked when a PUT changes a block's network_id:
// a top-level block of the new network that overlaps is 400 "cidr
// overlaps with block <cidr> in same network", a block of another type in
// it 400 "type should be same within a network", and neither changes the
// block.
func TestMelange_UpdateNetworkRechecksRules(t *testing.T) {
	e := newMelangeEnv(t)
	e.block(t, e.r.MemberB, map[string]any{"cidr": "10.9.0.0/16", "network_id": "ovl", "type": "private"})
	e.block(t, e.r.MemberB, map[string]any{"cidr": "172.31.0.0/24", "network_id": "pub", "type": "public"})
	b := e.block(t, e.r.MemberB, map[string]any{"cidr": "10.9.0.0/24", "network_id": "other", "type": "private"})
	path := melangeBlock(e.r.MemberB, melangeID(b))
	put := func(net string) map[string]any {
		return map[string]any{"ip_block": map[string]any{"network_id": net}}
	}
	wantFault(t, e.c.Do("PUT", path, put("ovl"), e.root), 400, "BadRequest",
		"The following values are invalid: {'cidr': ['cidr overlaps with block 10.9.0.0/16 in same network']}")
	wantFault(t, e.c.Do("PUT", path, put("pub"), e.root), 400, "BadRequest",
		"The following values are invalid: {'type': ['type should be same within a network']}")
	if got := obj(t, e.c.Do("GET", path, nil, e.root).Expect(200), "ip_block"); got["network_id"] != "other" {
		t.Errorf("refused PUTs changed the network: %v", got["network_id"])
	}
	if got := obj(t, e.c.Do("PUT", path, put("elsewhere"), e.root).Expect(200), "ip_block"); got["network_id"] != "elsewhere" {
		t.Errorf("PUT to a free network: %v", got["network_id"])
	}
}

// wantDetail is wantFault with the whole detail, not a part of it.
func wantDetail(t *testing.T, r *apitest.Response, status int, name, detail string) {
	t.Helper()
	wantFault(t, r, status, name, detail)
	if r.Status != status {
		return
	}
	if _, f := melangeFault(t, r); f != nil {
		if d, _ := f["detail"].(string); d != detail {
			t.Errorf("%s: detail %q, want %q", r, d, detail)
		}
	}
}

// §15: a URL without /tenants/{id}/ is for admins (global callers) only;
// anyone else gets 403 "User with tenant id <t> cannot access this
// resource", as on another tenant's URL, not Regent's permission text.
func TestMelange_ProviderRouteForbiddenDetail(t *testing.T) {
	e := newMelangeEnv(t)
	want := fmt.Sprintf("User with tenant id %d cannot access this resource", e.r.MemberA)
	for _, role := range []apitest.Role{apitest.MemberAdmin, apitest.MemberUser} {
		tok := e.tok(role)
		wantDetail(t, e.c.Do("GET", melangeMACRanges, nil, tok), 403, "Forbidden", want)
		wantDetail(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-403", "tenant_id": fmt.Sprint(e.r.MemberA)}}, tok), 403, "Forbidden", want)
		wantDetail(t, e.c.Do("GET", "/v0.1/ipam/allocated_ip_addresses", nil, tok), 403, "Forbidden", want)
		wantXMLFault(t, e.c.Do("GET", melangeMACRanges+".xml", nil, tok), 403, "Forbidden", want)
	}
	e.c.Do("GET", melangeMACRanges, nil, e.root).Expect(200)
}

// A block's type is mandatory (melange-api-spec, "Create tenant's IP
// block"; melange-facts §3 rule 2): without it, or with another value, the
// create is 400 and makes nothing; a malformed cidr is listed with it. A
// subnet still takes its parent's type.
func TestMelange_BlockTypeMandatory(t *testing.T) {
	e := newMelangeEnv(t)
	blocks := melangeBlocks(e.r.MemberB)
	for _, body := range []map[string]any{{"cidr": "10.9.0.0/24"}, {"cidr": "10.9.0.0/24", "type": ""}, {"cidr": "10.9.0.0/24", "type": nil}, {"cidr": "10.9.0.0/24", "type": "shared"}} {
		wantDetail(t, e.c.Do("POST", blocks, map[string]any{"ip_block": body}, e.root), 400, "BadRequest",
			"The following values are invalid: {'type': ['type should be one among public, private']}")
	}
	wantDetail(t, e.c.Do("POST", blocks, map[string]any{"ip_block": map[string]any{"cidr": "10..."}}, e.root), 400, "BadRequest",
		"The following values are invalid: {'cidr': ['cidr is invalid'], 'type': ['type should be one among public, private']}")
	wantXMLFault(t, e.c.DoHeader("POST", blocks+".xml", `<ip_block cidr="10.9.0.0/24"/>`, hdr(e.root, "Content-Type", "application/xml")), 400, "BadRequest", "type should be one among public, private")
	if l := items(t, e.c.Do("GET", blocks, nil, e.root).Expect(200), "ip_blocks"); len(l) != 0 {
		t.Fatalf("refused creates made blocks: %v", l)
	}
	pub := e.block(t, e.r.MemberB, map[string]any{"cidr": "10.9.0.0/16", "type": "public"})
	sub := melangeCreate(e.c.For(t), e.root, melangeBlock(e.r.MemberB, melangeID(pub))+"/subnets", "subnet", map[string]any{"subnet": map[string]any{"cidr": "10.9.1.0/24"}})
	if sub["type"] != "public" {
		t.Errorf("subnet type %v, want the parent's", sub["type"])
	}
}

// Unusable ranges and octets show their own created_at and updated_at, not
// their policy's: adding a sibling leaves an entry's times as they were,
// a new entry is newer than the older ones, and a PUT moves the entry's
// updated_at only.
func TestMelange_PolicyEntryTimes(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	p := e.policy(t, e.r.MemberA, map[string]any{"name": "times"})
	pp := melangePolicy(e.r.MemberA, melangeID(p))
	ranges, octets := pp+"/unusable_ip_ranges", pp+"/unusable_ip_octets"
	r1 := obj(t, e.c.Do("POST", ranges, map[string]any{"ip_range": map[string]any{"offset": 0, "length": 1}}, tok).Expect(201), "ip_range")
	o1 := obj(t, e.c.Do("POST", octets, map[string]any{"ip_octet": map[string]any{"octet": 5}}, tok).Expect(201), "ip_octet")
	r2 := obj(t, e.c.Do("POST", ranges, map[string]any{"ip_range": map[string]any{"offset": 3, "length": 1}}, tok).Expect(201), "ip_range")
	times := func(m map[string]any) [2]any { return [2]any{m["created_at"], m["updated_at"]} }
	if r1["created_at"] != r1["updated_at"] || r1["created_at"] == o1["created_at"] || o1["created_at"] == r2["created_at"] {
		t.Errorf("entries share times: %v %v %v", times(r1), times(o1), times(r2))
	}
	get := func(path string, key string) map[string]any {
		return obj(t, e.c.Do("GET", path, nil, tok).Expect(200), key)
	}
	if got := get(ranges+"/"+r1["id"].(string), "ip_range"); times(got) != times(r1) {
		t.Errorf("range 1 after its siblings were added: %v, was %v", times(got), times(r1))
	}
	if got := get(octets+"/"+o1["id"].(string), "ip_octet"); times(got) != times(o1) {
		t.Errorf("octet after a range was added: %v, was %v", times(got), times(o1))
	}
	if pol := get(pp, "policy"); pol["updated_at"] == r1["updated_at"] {
		t.Errorf("range 1 shows its policy's updated_at %v", pol["updated_at"])
	}
	upd := obj(t, e.c.Do("PUT", ranges+"/"+r2["id"].(string), map[string]any{"ip_range": map[string]any{"length": 2}}, tok).Expect(200), "ip_range")
	if upd["created_at"] != r2["created_at"] || upd["updated_at"] == r2["updated_at"] {
		t.Errorf("updated range: %v, was %v", times(upd), times(r2))
	}
	l := items(t, e.c.Do("GET", ranges, nil, tok).Expect(200), "ip_ranges")
	if len(l) != 2 || times(l[0]) != times(r1) || times(l[1]) != times(upd) {
		t.Errorf("list %v", l)
	}
}

// tenantV6 is the address Melange's tenant-based IPv6 generator
// (melange-facts §7) makes in cidr (a /64 or longer) from tenant and mac,
// fully expanded as the API shows it. Tenants are member ids, so the API
// tests cannot use the fact sheet's tenant "1234"; its vectors are checked
// in package ipam, and these tests check the API against the same
// function.
func tenantV6(cidr, tenant string, mac uint64) string {
	p := netip.MustParsePrefix(cidr)
	a := p.Addr().As16()
	mask := ^uint64(0) >> (p.Bits() - 64)
	lo := binary.BigEndian.Uint64(a[8:])&^mask | ipam.TenantIID(tenant, netx.MAC(mac))&mask
	binary.BigEndian.PutUint64(a[8:], lo)
	return netx.Expand(netip.AddrFrom16(a))
}

// Tenant ids in bodies (an interface's owner, an address's tenant_id, an
// instance's tenant) are member ids, as the URL's are: one that names no
// member is 400 "Member <t> does not exist." and nothing is made.
func TestMelange_BodyTenantsAreMembers(t *testing.T) {
	e := newMelangeEnv(t)
	b := e.block(t, e.r.MemberB, map[string]any{"cidr": "10.9.0.0/24", "network_id": "n"})
	base := melangeBlock(e.r.MemberB, melangeID(b)) + "/ip_addresses"
	for _, bad := range []string{"abc", "999999"} {
		want := fmt.Sprintf("The following values are invalid: {'tenant_id': ['Member %s does not exist.']}", bad)
		wantDetail(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "ifz", "tenant_id": bad}}, e.root), 400, "BadRequest", want)
		wantDetail(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"tenant_id": bad, "interface_id": "ifq"}}, e.root), 400, "BadRequest", want)
		wantDetail(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"tenant_id": bad}}, e.root), 400, "BadRequest", want)
		wantDetail(t, e.c.Do("POST", melangeAllocations(e.r.MemberB, "n", "ifa"), map[string]any{"network": map[string]any{"tenant_id": bad}}, e.root), 400, "BadRequest", want)
		wantDetail(t, e.c.Do("PUT", melangeInstance("vm-z"), map[string]any{"instance": map[string]any{"tenant_id": bad, "interfaces": []any{}}}, e.root), 400, "BadRequest", want)
	}
	if l := items(t, e.c.Do("GET", base, nil, e.root).Expect(200), "ip_addresses"); len(l) != 0 {
		t.Errorf("refused requests allocated %v", l)
	}
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/ifz", e.r.MemberB), nil, e.root), 404, "NotFound", "Interface Not Found")
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/ifq", e.r.MemberB), nil, e.root), 404, "NotFound", "Interface Not Found")
	// A member's id is fine, in any spelling; it is shown canonical.
	a := fmt.Sprint(e.r.MemberA)
	ifc := obj(t, e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "ifok", "tenant_id": "0" + a}}, e.root).Expect(201), "interface")
	if ifc["tenant_id"] != a {
		t.Errorf("interface tenant %v, want %s", ifc["tenant_id"], a)
	}
	ip := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"tenant_id": a, "interface_id": "ifq"}}, e.root).Expect(201), "ip_address")
	if ip["used_by_tenant"] != a {
		t.Errorf("used_by_tenant %v, want %s", ip["used_by_tenant"], a)
	}
}

// melange_dns1/melange_dns2 (melange-facts §1: "dns1/dns2 default from
// config") fill in the dns1 and dns2 of a block, a subnet and a network's
// default block created without them; given ones are kept. Unset (the
// default), such a block has null dns1 and dns2.
func TestMelange_DNSDefaults(t *testing.T) {
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) {
		c.MelangeDNS1, c.MelangeDNS2, c.MelangeDefaultCIDR = "8.8.8.8", "2001:4860:4860::8844", "10.99.0.0/24"
	}})
	c := n.Client(t)
	e := &melangeEnv{c: c, n: n, r: c.Roles(), root: n.RootToken}
	dns := func(b map[string]any) [2]any { return [2]any{b["dns1"], b["dns2"]} }
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.8.0.0/16"})
	if got := dns(b); got != [2]any{"8.8.8.8", "2001:4860:4860::8844"} {
		t.Errorf("block dns %v", got)
	}
	if got := dns(e.block(t, e.r.MemberA, map[string]any{"cidr": "10.7.0.0/16", "dns1": "192.0.2.53"})); got != [2]any{"192.0.2.53", "2001:4860:4860::8844"} {
		t.Errorf("block with dns1 %v", got)
	}
	sub := melangeCreate(e.c.For(t), e.root, melangeBlock(e.r.MemberA, melangeID(b))+"/subnets", "subnet", map[string]any{"subnet": map[string]any{"cidr": "10.8.1.0/24", "dns2": "192.0.2.54"}})
	if got := dns(sub); got != [2]any{"8.8.8.8", "192.0.2.54"} {
		t.Errorf("subnet dns %v", got)
	}
	e.c.Do("POST", melangeAllocations(e.r.MemberA, "fresh", "vif-dns"), nil, e.root).Expect(201)
	blk := items(t, e.c.Do("GET", melangeNetwork(e.r.MemberA, "fresh"), nil, e.root).Expect(200), "ip_blocks")
	if len(blk) != 1 || dns(blk[0]) != [2]any{"8.8.8.8", "2001:4860:4860::8844"} {
		t.Errorf("default block %v", blk)
	}

	plain := newMelangeEnv(t)
	if got := dns(plain.block(t, plain.r.MemberA, map[string]any{"cidr": "10.8.0.0/16"})); got != [2]any{nil, nil} {
		t.Errorf("without melange_dns1/2: dns %v", got)
	}
}
