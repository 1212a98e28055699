package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	wire "github.com/regentcloud/regent/pkg/api"
)

// API tests of the model-level vectors of melange-facts §16 (items 77–79),
// of the per-block IPv6 generator, of Melange's 404/405 under /v0.1 and of
// the POST update of an unusable ip octet.

// allocateAll allocates the next free address of the block at base until
// the block is full (422) and returns the addresses in order.
func allocateAll(t *testing.T, e *melangeEnv, base string) []string {
	t.Helper()
	var got []string
	for i := 0; i < 64; i++ {
		r := e.c.Do("POST", base, nil, e.root)
		if r.Status == http.StatusUnprocessableEntity {
			return got
		}
		got = append(got, obj(t, r.Expect(201), "ip_address")["address"].(string))
	}
	t.Fatalf("%s: never full: %v", base, got)
	return nil
}

// Checklist 77, the policy table of melange-facts §6, row by row: each
// row's policy is put on two blocks of the row's CIDR; on one the
// disallowed addresses are refused when asked for (422 Block policy does
// not allow this address) and the allowed ones granted, on the other the
// next-free allocation skips the disallowed ones. A range is
// block[offset:offset+length] with a negative offset counting from the
// end and, when offset+length ≥ 0, running to the end: (-3, 3) is .5 .6
// .7 where a plain slice [-3:0] would be empty. The IPv4 broadcast (.7 of
// a /29) is reserved before any policy is looked at (409, §5), so what the
// table says of .7 is shown on a /31, whose last address is not reserved:
// (-1, 1) runs to the end and refuses it, (-2, 1) stops before it. Octets
// compare the last octet only.
func TestMelange_PolicyRangeOctetTable(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	type row struct {
		name          string
		ranges        [][2]int
		octets        []int
		cidr, gateway [2]string // the two blocks: specific requests, then next-free
		refused       []string
		allowed       []string
		broadcast     string   // 409 whatever the policy says ("" for none)
		order         []string // next-free allocations until full
	}
	rows := []row{
		{name: "(0,1)", ranges: [][2]int{{0, 1}}, cidr: [2]string{"10.70.0.0/29", "10.70.1.0/29"}, gateway: [2]string{"10.70.0.6", "10.70.1.6"},
			refused: []string{"10.70.0.0"}, allowed: []string{"10.70.0.1"}, broadcast: "10.70.0.7",
			order: []string{"10.70.1.1", "10.70.1.2", "10.70.1.3", "10.70.1.4", "10.70.1.5"}},
		{name: "(-3,2)", ranges: [][2]int{{-3, 2}}, cidr: [2]string{"10.70.2.0/29", "10.70.3.0/29"}, gateway: [2]string{"10.70.2.0", "10.70.3.0"},
			refused: []string{"10.70.2.5", "10.70.2.6"}, allowed: []string{"10.70.2.4"}, broadcast: "10.70.2.7",
			order: []string{"10.70.3.1", "10.70.3.2", "10.70.3.3", "10.70.3.4"}},
		{name: "(-3,3)", ranges: [][2]int{{-3, 3}}, cidr: [2]string{"10.70.4.0/29", "10.70.5.0/29"}, gateway: [2]string{"10.70.4.0", "10.70.5.0"},
			refused: []string{"10.70.4.5", "10.70.4.6"}, allowed: []string{"10.70.4.4"}, broadcast: "10.70.4.7",
			order: []string{"10.70.5.1", "10.70.5.2", "10.70.5.3", "10.70.5.4"}},
		{name: "(0,2)+(3,2)", ranges: [][2]int{{0, 2}, {3, 2}}, cidr: [2]string{"10.70.6.0/29", "10.70.7.0/29"}, gateway: [2]string{"10.70.6.5", "10.70.7.5"},
			refused: []string{"10.70.6.0", "10.70.6.1", "10.70.6.3", "10.70.6.4"}, allowed: []string{"10.70.6.2", "10.70.6.6"}, broadcast: "10.70.6.7",
			order: []string{"10.70.7.2", "10.70.7.6"}},
		{name: "(-1,1) on a /31", ranges: [][2]int{{-1, 1}}, cidr: [2]string{"10.70.8.0/31", "10.70.9.0/31"}, gateway: [2]string{"10.70.8.0", "10.70.9.0"},
			refused: []string{"10.70.8.1"}, order: nil},
		{name: "(-2,1) on a /31", ranges: [][2]int{{-2, 1}}, cidr: [2]string{"10.70.10.0/31", "10.70.11.0/31"}, gateway: [2]string{"10.70.10.0", "10.70.11.0"},
			allowed: []string{"10.70.10.1"}, order: []string{"10.70.11.1"}},
		{name: "octets 123, 124", octets: []int{123, 124}, cidr: [2]string{"10.0.0.0/8", "172.16.0.120/29"}, gateway: [2]string{"10.0.0.1", "172.16.0.121"},
			refused: []string{"10.0.0.123", "10.0.0.124", "10.124.124.124"}, allowed: []string{"10.124.123.6", "10.123.0.5"},
			order: []string{"172.16.0.120", "172.16.0.122", "172.16.0.125", "172.16.0.126"}},
	}
	for _, rw := range rows {
		t.Run(rw.name, func(t *testing.T) {
			p := e.policy(t, e.r.MemberA, map[string]any{"name": rw.name})
			ppath := melangePolicy(e.r.MemberA, melangeID(p))
			for _, rg := range rw.ranges {
				e.c.Do("POST", ppath+"/unusable_ip_ranges", map[string]any{"ip_range": map[string]any{"offset": rg[0], "length": rg[1]}}, tok).Expect(201)
			}
			for _, o := range rw.octets {
				e.c.Do("POST", ppath+"/unusable_ip_octets", map[string]any{"ip_octet": map[string]any{"octet": o}}, tok).Expect(201)
			}
			var bases [2]string
			for i := range bases {
				b := e.block(t, e.r.MemberA, map[string]any{"cidr": rw.cidr[i], "gateway": rw.gateway[i], "policy_id": p["id"], "network_id": fmt.Sprintf("pol-%s-%d", rw.name, i)})
				bases[i] = melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
			}
			specific := func(a string) *apitest.Response {
				return e.c.Do("POST", bases[0], map[string]any{"ip_address": map[string]any{"address": a}}, tok)
			}
			for _, a := range rw.refused {
				wantFault(t, specific(a), 422, "UnprocessableEntity", "Block policy does not allow this address")
			}
			for _, a := range rw.allowed {
				if got := obj(t, specific(a).Expect(201), "ip_address")["address"]; got != a {
					t.Errorf("asked for %s, got %v", a, got)
				}
			}
			if rw.broadcast != "" {
				wantFault(t, specific(rw.broadcast), 409, "Conflict", "Address is already allocated")
			}
			if got := allocateAll(t, e, bases[1]); !slices.Equal(got, rw.order) {
				t.Errorf("next-free order %v, want %v", got, rw.order)
			}
		})
	}
}

// Checklist 77, the IPv6 vectors of melange-facts §7 through the API, for
// both generators (chosen per block by ipv6_generator): the first address
// from the MAC and, the first being taken, the second (MAC + 1); a /72
// keeps only the IID's low 56 bits. Addresses come back fully expanded
// (as Melange stored them) and are found by any spelling; generated IPv6
// addresses ignore the policy (§6), specific ones do not.
func TestMelange_IPv6GeneratorVectors(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	tenant := fmt.Sprint(e.r.MemberA)
	for _, tc := range []struct {
		gen, cidr, mac, tenant string
		want                   []string
	}{
		// The tenant generator hashes the tenant, a member id here: the
		// fact sheet's vectors for tenant "1234" are checked in package
		// ipam, these against the same function (tenantV6).
		{"tenant", "fe::/64", "00:ff:12:89:67:34", tenant, []string{tenantV6("fe::/64", tenant, 0x00ff12896734), tenantV6("fe::/64", tenant, 0x00ff12896735)}},
		{"tenant", "fe::/72", "00:ff:12:89:67:34", tenant, []string{tenantV6("fe::/72", tenant, 0x00ff12896734)}},
		{"eui64", "fe::/64", "12:ff:12:89:67:34", tenant, []string{"00fe:0000:0000:0000:10ff:12ff:fe89:6734", "00fe:0000:0000:0000:10ff:12ff:fe89:6735"}},
		{"eui64", "fe::/72", "12:ff:12:89:67:34", tenant, []string{"00fe:0000:0000:0000:00ff:12ff:fe89:6734"}},
		// The default is the tenant generator.
		{"", "fe::/64", "00:ff:12:89:67:34", tenant, []string{tenantV6("fe::/64", tenant, 0x00ff12896734), tenantV6("fe::/64", tenant, 0x00ff12896735)}},
	} {
		t.Run(tc.gen+" "+tc.cidr, func(t *testing.T) {
			fields := map[string]any{"cidr": tc.cidr, "network_id": "v6-" + tc.gen + tc.cidr}
			if tc.gen != "" {
				fields["ipv6_generator"] = tc.gen
			}
			b := e.block(t, e.r.MemberA, fields)
			wantGen := tc.gen
			if wantGen == "" {
				wantGen = "tenant"
			}
			if b["ipv6_generator"] != wantGen {
				t.Errorf("block ipv6_generator %v, want %s", b["ipv6_generator"], wantGen)
			}
			base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
			for _, want := range tc.want {
				ip := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"mac_address": tc.mac, "tenant_id": tc.tenant}}, tok).Expect(201), "ip_address")
				if ip["address"] != want || ip["version"] != float64(6) {
					t.Errorf("address %v, want %s", ip["address"], want)
				}
			}
		})
	}

	// Expanded form: shown expanded everywhere, found by any spelling.
	p := e.policy(t, e.r.MemberA, map[string]any{"name": "v6"})
	e.c.Do("POST", melangePolicy(e.r.MemberA, melangeID(p))+"/unusable_ip_octets", map[string]any{"ip_octet": map[string]any{"octet": 0x34}}, tok).Expect(201)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "2001:db8::/64", "ipv6_generator": "eui64", "policy_id": p["id"], "network_id": "v6-expanded"})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	// The octet policy (last 16-bit group 0x0034) does not apply to a
	// generated address ...
	gen := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"mac_address": "12:ff:12:89:00:34"}}, tok).Expect(201), "ip_address")
	if gen["address"] != "2001:0db8:0000:0000:10ff:12ff:fe89:0034" {
		t.Errorf("generated %v", gen["address"])
	}
	// ... but to a specific one.
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "2001:db8::34"}}, tok), 422, "UnprocessableEntity", "Block policy does not allow this address")
	ip := obj(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "2001:DB8::1:0:0:5"}}, tok).Expect(201), "ip_address")
	const expanded = "2001:0db8:0000:0000:0001:0000:0000:0005"
	if ip["address"] != expanded {
		t.Errorf("specific address shown as %v, want %s", ip["address"], expanded)
	}
	for _, spelling := range []string{expanded, "2001:db8::1:0:0:5", "2001:db8:0:0:1::5", "2001:DB8::1:0:0:5"} {
		if got := obj(t, e.c.Do("GET", base+"/"+spelling, nil, tok).Expect(200), "ip_address"); got["address"] != expanded || got["id"] != ip["id"] {
			t.Errorf("GET %s: %v", spelling, got)
		}
	}
	if got := strs(items(t, e.c.Do("GET", base, nil, tok).Expect(200), "ip_addresses"), "address"); !slices.Equal(got, []string{"2001:0db8:0000:0000:10ff:12ff:fe89:0034", expanded}) {
		t.Errorf("list %v", got)
	}
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "2001:db8:0:0:1::5"}}, tok), 409, "Conflict", "Address is already allocated")
	x := xmlRoot(t, e.c.Do("GET", base+"/2001:db8::1:0:0:5.xml", nil, tok).Expect(200), "ip_address")
	if a, _ := x.attr("address"); a != expanded {
		t.Errorf("XML address %q", a)
	}
	e.c.Do("DELETE", base+"/"+expanded, nil, tok).Expect(200)
}

// The generator is chosen per block: ipv6_generator "tenant" (default) or
// "eui64", echoed in the block view (null on IPv4), 400 in Melange's shape
// for another value or on an IPv4 block, inherited by subnets unless they
// name their own, and updatable by PUT (the addresses held stay, the next
// come from the new generator).
func TestMelange_IPv6GeneratorChoice(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	blocks := melangeBlocks(e.r.MemberA)
	v4 := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.71.0.0/24"})
	if g, ok := v4["ipv6_generator"]; !ok || g != nil {
		t.Errorf("IPv4 block ipv6_generator %v (present %v), want null", g, ok)
	}
	before := melangeState(t, e, blocks)
	for _, tc := range []struct {
		fields map[string]any
		want   string
	}{
		{map[string]any{"cidr": "fd00::/64", "ipv6_generator": "rfc2462"}, "ipv6_generator should be one among tenant, eui64"},
		{map[string]any{"cidr": "fd00::/64", "ipv6_generator": "tenant-hash"}, "ipv6_generator should be one among tenant, eui64"},
		{map[string]any{"cidr": "fd00::/64", "ipv6_generator": 1}, "ipv6_generator"},
		{map[string]any{"cidr": "10.72.0.0/24", "ipv6_generator": "eui64"}, "ipv6_generator applies to IPv6 blocks only"},
		{map[string]any{"cidr": "10.72.0.0/24", "ipv6_generator": "tenant"}, "ipv6_generator applies to IPv6 blocks only"},
	} {
		wantFault(t, e.c.Do("POST", blocks, map[string]any{"ip_block": tc.fields}, tok), 400, "BadRequest", tc.want)
	}
	wantXMLFault(t, e.c.DoHeader("POST", blocks+".xml", `<ip_block cidr="fd00::/64" ipv6_generator="x"/>`, hdr(tok, "Content-Type", "application/xml")), 400, "BadRequest", "ipv6_generator")
	wantFault(t, e.c.Do("PUT", melangeBlock(e.r.MemberA, melangeID(v4)), map[string]any{"ip_block": map[string]any{"ipv6_generator": "eui64"}}, tok), 400, "BadRequest", "ipv6_generator applies to IPv6 blocks only")
	unchanged(t, e, before, blocks)

	// null or "" is the default.
	if g := e.block(t, e.r.MemberA, map[string]any{"cidr": "fd01::/64", "ipv6_generator": nil, "network_id": "n1"})["ipv6_generator"]; g != "tenant" {
		t.Errorf("null: %v", g)
	}
	parent := e.block(t, e.r.MemberA, map[string]any{"cidr": "fd02::/48", "ipv6_generator": "eui64", "network_id": "n2"})
	ppath := melangeBlock(e.r.MemberA, melangeID(parent))
	if got := obj(t, e.c.Do("GET", ppath, nil, tok).Expect(200), "ip_block"); got["ipv6_generator"] != "eui64" {
		t.Errorf("GET %v", got)
	}
	x := xmlRoot(t, e.c.Do("GET", ppath+".xml", nil, tok).Expect(200), "ip_block")
	if g, _ := x.attr("ipv6_generator"); g != "eui64" {
		t.Errorf("XML ipv6_generator %q", g)
	}
	inherited := obj(t, e.c.Do("POST", ppath+"/subnets", map[string]any{"subnet": map[string]any{"cidr": "fd02:0:0:1::/64"}}, tok).Expect(201), "subnet")
	own := obj(t, e.c.Do("POST", ppath+"/subnets", map[string]any{"subnet": map[string]any{"cidr": "fd02:0:0:2::/64", "ipv6_generator": "tenant"}}, tok).Expect(201), "subnet")
	if inherited["ipv6_generator"] != "eui64" || own["ipv6_generator"] != "tenant" {
		t.Errorf("subnets: inherited %v, own %v", inherited["ipv6_generator"], own["ipv6_generator"])
	}
	wantFault(t, e.c.Do("POST", ppath+"/subnets", map[string]any{"subnet": map[string]any{"cidr": "fd02:0:0:3::/64", "ipv6_generator": "nope"}}, tok), 400, "BadRequest", "ipv6_generator should be one among tenant, eui64")
	subs := strs(items(t, e.c.Do("GET", ppath+"/subnets", nil, tok).Expect(200), "subnets"), "ipv6_generator")
	if !slices.Equal(subs, []string{"eui64", "tenant"}) {
		t.Errorf("listed subnets' generators %v", subs)
	}

	// The subnet allocates by its generator; PUT switches it.
	spath := melangeBlock(e.r.MemberA, melangeID(inherited))
	alloc := func() string {
		return obj(t, e.c.Do("POST", spath+"/ip_addresses", map[string]any{"ip_address": map[string]any{"mac_address": "12:ff:12:89:67:34", "tenant_id": fmt.Sprint(e.r.MemberA)}}, tok).Expect(201), "ip_address")["address"].(string)
	}
	if a := alloc(); a != "fd02:0000:0000:0001:10ff:12ff:fe89:6734" {
		t.Errorf("EUI-64 subnet: %s", a)
	}
	upd := obj(t, e.c.Do("PUT", spath, map[string]any{"ip_block": map[string]any{"ipv6_generator": "tenant"}}, tok).Expect(200), "ip_block")
	if upd["ipv6_generator"] != "tenant" {
		t.Errorf("PUT: %v", upd)
	}
	if a, want := alloc(), tenantV6("fd02:0:0:1::/64", fmt.Sprint(e.r.MemberA), 0x12ff12896734); a != want {
		t.Errorf("after PUT tenant: %s, want %s", a, want)
	}
	// A PUT without the field keeps it.
	if got := obj(t, e.c.Do("PUT", spath, map[string]any{"ip_block": map[string]any{"dns1": "8.8.8.8"}}, tok).Expect(200), "ip_block"); got["ipv6_generator"] != "tenant" {
		t.Errorf("PUT without ipv6_generator: %v", got)
	}
	wantFault(t, e.c.Do("PUT", spath, map[string]any{"ip_block": map[string]any{"ipv6_generator": "sequential"}}, tok), 400, "BadRequest", "ipv6_generator should be one among tenant, eui64")
	if l := items(t, e.c.Do("GET", spath+"/ip_addresses", nil, tok).Expect(200), "ip_addresses"); len(l) != 2 {
		t.Errorf("addresses after the switch %v", l)
	}
}

// purgeNode is a node whose leader never purges on its own during a test
// (keep_deallocated_ips_for 48h, an hourly timer): the test proposes the
// leader's purge command itself, with the cutoff it chooses.
func purgeNode(t *testing.T) (*melangeEnv, func(cutoff time.Time) int) {
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) {
		c.KeepDeallocatedIPsFor = "48h"
		c.PurgeInterval = time.Hour
	}})
	c := n.Client(t)
	e := &melangeEnv{c: c, n: n, r: c.Roles(), root: n.RootToken}
	purge := func(cutoff time.Time) int {
		t.Helper()
		cmd, err := fsm.NewCommand(fsm.IPAddressPurgeType, time.Now(), fsm.Actor{}, fsm.IPPurgePayload{Cutoff: cutoff.UTC()})
		if err != nil {
			t.Fatal(err)
		}
		data, err := cmd.Encode()
		if err != nil {
			t.Fatal(err)
		}
		resp, _, err := n.Server.Cluster().Apply(context.Background(), data)
		if err != nil {
			t.Fatal(err)
		}
		r := resp.(fsm.Result)
		if r.Err != nil {
			t.Fatalf("purge: %v", r.Err)
		}
		return r.Value.(*wire.IPPurgeResult).Purged
	}
	return e, purge
}

// Checklist 78 (melange-facts §8): the purge removes the addresses released
// at or before its cutoff — inclusive: a cutoff 1ns before the release
// (shown as the address's updated_at) keeps it, one equal to it purges it —
// and frees them: a block that was full accepts allocations again and the
// freed addresses are handed out again, lowest first. The purge is the
// leader's command (fsm.IPAddressPurgeType with a cutoff), proposed here
// through the cluster as the leader's timer does, so nothing races a timer;
// TestMelange_LeaderPurgeFreesFullBlock shows the timer itself.
func TestMelange_PurgeBoundaryAndReuse(t *testing.T) {
	e, purge := purgeNode(t)
	tok := e.tok(apitest.MemberUser)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.73.0.0/29"}) // gateway .1, broadcast .7
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	all := allocateAll(t, e, base)
	if want := []string{"10.73.0.0", "10.73.0.2", "10.73.0.3", "10.73.0.4", "10.73.0.5", "10.73.0.6"}; !slices.Equal(all, want) {
		t.Fatalf("filled %v, want %v", all, want)
	}
	released := func(a string) time.Time {
		t.Helper()
		e.c.Do("DELETE", base+"/"+a, nil, tok).Expect(200)
		at, err := time.Parse(time.RFC3339Nano, obj(t, e.c.Do("GET", base+"/"+a, nil, tok).Expect(200), "ip_address")["updated_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	t3 := released("10.73.0.3")
	t0 := released("10.73.0.0")
	if t0.Before(t3) {
		t.Fatalf("release times %v, %v", t3, t0)
	}
	// Released but not purged: still taken, the block still full.
	wantFault(t, e.c.Do("POST", base, nil, tok), 422, "UnprocessableEntity", "")
	wantFault(t, e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.73.0.3"}}, tok), 409, "Conflict", "")

	if n := purge(t3.Add(-time.Nanosecond)); n != 0 {
		t.Fatalf("a cutoff before the release purged %d", n)
	}
	e.c.Do("GET", base+"/10.73.0.3", nil, tok).Expect(200)
	if n := purge(t3); n != 1 { // inclusive
		t.Fatalf("a cutoff equal to the release purged %d, want 1", n)
	}
	wantFault(t, e.c.Do("GET", base+"/10.73.0.3", nil, tok), 404, "NotFound", "IpAddress Not Found")
	e.c.Do("GET", base+"/10.73.0.0", nil, tok).Expect(200) // released later: kept

	// The full block allocates again: the freed address comes back.
	if got := allocateAll(t, e, base); !slices.Equal(got, []string{"10.73.0.3"}) {
		t.Errorf("after the first purge %v, want [10.73.0.3]", got)
	}
	if n := purge(t0); n != 1 {
		t.Fatalf("second purge %d, want 1", n)
	}
	if n := purge(t0); n != 0 {
		t.Fatalf("a purge with nothing due purged %d", n)
	}
	if got := allocateAll(t, e, base); !slices.Equal(got, []string{"10.73.0.0"}) {
		t.Errorf("after the second purge %v, want [10.73.0.0]", got)
	}
	// A purged address can also be asked for by name.
	e.c.Do("DELETE", base+"/10.73.0.6", nil, tok).Expect(200)
	purge(time.Now().Add(time.Hour))
	e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": "10.73.0.6"}}, tok).Expect(201)
}

// Checklist 78 with the leader's own timer: with keep_deallocated_ips_for
// 1ms and a 20ms purge interval, an address released from a full block is
// purged by the leader and the block allocates it again. The test waits for
// the outcome (bounded), not for a time.
func TestMelange_LeaderPurgeFreesFullBlock(t *testing.T) {
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) {
		c.KeepDeallocatedIPsFor = "1ms"
		c.PurgeInterval = 20 * time.Millisecond
	}})
	c := n.Client(t)
	e := &melangeEnv{c: c, n: n, r: c.Roles(), root: n.RootToken}
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.74.0.0/30"}) // .0 and .2 (gateway .1, broadcast .3)
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	if got := allocateAll(t, e, base); !slices.Equal(got, []string{"10.74.0.0", "10.74.0.2"}) {
		t.Fatalf("filled %v", got)
	}
	e.c.Do("DELETE", base+"/10.74.0.2", nil, e.root).Expect(200)
	deadline := time.Now().Add(30 * time.Second)
	for e.c.Do("GET", base+"/10.74.0.2", nil, e.root).Status == http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the leader never purged the released address")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := allocateAll(t, e, base); !slices.Equal(got, []string{"10.74.0.2"}) {
		t.Errorf("after the purge %v, want [10.74.0.2]", got)
	}
}

// Checklist 79 (melange-facts §9) through mac_address_ranges and
// interfaces: a /48 range holds one MAC; with it used up and no other
// range, an interface gets 422 No more mac Addresses (and is not created);
// a /47 holds two, after which the next range (by id) is used; a freed
// MAC — an interface deleted — is handed out again, in the /48 as in the
// /47.
func TestMelange_MACRangeSizes(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	newIface := func(vif string) *apitest.Response {
		return e.c.Do("POST", melangeIfaces, map[string]any{"interface": map[string]any{"id": vif, "tenant_id": a}}, e.root)
	}
	mac := func(vif string) any {
		t.Helper()
		return obj(t, newIface(vif).Expect(201), "interface")["mac_address"]
	}
	e.macRange(t, "BC:76:4E:20:00:00/48")
	if m := mac("vif-a"); m != "bc:76:4e:20:00:00" {
		t.Errorf("/48: %v", m)
	}
	wantFault(t, newIface("vif-b"), 422, "UnprocessableEntity", "No more mac Addresses")
	wantFault(t, e.c.Do("GET", fmt.Sprintf("/v0.1/ipam/tenants/%s/interfaces/vif-b", a), nil, e.root), 404, "NotFound", "Interface Not Found")

	e.macRange(t, "BC:76:4E:30:00:00/47")
	e.macRange(t, "BC:76:4E:40:00:00/47")
	for _, tc := range []struct{ vif, want string }{
		{"vif-b", "bc:76:4e:30:00:00"}, {"vif-c", "bc:76:4e:30:00:01"}, {"vif-d", "bc:76:4e:40:00:00"},
	} {
		if m := mac(tc.vif); m != tc.want {
			t.Errorf("%s: %v, want %s", tc.vif, m, tc.want)
		}
	}
	e.c.Do("DELETE", melangeIfaces+"/vif-a", nil, e.root).Expect(200)
	e.c.Do("DELETE", melangeIfaces+"/vif-c", nil, e.root).Expect(200)
	for _, tc := range []struct{ vif, want string }{
		{"vif-e", "bc:76:4e:20:00:00"}, {"vif-f", "bc:76:4e:30:00:01"}, {"vif-g", "bc:76:4e:40:00:01"},
	} {
		if m := mac(tc.vif); m != tc.want {
			t.Errorf("%s: %v, want %s", tc.vif, m, tc.want)
		}
	}
	wantFault(t, newIface("vif-h"), 422, "UnprocessableEntity", "No more mac Addresses")
}

// Under /v0.1 a path no route serves is Melange's 404 NotFound and a
// method a path does not take Melange's 405 MethodNotAllowed with Allow,
// in JSON or XML as asked (suffix, then Accept), before authentication;
// outside /v0.1 Regent's shape is unchanged.
func TestMelange_UnknownRoutesAndMethods(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.75.0.0/24"})
	path := melangeBlock(e.r.MemberA, melangeID(b))
	for _, p := range []string{"/v0.1/nope", "/v0.1/ipam/nothing", "/v0.1/ipam/tenants", path + "/nothing", path + "/ip_addresses/10.75.0.1/nothing",
		melangeBlocks(e.r.MemberA) + ".json/", "/v0.1/ipam/tenants/1/ip_blocks/1/subnets/2"} {
		for _, token := range []string{tok, ""} {
			r := e.c.Do("GET", p, nil, token)
			wantFault(t, r, 404, "NotFound", "No such route.")
			isJSON(t, r)
		}
	}
	wantXMLFault(t, e.c.Do("GET", "/v0.1/ipam/nothing.xml", nil, tok), 404, "NotFound", "No such route.")
	wantXMLFault(t, e.c.DoHeader("GET", "/v0.1/ipam/nothing", nil, hdr(tok, "Accept", "application/xml")), 404, "NotFound", "No such route.")
	wantFault(t, e.c.DoHeader("GET", "/v0.1/ipam/nothing.json", nil, hdr(tok, "Accept", "application/xml")), 404, "NotFound", "No such route.")
	if r := e.c.Do("HEAD", "/v0.1/nope", nil, tok).Expect(404); len(r.Body) != 0 {
		t.Errorf("HEAD body %q", r.Body)
	}

	for _, tc := range []struct {
		method, path, allow string
	}{
		{"PATCH", path, "GET, HEAD, PUT, DELETE"},
		{"POST", path, "GET, HEAD, PUT, DELETE"},
		{"PATCH", path + "/", "GET, HEAD, PUT, DELETE"},
		{"OPTIONS", path, "GET, HEAD, PUT, DELETE"},
		{"DELETE", melangeBlocks(e.r.MemberA), "GET, HEAD, POST"},
		{"PUT", melangeBlocks(e.r.MemberA) + ".json", "GET, HEAD, POST"},
		{"GET", path + "/ip_addresses/10.75.0.1/restore", "PUT"},
		{"POST", "/v0.1", "GET, HEAD"},
		{"DELETE", "/v0.1/", "GET, HEAD"},
		{"POST", "/v0.1.json", "GET, HEAD"},
		{"DELETE", "/v0.1/ipam", "GET, HEAD"},
		{"POST", "/v0.1/ipam/mac_address_ranges/1", "GET, HEAD, DELETE"},
		{"PUT", "/v0.1/ipam/interfaces", "POST"},
	} {
		for _, token := range []string{tok, ""} {
			r := e.c.Do(tc.method, tc.path, nil, token)
			wantFault(t, r, 405, "MethodNotAllowed", "allowed: "+tc.allow)
			isJSON(t, r)
			if got := r.Header.Get("Allow"); got != tc.allow {
				t.Errorf("%s: Allow %q, want %q", r, got, tc.allow)
			}
		}
	}
	wantXMLFault(t, e.c.Do("PATCH", path+".xml", nil, tok), 405, "MethodNotAllowed", "allowed: GET, HEAD, PUT, DELETE")
	wantXMLFault(t, e.c.Do("POST", "/v0.1.xml", nil, tok), 405, "MethodNotAllowed", "allowed: GET, HEAD")
	wantXMLFault(t, e.c.DoHeader("PATCH", path, nil, hdr(tok, "Accept", "application/xml")), 405, "MethodNotAllowed", "")
	// The block was not touched.
	if got := obj(t, e.c.Do("GET", path, nil, tok).Expect(200), "ip_block"); got["id"] != b["id"] {
		t.Errorf("block %v", got)
	}

	// Outside /v0.1 nothing changes.
	for _, tc := range []struct {
		method, path, code string
	}{{"GET", "/nope", "regent_request_007"}, {"GET", "/v0.10/ipam", "regent_request_007"}, {"POST", "/", "regent_request_006"}, {"PUT", "/healthz", "regent_request_006"}} {
		r := e.c.Do(tc.method, tc.path, nil, tok)
		if got := r.ErrorCode(); got != tc.code || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: error_code %q, want %q", r, got, tc.code)
		}
	}
}

// melange-api-spec documents the update of an unusable ip octet as POST on
// /unusable_ip_octets/:(id): it is the PUT update (which stays), 200 with
// the octet, applied at once to the blocks of the policy; an unknown octet
// is 404 IpOctet Not Found, another tenant's URL 403.
func TestMelange_UnusableIPOctetUpdateByPost(t *testing.T) {
	e := newMelangeEnv(t)
	tok := e.tok(apitest.MemberUser)
	p := e.policy(t, e.r.MemberA, map[string]any{"name": "p"})
	ppath := melangePolicy(e.r.MemberA, melangeID(p))
	oct := obj(t, e.c.Do("POST", ppath+"/unusable_ip_octets", map[string]any{"ip_octet": map[string]any{"octet": 123}}, tok).Expect(201), "ip_octet")
	opath := fmt.Sprintf("%s/unusable_ip_octets/%s", ppath, oct["id"])
	b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.76.0.0/24", "policy_id": p["id"]})
	base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
	specific := func(a string) *apitest.Response {
		return e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": a}}, tok)
	}
	wantFault(t, specific("10.76.0.123"), 422, "UnprocessableEntity", "Block policy does not allow this address")

	got := obj(t, e.c.Do("POST", opath, map[string]any{"ip_octet": map[string]any{"octet": "124", "policy_id": "999"}}, tok).Expect(200), "ip_octet")
	if got["id"] != oct["id"] || got["octet"] != float64(124) || got["policy_id"] != p["id"] {
		t.Errorf("POST update %v", got)
	}
	if got := obj(t, e.c.Do("GET", opath, nil, tok).Expect(200), "ip_octet"); got["octet"] != float64(124) {
		t.Errorf("GET after POST %v", got)
	}
	specific("10.76.0.123").Expect(201)
	wantFault(t, specific("10.76.0.124"), 422, "UnprocessableEntity", "Block policy does not allow this address")

	// The suffixes and PUT keep working.
	x := xmlRoot(t, e.c.Do("POST", opath+".xml", map[string]any{"ip_octet": map[string]any{"octet": 125}}, tok).Expect(200), "ip_octet")
	if o, _ := x.attr("octet"); o != "125" {
		t.Errorf("POST .xml %+v", x)
	}
	if got := obj(t, e.c.Do("PUT", opath+".json", map[string]any{"ip_octet": map[string]any{"octet": 126}}, tok).Expect(200), "ip_octet"); got["octet"] != float64(126) {
		t.Errorf("PUT %v", got)
	}
	wantFault(t, e.c.Do("POST", opath, map[string]any{"ip_octet": map[string]any{"octet": 256}}, tok), 400, "BadRequest", "octet")
	wantFault(t, e.c.Do("POST", ppath+"/unusable_ip_octets/999999", map[string]any{"ip_octet": map[string]any{"octet": 1}}, tok), 404, "NotFound", "IpOctet Not Found")
	wantFault(t, e.c.Do("POST", opath, map[string]any{"ip_octet": map[string]any{"octet": 1}}, e.tok(apitest.OtherMember)), 403, "Forbidden", "")
	if got := obj(t, e.c.Do("GET", opath, nil, tok).Expect(200), "ip_octet"); got["octet"] != float64(126) {
		t.Errorf("refused updates changed the octet: %v", got)
	}
}
