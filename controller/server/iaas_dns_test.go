package server_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// --- objects of the auth matrix rows of the DNS services ---

// dnsFixture: member A is self-managed and owns domain A with record A;
// public subnet P (45.x.y.1/24, allocation A's ASN) holds an address of
// member A that PTR A names.
type dnsFixture struct {
	domain     uint64
	domainName string
	record     uint64
	pubSubnet  uint64
	ptr        uint64
}

var (
	dnsMu  sync.Mutex
	dnsFix = map[*fixture]*dnsFixture{}
)

func dnsOf(f *fixture) *dnsFixture {
	dnsMu.Lock()
	defer dnsMu.Unlock()
	if x, ok := dnsFix[f]; ok {
		return x
	}
	x := &dnsFixture{}
	f.c.Do("PATCH", apitest.Path("/membership/member/", f.r.MemberA), map[string]any{"self_managed": true}, f.root).Expect(200)
	x.domainName = f.n.Unique("zone-a") + ".example"
	x.domain = create(f.c, f.r.Token(apitest.MemberAdmin), "/iaas/domain/", map[string]any{"name": x.domainName})
	x.record = create(f.c, f.r.Token(apitest.MemberAdmin), "/iaas/record/", map[string]any{
		"domain_id": x.domain, "name": "www." + x.domainName, "type": "A", "content": "192.0.2.10"})
	n := iaasSeq.Add(1)
	alloc := create(f.c, f.root, "/iaas/allocation/", map[string]any{"asn_id": iaasOf(f).asn,
		"address_range": fmt.Sprintf("45.%d.%d.0/24", 1+n/256%200, n%256)})
	x.pubSubnet = create(f.c, f.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc,
		"address_range": fmt.Sprintf("45.%d.%d.1/24", 1+n/256%200, n%256)})
	x.ptr = create(f.c, f.r.Token(apitest.MemberAdmin), "/iaas/ptr_record/", newPTRBody(f, x).body)
	dnsFix[f] = x
	return x
}

func domainA(f *fixture) request {
	return request{path: apitest.Path("/iaas/domain/", dnsOf(f).domain)}
}
func recordA(f *fixture) request {
	return request{path: apitest.Path("/iaas/record/", dnsOf(f).record)}
}
func ptrA(f *fixture) request { return request{path: apitest.Path("/iaas/ptr_record/", dnsOf(f).ptr)} }

func newDomainBody(f *fixture) request {
	dnsOf(f)
	return request{path: "/iaas/domain/", body: map[string]any{"name": f.n.Unique("new") + ".example"}}
}

func newDomain(f *fixture) request {
	b := newDomainBody(f)
	return request{path: apitest.Path("/iaas/domain/", create(f.c, f.r.Token(apitest.MemberAdmin), b.path, b.body))}
}

func newRecordBody(f *fixture) request {
	x := dnsOf(f)
	return request{path: "/iaas/record/", body: map[string]any{"domain_id": x.domain,
		"name": f.n.Unique("host") + "." + x.domainName, "type": "AAAA", "content": "2001:db8::1", "ttl": 300}}
}

func newRecord(f *fixture) request {
	b := newRecordBody(f)
	return request{path: apitest.Path("/iaas/record/", create(f.c, f.root, b.path, b.body))}
}

func putRecordA(f *fixture) request {
	r := recordA(f)
	x := dnsOf(f)
	r.body = map[string]any{"name": "www." + x.domainName, "content": "192.0.2.11", "ttl": 600}
	return r
}

// newPTRBody allocates a new address of member A in the public subnet and
// names it.
func newPTRBody(f *fixture, x ...*dnsFixture) request {
	var d *dnsFixture
	if len(x) > 0 {
		d = x[0]
	} else {
		d = dnsOf(f)
	}
	addr := f.c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": d.pubSubnet}, f.root).Expect(201).Content()["address"]
	return request{path: "/iaas/ptr_record/", body: map[string]any{"ip_address": addr, "content": f.n.Unique("host") + ".example.com"}}
}

func newPTR(f *fixture) request {
	b := newPTRBody(f)
	return request{path: apitest.Path("/iaas/ptr_record/", create(f.c, f.r.Token(apitest.MemberAdmin), b.path, b.body))}
}

func putPTRA(f *fixture) request {
	r := ptrA(f)
	r.body = map[string]any{"content": "renamed.example.com", "ttl": 900}
	return r
}

// --- API tests ---

func TestDNS_RecordTypesValidated(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	tok := f.r.Token(apitest.MemberUser)
	z := x.domainName
	for _, tc := range []struct {
		name, typ, content string
		prio               int
		code               string // "" = 201
	}{
		{"a." + z, "A", "192.0.2.1", 1, ""},
		{"a." + z, "A", "2001:db8::1", 1, "content:iaas_record_create_111"},
		{"a6." + z, "AAAA", "2001:db8::1", 1, ""},
		{"a6." + z, "AAAA", "192.0.2.1", 1, "content:iaas_record_create_111"},
		{"sub." + z, "NS", "ns1.example.net", 1, ""},
		{"sub." + z, "NS", "not a host", 1, "content:iaas_record_create_111"},
		{"alias." + z, "CNAME", "a." + z, 1, ""},
		{"@", "CNAME", "a." + z, 1, "type:iaas_record_create_118"},
		{z + ".", "CNAME", "a." + z, 1, "type:iaas_record_create_118"},
		{"self." + z, "CNAME", "Self." + z + ".", 1, "content:iaas_record_create_111"},
		{"@", "MX", "mail." + z, 10, ""},
		{"@", "MX", "mail." + z, 70000, "priority:iaas_record_create_115"},
		{"@", "MX", "192.0.2.25", 10, "content:iaas_record_create_111"},
		{"@", "MX", "2001:db8::25", 10, "content:iaas_record_create_111"},
		{"@", "TXT", "v=spf1 -all", 1, ""},
		{"@", "TXT", `"unterminated`, 1, "content:iaas_record_create_111"},
		{"@", "SPF", "v=spf1 mx -all", 1, ""},
		{"_sip._tcp." + z, "SRV", "5 5060 sip." + z, 10, ""},
		{"_sip._tcp." + z, "SRV", "5060 sip." + z, 10, "content:iaas_record_create_111"},
		{"sip." + z, "SRV", "5 5060 sip." + z, 10, "name:iaas_record_create_109"},
		{"host." + z, "SSHFP", "4 2 " + strings.Repeat("0f", 32), 1, ""},
		{"host." + z, "SSHFP", "4 2 xyz", 1, "content:iaas_record_create_111"},
		{"@", "LOC", "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m", 1, ""},
		{"@", "LOC", "95 0 0 N 0 0 0 E 0m", 1, "content:iaas_record_create_111"},
		{"@", "NAPTR", `100 10 "U" "E2U+sip" "!^.*$!sip:info@example.com!" .`, 1, ""},
		{"@", "NAPTR", `100 10 U sip x .`, 1, "content:iaas_record_create_111"},
		{"www.elsewhere.org", "A", "192.0.2.1", 1, "name:iaas_record_create_109"},
		{"x." + z, "PTR", "a.example.com", 1, "type:iaas_record_create_107"},
		{"x." + z, "DNAME", "a.example.com", 1, "type:iaas_record_create_106"},
		// CNAME exclusivity, both ways, and duplicates
		{"a." + z, "CNAME", "b." + z, 1, "type:iaas_record_create_118"},
		{"alias." + z, "A", "192.0.2.9", 1, "type:iaas_record_create_118"},
		{"a." + z, "A", "192.0.2.1", 1, "content:iaas_record_create_119"},
		// Names compare without case or a final dot; TXT and SPF strings byte for byte.
		{"sub." + z, "NS", "NS1.Example.NET.", 1, "content:iaas_record_create_119"},
		{"@", "TXT", "v=spf1 -all", 1, "content:iaas_record_create_119"},
		{"@", "TXT", "V=SPF1 -ALL", 1, ""},
		{"@", "TXT", "v=spf1 -all.", 1, ""},
		{"@", "SPF", "V=spf1 mx -all", 1, ""},
		// NS, MX and SRV targets are hosts, not aliases (RFC 2181 §10.3), both ways
		{"@", "MX", "alias." + z + ".", 20, "content:iaas_record_create_121"},
		{"deleg." + z, "NS", "ALIAS." + z, 1, "content:iaas_record_create_121"},
		{"_xmpp._tcp." + z, "SRV", "5 5222 alias." + z, 10, "content:iaas_record_create_121"},
		{"mail." + z, "CNAME", "a." + z, 1, "type:iaas_record_create_121"},
		{"sip." + z, "CNAME", "a." + z, 1, "type:iaas_record_create_121"},
		{"@", "MX", ".", 0, ""}, // the null MX names no host
	} {
		body := map[string]any{"domain_id": x.domain, "name": tc.name, "type": tc.typ, "content": tc.content, "priority": tc.prio}
		r := c.Do("POST", "/iaas/record/", body, tok)
		if tc.code == "" {
			r.Expect(201)
			continue
		}
		r.Expect(400)
		field, code, _ := strings.Cut(tc.code, ":")
		if got := r.FieldCode(field); got != code {
			t.Errorf("%s %s %q: error %s, want %s:%s", tc.name, tc.typ, tc.content, r, field, code)
		}
	}
	// nor can an update move a CNAME to the apex
	cn := create(c, tok, "/iaas/record/", map[string]any{"domain_id": x.domain, "name": "moving." + z, "type": "CNAME", "content": "a." + z})
	if r := c.Do("PATCH", apitest.Path("/iaas/record/", cn), map[string]any{"name": "@"}, tok).Expect(400); r.FieldCode("type") != "iaas_record_update_118" {
		t.Errorf("CNAME moved to the apex: %s, want type:iaas_record_update_118", r)
	}
	// TTL below the minimum, and the default
	r := c.Do("POST", "/iaas/record/", map[string]any{"domain_id": x.domain, "name": "t." + z, "type": "A", "content": "192.0.2.3", "ttl": 179}, tok).Expect(400)
	if r.FieldCode("ttl") != "iaas_record_create_113" {
		t.Errorf("ttl 179: %s", r)
	}
	rec := c.Do("POST", "/iaas/record/", map[string]any{"domain_id": x.domain, "name": "T." + z + ".", "type": "a", "content": "192.0.2.3", "time_to_live": 180}, tok).Expect(201).Content()
	if rec["ttl"] != float64(180) || rec["name"] != "t."+z || rec["type"] != "A" {
		t.Errorf("record normalised to %v", rec)
	}
}

func TestDNS_RecordOwnership(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	other := f.r.Token(apitest.OtherMember)
	// another member cannot see or use member A's domain
	r := c.Do("POST", "/iaas/record/", map[string]any{"domain_id": x.domain, "name": "evil." + x.domainName, "type": "A", "content": "192.0.2.66"}, other).Expect(400)
	if r.FieldCode("domain_id") != "iaas_record_create_103" {
		t.Errorf("other member's domain: %s", r)
	}
	c.Do("GET", apitest.Path("/iaas/record/", x.record), nil, other).Expect(404)
	c.Do("GET", apitest.Path("/iaas/domain/", x.domain), nil, other).Expect(404)
	if l := c.Do("GET", "/iaas/record/", nil, other).Expect(200).List(); len(l.Content) != 0 {
		t.Errorf("other member lists %d records", len(l.Content))
	}
	// nor create a domain inside member A's
	f.c.Do("PATCH", apitest.Path("/membership/member/", f.r.MemberB), map[string]any{"self_managed": true}, f.root).Expect(200)
	r = c.Do("POST", "/iaas/domain/", map[string]any{"name": "sub." + x.domainName}, other).Expect(400)
	if r.FieldCode("name") != "iaas_domain_create_106" {
		t.Errorf("nested domain of another member: %s", r)
	}
	// type is immutable
	r = c.Do("PATCH", apitest.Path("/iaas/record/", x.record), map[string]any{"type": "AAAA"}, f.r.Token(apitest.MemberUser)).Expect(400)
	if r.FieldCode("type") != "iaas_record_update_106" {
		t.Errorf("type change: %s", r)
	}
}

func TestDNS_DomainDeleteRemovesRecords(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	d := newDomain(f)
	dom := c.Do("GET", d.path, nil, f.root).Expect(200).Content()
	name := dom["name"].(string)
	id := create(c, f.root, "/iaas/record/", map[string]any{"domain_id": dom["id"], "name": "x." + name, "type": "TXT", "content": "hello"})
	c.Do("DELETE", d.path, nil, f.r.Token(apitest.MemberUser)).Expect(204)
	c.Do("GET", apitest.Path("/iaas/record/", id), nil, f.root).Expect(404)
}

func TestDNS_PTR(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	dnsOf(f)
	admin := f.r.Token(apitest.MemberAdmin)
	b := newPTRBody(f)
	addr := b.body.(map[string]any)["ip_address"].(string)
	ptr := c.Do("POST", "/iaas/ptr_record/", b.body, admin).Expect(201).Content()
	parts := strings.Split(addr, ".")
	wantName := fmt.Sprintf("%s.%s.%s.%s.in-addr.arpa", parts[3], parts[2], parts[1], parts[0])
	if ptr["name"] != wantName || ptr["type"] != "PTR" || ptr["ip_address"] != addr {
		t.Fatalf("ptr = %v, want name %s", ptr, wantName)
	}
	// the /24 reverse zone was created for the region (member 1)
	dom := c.Do("GET", apitest.Path("/iaas/domain/", uint64(ptr["domain_id"].(float64))), nil, f.root).Expect(200).Content()
	if dom["name"] != strings.SplitN(wantName, ".", 2)[1] || dom["member_id"] != float64(1) {
		t.Errorf("reverse zone = %v", dom)
	}
	// PTRs are not forward records
	c.Do("GET", apitest.Path("/iaas/record/", uint64(ptr["id"].(float64))), nil, admin).Expect(404)
	// one PTR per address
	r := c.Do("POST", "/iaas/ptr_record/", b.body, admin).Expect(400)
	if r.FieldCode("ip_address") != "iaas_ptr_record_create_110" {
		t.Errorf("second PTR: %s", r)
	}
	// bad input
	for _, tc := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"content": "a.example.com"}, "ip_address:iaas_ptr_record_create_101"},
		{map[string]any{"ip_address": "banana", "content": "a.example.com"}, "ip_address:iaas_ptr_record_create_102"},
		{map[string]any{"ip_address": "10.0.0.1", "content": "a.example.com"}, "ip_address:iaas_ptr_record_create_103"},
		{map[string]any{"ip_address": "127.0.0.1", "content": "a.example.com"}, "ip_address:iaas_ptr_record_create_103"},
		{map[string]any{"ip_address": "8.8.8.8", "content": "a.example.com"}, "ip_address:iaas_ptr_record_create_109"},
		{map[string]any{"ip_address": addr, "content": ""}, "content:iaas_ptr_record_create_104"},
		{map[string]any{"ip_address": addr, "content": strings.Repeat("a", 241)}, "content:iaas_ptr_record_create_105"},
		{map[string]any{"ip_address": addr, "content": "not a host"}, "content:iaas_ptr_record_create_106"},
		{map[string]any{"ip_address": addr, "content": "a.example.com", "ttl": 10}, "ttl:iaas_ptr_record_create_108"},
	} {
		r := c.Do("POST", "/iaas/ptr_record/", tc.body, admin).Expect(400)
		field, code, _ := strings.Cut(tc.code, ":")
		if r.FieldCode(field) != code {
			t.Errorf("%v: %s, want %s", tc.body, r, tc.code)
		}
	}
	// another member may not name member A's address; the list is scoped
	other := f.r.Token(apitest.OtherMember)
	b2 := newPTRBody(f)
	r = c.Do("POST", "/iaas/ptr_record/", b2.body, other).Expect(400)
	if r.FieldCode("ip_address") != "iaas_ptr_record_create_109" {
		t.Errorf("other member's address: %s", r)
	}
	if l := c.Do("GET", "/iaas/ptr_record/", nil, other).Expect(200).List(); len(l.Content) != 0 {
		t.Errorf("other member lists %d PTR records", len(l.Content))
	}
}

// TestDNS_PTRLongestReverseZone: an operator's reverse zone that encloses
// the address is used instead of creating the CloudCIX /24.
func TestDNS_PTRLongestReverseZone(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	dnsOf(f)
	zone := create(c, f.root, "/iaas/domain/", map[string]any{"name": "46.in-addr.arpa"})
	alloc := create(c, f.root, "/iaas/allocation/", map[string]any{"asn_id": iaasOf(f).asn, "address_range": "46.1.2.0/24"})
	sub := create(c, f.root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "46.1.2.1/24"})
	addr := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": sub}, f.root).Expect(201).Content()["address"]
	ptr := c.Do("POST", "/iaas/ptr_record/", map[string]any{"ip_address": addr, "content": "h.example.com"}, f.r.Token(apitest.MemberAdmin)).Expect(201).Content()
	if ptr["domain_id"] != float64(zone) {
		t.Errorf("PTR in domain %v, want the operator's zone %d", ptr["domain_id"], zone)
	}
	// members cannot create reverse zones themselves
	r := c.Do("POST", "/iaas/domain/", map[string]any{"name": "47.in-addr.arpa"}, f.r.Token(apitest.MemberAdmin)).Expect(400)
	if r.FieldCode("name") != "iaas_domain_create_107" {
		t.Errorf("member reverse zone: %s", r)
	}
}

// TestDNS_DomainNameCodes: a domain name's errors carry CloudCIX's codes
// (dns-facts §1.1: 101 missing or blank, 102 longer than 240, 103 a label
// longer than 63) and Regent's for what CloudCIX does not check (105 taken,
// 107 a member's reverse zone, 108 other syntax); none changes anything.
func TestDNS_DomainNameCodes(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	admin := f.r.Token(apitest.MemberAdmin)
	before := dnsState(t, c, f.root)
	long := strings.Repeat(strings.Repeat("a", 60)+".", 4) + "example" // 251 characters, labels ≤ 63
	for _, tc := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{}, "iaas_domain_create_101"},
		{map[string]any{"name": ""}, "iaas_domain_create_101"},
		{map[string]any{"name": "   "}, "iaas_domain_create_101"},
		{map[string]any{"name": "/"}, "iaas_domain_create_101"},
		{map[string]any{"name": long}, "iaas_domain_create_102"},
		{map[string]any{"name": strings.Repeat("b", 64) + ".example"}, "iaas_domain_create_103"},
		{map[string]any{"name": "www." + strings.Repeat("c", 64) + ".example/"}, "iaas_domain_create_103"},
		{map[string]any{"name": x.domainName}, "iaas_domain_create_105"},
		{map[string]any{"name": "47.in-addr.arpa"}, "iaas_domain_create_107"},
		{map[string]any{"name": "bad..name"}, "iaas_domain_create_108"},
		{map[string]any{"name": "com"}, "iaas_domain_create_108"},
		{map[string]any{"name": "under_score.example"}, "iaas_domain_create_108"},
	} {
		r := c.Do("POST", "/iaas/domain/", tc.body, admin).Expect(400)
		if got := r.FieldCode("name"); got != tc.code {
			t.Errorf("name %v: code %q, want %q (%s)", tc.body["name"], got, tc.code, r)
		}
	}
	if after := dnsState(t, c, f.root); after != before {
		t.Errorf("refused domains changed the state:\nbefore %s\nafter  %s", before, after)
	}
	// 63 characters in a label, and 240 in all, are allowed.
	for _, ok := range []string{strings.Repeat("d", 63) + "." + f.n.Unique("ok") + ".example",
		strings.Repeat(strings.Repeat("e", 58)+".", 4) + f.n.Unique("f")[:3]} {
		if len(ok) > 240 {
			t.Fatalf("test name %d long", len(ok))
		}
		create(c, admin, "/iaas/domain/", map[string]any{"name": ok})
	}
}

// TestDNS_RecordInReverseZone: a reverse zone that a PTR record created is a
// domain its owner sees, but its records are PTRs made through ptr_record:
// a record there is refused with a code of its own and says why, never a
// false "doesn't exist"; a member who cannot see the zone still gets 103.
func TestDNS_RecordInReverseZone(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	dnsOf(f)
	b := newPTRBody(f)
	ptr := c.Do("POST", "/iaas/ptr_record/", b.body, f.root).Expect(201).Content()
	zone := uint64(ptr["domain_id"].(float64))
	dom := c.Do("GET", apitest.Path("/iaas/domain/", zone), nil, f.root).Expect(200).Content()
	zname := dom["name"].(string)
	if !strings.HasSuffix(zname, ".in-addr.arpa") {
		t.Fatalf("reverse zone %v", dom)
	}
	before := dnsState(t, c, f.root)
	for _, typ := range []string{"CNAME", "NS", "A", "TXT"} {
		content := "8.0-25." + zname
		if typ == "A" {
			content = "192.0.2.1"
		}
		r := c.Do("POST", "/iaas/record/", map[string]any{"domain_id": zone, "name": "8." + zname, "type": typ, "content": content}, f.root).Expect(400)
		if got := r.FieldCode("domain_id"); got != "iaas_record_create_120" || !strings.Contains(r.String(), zname+" is a reverse zone") {
			t.Errorf("%s in the reverse zone: code %q, want iaas_record_create_120 naming the zone (%s)", typ, got, r)
		}
	}
	r := c.Do("POST", "/iaas/record/", map[string]any{"domain_id": zone, "name": "8." + zname, "type": "CNAME", "content": "x.example.com"},
		f.r.Token(apitest.MemberAdmin)).Expect(400)
	if got := r.FieldCode("domain_id"); got != "iaas_record_create_103" {
		t.Errorf("member, region's reverse zone: code %q, want iaas_record_create_103 (%s)", got, r)
	}
	if after := dnsState(t, c, f.root); after != before {
		t.Errorf("refused records changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

func dnsState(t *testing.T, c *apitest.Client, token string) string {
	t.Helper()
	var b strings.Builder
	for _, svc := range []string{"domain", "record", "ptr_record", "ip_address"} {
		r := c.Do("GET", "/iaas/"+svc+"/?limit=1000", nil, token).Expect(200)
		fmt.Fprintf(&b, "%s index %s: %s\n", svc, r.Header.Get("X-Regent-Index"), r.Body)
	}
	return b.String()
}

// TestDNS_BadInputChangesNothing: every refused request is a 4xx with an
// error code and leaves the state (and its indexes) as it was.
func TestDNS_BadInputChangesNothing(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	z := x.domainName
	create(c, f.root, "/iaas/record/", map[string]any{"domain_id": x.domain, "name": "cname." + z, "type": "CNAME", "content": "www." + z})
	before := dnsState(t, c, f.root)
	user := f.r.Token(apitest.MemberUser)
	other := f.r.Token(apitest.OtherMember)
	huge := make([]any, 10000)
	for i := range huge {
		huge[i] = map[string]any{"x": i}
	}
	rec := func(kv ...any) map[string]any {
		m := map[string]any{"domain_id": x.domain, "name": "bad." + z, "type": "A", "content": "192.0.2.1"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		method, path string
		body         any
		token        string
	}{
		{"POST", "/iaas/record/", rec("content", "999.1.1.1"), user},
		{"POST", "/iaas/record/", rec("type", "AAAA", "content", "1.2.3.4"), user},
		{"POST", "/iaas/record/", rec("type", "MX", "content", "mail."+z, "priority", -1), user},
		{"POST", "/iaas/record/", rec("type", "TXT", "content", `"a" "b`), user},
		{"POST", "/iaas/record/", rec("type", "SRV", "name", "srv."+z, "content", "1 2 x."+z), user},
		{"POST", "/iaas/record/", rec("type", "SSHFP", "content", "1 1 abc"), user},
		{"POST", "/iaas/record/", rec("type", "LOC", "content", "north pole"), user},
		{"POST", "/iaas/record/", rec("type", "NAPTR", "content", "1 2 3"), user},
		{"POST", "/iaas/record/", rec("type", "CNAME", "name", "@", "content", "www."+z), user},
		{"POST", "/iaas/record/", rec("name", "www.example.org"), user},
		{"POST", "/iaas/record/", rec("name", "cname."+z), user},
		{"POST", "/iaas/record/", rec("ttl", 179), user},
		{"POST", "/iaas/record/", rec("ttl", "3600"), user},
		{"POST", "/iaas/record/", rec("domain_id", 999999), user},
		{"POST", "/iaas/record/", rec(), other},
		{"POST", "/iaas/record/", rec("content", strings.Repeat("1", 300)), user},
		{"POST", "/iaas/record/", huge, user},
		{"POST", "/iaas/record/", rec("surprise", true), user},
		{"PATCH", apitest.Path("/iaas/record/", x.record), map[string]any{"content": "not-an-ip"}, user},
		{"PATCH", apitest.Path("/iaas/record/", x.record), map[string]any{"name": "elsewhere.org"}, user},
		{"PUT", apitest.Path("/iaas/record/", x.record), map[string]any{"content": "192.0.2.1"}, user},
		{"POST", "/iaas/domain/", map[string]any{"name": "bad..name"}, user},
		{"POST", "/iaas/domain/", map[string]any{"name": "com"}, user},
		{"POST", "/iaas/domain/", map[string]any{"name": z}, user},
		{"POST", "/iaas/domain/", map[string]any{}, user},
		{"POST", "/iaas/domain/", map[string]any{"name": "x.example"}, other},
		{"POST", "/iaas/ptr_record/", map[string]any{"ip_address": "8.8.4.4", "content": "h.example.com"}, user},
		{"POST", "/iaas/ptr_record/", map[string]any{"ip_address": "192.168.1.1", "content": "h.example.com"}, user},
		{"POST", "/iaas/ptr_record/", map[string]any{"ip_address": "2001:db8::1", "content": "bad host"}, user},
		{"PATCH", apitest.Path("/iaas/ptr_record/", x.ptr), map[string]any{"ip_address": "8.8.8.8"}, f.r.Token(apitest.MemberAdmin)},
		{"PATCH", apitest.Path("/iaas/ptr_record/", x.ptr), map[string]any{"ttl": 1}, f.r.Token(apitest.MemberAdmin)},
	} {
		r := c.Do(tc.method, tc.path, tc.body, tc.token)
		if r.Status < 400 || r.Status >= 500 {
			t.Errorf("%s %s %v: %s, want a 4xx", tc.method, tc.path, tc.body, r)
			continue
		}
		if r.ErrorCode() == "" && len(r.Err().Errors) == 0 {
			t.Errorf("%s %s: no error code in %s", tc.method, tc.path, r)
		}
	}
	if after := dnsState(t, c, f.root); after != before {
		t.Errorf("refused requests changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

// TestPTRRecordOrderNumeric: PTR records order by ip_address as numbers
// (x.x.x.9 before x.x.x.10), as the IPAM lists order addresses, not as
// text; and ip_address filters as an address (__within).
func TestPTRRecordOrderNumeric(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	admin := f.r.Token(apitest.MemberAdmin)
	rng := c.Do("GET", apitest.Path("/iaas/subnet/", x.pubSubnet), nil, f.root).Expect(200).Content()["address_range"].(string)
	net := strings.TrimSuffix(rng, "1/24") // "45.a.b."
	for _, last := range []string{"10", "9", "100", "3"} {
		addr := net + last
		c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": x.pubSubnet, "address": addr}, f.root).Expect(201)
		c.Do("POST", "/iaas/ptr_record/", map[string]any{"ip_address": addr, "content": "zz" + last + ".example.com"}, admin).Expect(201)
	}
	within := "&search[content__istartswith]=zz&search[ip_address__within]=" + net + "0/24"
	var got []string
	for p := 0; p < 3; p++ {
		got = append(got, c.Do("GET", fmt.Sprintf("/iaas/ptr_record/?order=ip_address&limit=2&page=%d%s", p, within), nil, admin).Expect(200).List().Strings("ip_address")...)
	}
	want := []string{net + "3", net + "9", net + "10", net + "100"}
	if !slices.Equal(got, want) {
		t.Errorf("order=ip_address: %v, want %v", got, want)
	}
	l := c.Do("GET", "/iaas/ptr_record/?order=-ip_address"+within, nil, admin).Expect(200).List()
	slices.Reverse(want)
	if got := l.Strings("ip_address"); !slices.Equal(got, want) || len(l.Metadata.Warnings) != 0 {
		t.Errorf("order=-ip_address: %v %q, want %v", got, l.Metadata.Warnings, want)
	}
}

// TestDNS_PTRGoesWithAddress: deleting an address deletes its PTR record in
// the same command, and the reverse zone's serial moves; the address's next
// holder can name it. Before, the PTR outlived the address (and named the
// next holder's address: its own PTR was refused with 110).
func TestDNS_PTRGoesWithAddress(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	admin := f.r.Token(apitest.MemberAdmin)
	ip := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": x.pubSubnet}, f.root).Expect(201).Content()
	ptr := c.Do("POST", "/iaas/ptr_record/", map[string]any{"ip_address": ip["address"], "content": "gone.example.com"}, admin).Expect(201).Content()
	zone := apitest.Path("/iaas/domain/", uint64(ptr["domain_id"].(float64)))
	serial := c.Do("GET", zone, nil, f.root).Expect(200).Content()["serial"].(float64)
	c.Do("DELETE", apitest.Path("/iaas/ip_address/", uint64(ip["id"].(float64))), nil, f.root).Expect(204)
	c.Do("GET", apitest.Path("/iaas/ptr_record/", uint64(ptr["id"].(float64))), nil, admin).Expect(404)
	if s := c.Do("GET", zone, nil, f.root).Expect(200).Content()["serial"].(float64); s <= serial {
		t.Errorf("reverse zone serial %v after the PTR went, was %v", s, serial)
	}
	again := c.Do("POST", "/iaas/ip_address/", map[string]any{"subnet_id": x.pubSubnet, "address": ip["address"]}, f.root).Expect(201).Content()
	if again["address"] != ip["address"] {
		t.Fatalf("address %v, want %v again", again["address"], ip["address"])
	}
	c.Do("POST", "/iaas/ptr_record/", map[string]any{"ip_address": ip["address"], "content": "next.example.com"}, admin).Expect(201)
}

// TestDNS_MemberDeleteKeepsZones: a member that still has DNS domains or
// records cannot be deleted (400 membership_member_delete_106, nothing
// changed), as one with IPAM objects cannot (104). Before, the member went
// and its zones stayed served, owned by nobody.
func TestDNS_MemberDeleteKeepsZones(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	m := c.CreateMember(root, n.Unique("dns-member"))
	c.Do("PATCH", apitest.Path("/membership/member/", m), map[string]any{"self_managed": true}, root).Expect(200)
	u := c.CreateUser(root, m, n.Unique("dns-admin"), true)
	_, tok := c.CreateToken(root, u)
	name := n.Unique("kept") + ".example"
	dom := create(c, tok, "/iaas/domain/", map[string]any{"name": name})
	rec := create(c, tok, "/iaas/record/", map[string]any{"domain_id": dom, "name": "www." + name, "type": "A", "content": "192.0.2.1"})
	c.Do("DELETE", apitest.Path("/membership/user/", u), nil, root).Expect(204)
	member := apitest.Path("/membership/member/", m)
	before := fmt.Sprint(c.Do("GET", member, nil, root).Expect(200).Content())
	for _, step := range []string{"domain and record", "domain"} {
		r := c.Do("DELETE", member, nil, root).Expect(400)
		if got := r.ErrorCode(); got != "membership_member_delete_106" || !strings.Contains(r.String(), "DNS") {
			t.Errorf("member delete with a %s: %s", step, r)
		}
		if after := fmt.Sprint(c.Do("GET", member, nil, root).Expect(200).Content()); after != before {
			t.Errorf("refused delete changed the member:\n%s\n%s", before, after)
		}
		c.Do("GET", apitest.Path("/iaas/domain/", dom), nil, root).Expect(200)
		if step == "domain and record" {
			c.Do("DELETE", apitest.Path("/iaas/record/", rec), nil, root).Expect(204)
		}
	}
	c.Do("DELETE", apitest.Path("/iaas/domain/", dom), nil, root).Expect(204)
	c.Do("DELETE", member, nil, root).Expect(204)
}

// TestDNS_BlankRecordName: a blank name is refused as a missing one (108),
// on create and on update; it does not become the apex ("@" is the apex).
func TestDNS_BlankRecordName(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	tok := f.r.Token(apitest.MemberUser)
	before := dnsState(t, c, f.root)
	for _, name := range []string{"", "   "} {
		r := c.Do("POST", "/iaas/record/", map[string]any{"domain_id": x.domain, "name": name, "type": "A", "content": "192.0.2.77"}, tok).Expect(400)
		if r.FieldCode("name") != "iaas_record_create_108" {
			t.Errorf("create with name %q: %s, want name:iaas_record_create_108", name, r)
		}
		r = c.Do("PATCH", apitest.Path("/iaas/record/", x.record), map[string]any{"name": name}, tok).Expect(400)
		if r.FieldCode("name") != "iaas_record_update_108" {
			t.Errorf("update with name %q: %s, want name:iaas_record_update_108", name, r)
		}
	}
	if after := dnsState(t, c, f.root); after != before {
		t.Errorf("refused requests changed the state:\nbefore %s\nafter  %s", before, after)
	}
	c.Do("POST", "/iaas/record/", map[string]any{"domain_id": x.domain, "name": "@", "type": "A", "content": "192.0.2.77"}, tok).Expect(201)
}

// TestDNS_TTLTwoSpellings: ttl and time_to_live are one parameter; a body
// with both is 400 regent_request_005 (as ip_validator's two spellings),
// on records and PTR records, create and update, and changes nothing.
func TestDNS_TTLTwoSpellings(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	admin := f.r.Token(apitest.MemberAdmin)
	ptr := newPTRBody(f).body.(map[string]any)
	ptr["ttl"], ptr["time_to_live"] = 600, 900
	before := dnsState(t, c, f.root)
	for _, tc := range []struct {
		method, path string
		body         map[string]any
	}{
		{"POST", "/iaas/record/", map[string]any{"domain_id": x.domain, "name": "two." + x.domainName, "type": "A", "content": "192.0.2.5", "ttl": 600, "time_to_live": 900}},
		{"PATCH", apitest.Path("/iaas/record/", x.record), map[string]any{"ttl": 600, "time_to_live": 600}},
		{"POST", "/iaas/ptr_record/", ptr},
		{"PATCH", apitest.Path("/iaas/ptr_record/", x.ptr), map[string]any{"ttl": 600, "time_to_live": 900}},
	} {
		if r := c.Do(tc.method, tc.path, tc.body, admin).Expect(400); r.ErrorCode() != "regent_request_005" {
			t.Errorf("%s %s with ttl and time_to_live: %s, want regent_request_005", tc.method, tc.path, r)
		}
	}
	if after := dnsState(t, c, f.root); after != before {
		t.Errorf("refused requests changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

// TestDNS_RecordListCloudCIXFields: the record and PTR record lists take
// CloudCIX's field names (dns-facts §1.2: domain, time_to_live) for
// domain_id and ttl, in filters and order, without a warning; search[domain]
// was ignored and listed every record.
func TestDNS_RecordListCloudCIXFields(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	admin := f.r.Token(apitest.MemberAdmin)
	other := create(c, admin, "/iaas/domain/", map[string]any{"name": f.n.Unique("other") + ".example"})
	slow := create(c, admin, "/iaas/record/", map[string]any{"domain_id": other, "name": "@", "type": "A", "content": "192.0.2.8", "ttl": 86400})
	for _, tc := range []struct {
		query string
		want  []uint64
	}{
		{fmt.Sprintf("search[domain]=%d", other), []uint64{slow}},
		{fmt.Sprintf("exclude[domain]=%d&search[domain__in]=(%d,%d)", x.domain, x.domain, other), []uint64{slow}},
		{"search[time_to_live__gte]=86400", []uint64{slow}},
		{fmt.Sprintf("search[domain_id]=%d&order=-time_to_live", other), []uint64{slow}},
	} {
		l := c.Do("GET", "/iaas/record/?"+tc.query, nil, admin).Expect(200).List()
		if !slices.Equal(l.IDs(), tc.want) || len(l.Metadata.Warnings) != 0 {
			t.Errorf("record/?%s: ids %v warnings %q, want %v and no warnings", tc.query, l.IDs(), l.Metadata.Warnings, tc.want)
		}
	}
	if l := c.Do("GET", "/iaas/record/?order=-time_to_live", nil, admin).Expect(200).List(); l.Metadata.Order != "-ttl" || len(l.IDs()) == 0 || l.IDs()[0] != slow {
		t.Errorf("record/?order=-time_to_live: order %q ids %v, want -ttl with %d first", l.Metadata.Order, l.IDs(), slow)
	}
	if l := c.Do("GET", "/iaas/ptr_record/?search[time_to_live]=3600", nil, admin).Expect(200).List(); len(l.Metadata.Warnings) != 0 || !slices.Contains(l.IDs(), x.ptr) {
		t.Errorf("ptr_record/?search[time_to_live]=3600: ids %v warnings %q, want PTR %d", l.IDs(), l.Metadata.Warnings, x.ptr)
	}
}

// TestDNS_NestedDomains: a domain is not created over records its parent
// holds at or below its apex (409 iaas_domain_create_109; the delegation
// NS and its glue may stay), and a record of the parent inside an existing
// child domain is refused (400 iaas_record_{create,update}_122 on name):
// the server answers from the most specific zone, so those records would
// never be served while the parent's transfers still handed them out.
func TestDNS_NestedDomains(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	dnsOf(f)
	tok := f.r.Token(apitest.MemberAdmin)
	yy := f.n.Unique("yy") + ".example"
	parent := create(c, tok, "/iaas/domain/", map[string]any{"name": yy})
	rec := func(name, typ, content string) map[string]any {
		return map[string]any{"domain_id": parent, "name": name, "type": typ, "content": content}
	}
	create(c, tok, "/iaas/record/", rec("dev."+yy, "NS", "ns1.dev."+yy))
	create(c, tok, "/iaas/record/", rec("ns1.dev."+yy, "A", "192.0.2.53"))
	www := create(c, tok, "/iaas/record/", rec("www.dev."+yy, "A", "192.0.2.90"))
	before := dnsState(t, c, f.root)
	r := c.Do("POST", "/iaas/domain/", map[string]any{"name": "dev." + yy}, tok).Expect(409)
	if r.ErrorCode() != "iaas_domain_create_109" || !strings.Contains(r.Err().Detail, "www.dev."+yy) {
		t.Errorf("child domain over a record of the parent: %s, want 409 iaas_domain_create_109 naming www.dev.%s", r, yy)
	}
	if after := dnsState(t, c, f.root); after != before {
		t.Errorf("the refused domain changed the state:\nbefore %s\nafter  %s", before, after)
	}
	c.Do("DELETE", apitest.Path("/iaas/record/", www), nil, tok).Expect(204)
	child := create(c, tok, "/iaas/domain/", map[string]any{"name": "dev." + yy})
	r = c.Do("POST", "/iaas/record/", rec("ftp.dev."+yy, "A", "192.0.2.21"), tok).Expect(400)
	if r.FieldCode("name") != "iaas_record_create_122" || !strings.Contains(r.Err().Errors["name"].Detail, fmt.Sprintf("is in domain dev.%s (id %d): create it there", yy, child)) {
		t.Errorf("record of the parent inside the child: %s, want name:iaas_record_create_122 naming the child", r)
	}
	other := create(c, tok, "/iaas/record/", rec("other."+yy, "A", "192.0.2.22"))
	if r := c.Do("PATCH", apitest.Path("/iaas/record/", other), map[string]any{"name": "other.dev." + yy}, tok).Expect(400); r.FieldCode("name") != "iaas_record_update_122" {
		t.Errorf("record of the parent moved into the child: %s, want name:iaas_record_update_122", r)
	}
	create(c, tok, "/iaas/record/", rec("dev."+yy, "NS", "ns2.dev."+yy)) // more delegation
	create(c, tok, "/iaas/record/", rec("ns2.dev."+yy, "AAAA", "2001:db8::53"))
	create(c, tok, "/iaas/record/", map[string]any{"domain_id": child, "name": "ftp.dev." + yy, "type": "A", "content": "192.0.2.21"})
}

// TestDNS_RRsetSizeAndCNAMELoops: a TXT record that would take its RRset
// past what one DNS message carries is 400 iaas_record_create_123, and a
// CNAME closing a loop 400 iaas_record_{create,update}_111 naming the
// chain; nothing changes (state.Rules8).
func TestDNS_RRsetSizeAndCNAMELoops(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := newFixture(t, n)
	x := dnsOf(f)
	tok := f.r.Token(apitest.MemberUser)
	rec := func(name, typ, content string) map[string]any {
		return map[string]any{"domain_id": x.domain, "name": name + "." + x.domainName, "type": typ, "content": content}
	}
	// Long TXT records (3,980 characters, 3,996 octets of strings, near
	// the most one may hold) take 4,008 octets each in an answer: 15 fit,
	// the 16th does not.
	text := func(i int) string { return fmt.Sprintf("%02d", i) + strings.Repeat("t", 3978) }
	for i := range 15 {
		c.Do("POST", "/iaas/record/", rec("big", "TXT", text(i)), tok).Expect(201)
	}
	before := dnsState(t, c, f.root)
	r := c.Do("POST", "/iaas/record/", rec("big", "TXT", text(15)), tok).Expect(400)
	if r.FieldCode("content") != "iaas_record_create_123" || !strings.Contains(string(r.Body), "16 TXT records at big."+x.domainName) {
		t.Errorf("the 16th long TXT record: %s, want content:iaas_record_create_123 naming the RRset", r)
	}
	if after := dnsState(t, c, f.root); after != before {
		t.Errorf("a refused record changed the state")
	}

	c.Do("POST", "/iaas/record/", rec("a", "CNAME", "b."+x.domainName), tok).Expect(201)
	b := create(c, tok, "/iaas/record/", rec("b", "CNAME", "www.elsewhere.example"))
	c.Do("POST", "/iaas/record/", rec("c", "CNAME", "a."+x.domainName), tok).Expect(201)
	before = dnsState(t, c, f.root)
	r = c.Do("PATCH", apitest.Path("/iaas/record/", b), map[string]any{"content": "C." + x.domainName + "."}, tok).Expect(400)
	if r.FieldCode("content") != "iaas_record_update_111" || !strings.Contains(string(r.Body), "b."+x.domainName+" → c."+x.domainName+" → a."+x.domainName+" → b."+x.domainName) {
		t.Errorf("an update closing a CNAME loop: %s, want content:iaas_record_update_111 naming the chain", r)
	}
	if after := dnsState(t, c, f.root); after != before {
		t.Errorf("a refused update changed the state")
	}
	c.Do("POST", "/iaas/record/", rec("d", "CNAME", "d2."+x.domainName), tok).Expect(201)
	r = c.Do("POST", "/iaas/record/", rec("d2", "CNAME", "d."+x.domainName), tok).Expect(400)
	if r.FieldCode("content") != "iaas_record_create_111" {
		t.Errorf("a create closing a CNAME loop: %s, want content:iaas_record_create_111", r)
	}
}
