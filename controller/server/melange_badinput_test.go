package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// Issue 3, "Bad input", in the Melange dialect: each of these is a clear
// 4xx in Melange's error shape, and nothing changes.

// melangeState renders the answers to GETs of paths (as root), to compare
// the state before and after a refused request.
func melangeState(t *testing.T, e *melangeEnv, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		r := e.c.For(t).Unchecked().Do("GET", p, nil, e.root)
		fmt.Fprintf(&b, "GET %s: %d %s\n", p, r.Status, r.Body)
	}
	return b.String()
}

// unchanged fails t when the state of paths differs from before.
func unchanged(t *testing.T, e *melangeEnv, before string, paths ...string) {
	t.Helper()
	if after := melangeState(t, e, paths...); after != before {
		t.Errorf("a refused request changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// addressList is n distinct addresses of 10.<a>.0.0/16.
func addressList(a, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.%d", a, 1+i/250, 1+i%250)
	}
	return out
}

// 10,000-element bodies: every list of a Melange body has a bound, and a
// longer list is 400 naming the field and the bound, before anything is
// applied. The bounds (256 addresses per request, 64 interfaces per
// instance, 256 NAT entries) are far above what a caller sends: 256
// addresses in one allocation still work.
func TestMelange_BadInputLongLists(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	blk := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.93.0.0/16", "network_id": "n93"})
	base := melangeBlock(e.r.MemberA, melangeID(blk))
	state := []string{melangeAllocAll + "?limit=100000", melangeBlocks(e.r.MemberA), base + "/ip_addresses?limit=100000",
		fmt.Sprintf("/v0.1/ipam/tenants/%s/interfaces/vif-93", a), melangeInstance("dev-93")}
	before := melangeState(t, e, state...)
	huge := addressList(93, 10000)

	t.Run("ip_allocations", func(t *testing.T) {
		c := e.c.For(t)
		for _, n := range []int{10000, 257} {
			r := c.Do("POST", melangeAllocations(e.r.MemberA, "n93", "vif-93"), map[string]any{"network": map[string]any{"addresses": huge[:n]}}, e.root)
			wantFault(t, r, 400, "BadRequest", "{'addresses': ['addresses should have at most 256 entries']}")
		}
		unchanged(t, e, before, state...)
	})
	t.Run("interfaces", func(t *testing.T) {
		c := e.c.For(t)
		r := c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-93", "tenant_id": a,
			"network": map[string]any{"id": "n93", "tenant_id": a, "addresses": huge}}}, e.root)
		wantFault(t, r, 400, "BadRequest", "addresses should have at most 256 entries")
		r = c.Do("POST", melangeNetwork(e.r.MemberA, "n93")+"/interfaces", map[string]any{"interface": map[string]any{"id": "vif-93",
			"network": map[string]any{"addresses": huge}}}, e.root)
		wantFault(t, r, 400, "BadRequest", "addresses should have at most 256 entries")
		unchanged(t, e, before, state...)
	})
	t.Run("instance interfaces", func(t *testing.T) {
		c := e.c.For(t)
		entry := map[string]any{"network": map[string]any{"id": "n93", "tenant_id": a}}
		for _, n := range []int{10000, 65} {
			list := make([]any, n)
			for i := range list {
				list[i] = entry
			}
			r := c.Do("PUT", melangeInstance("dev-93"), map[string]any{"instance": map[string]any{"tenant_id": a, "interfaces": list}}, e.root)
			wantFault(t, r, 400, "BadRequest", "{'interfaces': ['interfaces should have at most 64 entries']}")
		}
		// Bounded lists that add up past the bound of addresses.
		two := []any{
			map[string]any{"network": map[string]any{"id": "n93", "tenant_id": a, "addresses": huge[:200]}},
			map[string]any{"network": map[string]any{"id": "n93", "tenant_id": a, "addresses": huge[200:400]}},
		}
		r := c.Do("PUT", melangeInstance("dev-93"), map[string]any{"instance": map[string]any{"tenant_id": a, "interfaces": two}}, e.root)
		wantFault(t, r, 400, "BadRequest", "addresses should have at most 256 entries over all interfaces")
		// The same in XML.
		var x strings.Builder
		fmt.Fprintf(&x, `<instance tenant_id="%s"><interfaces>`, a)
		for range 65 {
			fmt.Fprintf(&x, `<interface><network id="n93" tenant_id="%s"/></interface>`, a)
		}
		x.WriteString(`</interfaces></instance>`)
		r = c.DoHeader("PUT", melangeInstance("dev-93")+".xml", x.String(), hdr(e.root, "Content-Type", "application/xml"))
		wantXMLFault(t, r, 400, "BadRequest", "interfaces should have at most 64 entries")
		unchanged(t, e, before, state...)
	})
	t.Run("NAT", func(t *testing.T) {
		c := e.c.For(t)
		c.Do("POST", base+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": "10.93.0.10"}}, e.root).Expect(201)
		c.Do("POST", base+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": "10.93.0.11"}}, e.root).Expect(201)
		nat := []string{base + "/ip_addresses/10.93.0.10/inside_globals", base + "/ip_addresses/10.93.0.11/inside_locals"}
		natBefore := melangeState(t, e, nat...)
		ref := map[string]any{"ip_block_id": blk["id"], "ip_address": "10.93.0.11"}
		list := make([]any, 10000)
		for i := range list {
			list[i] = ref
		}
		for _, dir := range []string{"inside_globals", "inside_locals"} {
			r := c.Do("POST", base+"/ip_addresses/10.93.0.10/"+dir, map[string]any{"ip_addresses": list}, e.root)
			wantFault(t, r, 400, "BadRequest", "{'ip_addresses': ['ip_addresses should have at most 256 entries']}")
		}
		unchanged(t, e, natBefore, nat...)
	})
	t.Run("256 addresses are fine", func(t *testing.T) {
		c := e.c.For(t)
		l := items(t, c.Do("POST", melangeAllocations(e.r.MemberA, "n93", "vif-256"), map[string]any{"network": map[string]any{"addresses": huge[:256]}}, e.root).Expect(201), "ip_addresses")
		if len(l) != 256 {
			t.Errorf("%d addresses allocated, want 256", len(l))
		}
	})
}

// A gateway outside the block is 400, on a block, a subnet and an update
// (Melange did not check it, melange-facts §3 rule 10); the network and
// broadcast addresses are inside and allowed (melange-facts §4). A PUT
// changes the gateway (as Melange's update did) to a free address inside.
func TestMelange_BadInputGatewayOutsideBlock(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	parent := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.94.0.0/16"})
	pb := melangeBlock(e.r.MemberA, melangeID(parent))
	state := []string{melangeBlocks(e.r.MemberA), pb, pb + "/subnets"}
	before := melangeState(t, e, state...)
	for _, gw := range []string{"192.168.0.1", "10.0.1.0", "9.255.255.255"} {
		r := e.c.Do("POST", melangeBlocks(e.r.MemberA), map[string]any{"ip_block": map[string]any{"cidr": "10.0.0.0/24", "type": "private", "gateway": gw}}, tok)
		wantFault(t, r, 400, "BadRequest", "{'gateway': ['gateway should be within cidr 10.0.0.0/24 of the block']}")
	}
	wantFault(t, e.c.Do("POST", melangeBlocks(e.r.MemberA), map[string]any{"ip_block": map[string]any{"cidr": "10.0.0.0/24", "type": "private", "gateway": "fe::1"}}, tok),
		400, "BadRequest", "Gateway is not a valid address")
	wantFault(t, e.c.Do("POST", pb+"/subnets", map[string]any{"subnet": map[string]any{"cidr": "10.94.1.0/24", "gateway": "10.94.2.1"}}, tok),
		400, "BadRequest", "gateway should be within cidr 10.94.1.0/24 of the block")
	wantFault(t, e.c.Do("PUT", pb, map[string]any{"ip_block": map[string]any{"gateway": "192.168.0.1"}}, tok),
		400, "BadRequest", "gateway should be within cidr 10.94.0.0/16 of the block")
	unchanged(t, e, before, state...)

	// Inside: the network and broadcast addresses too.
	for _, gw := range []string{"10.95.0.0", "10.95.0.255"} {
		b := obj(t, e.c.Do("POST", melangeBlocks(e.r.MemberA), map[string]any{"ip_block": map[string]any{"cidr": "10.95.0.0/24", "type": "private", "gateway": gw}}, tok).Expect(201), "ip_block")
		if b["gateway"] != gw {
			t.Errorf("gateway %v, want %s", b["gateway"], gw)
		}
		e.c.Do("DELETE", melangeBlock(e.r.MemberA, melangeID(b)), nil, tok).Expect(200)
	}
	// An update to an address the block holds is refused; to a free one it
	// is applied, and the old gateway becomes allocatable.
	e.c.Do("POST", pb+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": "10.94.0.9"}}, tok).Expect(201)
	before = melangeState(t, e, pb)
	wantFault(t, e.c.Do("PUT", pb, map[string]any{"ip_block": map[string]any{"gateway": "10.94.0.9"}}, tok), 400, "BadRequest", "gateway 10.94.0.9 is held by address")
	unchanged(t, e, before, pb)
	if b := obj(t, e.c.Do("PUT", pb, map[string]any{"ip_block": map[string]any{"gateway": "10.94.255.254"}}, tok).Expect(200), "ip_block"); b["gateway"] != "10.94.255.254" {
		t.Errorf("updated gateway %v", b["gateway"])
	}
	e.c.Do("POST", pb+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": "10.94.0.1"}}, tok).Expect(201)
	wantFault(t, e.c.Do("POST", pb+"/ip_addresses", map[string]any{"ip_address": map[string]any{"address": "10.94.255.254"}}, tok), 409, "Conflict", "")
}

// dns1 and dns2 are addresses (of either family: an IPv6 block may name
// IPv4 resolvers); routes have an address or CIDR destination, a gateway
// of the block's family and, when given, a contiguous netmask of that
// family that agrees with a CIDR destination. Anything else is 400 naming
// the field (melange-api-spec: "400 ... field validation fails").
func TestMelange_BadInputDNSAndRoutes(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	blk := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.96.0.0/24", "dns1": "10.96.0.53", "dns2": "2001:4860:4860::8888"})
	if blk["dns2"] != "2001:4860:4860::8888" {
		t.Errorf("dns2 %v", blk["dns2"])
	}
	path := melangeBlock(e.r.MemberA, melangeID(blk))
	routes := path + "/ip_routes"
	rt := obj(t, e.c.Do("POST", routes, map[string]any{"ip_route": map[string]any{"destination": "192.168.0.0/24", "netmask": "255.255.255.0", "gateway": "10.96.0.1"}}, tok).Expect(201), "ip_route")
	route := fmt.Sprintf("%s/%s", routes, rt["id"])
	state := []string{melangeBlocks(e.r.MemberA), path, routes, route}
	before := melangeState(t, e, state...)

	t.Run("dns", func(t *testing.T) {
		c := e.c.For(t)
		for _, tc := range []struct {
			method, path string
			body         map[string]any
			want         string
		}{
			{"POST", melangeBlocks(e.r.MemberA), map[string]any{"cidr": "10.97.0.0/24", "type": "private", "dns1": "10.0.0.300"}, "{'dns1': ['dns1 is not a valid address']}"},
			{"POST", melangeBlocks(e.r.MemberA), map[string]any{"cidr": "10.97.0.0/24", "type": "private", "dns2": "bogus"}, "{'dns2': ['dns2 is not a valid address']}"},
			{"POST", path + "/subnets", map[string]any{"cidr": "10.96.0.0/25", "dns1": "fe80::1%eth0"}, "'dns1': ['dns1 is not a valid address']"},
			{"PUT", path, map[string]any{"dns1": "999.1.1.1"}, "{'dns1': ['dns1 is not a valid address']}"},
			{"PUT", path, map[string]any{"dns2": "8.8.8"}, "{'dns2': ['dns2 is not a valid address']}"},
		} {
			key := "ip_block"
			if strings.HasSuffix(tc.path, "/subnets") {
				key = "subnet"
			}
			wantFault(t, c.Do(tc.method, tc.path, map[string]any{key: tc.body}, tok), 400, "BadRequest", tc.want)
		}
		unchanged(t, e, before, state...)
	})
	t.Run("routes", func(t *testing.T) {
		c := e.c.For(t)
		for _, tc := range []struct {
			body map[string]any
			want []string
		}{
			{map[string]any{"destination": "10.0.0.300", "gateway": "hello", "netmask": "255.255.0.999"},
				[]string{"'destination': ['destination should be an ip address or cidr']", "'gateway': ['gateway should be an ip address']", "'netmask': ["}},
			{map[string]any{"destination": "192.168.0.0", "gateway": "fe::1"}, []string{"'gateway': ['gateway should be an IPv4 address, as the block is']"}},
			{map[string]any{"destination": "fd00::/8", "gateway": "10.96.0.1"}, []string{"'destination': ['destination should be an IPv4 address or cidr, as the block is']"}},
			{map[string]any{"destination": "192.168.0.0/33", "gateway": "10.96.0.1"}, []string{"'destination'"}},
			{map[string]any{"destination": "192.168.0.0", "gateway": "10.96.0.1", "netmask": "255.0.255.0"}, []string{"'netmask'"}},
			{map[string]any{"destination": "192.168.0.0", "gateway": "10.96.0.1", "netmask": "ffff:ffff::"}, []string{"'netmask'"}},
			{map[string]any{"destination": "192.168.0.0", "gateway": "10.96.0.1", "netmask": "-1"}, []string{"'netmask'"}},
			{map[string]any{"destination": "192.168.0.0/16", "gateway": "10.96.0.1", "netmask": "255.255.255.0"}, []string{"netmask should agree with the prefix length of destination 192.168.0.0/16"}},
		} {
			r := c.Do("POST", routes, map[string]any{"ip_route": tc.body}, tok)
			for _, w := range tc.want {
				wantFault(t, r, 400, "BadRequest", w)
			}
		}
		wantFault(t, c.Do("PUT", route, map[string]any{"ip_route": map[string]any{"gateway": "hello"}}, tok), 400, "BadRequest", "'gateway': ['gateway should be an ip address']")
		wantFault(t, c.Do("PUT", route, map[string]any{"ip_route": map[string]any{"netmask": "255.255.0.999"}}, tok), 400, "BadRequest", "'netmask'")
		unchanged(t, e, before, state...)
	})
	t.Run("valid routes", func(t *testing.T) {
		c := e.c.For(t)
		for _, body := range []map[string]any{
			{"destination": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.96.0.1"},
			{"destination": "172.16.0.0", "netmask": "16", "gateway": "192.0.2.1"}, // a gateway outside the block
			{"destination": "203.0.113.7", "gateway": "10.96.0.1"},
		} {
			c.Do("POST", routes, map[string]any{"ip_route": body}, tok).Expect(201)
		}
		v6 := e.block(t, e.r.MemberA, map[string]any{"cidr": "fe96::/64"})
		got := obj(t, c.Do("POST", melangeBlock(e.r.MemberA, melangeID(v6))+"/ip_routes", map[string]any{"ip_route": map[string]any{
			"destination": "2001:db8:0:0::/32", "netmask": "ffff:ffff::", "gateway": "fe96:0::1"}}, tok).Expect(201), "ip_route")
		if got["destination"] != "2001:db8::/32" || got["gateway"] != "fe96::1" {
			t.Errorf("IPv6 route %v", got)
		}
		wantFault(t, c.Do("POST", melangeBlock(e.r.MemberA, melangeID(v6))+"/ip_routes", map[string]any{"ip_route": map[string]any{
			"destination": "2001:db8::/32", "gateway": "10.96.0.1"}}, tok), 400, "BadRequest", "gateway should be an IPv6 address, as the block is")
	})
}

// melange-api-spec "List versions" is GET /: the versions document is
// served there and at /v0.1 (its own self link) as at /v0.1/ipam, with the
// same .json/.xml and Accept rules; the operator routes are unaffected.
func TestMelange_VersionsAtRoot(t *testing.T) {
	e := newMelangeEnv(t)
	c := e.c.Unchecked() // the slashed forms (/v0.1/, /v0.1/ipam/) are not in openapi.yaml
	tok := e.tok(apitest.Robot)
	for _, p := range []string{"/", "/v0.1", "/v0.1/", "/v0.1.json", "/v0.1/ipam", "/v0.1/ipam/"} {
		m := c.Do("GET", p, nil, tok).Expect(200).Map()
		v, _ := m["versions"].([]any)
		if len(v) != 1 {
			t.Errorf("GET %s: %v", p, m)
			continue
		}
		ver := v[0].(map[string]any)
		links, _ := ver["links"].([]any)
		if ver["name"] != "v0.1" || ver["status"] != "CURRENT" || len(links) != 1 {
			t.Errorf("GET %s: %v", p, ver)
			continue
		}
		if href, _ := links[0].(map[string]any)["href"].(string); !strings.HasPrefix(href, "http://") || !strings.HasSuffix(href, "/v0.1") || strings.Count(href, "/") != 3 {
			t.Errorf("GET %s: self link %q, want http://<host>/v0.1", p, href)
		}
	}
	for _, r := range []*apitest.Response{
		c.Do("GET", "/v0.1.xml", nil, tok),
		c.DoHeader("GET", "/", nil, hdr(tok, "Accept", "application/xml")),
	} {
		if r.Check(200) {
			if n := xmlRoot(t, r, "versions"); len(n.children("version")) != 1 {
				t.Errorf("%s: %s", r, r.Body)
			}
		}
	}
	wantFault(t, c.Do("GET", "/", nil, ""), 401, "Unauthorized", "")
	c.Do("GET", "/healthz", nil, "").Expect(200)
	c.Do("GET", "/metrics", nil, "").Expect(200)
	c.Do("GET", "/openapi.json", nil, "").Expect(200)
	c.Do("GET", "/nope", nil, tok).Expect(404)
	c.Do("GET", "/v0.1/nope", nil, tok).Expect(404)
}

// The spec writes some URIs with a trailing slash (POST .../networks/
// {network_id}/interfaces/, PUT and GET /ipam/instances/{instance_id}/
// interfaces/): every Melange route answers with one. P/ is P with its
// format from Accept; the suffixed forms stay P.json and P.xml.
func TestMelange_TrailingSlash(t *testing.T) {
	e := newMelangeEnv(t)
	c := e.c.Unchecked() // the slashed forms are not in openapi.yaml yet
	a := fmt.Sprint(e.r.MemberA)
	tok := e.tok(apitest.MemberUser)
	blk := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.98.0.0/24", "network_id": "n98"})
	path := melangeBlock(e.r.MemberA, melangeID(blk))

	ifc := obj(t, c.Do("POST", melangeNetwork(e.r.MemberA, "n98")+"/interfaces/", map[string]any{"interface": map[string]any{"id": "vif-98"}}, tok).Expect(201), "interface")
	if addrs := ifaceAddrs(ifc); ifc["id"] != "vif-98" || len(addrs) != 1 || addrs[0]["address"] != "10.98.0.0" {
		t.Errorf("interface %v", ifc)
	}
	body := map[string]any{"instance": map[string]any{"tenant_id": a, "interfaces": []any{map[string]any{"network": map[string]any{"id": "n98", "tenant_id": a}}}}}
	put := obj(t, c.Do("PUT", melangeInstance("dev-98")+"/", body, e.root).Expect(200), "instance")
	got := obj(t, c.Do("GET", melangeInstance("dev-98")+"/", nil, e.root).Expect(200), "instance")
	if l, _ := got["interfaces"].([]any); len(l) != 1 || fmt.Sprint(got) != fmt.Sprint(put) {
		t.Errorf("GET %v after PUT %v", got, put)
	}
	for _, p := range []string{melangeBlocks(e.r.MemberA) + "/", path + "/", path + "/ip_addresses/", path + "/ip_addresses/10.98.0.0/",
		melangeNetwork(e.r.MemberA, "n98") + "/", melangeNetwork(e.r.MemberA, "n98") + "/interfaces/vif-98/", "/v0.1/extensions/"} {
		with := c.Do("GET", p, nil, tok).Expect(200)
		without := c.Do("GET", strings.TrimSuffix(p, "/"), nil, tok).Expect(200)
		if string(with.Body) != string(without.Body) {
			t.Errorf("GET %s and without the slash differ:\n%s\n%s", p, with.Body, without.Body)
		}
	}
	r := c.DoHeader("GET", path+"/", nil, hdr(tok, "Accept", "application/xml"))
	if r.Check(200) {
		xmlRoot(t, r, "ip_block")
	}
	wantFault(t, c.Do("GET", path+"/ip_addresses/10.98.0.5/", nil, tok), 404, "NotFound", "IpAddress Not Found")
	wantFault(t, c.Do("GET", path+"/", nil, e.tok(apitest.OtherMember)), 403, "Forbidden", "")
	c.Do("DELETE", melangeInstance("dev-98")+"/", nil, e.root).Expect(200)
	// The suffixes keep their rules; a slash after one is no route.
	c.Do("GET", path+".json", nil, tok).Expect(200)
	c.Do("GET", path+"/ip_addresses/10.98.0.0.json", nil, tok).Expect(200)
	c.Do("GET", melangeBlocks(e.r.MemberA)+".json/", nil, tok).Expect(404)
	wantFault(t, c.Do("GET", path+"/ip_addresses/10.98.0.0.json/", nil, tok), 404, "NotFound", "IpAddress Not Found")
}

// GET and DELETE /ipam/tenants/{t}/networks/{net}/interfaces/{vif} check
// {net}: a network the tenant has no block in is 404 Network <net> not
// found, as on the other network routes, and an interface that holds no
// address of the network is 404 Interface Not Found. Neither deletes.
func TestMelange_NetworkInterfaceChecksNetwork(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.99.0.0/24", "network_id": "n99"})
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.99.1.0/24", "network_id": "other"})
	e.block(t, e.r.MemberB, map[string]any{"cidr": "10.99.2.0/24", "network_id": "b-only"})
	e.c.Do("POST", melangeNetwork(e.r.MemberA, "n99")+"/interfaces", map[string]any{"interface": map[string]any{"id": "vif-99"}}, tok).Expect(201)
	e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-bare", "tenant_id": fmt.Sprint(e.r.MemberA)}}, e.root).Expect(201)
	iface := func(net, vif string) string { return melangeNetwork(e.r.MemberA, net) + "/interfaces/" + vif }
	state := []string{fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/vif-99", e.r.MemberA), fmt.Sprintf("/v0.1/ipam/tenants/%d/interfaces/vif-bare", e.r.MemberA),
		melangeAllocAll}
	before := melangeState(t, e, state...)
	for _, tc := range []struct{ net, vif, want string }{
		{"nope", "vif-99", "Network nope not found"},
		{"b-only", "vif-99", "Network b-only not found"}, // another tenant's network
		{"other", "vif-99", "Interface Not Found"},
		{"n99", "vif-bare", "Interface Not Found"},
		{"n99", "vif-none", "Interface Not Found"},
	} {
		for _, method := range []string{"GET", "DELETE"} {
			wantFault(t, e.c.Do(method, iface(tc.net, tc.vif), nil, tok), 404, "NotFound", tc.want)
		}
	}
	unchanged(t, e, before, state...)
	if got := obj(t, e.c.Do("GET", iface("n99", "vif-99"), nil, tok).Expect(200), "interface"); got["id"] != "vif-99" {
		t.Errorf("GET %v", got)
	}
	e.c.Do("DELETE", iface("n99", "vif-99"), nil, tok).Expect(200)
	wantFault(t, e.c.Do("GET", iface("n99", "vif-99"), nil, tok), 404, "NotFound", "Interface Not Found")
}

// Ids with control characters: state looks ids up as key prefixes ended
// by NUL, so an interface "vm1", NUL, "x" was another tenant's "vm1" too.
// A NUL or any control character in an id, in the path (%00) or the body
// (\u0000), is 400 and nothing is made.
func TestMelange_ControlCharactersInIDs(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.77.0.0/24", "network_id": "n77"})
	watch := []string{melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses", melangeBlocks(e.r.MemberA)}
	before := melangeState(t, e, watch...)
	net := fmt.Sprintf("/v0.1/ipam/tenants/%s/networks/", a)
	for _, c := range []struct {
		method, path string
		body         map[string]any
	}{
		{"DELETE", melangeIfaces + "/vm1%00x", nil},
		{"GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/interfaces/vm1%%00x", a), nil},
		{"POST", net + "n77/interfaces/vm1%00x/ip_allocations", map[string]any{"network": map[string]any{}}},
		{"POST", net + "n77%01/interfaces/vm1/ip_allocations", map[string]any{"network": map[string]any{}}},
		{"PUT", melangeInstance("d%00x"), map[string]any{"instance": map[string]any{"tenant_id": a, "interfaces": []any{}}}},
		{"DELETE", melangeInstance("d%00x"), nil},
		{"GET", fmt.Sprintf("/v0.1/ipam/tenants/%s%%00/ip_blocks", a), nil},
		{"POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vm1\x00x", "tenant_id": a}}},
		{"POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vm1", "tenant_id": a, "device_id": "d\x00x"}}},
		{"POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vm1", "tenant_id": a, "network": map[string]any{"id": "n77\x00x"}}}},
		{"POST", net + "n77/interfaces/vm1/ip_allocations", map[string]any{"network": map[string]any{"used_by_device": "d\x1fx"}}},
		{"POST", melangeBlocks(e.r.MemberA), map[string]any{"ip_block": map[string]any{"cidr": "10.78.0.0/24", "type": "private", "network_id": "n77\x00x"}}},
		{"POST", watch[0], map[string]any{"ip_address": map[string]any{"interface_id": "vm1\x00x"}}},
	} {
		wantFault(t, e.c.Do(c.method, c.path, c.body, e.root), 400, "BadRequest", "should not contain control characters")
	}
	unchanged(t, e, before, watch...)
	wantFault(t, e.c.Do("DELETE", melangeIfaces+"/vm1", nil, e.root), 404, "NotFound", "Interface Not Found")
}

// Long strings: Melange kept ids and names in String(255) columns; a
// longer one, in a body (JSON or XML) or in a path, is 400 naming the field
// and nothing is made. Before, a tenant's token stored ids and names of up
// to the body's 1 MiB (a 900 kB network_id or policy name), sent again in
// every list that shows them. 255 characters, not bytes, are fine.
func TestMelange_BadInputLongStrings(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	tok := e.tok(apitest.MemberUser)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.79.0.0/24", "network_id": "n79"})
	pol := melangeCreate(e.c.For(t), e.root, melangePolicies(e.r.MemberA), "policy", map[string]any{"policy": map[string]any{"name": "p79"}})
	watch := []string{melangeBlocks(e.r.MemberA), melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses", melangePolicies(e.r.MemberA), melangeAllocAll + "?limit=100000"}
	before := melangeState(t, e, watch...)
	long := strings.Repeat("x", 256)
	net := fmt.Sprintf("/v0.1/ipam/tenants/%s/networks/", a)
	for _, c := range []struct {
		method, path, field string
		body                any
	}{
		{"POST", melangeBlocks(e.r.MemberA), "network_id", map[string]any{"ip_block": map[string]any{"cidr": "10.80.0.0/24", "type": "private", "network_id": long}}},
		{"PUT", melangeBlock(e.r.MemberA, melangeID(b)), "network_id", map[string]any{"ip_block": map[string]any{"network_id": long}}},
		{"POST", melangePolicies(e.r.MemberA), "name", map[string]any{"policy": map[string]any{"name": long}}},
		{"PUT", melangePolicy(e.r.MemberA, melangeID(pol)), "description", map[string]any{"policy": map[string]any{"description": long}}},
		{"POST", watch[1], "interface_id", map[string]any{"ip_address": map[string]any{"interface_id": long}}},
		{"POST", watch[1], "used_by_device", map[string]any{"ip_address": map[string]any{"interface_id": "vif-79", "used_by_device": long}}},
		{"POST", net + "n79/interfaces", "id", map[string]any{"interface": map[string]any{"id": long}}},
		{"POST", net + "n79/interfaces/" + long + "/ip_allocations", "vif", map[string]any{"network": map[string]any{}}},
		// a number is read as its text: 1.000…01 is not 1
		{"POST", melangeBlocks(e.r.MemberA), "network_id", map[string]any{"ip_block": map[string]any{"cidr": "10.82.0.0/24", "type": "private",
			"network_id": json.Number("1." + strings.Repeat("0", 300) + "1")}}},
	} {
		wantFault(t, e.c.Do(c.method, c.path, c.body, tok), 400, "BadRequest", fmt.Sprintf("{'%s': ['%s should be at most 255 characters']}", c.field, c.field))
	}
	r := e.c.DoHeader("POST", melangeBlocks(e.r.MemberA)+".xml", fmt.Sprintf(`<ip_block cidr="10.81.0.0/24" type="private" network_id="%s"/>`, long),
		hdr(tok, "Content-Type", "application/xml"))
	wantXMLFault(t, r, 400, "BadRequest", "network_id should be at most 255 characters")
	wantFault(t, e.c.Do("PUT", melangeInstance(long), map[string]any{"instance": map[string]any{"tenant_id": a, "interfaces": []any{}}}, e.root),
		400, "BadRequest", "device_id should be at most 255 characters")
	unchanged(t, e, before, watch...)
	name := strings.Repeat("é", 255)
	if got := obj(t, e.c.Do("POST", melangePolicies(e.r.MemberA), map[string]any{"policy": map[string]any{"name": name}}, tok).Expect(201), "policy"); got["name"] != name {
		t.Errorf("a 255-character name: %v", got["name"])
	}
}

// A query string that cannot be decoded (a '%' not starting a %XX escape,
// a ';' separator) is 400, as on the CloudCIX lists: Go drops such a pair,
// so allocated_ip_addresses?used_by_device=vm-a;limit=1 answered every
// allocated address, without the filter or the limit and without a word.
func TestMelange_BadInputMalformedQuery(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	base := melangeBlock(e.r.MemberA, melangeID(e.block(t, e.r.MemberA, map[string]any{"cidr": "10.84.0.0/24"}))) + "/ip_addresses"
	e.block(t, e.r.MemberA, map[string]any{"cidr": "10.85.0.0/24"})
	for _, dev := range []string{"vm-a", "vm-b"} {
		e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"interface_id": "vif-" + dev, "used_by_device": dev}}, tok).Expect(201)
	}
	tenantAlloc := fmt.Sprintf("/v0.1/ipam/tenants/%d/allocated_ip_addresses", e.r.MemberA)
	for _, path := range []string{
		tenantAlloc + "?used_by_device=vm-a;limit=1",
		tenantAlloc + "?used_by_device=%zz",
		melangeBlocks(e.r.MemberA) + "?limit=%zz",
		melangeBlocks(e.r.MemberA) + "?limit=1;marker=1",
		base + "?limit=1&marker=1;x=2",
	} {
		wantFault(t, e.c.Do("GET", path, nil, tok), 400, "BadRequest", "The query string is malformed")
	}
	wantXMLFault(t, e.c.Do("GET", melangeBlocks(e.r.MemberA)+".xml?limit=%zz", nil, tok), 400, "BadRequest", "The query string is malformed")
	if l := items(t, e.c.Do("GET", tenantAlloc+"?used_by_device=vm-a&limit=1", nil, tok).Expect(200), "ip_addresses"); len(l) != 1 || l[0]["used_by_device"] != "vm-a" {
		t.Errorf("a well-formed query: %v", l)
	}
}

// A body that holds its fields without their wrapper ({"address": ..}
// instead of {"ip_address": {"address": ..}}, <address> instead of
// <ip_address>) is 400 saying what the body should be, on every route that
// reads a wrapped body, and nothing changes. Before the fix such a body was
// read as an empty object: POST ip_addresses {"address": "10.97.0.99"}
// allocated the next free address instead (201, another address), and an
// ip_block without its wrapper was told "cidr is invalid". An empty body,
// {} and {"ip_address": null} are still the empty object (every field of
// POST ip_addresses is optional), and unknown fields inside the wrapper or
// keys beside it are still ignored, as Melange does.
func TestMelange_BadInputUnwrappedBody(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	blk := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.97.0.0/24", "network_id": "n97"})
	base := melangeBlock(e.r.MemberA, melangeID(blk))
	pol := melangeCreate(e.c.For(t), e.root, "/v0.1/ipam/tenants/"+a+"/policies", "policy", map[string]any{"policy": map[string]any{"name": "p97"}})
	polPath := "/v0.1/ipam/tenants/" + a + "/policies/" + fmt.Sprint(pol["id"])
	e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": "vif-97", "tenant_id": a}}, e.root).Expect(201)
	state := []string{melangeBlocks(e.r.MemberA), base + "/ip_addresses", base + "/subnets", base + "/ip_routes",
		"/v0.1/ipam/tenants/" + a + "/policies", polPath + "/unusable_ip_ranges", polPath + "/unusable_ip_octets",
		melangeMACRanges, fmt.Sprintf("/v0.1/ipam/tenants/%s/interfaces/vif-97", a), melangeInstance("dev-97"),
		melangeAllowed(e.r.MemberA, "vif-97")}
	before := melangeState(t, e, state...)

	for _, tc := range []struct {
		method, path, key string
		body              map[string]any
	}{
		{"POST", base + "/ip_addresses", "ip_address", map[string]any{"address": "10.97.0.99"}},
		{"POST", melangeBlocks(e.r.MemberA), "ip_block", map[string]any{"cidr": "10.98.0.0/24", "type": "private"}},
		{"PUT", base, "ip_block", map[string]any{"network_id": "other"}},
		{"POST", base + "/subnets", "subnet", map[string]any{"cidr": "10.97.0.0/28"}},
		{"POST", base + "/ip_routes", "ip_route", map[string]any{"destination": "10.9.0.0/16", "gateway": "10.97.0.1"}},
		{"POST", "/v0.1/ipam/tenants/" + a + "/policies", "policy", map[string]any{"name": "x"}},
		{"PUT", polPath, "policy", map[string]any{"name": "y"}},
		{"POST", polPath + "/unusable_ip_ranges", "ip_range", map[string]any{"offset": 0, "length": 1}},
		{"POST", polPath + "/unusable_ip_octets", "ip_octet", map[string]any{"octet": 7}},
		{"POST", melangeMACRanges, "mac_address_range", map[string]any{"cidr": "ab-bc-cd-12-23-34/40"}},
		{"POST", melangeIfaces, "interface", map[string]any{"id": "vif-98", "tenant_id": a}},
		{"POST", melangeAllocations(e.r.MemberA, "n97", "vif-97"), "network", map[string]any{"addresses": []string{"10.97.0.50"}}},
		{"PUT", melangeInstance("dev-97"), "instance", map[string]any{"tenant_id": a, "interfaces": []any{}}},
		{"POST", melangeAllowed(e.r.MemberA, "vif-97"), "allowed_ip", map[string]any{"ip_address": "10.97.0.50", "network_id": "n97"}},
	} {
		r := e.c.Do(tc.method, tc.path, tc.body, e.root)
		wantFault(t, r, 400, "BadRequest", fmt.Sprintf(`The request body should be {"%s": {...}}`, tc.key))
	}
	// In XML: a root element that is not the wrapper.
	r := e.c.DoHeader("POST", base+"/ip_addresses.xml", `<address>10.97.0.99</address>`, hdr(e.root, "Content-Type", "application/xml"))
	wantXMLFault(t, r, 400, "BadRequest", `The request body should be {"ip_address": {...}} (in XML <ip_address .../>)`)
	r = e.c.DoHeader("POST", melangeBlocks(e.r.MemberA)+".xml", `<block cidr="10.98.0.0/24" type="private"/>`, hdr(e.root, "Content-Type", "application/xml"))
	wantXMLFault(t, r, 400, "BadRequest", "<ip_block .../>")
	unchanged(t, e, before, state...)

	// What Melange reads as the empty object, or reads ignoring what it
	// does not know, still works.
	for _, tc := range []struct {
		body any
		want string
	}{
		{nil, "10.97.0.0"},
		{map[string]any{}, "10.97.0.2"},
		{map[string]any{"ip_address": nil}, "10.97.0.3"},
		{map[string]any{"ip_address": map[string]any{"address": "10.97.0.99", "colour": "blue"}, "extra": 1}, "10.97.0.99"},
	} {
		got := obj(t, e.c.Do("POST", base+"/ip_addresses", tc.body, e.root).Expect(201), "ip_address")
		if got["address"] != tc.want {
			t.Errorf("POST ip_addresses %v: address %v, want %s", tc.body, got["address"], tc.want)
		}
	}
	r = e.c.DoHeader("POST", base+"/ip_addresses.xml", `<ip_address address="10.97.0.98" colour="blue"/>`, hdr(e.root, "Content-Type", "application/xml"))
	r.Expect(201)
	if !strings.Contains(string(r.Body), "10.97.0.98") {
		t.Errorf("XML POST ip_addresses: %s", r.Body)
	}
}
