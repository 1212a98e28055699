package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/regentcloud/regent/controller/api/iaas"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/ipam"
	wire "github.com/regentcloud/regent/pkg/api"
)

// --- objects of the auth matrix rows of the iaas services ---

// iaasFixture: ASN A of member A, allocation A (10.200.0.0/16) in it,
// subnet S (10.200.255.1/24) in allocation A and IP A in subnet S.
type iaasFixture struct{ asn, alloc, subnet, ip uint64 }

var (
	iaasMu  sync.Mutex
	iaasFix = map[*fixture]*iaasFixture{}
	iaasSeq atomic.Uint64
)

func create(c *apitest.Client, token, path string, body any) uint64 {
	return c.Do("POST", path, body, token).Expect(201).ID()
}

func iaasOf(f *fixture) *iaasFixture {
	iaasMu.Lock()
	defer iaasMu.Unlock()
	if x, ok := iaasFix[f]; ok {
		return x
	}
	x := &iaasFixture{}
	x.asn = create(f.c, f.root, "/iaas/asn/", map[string]any{"member_id": f.r.MemberA, "number": 64500 + iaasSeq.Add(1)})
	x.alloc = create(f.c, f.root, "/iaas/allocation/", map[string]any{"asn_id": x.asn, "address_range": "10.200.0.0/16", "name": "allocation A"})
	x.subnet = create(f.c, f.root, "/iaas/subnet/", map[string]any{"allocation_id": x.alloc, "address_range": "10.200.255.1/24", "name": "subnet S"})
	x.ip = create(f.c, f.root, "/iaas/ip_address/", map[string]any{"subnet_id": x.subnet, "name": "IP A"})
	iaasFix[f] = x
	return x
}

func asnA(f *fixture) request { return request{path: apitest.Path("/iaas/asn/", iaasOf(f).asn)} }
func allocationA(f *fixture) request {
	return request{path: apitest.Path("/iaas/allocation/", iaasOf(f).alloc)}
}
func subnetS(f *fixture) request {
	return request{path: apitest.Path("/iaas/subnet/", iaasOf(f).subnet)}
}
func ipA(f *fixture) request { return request{path: apitest.Path("/iaas/ip_address/", iaasOf(f).ip)} }

func subnetSpaceA(f *fixture) request {
	return request{path: apitest.Path("/iaas/subnet_space/", iaasOf(f).alloc)}
}

func newASNBody(f *fixture) request {
	return request{path: "/iaas/asn/", body: map[string]any{"member_id": f.r.MemberA, "number": 4_200_000_000 + iaasSeq.Add(1)}}
}

func newASN(f *fixture) request {
	return request{path: apitest.Path("/iaas/asn/", create(f.c, f.root, newASNBody(f).path, newASNBody(f).body))}
}

// freshRange is a /24 of 172.16.0.0/12 not used before in this process.
func freshRange() string {
	n := iaasSeq.Add(1)
	return fmt.Sprintf("172.%d.%d.0/24", 16+(n/256)%16, n%256)
}

func newAllocationBody(f *fixture) request {
	return request{path: "/iaas/allocation/", body: map[string]any{"asn_id": iaasOf(f).asn, "address_range": freshRange()}}
}

func newAllocation(f *fixture) request {
	b := newAllocationBody(f)
	return request{path: apitest.Path("/iaas/allocation/", create(f.c, f.root, b.path, b.body))}
}

func renameAllocationA(f *fixture) request {
	r := allocationA(f)
	r.body = map[string]any{"name": f.n.Unique("allocation-a")}
	return r
}

// freshSubnet is a /28 of allocation A below subnet S, in gateway notation.
func freshSubnet() string {
	n := iaasSeq.Add(1) % 4000
	return fmt.Sprintf("10.200.%d.%d/28", n/16, n%16*16+1)
}

func newSubnetBody(f *fixture) request {
	return request{path: "/iaas/subnet/", body: map[string]any{"allocation_id": iaasOf(f).alloc, "address_range": freshSubnet()}}
}

func newSubnet(f *fixture) request {
	b := newSubnetBody(f)
	return request{path: apitest.Path("/iaas/subnet/", create(f.c, f.root, b.path, b.body))}
}

func putSubnetS(f *fixture) request {
	r := subnetS(f)
	r.body = map[string]any{"address_range": "10.200.255.1/24", "name": f.n.Unique("subnet-s"), "vlan": 100}
	return r
}

func patchSubnetS(f *fixture) request {
	r := subnetS(f)
	r.body = map[string]any{"name": f.n.Unique("subnet-s")}
	return r
}

func newIPBody(f *fixture) request {
	return request{path: "/iaas/ip_address/", body: map[string]any{"subnet_id": iaasOf(f).subnet}}
}

func newIP(f *fixture) request {
	b := newIPBody(f)
	return request{path: apitest.Path("/iaas/ip_address/", create(f.c, f.root, b.path, b.body))}
}

// --- API tests ---

// iaasState is everything of the iaas services a global user can see, and
// the table indexes: a refused request must not change it.
func iaasState(t *testing.T, c *apitest.Client, token string) string {
	t.Helper()
	var b strings.Builder
	for _, svc := range []string{"asn", "allocation", "subnet", "ip_address"} {
		r := c.Do("GET", "/iaas/"+svc+"/?limit=100", nil, token).Expect(200)
		fmt.Fprintf(&b, "%s index %s: %s\n", svc, r.Header.Get("X-Regent-Index"), r.Body)
	}
	return b.String()
}

func num(v any) uint64 { f, _ := v.(float64); return uint64(f) }

type iaasEnv struct {
	n    *apitest.Node
	c    *apitest.Client
	r    *apitest.Roles
	root string
}

func newIaaSEnv(t *testing.T) *iaasEnv {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	return &iaasEnv{n: n, c: c, r: c.Roles(), root: n.RootToken}
}

func (e *iaasEnv) tok(r apitest.Role) string { return e.r.Token(r) }

// base creates an ASN of member A and the /24 allocation 10.0.0.0/24 in it.
func (e *iaasEnv) base(t *testing.T) (asn, alloc uint64) {
	c := e.c.For(t)
	asn = create(c, e.root, "/iaas/asn/", map[string]any{"member_id": e.r.MemberA, "number": 65001})
	alloc = create(c, e.root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.0.0.0/24", "name": "lab"})
	return asn, alloc
}

func TestIaaSCRUD(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	admin, user, other := e.tok(apitest.MemberAdmin), e.tok(apitest.MemberUser), e.tok(apitest.OtherMember)

	// ASN
	asnResp := c.Do("POST", "/iaas/asn/", map[string]any{"member_id": e.r.MemberA, "number": 65001}, e.root).Expect(201)
	asn := asnResp.Content()
	check(t, num(asn["member_id"]) == e.r.MemberA && num(asn["number"]) == 65001 && asn["is_pseudo"] == false, "asn %v", asn)
	asnID := num(asn["id"])
	got0 := c.Do("POST", "/iaas/asn/", map[string]any{"member_id": e.r.MemberA, "number": 1_000_000_000_007}, e.root).Expect(400).FieldCode("number")
	check(t, got0 == "iaas_asn_create_105", "manual pseudo ASN: %s", got0)
	got := c.Do("POST", "/iaas/asn/", map[string]any{"member_id": e.r.MemberA, "number": 65001}, e.root).Expect(400).FieldCode("number")
	check(t, got == "iaas_asn_create_103", "duplicate ASN: %s", got)
	got = c.Do("POST", "/iaas/asn/", map[string]any{"member_id": 999999, "number": 65002}, e.root).Expect(400).FieldCode("member_id")
	check(t, got == "iaas_asn_create_101", "unknown member: %s", got)
	check(t, slices.Equal(c.Do("GET", "/iaas/asn/", nil, other).Expect(200).List().IDs(), []uint64{}), "member B sees member A's ASNs")
	c.Do("GET", apitest.Path("/iaas/asn/", asnID), nil, user).Expect(200)

	// Allocation
	alloc := c.Do("POST", "/iaas/allocation/", map[string]any{"asn_id": asnID, "address_range": "10.0.0.0/24", "name": "lab"}, e.root).Expect(201).Content()
	allocID := num(alloc["id"])
	check(t, alloc["address_range"] == "10.0.0.0/24" && num(alloc["member_id"]) == e.r.MemberA && alloc["type"] == "private" &&
		num(alloc["subnets_in_use"]) == 0, "allocation %v", alloc)
	got = c.Do("POST", "/iaas/allocation/", map[string]any{"asn_id": asnID, "address_range": "10.0.0.128/25"}, e.root).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_allocation_create_103", "overlapping allocation: %s", got)
	got = c.Do("POST", "/iaas/allocation/", map[string]any{"asn_id": asnID, "address_range": "10.1.0.1/24"}, e.root).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_allocation_create_101", "allocation with host bits: %s", got)
	check(t, slices.Equal(c.Do("GET", "/iaas/allocation/", nil, admin).Expect(200).List().IDs(), []uint64{allocID}), "admin A lists its allocation")
	got = c.Do("GET", apitest.Path("/iaas/allocation/", allocID), nil, other).Expect(404).ErrorCode()
	check(t, got == "iaas_allocation_read_001", "other member reads allocation: %s", got)
	upd := c.Do("PATCH", apitest.Path("/iaas/allocation/", allocID), map[string]any{"name": "renamed"}, e.root).Expect(200).Content()
	check(t, upd["name"] == "renamed" && upd["address_range"] == "10.0.0.0/24", "renamed allocation %v", upd)
	got = c.Do("PATCH", apitest.Path("/iaas/allocation/", allocID), map[string]any{"address_range": "10.9.0.0/24"}, e.root).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_allocation_update_106", "allocation range change: %s", got)
	c.Do("PATCH", apitest.Path("/iaas/allocation/", allocID), map[string]any{"name": "x"}, user).Expect(403)
	c.Do("PATCH", apitest.Path("/iaas/allocation/", allocID), map[string]any{"name": "x"}, other).Expect(404)
	upd = c.Do("PATCH", apitest.Path("/iaas/allocation/", allocID), map[string]any{"name": "by the ASN's member"}, admin).Expect(200).Content()
	check(t, upd["name"] == "by the ASN's member", "allocation renamed by its member's admin %v", upd)

	// Subnets
	s1 := c.Do("POST", "/iaas/subnet/", map[string]any{"allocation_id": allocID, "address_range": "10.0.0.65/26", "name": "web", "vlan": 10}, admin).Expect(201).Content()
	s1ID := num(s1["id"])
	check(t, s1["address_range"] == "10.0.0.65/26" && s1["gateway"] == "10.0.0.65" && num(s1["allocation_id"]) == allocID &&
		num(s1["member_id"]) == e.r.MemberA && num(s1["vlan"]) == 10 && s1["parent_id"] == nil, "subnet %v", s1)
	s2ID := create(c, admin, "/iaas/subnet/", map[string]any{"allocation_id": allocID, "address_range": "10.0.0.193/27"})
	rd := c.Do("GET", apitest.Path("/iaas/subnet/", s1ID), nil, user).Expect(200).Content()
	check(t, rd["name"] == "web", "read subnet %v", rd)
	c.Do("GET", apitest.Path("/iaas/subnet/", s1ID), nil, other).Expect(404)
	check(t, len(c.Do("GET", "/iaas/subnet/", nil, other).Expect(200).List().Content) == 0, "member B lists member A's subnets")
	put := c.Do("PUT", apitest.Path("/iaas/subnet/", s2ID), map[string]any{"address_range": "10.0.0.222/27", "name": "db"}, user).Expect(200).Content()
	check(t, put["address_range"] == "10.0.0.222/27" && put["gateway"] == "10.0.0.222" && put["name"] == "db", "PUT subnet %v", put)
	got = c.Do("PATCH", apitest.Path("/iaas/subnet/", s2ID), map[string]any{"address_range": "10.0.0.1/27"}, user).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_subnet_update_108", "subnet network change: %s", got)
	alloc = c.Do("GET", apitest.Path("/iaas/allocation/", allocID), nil, user).Expect(200).Content()
	check(t, num(alloc["subnets_in_use"]) == 2, "subnets_in_use %v", alloc)

	// IP addresses
	ip1 := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": s1ID, "name": "vm1", "mac_address": "52:54:00:12:34:56"}, user).Expect(201).Content()
	check(t, ip1["address"] == "10.0.0.66" && num(ip1["subnet_id"]) == s1ID && num(ip1["version"]) == 4 && ip1["mac_address"] == "52:54:00:12:34:56",
		"first free address skips network and gateway: %v", ip1)
	ip2 := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": s1ID, "address": "10.0.0.70"}, user).Expect(201).Content()
	check(t, ip2["address"] == "10.0.0.70", "explicit address %v", ip2)
	got = c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": s1ID, "address": "10.0.0.70"}, user).Expect(409).ErrorCode()
	check(t, got == "iaas_ip_address_create_108", "held address: %s", got)
	got = c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": s1ID, "address": "10.0.0.65"}, user).Expect(409).ErrorCode()
	check(t, got == "iaas_ip_address_create_109", "gateway address: %s", got)
	got = c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": s1ID, "address": "10.0.0.127"}, user).Expect(409).ErrorCode()
	check(t, got == "iaas_ip_address_create_109", "broadcast address: %s", got)
	got = c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": s1ID, "address": "10.0.0.5"}, user).Expect(400).FieldCode("address")
	check(t, got == "iaas_ip_address_create_102", "address outside the subnet: %s", got)
	got = c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": s1ID}, other).Expect(400).FieldCode("subnet_id")
	check(t, got == "iaas_ip_address_create_101", "other member's subnet: %s", got)
	ips := c.Do("GET", "/iaas/ip_address/?order=address", nil, user).Expect(200).List()
	check(t, slices.Equal(ips.Strings("address"), []string{"10.0.0.66", "10.0.0.70"}), "addresses %v", ips.Strings("address"))
	// Filtered by the name the view shows (subnet_id).
	for _, f := range []string{"subnet_id"} {
		l := c.Do("GET", fmt.Sprintf("/iaas/ip_address/?search[%s]=%d", f, s1ID), nil, user).Expect(200).List()
		check(t, len(l.Content) == 2 && len(l.Metadata.Warnings) == 0, "search[%s]: %+v", f, l)
		l = c.Do("GET", fmt.Sprintf("/iaas/ip_address/?exclude[%s]=%d", f, s1ID), nil, user).Expect(200).List()
		check(t, len(l.Content) == 0, "exclude[%s]: %+v", f, l)
	}
	c.Do("GET", apitest.Path("/iaas/ip_address/", num(ip1["id"])), nil, other).Expect(404)
	sub := c.Do("GET", apitest.Path("/iaas/subnet/", s1ID), nil, user).Expect(200).Content()
	check(t, num(sub["ips_in_use"]) == 2, "ips_in_use %v", sub)

	// Deletes only when empty.
	got = c.Do("DELETE", apitest.Path("/iaas/subnet/", s1ID), nil, admin).Expect(400).ErrorCode()
	check(t, got == "iaas_subnet_delete_102", "delete subnet with addresses: %s", got)
	got = c.Do("DELETE", apitest.Path("/iaas/allocation/", allocID), nil, e.root).Expect(400).ErrorCode()
	check(t, got == "iaas_allocation_delete_101", "delete allocation with subnets: %s", got)
	got = c.Do("DELETE", apitest.Path("/iaas/asn/", asnID), nil, e.root).Expect(400).ErrorCode()
	check(t, got == "iaas_asn_delete_101", "delete ASN with allocations: %s", got)
	c.Do("DELETE", apitest.Path("/iaas/ip_address/", num(ip1["id"])), nil, other).Expect(404)
	for _, ip := range []map[string]any{ip1, ip2} {
		c.Do("DELETE", apitest.Path("/iaas/ip_address/", num(ip["id"])), nil, user).Expect(204)
		c.Do("GET", apitest.Path("/iaas/ip_address/", num(ip["id"])), nil, user).Expect(404)
	}
	// A deleted address is free again at once.
	again := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": s1ID, "address": "10.0.0.70"}, user).Expect(201).Content()
	c.Do("DELETE", apitest.Path("/iaas/ip_address/", num(again["id"])), nil, user).Expect(204)
	c.Do("DELETE", apitest.Path("/iaas/subnet/", s1ID), nil, other).Expect(404)
	c.Do("DELETE", apitest.Path("/iaas/subnet/", s1ID), nil, admin).Expect(204)
	c.Do("DELETE", apitest.Path("/iaas/subnet/", s2ID), nil, user).Expect(204)
	c.Do("DELETE", apitest.Path("/iaas/allocation/", allocID), nil, user).Expect(403)
	c.Do("DELETE", apitest.Path("/iaas/allocation/", allocID), nil, other).Expect(404)
	c.Do("DELETE", apitest.Path("/iaas/allocation/", allocID), nil, admin).Expect(204)
	c.Do("DELETE", apitest.Path("/iaas/asn/", asnID), nil, e.root).Expect(204)
	c.Do("GET", apitest.Path("/iaas/asn/", asnID), nil, e.root).Expect(404)
}

func TestIaaSNestedSubnets(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	_, alloc := e.base(t)
	parent := create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.1/25"})
	child := c.Do("POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "parent_id": parent, "address_range": "10.0.0.65/26"}, e.root).Expect(201).Content()
	check(t, num(child["parent_id"]) == parent && num(child["allocation_id"]) == alloc, "child subnet %v", child)
	cases := []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"allocation_id": alloc, "parent_id": parent, "address_range": "10.0.0.1/25"}, "iaas_subnet_create_118"},
		{map[string]any{"allocation_id": alloc, "parent_id": parent, "address_range": "10.0.0.129/26"}, "iaas_subnet_create_119"},
		{map[string]any{"allocation_id": alloc, "parent_id": parent, "address_range": "10.0.0.65/26"}, "iaas_subnet_create_120"},
		{map[string]any{"allocation_id": alloc, "parent_id": parent, "address_range": "10.0.0.97/27"}, "iaas_subnet_create_121"},
		{map[string]any{"allocation_id": alloc, "parent_id": parent, "address_range": "fd00::1/64"}, "iaas_subnet_create_117"},
	}
	for _, tc := range cases {
		got := c.Do("POST", "/iaas/subnet/", tc.body, e.root).Expect(400).FieldCode("address_range")
		check(t, got == tc.code, "%v: %s, want %s", tc.body["address_range"], got, tc.code)
	}
	got := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": parent}, e.root).Expect(422).ErrorCode()
	check(t, got == "iaas_ip_address_create_106", "address in a subnetted subnet: %s", got)
	got = c.Do("DELETE", apitest.Path("/iaas/subnet/", parent), nil, e.root).Expect(400).ErrorCode()
	check(t, got == "iaas_subnet_delete_101", "delete subnet with children: %s", got)
	create(c, e.root, "/iaas/ip_address/", map[string]any{"subnet_id": num(child["id"])})
	got = c.Do("POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "parent_id": num(child["id"]), "address_range": "10.0.0.97/27"}, e.root).Expect(400).FieldCode("parent_id")
	check(t, got == "iaas_subnet_create_107", "subnet of a subnet with addresses: %s", got)

	// Rule 118 compares address_range strings, host part included, so a
	// child may share its parent's network with another gateway, and a
	// gateway change must not make the two equal (either way round).
	p2 := create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.129/25"})
	c2 := create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "parent_id": p2, "address_range": "10.0.0.130/25"})
	got = c.Do("PATCH", apitest.Path("/iaas/subnet/", c2), map[string]any{"address_range": "10.0.0.129/25"}, e.root).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_subnet_update_118", "child gateway made equal to the parent's: %s", got)
	got = c.Do("PATCH", apitest.Path("/iaas/subnet/", p2), map[string]any{"address_range": "10.0.0.130/25"}, e.root).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_subnet_update_118", "parent gateway made equal to a child's: %s", got)
	up := c.Do("PATCH", apitest.Path("/iaas/subnet/", c2), map[string]any{"address_range": "10.0.0.131/25"}, e.root).Expect(200).Content()
	check(t, up["address_range"] == "10.0.0.131/25", "another gateway: %v", up)
}

func TestIaaSSubnetSpace(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	_, alloc := e.base(t)
	create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.65/26", "name": "a"})
	create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.193/27", "name": "b"})
	space := apitest.Path("/iaas/subnet_space/", alloc)
	user := e.tok(apitest.MemberUser)
	ranges := func(q string) (List apitest.List) {
		return c.For(t).Do("GET", space+q, nil, user).Expect(200).List()
	}
	all := ranges("")
	check(t, slices.Equal(all.Strings("address_range"), []string{"10.0.0.0/26", "10.0.0.65/26", "10.0.0.128/26", "10.0.0.193/27", "10.0.0.224/27"}),
		"all: %v", all.Strings("address_range"))
	check(t, all.Metadata.TotalRecords == 5 && all.Content[1]["name"] == "a" && all.Content[0]["id"] == nil, "all: %+v", all)
	free := ranges("?search[space_type]=free")
	check(t, slices.Equal(free.Strings("address_range"), []string{"10.0.0.0/26", "10.0.0.128/26", "10.0.0.224/27"}), "free: %v", free.Strings("address_range"))
	existing := ranges("?search[space_type]=existing")
	check(t, slices.Equal(existing.Strings("address_range"), []string{"10.0.0.65/26", "10.0.0.193/27"}), "existing: %v", existing.Strings("address_range"))
	page := ranges("?limit=2&page=1")
	check(t, slices.Equal(page.Strings("address_range"), []string{"10.0.0.128/26", "10.0.0.193/27"}) && page.Metadata.TotalRecords == 5, "page 1: %+v", page)
	got := c.Do("GET", space+"?search[space_type]=nonsense", nil, user).Expect(400).ErrorCode()
	check(t, got == "iaas_subnet_space_list_002", "bad space_type: %s", got)
	for _, tc := range []struct {
		path, tok string
	}{{space, e.tok(apitest.OtherMember)}, {"/iaas/subnet_space/999999/", user}, {"/iaas/subnet_space/abc/", user}} {
		got := c.Do("GET", tc.path, nil, tc.tok).Expect(400).ErrorCode()
		check(t, got == "iaas_subnet_space_list_001", "%s: %s", tc.path, got)
	}
}

func TestIaaSIPValidator(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	tok := e.tok(apitest.MemberUser)
	r := c.Do("GET", "/iaas/ip_validator/?address_ranges=10.0.0.0/24,192.168.0.1/33,2001:db8::/32&ip_addresses=10.0.0.5,foo,8.8.8.8", nil, tok).Expect(200)
	m := r.Map()
	ar := m["address_ranges"].(map[string]any)
	ia := m["ip_addresses"].(map[string]any)
	ok := ar["10.0.0.0/24"].(map[string]any)
	d := ok["details"].(map[string]any)
	check(t, ok["valid"] == true && ok["error"] == nil && d["network_address"] == "10.0.0.0" && d["broadcast_address"] == "10.0.0.255" &&
		d["netmask_address"] == "255.255.255.0" && d["ipv4"] == true, "10.0.0.0/24: %v", ok)
	bad := ar["192.168.0.1/33"].(map[string]any)
	check(t, bad["valid"] == false && bad["details"] == nil && bad["error"].(map[string]any)["error_code"] == "iaas_ip_validator_104", "/33: %v", bad)
	check(t, ar["2001:db8::/32"].(map[string]any)["details"].(map[string]any)["ipv6"] == true, "v6 range: %v", ar["2001:db8::/32"])
	a := ia["10.0.0.5"].(map[string]any)["details"].(map[string]any)
	check(t, a["parent_network"] == "10.0.0.0/24" && a["is_private"] == true, "10.0.0.5: %v", a)
	g := ia["8.8.8.8"].(map[string]any)["details"].(map[string]any)
	check(t, g["parent_network"] == nil && g["is_private"] == false, "8.8.8.8: %v", g)
	check(t, ia["foo"].(map[string]any)["error"].(map[string]any)["error_code"] == "iaas_ip_validator_106", "foo: %v", ia["foo"])
	// Keys keep the input order.
	check(t, bytes.Index(r.Body, []byte(`"10.0.0.0/24"`)) < bytes.Index(r.Body, []byte(`"192.168.0.1/33"`)) &&
		bytes.Index(r.Body, []byte(`"192.168.0.1/33"`)) < bytes.Index(r.Body, []byte(`"2001:db8::/32"`)), "key order: %s", r.Body)

	got := c.Do("GET", "/iaas/ip_validator/", nil, tok).Expect(400).ErrorCode()
	check(t, got == "iaas_ip_validator_001", "no parameters: %s", got)
	nv := c.Do("GET", "/iaas/ip_validator/?address_ranges=10.0.0.0/33&ip_addresses=nope", nil, tok).Expect(400)
	check(t, nv.FieldCode("address_ranges.10.0.0.0/33") == "iaas_ip_validator_104" && nv.FieldCode("ip_addresses.nope") == "iaas_ip_validator_106",
		"nothing valid: %s", nv)
	c.Do("GET", "/iaas/ip_validator/?ip_addresses=10.1.1.1", nil, e.tok(apitest.Robot)).Expect(200)
}

// TestIaaSMalformedQueryNotDropped: subnet_space and ip_validator read
// their query as the lists do: one that cannot be decoded (a '%' not
// starting an escape, a ';' separator) is 400 regent_request_005. Before,
// the pair was dropped: ?search[space_type]=free;limit=1 answered the
// whole space (space_type all) and address_ranges=%zz validated the
// addresses against no range, both 200 without a word.
func TestIaaSMalformedQueryNotDropped(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c.For(t)
	_, alloc := e.base(t)
	create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.65/26"})
	user := e.tok(apitest.MemberUser)
	space := apitest.Path("/iaas/subnet_space/", alloc)
	for _, path := range []string{
		space + "?search[space_type]=free;limit=1",
		space + "?search%5Bspace_type%5D=%zz",
		"/iaas/ip_validator/?ip_addresses=10.0.0.5&address_ranges=%zz",
		"/iaas/ip_validator/?ip_addresses=10.0.0.5;address_ranges=10.0.0.0/24",
	} {
		if got := c.Do("GET", path, nil, user).Expect(400).ErrorCode(); got != "regent_request_005" {
			t.Errorf("%s: %q, want regent_request_005", path, got)
		}
	}
	free := c.Do("GET", space+"?search[space_type]=free&limit=1", nil, user).Expect(200).List()
	check(t, free.Metadata.TotalRecords == 2 && len(free.Content) == 1, "a well-formed query: %+v", free)
}

func TestIaaSExhaustion(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	_, alloc := e.base(t)
	// 10.0.0.128/30: network .128 and broadcast .131 are reserved, .129 is
	// the gateway: one address is left.
	sn := create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.129/30"})
	ip := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": sn}, e.tok(apitest.MemberAdmin)).Expect(201).Content()
	check(t, ip["address"] == "10.0.0.130", "last address %v", ip)
	before := iaasState(t, c, e.root)
	got := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": sn}, e.tok(apitest.MemberAdmin)).Expect(422).ErrorCode()
	check(t, got == "iaas_ip_address_create_107", "full subnet: %s", got)
	check(t, iaasState(t, c, e.root) == before, "a refused allocation changed state")
}

func TestIaaSBadInput(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	asn, alloc := e.base(t)
	sn := create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.65/26"})
	admin := e.tok(apitest.MemberAdmin)
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		want   int
		code   string // top-level error_code, or "field:code"
	}{
		{"invalid CIDR /33", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.1/33"}, 400, "address_range:iaas_subnet_create_101"},
		{"not a CIDR", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "banana"}, 400, "address_range:iaas_subnet_create_101"},
		{"gateway is the network address", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.128/26"}, 400, "address_range:iaas_subnet_create_101"},
		{"gateway is the broadcast address", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.191/26"}, 400, "address_range:iaas_subnet_create_101"},
		{"v6 subnet in a v4 allocation", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "2001:db8::1/64"}, 400, "address_range:iaas_subnet_create_113"},
		{"subnet outside the allocation", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.1.1/26"}, 400, "address_range:iaas_subnet_create_114"},
		{"duplicate subnet", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.65/26"}, 400, "address_range:iaas_subnet_create_115"},
		{"overlapping subnet", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.97/27"}, 400, "address_range:iaas_subnet_create_116"},
		{"missing allocation", "POST", "/iaas/subnet/", map[string]any{"address_range": "10.0.0.129/26"}, 400, "allocation_id:iaas_subnet_create_102"},
		{"unknown allocation", "POST", "/iaas/subnet/", map[string]any{"allocation_id": 999999, "address_range": "10.0.0.129/26"}, 400, "allocation_id:iaas_subnet_create_102"},
		{"vlan out of range", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.129/26", "vlan": 5000}, 400, "vlan:iaas_subnet_create_105"},
		{"wrong type of address_range", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": 10}, 400, "address_range:regent_request_004"},
		{"wrong type of allocation_id", "POST", "/iaas/subnet/", map[string]any{"allocation_id": "one", "address_range": "10.0.0.129/26"}, 400, "allocation_id:regent_request_004"},
		{"unknown field", "POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.129/26", "colour": "red"}, 400, "colour:regent_request_003"},
		{"v6 address in a v4 subnet", "POST", "/iaas/ip_address/", map[string]any{"subnet_id": sn, "address": "2001:db8::5"}, 400, "address:iaas_ip_address_create_102"},
		{"malformed address", "POST", "/iaas/ip_address/", map[string]any{"subnet_id": sn, "address": "10.0.0.300"}, 400, "address:iaas_ip_address_create_102"},
		{"malformed MAC", "POST", "/iaas/ip_address/", map[string]any{"subnet_id": sn, "mac_address": "zz:zz"}, 400, "mac_address:iaas_ip_address_create_103"},
		{"wrong type of subnet_id", "POST", "/iaas/ip_address/", map[string]any{"subnet_id": "x"}, 400, "subnet_id:regent_request_004"},
		{"allocation CIDR /33", "POST", "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.9.0.0/33"}, 400, "address_range:iaas_allocation_create_101"},
		{"allocation of an unknown ASN", "POST", "/iaas/allocation/", map[string]any{"asn_id": 999999, "address_range": "10.9.0.0/24"}, 400, "asn_id:iaas_allocation_create_102"},
		{"allocation type", "POST", "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.9.0.0/24", "type": "shared"}, 400, "type:iaas_allocation_create_104"},
		{"ASN number zero", "POST", "/iaas/asn/", map[string]any{"member_id": e.r.MemberA, "number": 0}, 400, "number:iaas_asn_create_102"},
		{"ASN number negative", "POST", "/iaas/asn/", map[string]any{"member_id": e.r.MemberA, "number": -5}, 400, "number:regent_request_004"},
		{"malformed JSON", "POST", "/iaas/subnet/", "{", 400, "regent_request_002"},
		{"subnet PUT without address_range", "PUT", apitest.Path("/iaas/subnet/", sn), map[string]any{"name": "x"}, 400, "address_range:iaas_subnet_update_101"},
		{"subnet gateway to the network address", "PATCH", apitest.Path("/iaas/subnet/", sn), map[string]any{"address_range": "10.0.0.64/26"}, 400, "address_range:iaas_subnet_update_101"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.For(t)
			tok := admin
			if strings.HasPrefix(tc.path, "/iaas/allocation/") || strings.HasPrefix(tc.path, "/iaas/asn/") {
				tok = e.root
			}
			before := iaasState(t, c, e.root)
			resp := c.Do(tc.method, tc.path, tc.body, tok)
			if !resp.Check(tc.want) {
				return
			}
			if field, code, ok := strings.Cut(tc.code, ":"); ok {
				if got := resp.FieldCode(field); got != code {
					t.Errorf("%s: errors[%s].error_code = %q, want %q", resp, field, got, code)
				}
			} else if got := resp.ErrorCode(); got != tc.code {
				t.Errorf("%s: error_code = %q, want %q", resp, got, tc.code)
			}
			if after := iaasState(t, c, e.root); after != before {
				t.Errorf("a refused request changed state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestIaaSSchemasMatchViews is TestOpenAPISchemasMatchWireTypes for the
// iaas views and inputs: every field is a property, a field without
// omitempty is required (responses), and there is nothing else.
func TestIaaSSchemasMatchViews(t *testing.T) {
	spec, err := apitest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	schemas := spec.Doc.Components.Schemas
	cases := []struct {
		name     string
		typ      reflect.Type
		response bool
	}{
		{"ASN", reflect.TypeFor[iaas.ASNView](), true},
		{"Allocation", reflect.TypeFor[iaas.AllocationView](), true},
		{"Subnet", reflect.TypeFor[iaas.SubnetView](), true},
		{"IPAddress", reflect.TypeFor[iaas.IPAddressView](), true},
		{"FreeSpace", reflect.TypeFor[iaas.FreeSpace](), true},
		{"RangeDetails", reflect.TypeFor[iaas.RangeDetails](), true},
		{"AddressDetails", reflect.TypeFor[iaas.AddressDetails](), true},
		{"RangeResult", reflect.TypeFor[iaas.ValidatorItem](), true},
		{"AddressResult", reflect.TypeFor[iaas.ValidatorItem](), true},
		{"ValidatorError", reflect.TypeFor[ipam.ValidatorError](), true},
		{"Server", reflect.TypeFor[wire.ServerView](), true},
		{"Router", reflect.TypeFor[wire.RouterView](), true},
		{"CIXListEntry", reflect.TypeFor[wire.CIXListEntry](), true},
		{"Domain", reflect.TypeFor[wire.Domain](), true},
		{"Record", reflect.TypeFor[wire.Record](), true},
		{"ASNInput", reflect.TypeFor[iaas.ASNInput](), false},
		{"AllocationInput", reflect.TypeFor[iaas.AllocationInput](), false},
		{"SubnetInput", reflect.TypeFor[iaas.SubnetInput](), false},
		{"IPAddressInput", reflect.TypeFor[iaas.IPAddressInput](), false},
	}
	for _, tc := range cases {
		ref := schemas[tc.name]
		if ref == nil {
			t.Errorf("openapi.yaml has no schema %s", tc.name)
			continue
		}
		s := ref.Value
		fields := jsonFields(tc.typ)
		for name, omitempty := range fields {
			if s.Properties[name] == nil {
				t.Errorf("%s: %s.%s is not a property", tc.name, tc.typ.Name(), name)
				continue
			}
			if required := slices.Contains(s.Required, name); tc.response && required == omitempty {
				t.Errorf("%s.%s: required is %v, but the field is omitempty=%v", tc.name, name, required, omitempty)
			}
		}
		for name := range s.Properties {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s: no such field in %s", tc.name, name, tc.typ.Name())
			}
		}
	}
}

// TestIaaSAllocationPublicOverlap: a public range belongs to one member. No
// allocation of another ASN may overlap it, whichever side is public; private
// ranges of different ASNs may repeat (the per-project RFC 1918 ones).
func TestIaaSAllocationPublicOverlap(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	asnA := create(c, e.root, "/iaas/asn/", map[string]any{"member_id": e.r.MemberA, "number": 1})
	asnB := create(c, e.root, "/iaas/asn/", map[string]any{"member_id": e.r.MemberB, "number": 4})
	create(c, e.root, "/iaas/allocation/", map[string]any{"asn_id": asnA, "address_range": "8.8.8.0/24", "type": "public"})
	create(c, e.root, "/iaas/allocation/", map[string]any{"asn_id": asnA, "address_range": "10.0.0.0/16"})
	create(c, e.root, "/iaas/allocation/", map[string]any{"asn_id": asnB, "address_range": "10.0.0.0/16"}) // private ranges repeat
	create(c, e.root, "/iaas/allocation/", map[string]any{"asn_id": asnA, "address_range": "100.64.0.0/16"})
	for _, body := range []map[string]any{
		{"asn_id": asnB, "address_range": "8.8.8.0/25"},                      // private over A's public
		{"asn_id": asnB, "address_range": "8.8.0.0/16", "type": "public"},    // public over A's public
		{"asn_id": asnB, "address_range": "100.64.5.0/24", "type": "public"}, // public over A's private
	} {
		before := iaasState(t, c, e.root)
		got := c.Do("POST", "/iaas/allocation/", body, e.root).Expect(400).FieldCode("address_range")
		check(t, got == "iaas_allocation_create_103", "%v: %s", body, got)
		check(t, iaasState(t, c, e.root) == before, "a refused allocation changed state")
	}
	// A public allocation in RFC 1918 space would overlap the private
	// range every project gets, and stop every project create: 108, even
	// with no project yet.
	for _, r := range []string{"10.200.0.0/16", "172.31.0.0/24", "192.168.0.0/16", "8.0.0.0/6"} {
		before := iaasState(t, c, e.root)
		resp := c.Do("POST", "/iaas/allocation/", map[string]any{"asn_id": asnB, "address_range": r, "type": "public"}, e.root).Expect(400)
		check(t, resp.FieldCode("address_range") == "iaas_allocation_create_108" && strings.Contains(resp.String(), "every project"), "public %s: %s", r, resp)
		check(t, iaasState(t, c, e.root) == before, "a refused allocation changed state")
	}
}

// TestIaaSASNCountsAllocations: the refusals of an ASN delete and member
// move count its allocations, not the subnets inside them as well.
func TestIaaSASNCountsAllocations(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	asn, alloc := e.base(t)
	create(c, e.root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.0.1.0/24"})
	for _, r := range []string{"10.0.0.1/26", "10.0.0.65/26", "10.0.0.129/26"} {
		create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": r})
	}
	before := iaasState(t, c, e.root)
	del := c.Do("DELETE", apitest.Path("/iaas/asn/", asn), nil, e.root).Expect(400).Err()
	check(t, del.ErrorCode == "iaas_asn_delete_101" && strings.Contains(del.Detail, "has 2 allocation(s);"), "delete: %v", del)
	mv := c.Do("PATCH", apitest.Path("/iaas/asn/", asn), map[string]any{"member_id": e.r.MemberB}, e.root).Expect(400).Err()
	f := mv.Errors["member_id"]
	check(t, f.ErrorCode == "iaas_asn_update_104" && strings.Contains(f.Detail, "has 2 allocation(s);"), "move: %v", mv)
	check(t, iaasState(t, c, e.root) == before, "a refused request changed state")
}

// TestIaaSSubnetRouterFK: router_id is a foreign key (cloudcix-facts §5.7):
// a subnet may name only an existing router.
func TestIaaSSubnetRouterFK(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	c := f.c
	rt := newComputeRegion(c, f.root, f.reg).rt
	asn := create(c, f.root, "/iaas/asn/", map[string]any{"member_id": f.r.MemberA, "number": 65001})
	alloc := create(c, f.root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.0.0.0/24"})
	admin := f.r.Token(apitest.MemberAdmin)
	before := iaasState(t, c, f.root)
	got := c.Do("POST", "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.1/26", "router_id": 77}, admin).Expect(400).FieldCode("router_id")
	check(t, got == "iaas_subnet_create_123", "create with an unknown router: %s", got)
	check(t, iaasState(t, c, f.root) == before, "a refused create changed state")
	sn := create(c, admin, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.1/26", "router_id": rt})
	path := apitest.Path("/iaas/subnet/", sn)
	before = iaasState(t, c, f.root)
	got = c.Do("PATCH", path, map[string]any{"router_id": 77}, admin).Expect(400).FieldCode("router_id")
	check(t, got == "iaas_subnet_update_123", "update to an unknown router: %s", got)
	got = c.Do("PUT", path, map[string]any{"address_range": "10.0.0.1/26", "router_id": 77}, admin).Expect(400).FieldCode("router_id")
	check(t, got == "iaas_subnet_update_123", "PUT with an unknown router: %s", got)
	check(t, iaasState(t, c, f.root) == before, "a refused update changed state")
	upd := c.Do("PATCH", path, map[string]any{"router_id": 0}, admin).Expect(200).Content()
	check(t, num(upd["router_id"]) == 0, "router cleared: %v", upd)
	upd = c.Do("PATCH", path, map[string]any{"router_id": rt}, admin).Expect(200).Content()
	check(t, num(upd["router_id"]) == rt, "router set: %v", upd)
}

// TestIaaSProjectAllocationStays: now that the ASN's member may delete its
// allocations, a project's private allocations (its cloud subnets are made
// in them) are refused: they go with the project.
func TestIaaSProjectAllocationStays(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	c := f.c
	x := computeOf(f)
	p := c.Do("GET", apitest.Path("/iaas/project/", x.project), nil, f.root).Expect(200).Content()
	ids, _ := p["allocation_ids"].([]any)
	check(t, len(ids) == 3, "project allocations %v", p["allocation_ids"])
	for _, tok := range []string{f.r.Token(apitest.MemberAdmin), f.root} {
		before := iaasState(t, c, f.root)
		got := c.Do("DELETE", apitest.Path("/iaas/allocation/", num(ids[2])), nil, tok).Expect(400).ErrorCode()
		check(t, got == "iaas_allocation_delete_103", "delete of a project's allocation: %s", got)
		check(t, iaasState(t, c, f.root) == before, "a refused delete changed state")
	}
}

// TestIaaSListOrderNumeric: addresses and CIDRs sort as numbers, by network
// address then prefix length, both ways and across pages, not as text
// (10.0.0.10 before 10.0.0.9, 10.0.0.0/8 before 9.0.0.0/8).
func TestIaaSListOrderNumeric(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c
	_, alloc := e.base(t)
	sub := create(c, e.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.1/24"})
	for _, a := range []string{"10.0.0.10", "10.0.0.9", "10.0.0.100", "10.0.0.2"} {
		create(c, e.root, "/iaas/ip_address/", map[string]any{"subnet_id": sub, "address": a})
	}
	pages := func(path string) []string {
		var out []string
		for p := 0; p < 3; p++ {
			out = append(out, c.Do("GET", fmt.Sprintf("%s&limit=2&page=%d", path, p), nil, e.root).Expect(200).List().Strings(strings.TrimPrefix(path[strings.Index(path, "order=")+6:], "-"))...)
		}
		return out
	}
	got := pages("/iaas/ip_address/?order=address")
	check(t, slices.Equal(got, []string{"10.0.0.2", "10.0.0.9", "10.0.0.10", "10.0.0.100"}), "order=address: %v", got)
	got = pages("/iaas/ip_address/?order=-address")
	check(t, slices.Equal(got, []string{"10.0.0.100", "10.0.0.10", "10.0.0.9", "10.0.0.2"}), "order=-address: %v", got)
	l := c.Do("GET", "/iaas/ip_address/?search[address__within]=10.0.0.8/29&order=address", nil, e.root).Expect(200).List()
	check(t, slices.Equal(l.Strings("address"), []string{"10.0.0.9", "10.0.0.10"}) && len(l.Metadata.Warnings) == 0, "address within: %+v", l)

	for _, cidr := range []string{"10.0.0.0/8", "9.0.0.0/8", "10.0.0.0/16", "192.0.2.0/24"} {
		create(c, e.root, "/iaas/cix_blacklist/", map[string]any{"cidr": cidr})
	}
	got = pages("/iaas/cix_blacklist/?order=cidr")
	check(t, slices.Equal(got, []string{"9.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "192.0.2.0/24"}), "order=cidr: %v", got)
}

// TestIaaSListFilterNames: the IPAM lists filter and order by the names
// their views show, CloudCIX's: address_range (a CIDR, by network),
// allocation_id (nested subnets too), subnet__virtual_router_id; names
// they do not show (cidr, block_id, the allocation as a top-level subnet's
// parent_id) are skipped with a warning.
func TestIaaSListFilterNames(t *testing.T) {
	_, f, x := computeSetup(t)
	c, root, admin := f.c.For(t), f.root, f.r.Token(apitest.MemberAdmin)
	asn := create(c, root, "/iaas/asn/", map[string]any{"member_id": f.r.MemberA, "number": 65010})
	a1 := create(c, root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.0.0.0/24", "name": "a1"})
	a2 := create(c, root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "10.1.0.0/16", "name": "a2"})
	sA := create(c, admin, "/iaas/subnet/", map[string]any{"allocation_id": a1, "address_range": "10.0.0.1/25"})
	sN := create(c, admin, "/iaas/subnet/", map[string]any{"allocation_id": a1, "parent_id": sA, "address_range": "10.0.0.65/26"})
	sB := create(c, admin, "/iaas/subnet/", map[string]any{"allocation_id": a2, "address_range": "10.1.0.1/24"})
	ipN := create(c, admin, "/iaas/ip_address/", map[string]any{"subnet_id": sN, "address": "10.0.0.70"})

	type want struct {
		ids  []uint64
		warn bool
	}
	list := func(path string, w want) {
		t.Helper()
		l := c.Do("GET", path, nil, admin).Expect(200).List()
		if got := l.IDs(); !slices.Equal(got, w.ids) || (len(l.Metadata.Warnings) > 0) != w.warn {
			t.Errorf("%s: %v %q, want %v (warning %v)", path, got, l.Metadata.Warnings, w.ids, w.warn)
		}
	}
	mine := "&search[allocation_id__in]=" + fmt.Sprintf("%d,%d", a1, a2)
	list("/iaas/subnet/?search[allocation_id]="+fmt.Sprint(a1), want{ids: []uint64{sA, sN}})
	list("/iaas/subnet/?exclude[allocation_id]="+fmt.Sprint(a1)+"&search[allocation_id__in]="+fmt.Sprint(a2), want{ids: []uint64{sB}})
	list("/iaas/subnet/?search[address_range]=10.0.0.65/26", want{ids: []uint64{sN}})
	list("/iaas/subnet/?search[address_range]=10.0.0.64/26", want{ids: []uint64{sN}})
	list("/iaas/subnet/?search[address_range__within]=10.0.0.0/24"+mine, want{ids: []uint64{sA, sN}})
	list("/iaas/subnet/?search[address_range__istartswith]=10.1."+mine, want{ids: []uint64{sB}})
	list("/iaas/subnet/?search[gateway]=10.0.0.65", want{ids: []uint64{sN}})
	list("/iaas/subnet/?search[parent_id]="+fmt.Sprint(sA), want{ids: []uint64{sN}})
	list("/iaas/subnet/?search[parent_id__isnull]=true"+mine, want{ids: []uint64{sA, sB}})
	list("/iaas/subnet/?search[ips_in_use__gt]=0"+mine, want{ids: []uint64{sN}})
	list("/iaas/subnet/?order=-address_range"+mine, want{ids: []uint64{sB, sN, sA}})
	// Not shown, so not filterable: the allocation as a top-level
	// subnet's parent, and the stored names cidr.
	list("/iaas/subnet/?search[parent_id]="+fmt.Sprint(a1), want{ids: []uint64{}})
	list("/iaas/subnet/?search[cidr]=10.0.0.64/26"+mine, want{ids: []uint64{sA, sN, sB}, warn: true})

	list("/iaas/allocation/?search[address_range]=10.1.0.0/16", want{ids: []uint64{a2}})
	list("/iaas/allocation/?search[address_range__contains]=10.0.0.70&search[asn_id]="+fmt.Sprint(asn), want{ids: []uint64{a1}})
	list("/iaas/allocation/?search[asn_id]="+fmt.Sprint(asn)+"&order=-address_range", want{ids: []uint64{a2, a1}})
	list("/iaas/allocation/?search[asn_id]="+fmt.Sprint(asn)+"&search[cidr]=10.1.0.0/16", want{ids: []uint64{a1, a2}, warn: true})
	list("/iaas/asn/?search[is_pseudo]=false&search[number]=65010", want{ids: []uint64{asn}})

	list("/iaas/ip_address/?search[subnet_id]="+fmt.Sprint(sN), want{ids: []uint64{ipN}})
	list("/iaas/ip_address/?search[block_id]="+fmt.Sprint(sB)+"&search[subnet_id]="+fmt.Sprint(sN), want{ids: []uint64{ipN}, warn: true})
	// The cloud's VM addresses are in its virtual router's subnets.
	var vmIPs []uint64
	for _, ip := range c.Do("GET", "/iaas/ip_address/?search[vm_id]="+fmt.Sprint(x.vm), nil, admin).Expect(200).List().Content {
		if strings.HasPrefix(ip["address"].(string), "10.") {
			vmIPs = append(vmIPs, num(ip["id"]))
		}
	}
	check(t, len(vmIPs) == 1, "the VM's private address: %v", vmIPs)
	list("/iaas/ip_address/?search[subnet__virtual_router_id]="+fmt.Sprint(x.vr), want{ids: vmIPs})
	list("/iaas/ip_address/?search[subnet__virtual_router_id__in]=0&search[subnet_id]="+fmt.Sprint(sN), want{ids: []uint64{ipN}})
}

// TestIaaSListIsNullOnOptionalKeys: the optional foreign keys a view shows
// as 0 when unset (an address's vm_id and public_ip_id, its subnet's
// virtual_router_id; a subnet's router_id and virtual_router_id) are null to
// isnull, as in CloudCIX, where they are null: search[public_ip_id__isnull]=true
// finds the addresses without a public IP, not none of them.
func TestIaaSListIsNullOnOptionalKeys(t *testing.T) {
	e := newIaaSEnv(t)
	c, admin := e.c.For(t), e.tok(apitest.MemberAdmin)
	_, alloc := e.base(t)
	s := create(c, admin, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "10.0.0.1/25"})
	pub := create(c, admin, "/iaas/ip_address/", map[string]any{"subnet_id": s, "address": "10.0.0.10"})
	nat := create(c, admin, "/iaas/ip_address/", map[string]any{"subnet_id": s, "address": "10.0.0.11", "public_ip_id": pub})
	list := func(path string, want ...uint64) {
		t.Helper()
		l := c.Do("GET", path, nil, admin).Expect(200).List()
		if got := l.IDs(); !slices.Equal(got, want) || len(l.Metadata.Warnings) > 0 {
			t.Errorf("%s: %v %q, want %v", path, got, l.Metadata.Warnings, want)
		}
	}
	list("/iaas/ip_address/?search[public_ip_id__isnull]=true", pub)
	list("/iaas/ip_address/?search[public_ip_id__isnull]=false", nat)
	list("/iaas/ip_address/?exclude[public_ip_id__isnull]=true", nat)
	list("/iaas/ip_address/?search[vm_id__isnull]=true", pub, nat)
	list("/iaas/ip_address/?search[vm_id__isnull]=false")
	list("/iaas/ip_address/?search[subnet__virtual_router_id__isnull]=true", pub, nat)
	list("/iaas/ip_address/?search[vm_id]=0", pub, nat) // the number shown still matches
	list("/iaas/subnet/?search[router_id__isnull]=true", s)
	list("/iaas/subnet/?search[virtual_router_id__isnull]=false")
}

// TestIaaSMappedIPv6: IPv4 space written as IPv6 (::ffff:a.b.c.d) is
// refused as an allocation, a subnet and an address, with its own code, and
// nothing is made.
func TestIaaSMappedIPv6(t *testing.T) {
	e := newIaaSEnv(t)
	c := e.c.For(t)
	asn, _ := e.base(t)
	admin := e.tok(apitest.MemberAdmin)
	got := c.Do("POST", "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "::ffff:10.0.0.0/104"}, e.root).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_allocation_create_107", "mapped allocation: %s", got)
	got = c.Do("POST", "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "::ffff:0:0/96"}, e.root).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_allocation_create_107", "mapped allocation /96: %s", got)
	check(t, c.Do("GET", "/iaas/allocation/?search[address_range__iendswith]=/104", nil, e.root).Expect(200).List().Metadata.TotalRecords == 0, "a mapped allocation was made")

	v6 := create(c, e.root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "::/1"})
	got = c.Do("POST", "/iaas/subnet/", map[string]any{"allocation_id": v6, "address_range": "::ffff:10.0.0.1/120"}, admin).Expect(400).FieldCode("address_range")
	check(t, got == "iaas_subnet_create_124", "mapped subnet: %s", got)
	check(t, c.Do("GET", fmt.Sprintf("/iaas/subnet/?search[allocation_id]=%d", v6), nil, admin).Expect(200).List().Metadata.TotalRecords == 0, "a mapped subnet was made")

	sub := create(c, admin, "/iaas/subnet/", map[string]any{"allocation_id": v6, "address_range": "::1/64"})
	for _, a := range []string{"::ffff:10.0.0.5", "::ffff:a00:6"} {
		got = c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": sub, "address": a}, admin).Expect(400).FieldCode("address")
		check(t, got == "iaas_ip_address_create_112", "mapped address %s: %s", a, got)
	}
	check(t, c.Do("GET", fmt.Sprintf("/iaas/ip_address/?search[subnet_id]=%d", sub), nil, admin).Expect(200).List().Metadata.TotalRecords == 0, "a mapped address was made")
	create(c, admin, "/iaas/ip_address/", map[string]any{"subnet_id": sub, "address": "::a00:5"})
}

// TestIPAMStaleIfMatchCodes: a PATCH with a stale If-Match is 409
// with the service's own code, <app>_<service>_update_002, on every IPAM
// service, and changes nothing. Before the fix a subnet answered state's
// ipam_block_update_002 and an ASN ipam_asn_update_002 (allocation and
// ip_address mapped it themselves).
func TestIPAMStaleIfMatchCodes(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	f := newFixture(t, n)
	c := f.c.For(t)
	x := iaasOf(f)
	for _, tc := range []struct {
		path string
		body map[string]any
		code string
	}{
		{apitest.Path("/iaas/asn/", x.asn), map[string]any{"member_id": f.r.MemberA}, "iaas_asn_update_002"},
		{apitest.Path("/iaas/allocation/", x.alloc), map[string]any{"name": "renamed"}, "iaas_allocation_update_002"},
		{apitest.Path("/iaas/subnet/", x.subnet), map[string]any{"name": "renamed"}, "iaas_subnet_update_002"},
		{apitest.Path("/iaas/ip_address/", x.ip), map[string]any{"name": "renamed"}, "iaas_ip_address_update_002"},
	} {
		etag := c.Do("GET", tc.path, nil, f.root).Expect(200).Header.Get("ETag")
		h := http.Header{"X-Auth-Token": {f.root}, "If-Match": {etag}}
		c.DoHeader("PATCH", tc.path, tc.body, h).Expect(200)
		before := c.Do("GET", tc.path, nil, f.root).Expect(200).Body
		e := c.DoHeader("PATCH", tc.path, tc.body, h).Expect(409).Err()
		if e.ErrorCode != tc.code || !strings.Contains(e.Detail, "modified by another request") {
			t.Errorf("PATCH %s with a stale If-Match: %s %q, want %s", tc.path, e.ErrorCode, e.Detail, tc.code)
		}
		if after := c.Do("GET", tc.path, nil, f.root).Expect(200).Body; string(after) != string(before) {
			t.Errorf("%s: a refused compare-and-swap changed it:\n%s\n%s", tc.path, before, after)
		}
	}
}
