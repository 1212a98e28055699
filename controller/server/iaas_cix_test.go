package server_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// --- objects of the auth matrix rows of the ASN and IP address updates ---

func putNewASN(f *fixture) request {
	r := newASN(f)
	r.body = map[string]any{"member_id": f.r.MemberA, "number": 4_200_000_000 + iaasSeq.Add(1)}
	return r
}

func patchNewASN(f *fixture) request {
	r := newASN(f)
	r.body = map[string]any{"number": 4_200_000_000 + iaasSeq.Add(1)}
	return r
}

func renameIPA(f *fixture) request {
	r := ipA(f)
	r.body = map[string]any{"name": f.n.Unique("ip-a")}
	return r
}

// --- objects of the auth matrix rows of the CIX lists ---

// cixFix holds, per fixture and list, the id of entry C (198.51.100.0/24).
var (
	cixMu  sync.Mutex
	cixFix = map[string]uint64{}
)

func cixEntryC(f *fixture, svc string) uint64 {
	cixMu.Lock()
	defer cixMu.Unlock()
	k := fmt.Sprintf("%p/%s", f, svc)
	if id, ok := cixFix[k]; ok {
		return id
	}
	id := create(f.c, f.root, "/iaas/"+svc+"/", map[string]any{"cidr": "198.51.100.0/24", "comment": "entry C"})
	cixFix[k] = id
	return id
}

// freshCIDR is a /32 of 100.64.0.0/10 not used before in this process.
func freshCIDR() string {
	n := iaasSeq.Add(1)
	return fmt.Sprintf("100.%d.%d.%d/32", 64+(n>>16)%64, (n>>8)%256, n%256)
}

func cixC(svc, key string) func(*fixture) request {
	return func(f *fixture) request {
		cixEntryC(f, svc)
		return request{path: "/iaas/" + svc + "/" + key + "/"}
	}
}

func cixCByID(svc string) func(*fixture) request {
	return func(f *fixture) request {
		return request{path: apitest.Path("/iaas/"+svc+"/", cixEntryC(f, svc))}
	}
}

func newCIXBody(svc string) func(*fixture) request {
	return func(f *fixture) request {
		return request{path: "/iaas/" + svc + "/", body: map[string]any{"cidr": freshCIDR(), "comment": "matrix"}}
	}
}

func newCIX(svc string, byCIDR bool) func(*fixture) request {
	return func(f *fixture) request {
		cidr := freshCIDR()
		id := create(f.c, f.root, "/iaas/"+svc+"/", map[string]any{"cidr": cidr})
		if byCIDR {
			return request{path: "/iaas/" + svc + "/" + cidr + "/"}
		}
		return request{path: apitest.Path("/iaas/"+svc+"/", id)}
	}
}

// --- API tests ---

func TestIaaSASNUpdate(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	asn, _ := e.base(t) // ASN 65001 of member A with allocation 10.0.0.0/24
	empty := create(c, e.root, "/iaas/asn/", map[string]any{"member_id": e.r.MemberA, "number": 65002})
	other := create(c, e.root, "/iaas/asn/", map[string]any{"member_id": e.r.MemberB, "number": 65003})
	path := apitest.Path("/iaas/asn/", asn)

	t.Run("PATCH number", func(t *testing.T) {
		got := c.For(t).Do("PATCH", path, map[string]any{"number": 65100}, e.root).Expect(200).Content()
		check(t, num(got["number"]) == 65100 && num(got["member_id"]) == e.r.MemberA, "patched ASN %v", got)
		got = c.For(t).Do("GET", path, nil, e.tok(apitest.MemberUser)).Expect(200).Content()
		check(t, num(got["number"]) == 65100, "read after PATCH %v", got)
	})
	t.Run("PUT moves an empty ASN to another member", func(t *testing.T) {
		p := apitest.Path("/iaas/asn/", empty)
		got := c.For(t).Do("PUT", p, map[string]any{"member_id": e.r.MemberB, "number": 65002}, e.root).Expect(200).Content()
		check(t, num(got["member_id"]) == e.r.MemberB, "moved ASN %v", got)
		c.For(t).Do("GET", p, nil, e.tok(apitest.MemberAdmin)).Expect(404)
		c.For(t).Do("GET", p, nil, e.tok(apitest.OtherMember)).Expect(200)
	})

	before := iaasState(t, c, e.root)
	cases := []struct {
		name, method string
		id           uint64
		body         any
		field, code  string
	}{
		{"an ASN with allocations cannot change member", "PATCH", asn, map[string]any{"member_id": e.r.MemberB}, "member_id", "iaas_asn_update_104"},
		{"unknown member", "PATCH", asn, map[string]any{"member_id": 999999}, "member_id", "iaas_asn_update_101"},
		{"number taken", "PATCH", asn, map[string]any{"number": 65002}, "number", "iaas_asn_update_103"},
		{"number zero", "PATCH", asn, map[string]any{"number": 0}, "number", "iaas_asn_update_102"},
		{"number in the pseudo range", "PATCH", other, map[string]any{"number": 1_000_000_000_042}, "number", "iaas_asn_update_105"},
		{"PUT needs member_id", "PUT", asn, map[string]any{"number": 65100}, "member_id", "iaas_asn_update_101"},
		{"PUT needs number", "PUT", asn, map[string]any{"member_id": e.r.MemberA}, "number", "iaas_asn_update_102"},
		{"negative number", "PATCH", asn, map[string]any{"number": -1}, "number", "regent_request_004"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.For(t).Do(tc.method, apitest.Path("/iaas/asn/", tc.id), tc.body, e.root).Expect(400)
			check(t, resp.FieldCode(tc.field) == tc.code, "%s: errors[%s] %q, want %q", resp, tc.field, resp.FieldCode(tc.field), tc.code)
		})
	}
	t.Run("member admins may not update", func(t *testing.T) {
		got := c.For(t).Do("PATCH", path, map[string]any{"number": 65200}, e.tok(apitest.MemberAdmin)).Expect(403).ErrorCode()
		check(t, got == "iaas_asn_update_201", "admin update: %s", got)
	})
	check(t, iaasState(t, c, e.root) == before, "a refused ASN update changed the state")
}

func TestIaaSIPAddressUpdate(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	_, alloc := e.base(t)
	sn := create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.1/25"})
	priv := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": sn, "name": "vm", "mac_address": "52:54:00:aa:bb:cc"}, e.tok(apitest.MemberUser)).Expect(201).Content()
	pub := create(c, e.root, "/iaas/ip_address/", map[string]any{"subnet_id": sn, "name": "public"})
	pub2 := create(c, e.root, "/iaas/ip_address/", map[string]any{"subnet_id": sn, "name": "public 2"})
	id := num(priv["id"])
	path := apitest.Path("/iaas/ip_address/", id)
	user := e.tok(apitest.MemberUser)

	t.Run("PATCH name and public_ip_id", func(t *testing.T) {
		got := c.For(t).Do("PATCH", path, map[string]any{"name": "web", "public_ip_id": pub}, user).Expect(200).Content()
		check(t, got["name"] == "web" && num(got["public_ip_id"]) == pub && got["mac_address"] == "52:54:00:aa:bb:cc" &&
			num(got["vm_id"]) == 0 && got["address"] == priv["address"], "patched address %v", got)
		// CloudCIX's nested forms: public_ip {id, address} and subnet {...}.
		pubIP, _ := got["public_ip"].(map[string]any)
		sub, _ := got["subnet"].(map[string]any)
		check(t, pubIP != nil && num(pubIP["id"]) == pub && pubIP["address"] != "" && sub != nil && num(sub["id"]) == sn &&
			sub["address_range"] == "10.0.0.1/25", "nested public_ip %v, subnet %v", got["public_ip"], got["subnet"])
	})
	t.Run("PATCH mac_address is canonicalised", func(t *testing.T) {
		got := c.For(t).Do("PATCH", path, map[string]any{"mac_address": "52-54-00-AA-BB-CD"}, user).Expect(200).Content()
		check(t, got["mac_address"] == "52:54:00:aa:bb:cd", "mac %v", got["mac_address"])
	})
	t.Run("PUT with the current address and subnet clears the rest", func(t *testing.T) {
		got := c.For(t).Do("PUT", path, map[string]any{"subnet_id": sn, "address": priv["address"], "name": "only"}, user).Expect(200).Content()
		check(t, got["name"] == "only" && got["mac_address"] == "" && num(got["vm_id"]) == 0 && num(got["public_ip_id"]) == 0, "PUT %v", got)
	})
	t.Run("deleting the public IP clears public_ip_id", func(t *testing.T) {
		c.For(t).Do("PATCH", path, map[string]any{"public_ip_id": pub2}, user).Expect(200)
		c.For(t).Do("DELETE", apitest.Path("/iaas/ip_address/", pub2), nil, e.root).Expect(204)
		got := c.For(t).Do("GET", path, nil, user).Expect(200).Content()
		check(t, num(got["public_ip_id"]) == 0, "public_ip_id after its address went: %v", got)
	})

	c.Do("PATCH", path, map[string]any{"public_ip_id": pub}, user).Expect(200)
	third := create(c, e.root, "/iaas/ip_address/", map[string]any{"subnet_id": sn})
	before := iaasState(t, c, e.root)
	cases := []struct {
		name  string
		id    uint64
		body  any
		field string
		code  string
	}{
		{"address is immutable", id, map[string]any{"address": "10.0.0.100"}, "address", "iaas_ip_address_update_110"},
		{"subnet is immutable", id, map[string]any{"subnet_id": sn + 1000}, "subnet_id", "iaas_ip_address_update_110"},
		{"bad MAC", id, map[string]any{"mac_address": "52:54:00:zz:00:00"}, "mac_address", "iaas_ip_address_update_103"},
		{"name too long", id, map[string]any{"name": strings.Repeat("n", 65)}, "name", "iaas_ip_address_update_104"},
		{"unknown public IP", id, map[string]any{"public_ip_id": 999999}, "public_ip_id", "iaas_ip_address_update_105"},
		{"own public IP", id, map[string]any{"public_ip_id": id}, "public_ip_id", "iaas_ip_address_update_105"},
		{"public IP taken", third, map[string]any{"public_ip_id": pub}, "public_ip_id", "iaas_ip_address_update_106"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.For(t).Do("PATCH", apitest.Path("/iaas/ip_address/", tc.id), tc.body, e.root).Expect(400)
			check(t, resp.FieldCode(tc.field) == tc.code, "%s: errors[%s] %q, want %q", resp, tc.field, resp.FieldCode(tc.field), tc.code)
		})
	}
	t.Run("public IP taken on create", func(t *testing.T) {
		resp := c.For(t).Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": sn, "public_ip_id": pub}, e.root).Expect(400)
		check(t, resp.FieldCode("public_ip_id") == "iaas_ip_address_create_110", "%s", resp)
	})
	t.Run("another member's address is 404", func(t *testing.T) {
		c.For(t).Do("PATCH", path, map[string]any{"name": "x"}, e.tok(apitest.OtherMember)).Expect(404)
	})
	t.Run("robots may not update", func(t *testing.T) {
		c.For(t).Do("PATCH", path, map[string]any{"name": "x"}, e.tok(apitest.Robot)).Expect(403)
	})
	check(t, iaasState(t, c, e.root) == before, "a refused IP address update changed the state")
}

// cixState is both lists and their indexes: a refused request must not
// change them.
func cixState(t *testing.T, c *apitest.Client, token string) string {
	t.Helper()
	var b strings.Builder
	for _, svc := range []string{"cix_blacklist", "cix_whitelist"} {
		r := c.Do("GET", "/iaas/"+svc+"/?limit=100", nil, token).Expect(200)
		fmt.Fprintf(&b, "%s index %s: %s\n", svc, r.Header.Get("X-Regent-Index"), r.Body)
	}
	return b.String()
}

func TestIaaSCIXLists(t *testing.T) {
	for _, svc := range []string{"cix_blacklist", "cix_whitelist"} {
		t.Run(svc, func(t *testing.T) { testCIXList(t, svc) })
	}
}

func testCIXList(t *testing.T, svc string) {
	e := newIaaSEnv(t)
	c := e.c
	base := "/iaas/" + svc + "/"
	robot := e.tok(apitest.Robot)

	t.Run("create canonicalises", func(t *testing.T) {
		got := c.For(t).Do("POST", base, map[string]any{"cidr": "10.1.2.3/8", "comment": " botnet "}, e.root).Expect(201).Content()
		check(t, got["cidr"] == "10.0.0.0/8" && got["comment"] == "botnet" && num(got["modified_by"]) != 0, "entry %v", got)
		got = c.For(t).Do("POST", base, map[string]any{"cidr": "192.0.2.7"}, e.root).Expect(201).Content()
		check(t, got["cidr"] == "192.0.2.7/32" && got["comment"] == "", "entry %v", got)
		got = c.For(t).Do("POST", base, map[string]any{"cidr": "2001:DB8:0:0::1/32"}, e.root).Expect(201).Content()
		check(t, got["cidr"] == "2001:db8::/32", "entry %v", got)
	})
	t.Run("read by id, escaped CIDR, plain CIDR and address", func(t *testing.T) {
		id := c.For(t).Do("GET", base+"?search[cidr]=10.0.0.0/8", nil, robot).Expect(200).List().IDs()
		check(t, len(id) == 1, "search by cidr: %v", id)
		for _, p := range []string{apitest.Path(base, id[0]), base + "10.0.0.0%2F8/", base + "10.0.0.0/8/", base + "10.9.9.9%2f8/", base + "10.0.0.0/8"} {
			got := c.For(t).Do("GET", p, nil, robot).Expect(200).Content()
			check(t, got["cidr"] == "10.0.0.0/8", "GET %s: %v", p, got)
		}
		got := c.For(t).Do("GET", base+"192.0.2.7/", nil, e.tok(apitest.MemberUser)).Expect(200).Content()
		check(t, got["cidr"] == "192.0.2.7/32", "GET by address: %v", got)
		got = c.For(t).Do("GET", base+url.PathEscape("2001:db8::/32")+"/", nil, e.tok(apitest.OtherMember)).Expect(200).Content()
		check(t, got["cidr"] == "2001:db8::/32", "GET IPv6: %v", got)
	})
	t.Run("HEAD is an existence check", func(t *testing.T) {
		c.For(t).Do("HEAD", base+"10.0.0.0/8/", nil, robot).Expect(200)
		c.For(t).Do("HEAD", base+"10.0.0.0%2F8/", nil, robot).Expect(200)
		c.For(t).Do("HEAD", base+"10.0.0.0/9/", nil, robot).Expect(404)
		c.For(t).Do("HEAD", base+"10.1.0.0%2F16/", nil, robot).Expect(404) // inside an entry, not an entry
		c.For(t).Do("HEAD", base+"not-a-cidr/", nil, robot).Expect(404)
	})
	t.Run("search contains and within", func(t *testing.T) {
		cidrs := func(q string) []string {
			return c.For(t).Do("GET", base+"?"+q, nil, robot).Expect(200).List().Strings("cidr")
		}
		check(t, slices.Equal(cidrs("search[cidr__contains]=10.200.1.1"), []string{"10.0.0.0/8"}), "contains address: %v", cidrs("search[cidr__contains]=10.200.1.1"))
		check(t, slices.Equal(cidrs("search[cidr__contains]=10.1.0.0/16"), []string{"10.0.0.0/8"}), "contains prefix")
		check(t, len(cidrs("search[cidr__contains]=172.16.0.1")) == 0, "contains nothing")
		check(t, slices.Equal(cidrs("search[cidr__within]=192.0.2.0/24"), []string{"192.0.2.7/32"}), "within: %v", cidrs("search[cidr__within]=192.0.2.0/24"))
		check(t, slices.Equal(cidrs("search[cidr__within]=2001:db8::/16"), []string{"2001:db8::/32"}), "within v6")
		check(t, slices.Equal(cidrs("exclude[cidr__within]=0.0.0.0/0"), []string{"2001:db8::/32"}), "exclude within v4")
		l := c.For(t).Do("GET", base+"?search[cidr__contains]=nonsense", nil, robot).Expect(200).List()
		check(t, len(l.Metadata.Warnings) == 1 && l.Metadata.TotalRecords == 3, "a bad operand is skipped with a warning: %v", l.Metadata)
	})

	before := cixState(t, c, e.root)
	bad := []struct {
		name  string
		body  any
		field string
		code  string
	}{
		{"missing cidr", map[string]any{"comment": "x"}, "cidr", "iaas_" + svc + "_create_101"},
		{"/33", map[string]any{"cidr": "10.0.0.0/33"}, "cidr", "iaas_" + svc + "_create_101"},
		{"negative length", map[string]any{"cidr": "10.0.0.0/-1"}, "cidr", "iaas_" + svc + "_create_101"},
		{"octet > 255", map[string]any{"cidr": "10.0.0.256/32"}, "cidr", "iaas_" + svc + "_create_101"},
		{"garbage", map[string]any{"cidr": "evil.example.com"}, "cidr", "iaas_" + svc + "_create_101"},
		{"duplicate after canonicalisation", map[string]any{"cidr": "10.255.0.0/8"}, "cidr", "iaas_" + svc + "_create_103"},
		{"duplicate address", map[string]any{"cidr": "192.0.2.7/32"}, "cidr", "iaas_" + svc + "_create_103"},
		{"comment too long", map[string]any{"cidr": "198.18.0.0/15", "comment": strings.Repeat("c", 256)}, "comment", "iaas_" + svc + "_create_102"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.For(t).Do("POST", base, tc.body, e.root).Expect(400)
			check(t, resp.FieldCode(tc.field) == tc.code, "%s: errors[%s] %q, want %q", resp, tc.field, resp.FieldCode(tc.field), tc.code)
		})
	}
	t.Run("only global users write", func(t *testing.T) {
		for _, role := range []apitest.Role{apitest.MemberAdmin, apitest.MemberUser, apitest.Robot} {
			got := c.For(t).Do("POST", base, map[string]any{"cidr": "198.18.0.0/15"}, e.tok(role)).Expect(403).ErrorCode()
			check(t, got == "iaas_"+svc+"_create_201", "%s create: %s", role, got)
			c.For(t).Do("DELETE", base+"10.0.0.0/8/", nil, e.tok(role)).Expect(403)
		}
	})
	t.Run("no update", func(t *testing.T) {
		c.For(t).Do("PATCH", base+"10.0.0.0%2F8/", map[string]any{"comment": "x"}, e.root).Expect(405)
	})
	t.Run("a large body", func(t *testing.T) {
		c.For(t).Do("POST", base, map[string]any{"cidr": "198.18.0.0/15", "comment": strings.Repeat("c", 10_000)}, e.root).Expect(400)
	})
	check(t, cixState(t, c, e.root) == before, "a refused request changed the lists")

	t.Run("delete by CIDR, escaped CIDR and id", func(t *testing.T) {
		c.For(t).Do("DELETE", base+"10.0.0.0/8/", nil, e.root).Expect(204)
		c.For(t).Do("HEAD", base+"10.0.0.0/8/", nil, robot).Expect(404)
		c.For(t).Do("DELETE", base+"10.0.0.0/8/", nil, e.root).Expect(404)
		c.For(t).Do("DELETE", base+"192.0.2.7%2F32/", nil, e.root).Expect(204)
		id := c.For(t).Do("GET", base, nil, e.root).Expect(200).List().IDs()
		check(t, len(id) == 1, "left %v", id)
		c.For(t).Do("DELETE", apitest.Path(base, id[0]), nil, e.root).Expect(204)
		check(t, c.For(t).Do("GET", base, nil, e.root).Expect(200).List().Metadata.TotalRecords == 0, "list not empty")
	})
	t.Run("the lists are separate", func(t *testing.T) {
		other := "cix_whitelist"
		if svc == other {
			other = "cix_blacklist"
		}
		create(c, e.root, base, map[string]any{"cidr": "203.0.113.0/24"})
		c.For(t).Do("HEAD", "/iaas/"+other+"/203.0.113.0/24/", nil, robot).Expect(404)
		create(c, e.root, "/iaas/"+other+"/", map[string]any{"cidr": "203.0.113.0/24"})
	})
}
