package dns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func TestAnswers(t *testing.T) {
	src := newFakeSource(testZone(t, 100), deepZone(t))
	s := startServer(t, testConfig(), src)
	soaLine := "example.test. SOA ns1.example.test. hostmaster.example.net. 100 14400 3600 1209600 300"
	cases := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		aa     bool
		answer []string
		ns     []string
		extra  []string
	}{
		{name: "apex SOA", qname: "example.test.", qtype: mdns.TypeSOA, aa: true,
			answer: []string{soaLine},
			ns:     []string{"example.test. NS ns1.example.test.", "example.test. NS ns2.example.net.", "example.test. NS ns3.example.test."}},
		{name: "apex NS with glue", qname: "example.test.", qtype: mdns.TypeNS, aa: true,
			answer: []string{"example.test. NS ns1.example.test.", "example.test. NS ns2.example.net.", "example.test. NS ns3.example.test."},
			extra:  []string{"ns1.example.test. A 192.0.2.1", "ns1.example.test. AAAA 2001:db8::1", "ns3.example.test. A 192.0.2.3"}},
		{name: "A", qname: "host1.example.test.", qtype: mdns.TypeA, aa: true,
			answer: []string{"host1.example.test. A 192.0.2.10"}},
		{name: "owner case folded", qname: "mixed.example.test.", qtype: mdns.TypeA, aa: true,
			answer: []string{"mixed.example.test. A 192.0.2.60"}},
		{name: "NXDOMAIN", qname: "x.host1.example.test.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true,
			ns: []string{soaLine}},
		{name: "NODATA", qname: "host1.example.test.", qtype: mdns.TypeAAAA, aa: true, ns: []string{soaLine}},
		{name: "empty non-terminal", qname: "b.ent.example.test.", qtype: mdns.TypeA, aa: true, ns: []string{soaLine}},
		{name: "empty non-terminal 2", qname: "ent.example.test.", qtype: mdns.TypeTXT, aa: true, ns: []string{soaLine}},
		{name: "below ENT", qname: "x.b.ent.example.test.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true, ns: []string{soaLine}},
		{name: "MX with additional", qname: "example.test.", qtype: mdns.TypeMX, aa: true,
			answer: []string{"example.test. MX 10 mail.example.test.", "example.test. MX 20 mx.example.org."},
			extra:  []string{"mail.example.test. A 192.0.2.20"}},
		{name: "SRV with additional", qname: "_sip._tcp.example.test.", qtype: mdns.TypeSRV, aa: true,
			answer: []string{"_sip._tcp.example.test. SRV 0 5 5060 host1.example.test."},
			extra:  []string{"host1.example.test. A 192.0.2.10"}},
		{name: "CNAME chased", qname: "www.example.test.", qtype: mdns.TypeA, aa: true,
			answer: []string{"www.example.test. CNAME host1.example.test.", "host1.example.test. A 192.0.2.10"}},
		{name: "CNAME query", qname: "www.example.test.", qtype: mdns.TypeCNAME, aa: true,
			answer: []string{"www.example.test. CNAME host1.example.test."}},
		{name: "CNAME to NXDOMAIN", qname: "gone.example.test.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true,
			answer: []string{"gone.example.test. CNAME nothing.host1.example.test."}, ns: []string{soaLine}},
		{name: "CNAME out of zone", qname: "ext.example.test.", qtype: mdns.TypeA, aa: true,
			answer: []string{"ext.example.test. CNAME www.example.org."}},
		{name: "CNAME loop", qname: "loop1.example.test.", qtype: mdns.TypeA, rcode: mdns.RcodeServerFailure, aa: true},
		{name: "wildcard", qname: "foo.wild.example.test.", qtype: mdns.TypeA, aa: true,
			answer: []string{"foo.wild.example.test. A 192.0.2.30"}},
		{name: "wildcard multi-label", qname: "a.b.wild.example.test.", qtype: mdns.TypeA, aa: true,
			answer: []string{"a.b.wild.example.test. A 192.0.2.30"}},
		{name: "wildcard NODATA", qname: "foo.wild.example.test.", qtype: mdns.TypeAAAA, aa: true, ns: []string{soaLine}},
		{name: "wildcard blocked by existing name", qname: "exists.wild.example.test.", qtype: mdns.TypeAAAA, aa: true, ns: []string{soaLine}},
		{name: "closest encloser without wildcard", qname: "x.exists.wild.example.test.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true, ns: []string{soaLine}},
		{name: "wildcard CNAME chased", qname: "foo.wc.example.test.", qtype: mdns.TypeA, aa: true,
			answer: []string{"foo.wc.example.test. CNAME host1.example.test.", "host1.example.test. A 192.0.2.10"}},
		{name: "wildcard that is an ENT", qname: "x.went.example.test.", qtype: mdns.TypeA, aa: true, ns: []string{soaLine}},
		{name: "apex wildcard", qname: "nothere.example.test.", qtype: mdns.TypeTXT, aa: true,
			answer: []string{`nothere.example.test. TXT "apex wildcard"`}},
		{name: "referral", qname: "host.sub.example.test.", qtype: mdns.TypeA,
			ns:    []string{"sub.example.test. NS ns.sub.example.test.", "sub.example.test. NS ns.example.org."},
			extra: []string{"ns.sub.example.test. A 192.0.2.50"}},
		{name: "referral at cut", qname: "sub.example.test.", qtype: mdns.TypeNS,
			ns:    []string{"sub.example.test. NS ns.sub.example.test.", "sub.example.test. NS ns.example.org."},
			extra: []string{"ns.sub.example.test. A 192.0.2.50"}},
		{name: "DS at cut is the parent's", qname: "sub.example.test.", qtype: mdns.TypeDS, aa: true, ns: []string{soaLine}},
		{name: "ANY", qname: "host1.example.test.", qtype: mdns.TypeANY, aa: true,
			answer: []string{"host1.example.test. A 192.0.2.10"}},
		// RFC 1034 §4.3.2 step 3a: ANY matches the CNAME, which is not chased.
		{name: "ANY at CNAME", qname: "www.example.test.", qtype: mdns.TypeANY, aa: true,
			answer: []string{"www.example.test. CNAME host1.example.test."}},
		{name: "ANY at wildcard CNAME", qname: "foo.wc.example.test.", qtype: mdns.TypeANY, aa: true,
			answer: []string{"foo.wc.example.test. CNAME host1.example.test."}},
		{name: "ANY at out-of-zone CNAME", qname: "ext.example.test.", qtype: mdns.TypeANY, aa: true,
			answer: []string{"ext.example.test. CNAME www.example.org."}},
		{name: "ANY at CNAME loop", qname: "loop1.example.test.", qtype: mdns.TypeANY, aa: true,
			answer: []string{"loop1.example.test. CNAME loop2.example.test."}},
		{name: "longest zone", qname: "x.deep.example.test.", qtype: mdns.TypeA, aa: true,
			answer: []string{"x.deep.example.test. A 198.51.100.1"}},
		{name: "longest zone NXDOMAIN", qname: "y.deep.example.test.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true,
			ns: []string{"deep.example.test. SOA ns1.example.test. hostmaster.example.net. 7 14400 3600 1209600 300"}},
		{name: "out of zone", qname: "example.org.", qtype: mdns.TypeA, rcode: mdns.RcodeRefused},
		{name: "root", qname: ".", qtype: mdns.TypeNS, rcode: mdns.RcodeRefused},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				// Twice over UDP: a cache miss, then a hit.
				for range 2 {
					r := ask(t, s.Addr(), network, tc.qname, tc.qtype)
					if r.Rcode != tc.rcode {
						t.Fatalf("rcode %s, want %s\n%v", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode], r)
					}
					if r.Authoritative != tc.aa {
						t.Errorf("AA=%v, want %v", r.Authoritative, tc.aa)
					}
					if r.RecursionAvailable {
						t.Error("RA set")
					}
					check := func(what string, got []mdns.RR, want []string, ordered bool) {
						g := section(got)
						w := slices.Clone(want)
						if !ordered {
							slices.Sort(g)
							slices.Sort(w)
						}
						if !slices.Equal(g, w) {
							t.Errorf("%s:\n got %q\nwant %q", what, g, w)
						}
					}
					check("answer", r.Answer, tc.answer, true)
					check("authority", r.Ns, tc.ns, false)
					check("additional", r.Extra, tc.extra, false)
				}
			})
		}
	}
}

func TestNegativeTTL(t *testing.T) {
	cfg := testConfig()
	cfg.TTL, cfg.Minimum = 120, 600
	s := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	r := ask(t, s.Addr(), "udp", "x.host1.example.test.", mdns.TypeA)
	if len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 120 {
		t.Fatalf("want SOA with TTL min(120, 600): %v", r.Ns)
	}
	r = ask(t, s.Addr(), "udp", "example.test.", mdns.TypeSOA)
	if r.Answer[0].Header().Ttl != 120 || r.Answer[0].(*mdns.SOA).Minttl != 600 {
		t.Fatalf("apex SOA: %v", r.Answer[0])
	}
}

func TestEDNS(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 1)))
	for _, network := range []string{"udp", "tcp"} {
		// Version 1 → BADVERS with an OPT of version 0.
		m := new(mdns.Msg)
		m.SetQuestion("host1.example.test.", mdns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
		r := exchange(t, s.Addr(), network, m)
		opt := r.IsEdns0()
		if r.Rcode != mdns.RcodeBadVers || opt == nil || opt.Version() != 0 || len(r.Answer) != 0 {
			t.Fatalf("%s: want BADVERS with OPT v0, got rcode %d\n%v", network, r.Rcode, r)
		}
		// Version 0 → OPT echoed with our size and the DO bit.
		m = new(mdns.Msg)
		m.SetQuestion("host1.example.test.", mdns.TypeA)
		m.SetEdns0(4096, true)
		r = exchange(t, s.Addr(), network, m)
		opt = r.IsEdns0()
		if r.Rcode != 0 || opt == nil || opt.UDPSize() != 1232 || !opt.Do() || len(r.Answer) != 1 {
			t.Fatalf("%s: EDNS0 reply: %v", network, r)
		}
		// No OPT in, no OPT out.
		r = ask(t, s.Addr(), network, "host1.example.test.", mdns.TypeA)
		if r.IsEdns0() != nil {
			t.Fatalf("%s: OPT without EDNS query", network)
		}
	}
}

func TestTruncation(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 1)))
	for range 2 {
		r := ask(t, s.Addr(), "udp", "big.example.test.", mdns.TypeTXT)
		if !r.Truncated || r.Rcode != 0 {
			t.Fatalf("want TC over 512-byte UDP: tc=%v answers=%d", r.Truncated, len(r.Answer))
		}
		m := new(mdns.Msg)
		m.SetQuestion("big.example.test.", mdns.TypeTXT)
		m.SetEdns0(4096, false)
		r = exchange(t, s.Addr(), "udp", m)
		if r.Truncated || len(r.Answer) != 15 {
			t.Fatalf("want all 15 TXT within 1232 bytes tc=%v answers=%d", r.Truncated, len(r.Answer))
		}
	}
	r := ask(t, s.Addr(), "tcp", "big.example.test.", mdns.TypeTXT)
	if r.Truncated || len(r.Answer) != 15 {
		t.Fatalf("tcp: tc=%v answers=%d", r.Truncated, len(r.Answer))
	}
}

func TestOpcodesAndFormat(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 1)))
	for _, network := range []string{"udp", "tcp"} {
		m := new(mdns.Msg)
		m.SetUpdate("example.test.")
		if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeNotImplemented {
			t.Errorf("%s UPDATE: rcode %s", network, mdns.RcodeToString[r.Rcode])
		}
		m = new(mdns.Msg)
		m.SetQuestion("example.test.", mdns.TypeA)
		m.Opcode = mdns.OpcodeStatus
		if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeNotImplemented {
			t.Errorf("%s STATUS: rcode %s", network, mdns.RcodeToString[r.Rcode])
		}
		m = new(mdns.Msg)
		m.SetNotify("example.test.")
		if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeRefused || r.Opcode != mdns.OpcodeNotify {
			t.Errorf("%s NOTIFY in: rcode %s", network, mdns.RcodeToString[r.Rcode])
		}
		for _, qd := range [][]mdns.Question{nil, {{Name: "a.example.test.", Qtype: 1, Qclass: 1}, {Name: "b.example.test.", Qtype: 1, Qclass: 1}}} {
			m = new(mdns.Msg)
			m.Id = mdns.Id()
			m.Question = qd
			if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeFormatError || len(r.Question) != 0 {
				t.Errorf("%s qdcount %d: rcode %s, question %v", network, len(qd), mdns.RcodeToString[r.Rcode], r.Question)
			}
			// With an OPT record, the FORMERR has one too (RFC 6891 §7).
			m.SetEdns0(1232, false)
			if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeFormatError || r.IsEdns0() == nil {
				t.Errorf("%s qdcount %d with EDNS: rcode %s, OPT %v", network, len(qd), mdns.RcodeToString[r.Rcode], r.IsEdns0())
			}
			// A NOTIFY must have its question too.
			m.Opcode = mdns.OpcodeNotify
			if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeFormatError {
				t.Errorf("%s NOTIFY qdcount %d: rcode %s", network, len(qd), mdns.RcodeToString[r.Rcode])
			}
		}
		m = new(mdns.Msg)
		m.SetQuestion("example.test.", mdns.TypeA)
		m.Question[0].Qclass = mdns.ClassCHAOS
		if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeRefused {
			t.Errorf("%s CH class: rcode %s", network, mdns.RcodeToString[r.Rcode])
		}
	}
	// Section counts (dns-facts §4.18): miekg/dns's DefaultMsgAcceptFunc
	// refuses more than 1 answer, 1 authority or 2 additional records over
	// TCP; UDP applies the same rules and both answer with the same bare
	// header. An UPDATE is NOTIMP whatever its counts, the same header
	// over both, with its zone section echoed.
	a := rrs(t, "a.example.test. 300 IN A 192.0.2.1", "b.example.test. 300 IN A 192.0.2.2", "c.example.test. 300 IN A 192.0.2.3")
	for _, c := range []struct {
		an, ns, ar int
		rcode      int
	}{
		{2, 0, 0, mdns.RcodeFormatError},
		{0, 2, 0, mdns.RcodeFormatError},
		{0, 0, 3, mdns.RcodeFormatError},
		{1, 1, 2, mdns.RcodeSuccess},
	} {
		for _, op := range []int{mdns.OpcodeQuery, mdns.OpcodeUpdate} {
			m := new(mdns.Msg)
			m.SetQuestion("host1.example.test.", mdns.TypeA)
			m.Opcode = op
			m.Answer, m.Ns, m.Extra = a[:c.an], a[:c.ns], a[:c.ar]
			want := c.rcode
			if op == mdns.OpcodeUpdate {
				want = mdns.RcodeNotImplemented
			}
			what := fmt.Sprintf("%s ancount %d nscount %d arcount %d", mdns.OpcodeToString[op], c.an, c.ns, c.ar)
			var hdr [2]mdns.MsgHdr
			for i, network := range []string{"udp", "tcp"} {
				r := exchange(t, s.Addr(), network, m)
				if r.Rcode != want {
					t.Errorf("%s %s: rcode %s, want %s", network, what, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[want])
				}
				if op == mdns.OpcodeUpdate && (r.Authoritative || len(r.Question) != 1 || len(r.Answer)+len(r.Ns)+len(r.Extra) != 0) {
					t.Errorf("%s %s: want the zone section alone, got\n%v", network, what, r)
				}
				if want == mdns.RcodeFormatError && (r.Authoritative || len(r.Question)+len(r.Answer)+len(r.Ns)+len(r.Extra) != 0) {
					t.Errorf("%s %s: want a bare header, got\n%v", network, what, r)
				}
				hdr[i] = r.MsgHdr
			}
			if want != mdns.RcodeSuccess && hdr[0] != hdr[1] {
				t.Errorf("%s: UDP header %+v, TCP header %+v", what, hdr[0], hdr[1])
			}
		}
	}
}

// TestCaseEcho checks that the question and every owner name equal to the
// query name carry the client's spelling exactly (0x20 clients, dns-facts
// §3), while the records of a chased CNAME target keep the stored name. It
// covers the UDP fast path (first a cache fill, then hits with other
// spellings), the full UDP path (an EDNS option and TSIG take it) and TCP;
// a 512-octet buffer makes the big TXT answer compressed and truncated.
func TestCaseEcho(t *testing.T) {
	cfg := testConfig()
	cfg.TSIGKeys = map[string]string{testKey: testSecret}
	s := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	type want struct {
		section string // "an" or "ns"
		owner   string // "" = the query name as sent
	}
	cases := []struct {
		names []string
		qtype uint16
		want  []want
	}{
		{[]string{"HOST1.Example.Test.", "host1.EXAMPLE.test.", "hOsT1.eXaMpLe.TeSt."}, mdns.TypeA, []want{{"an", ""}}},
		{[]string{"FoO.WiLd.Example.TEST.", "a.B.wild.example.test."}, mdns.TypeA, []want{{"an", ""}}},
		{[]string{"WwW.ExAmPlE.TeSt.", "www.EXAMPLE.test.", "WWW.EXAMPLE.TEST."}, mdns.TypeA, []want{{"an", ""}, {"an", "host1.example.test."}}},
		{[]string{"X.WC.Example.Test."}, mdns.TypeA, []want{{"an", ""}, {"an", "host1.example.test."}}},
		{[]string{"EXAMPLE.Test."}, mdns.TypeAAAA, []want{{"ns", ""}}},
		{[]string{"Big.Example.Test."}, mdns.TypeTXT, nil}, // owners checked below
	}
	type variant struct {
		network string
		edit    func(*mdns.Msg)
		tsig    bool
	}
	variants := map[string]variant{
		"udp fast": {network: "udp"},
		"udp edns": {network: "udp", edit: func(m *mdns.Msg) { m.SetEdns0(1232, false) }},
		"udp full": {network: "udp", edit: func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = []mdns.EDNS0{&mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0123456789abcdef"}}
		}},
		"udp full small": {network: "udp", edit: func(m *mdns.Msg) {
			m.SetEdns0(512, false)
			m.IsEdns0().Option = []mdns.EDNS0{&mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0123456789abcdef"}}
		}},
		"udp tsig": {network: "udp", tsig: true},
		"tcp":      {network: "tcp"},
		"tcp tsig": {network: "tcp", tsig: true},
	}
	for vname, v := range variants {
		for _, c := range cases {
			for i, name := range c.names {
				m := new(mdns.Msg)
				m.SetQuestion(name, c.qtype)
				m.RecursionDesired = i%2 == 0
				m.CheckingDisabled = i == 1
				if v.edit != nil {
					v.edit(m)
				}
				cl := &mdns.Client{Net: v.network, Timeout: 10 * time.Second}
				if v.tsig {
					m.SetTsig(testKey, mdns.HmacSHA256, 300, time.Now().Unix())
					cl.TsigSecret = map[string]string{testKey: testSecret}
				}
				r, _, err := cl.Exchange(m, s.Addr())
				if err != nil {
					t.Fatalf("%s %s: %v", vname, name, err)
				}
				if len(r.Question) != 1 || r.Question[0].Name != name {
					t.Errorf("%s: question %v, want %q", vname, r.Question, name)
				}
				if r.Id != m.Id || r.RecursionDesired != m.RecursionDesired || r.CheckingDisabled != m.CheckingDisabled {
					t.Errorf("%s %s: id/RD/CD not echoed", vname, name)
				}
				if c.want == nil { // every answer owner is the query name
					if len(r.Answer) == 0 && !r.Truncated {
						t.Errorf("%s %s: no answer", vname, name)
					}
					for _, rr := range r.Answer {
						if rr.Header().Name != name {
							t.Errorf("%s: owner %q, want %q", vname, rr.Header().Name, name)
						}
					}
					continue
				}
				var got, exp []string
				for _, rr := range r.Answer {
					got = append(got, "an "+rr.Header().Name)
				}
				for _, rr := range r.Ns {
					got = append(got, "ns "+rr.Header().Name)
				}
				for _, w := range c.want {
					o := w.owner
					if o == "" {
						o = name
					}
					exp = append(exp, w.section+" "+o)
				}
				if !slices.Equal(got, exp) {
					t.Errorf("%s %s: owners %q, want %q", vname, name, got, exp)
				}
			}
		}
	}
}

// TestPointOwners checks the wire form behind TestCaseEcho's UDP cases: the
// owners equal to the query name are a pointer to the question (0xC00C),
// on a cache fill, a cache hit and the full path alike, and a message that
// cannot be walked is left as it is.
func TestPointOwners(t *testing.T) {
	s, err := New(testConfig(), newFakeSource(testZone(t, 1)))
	if err != nil {
		t.Fatal(err)
	}
	s.reload()
	fast := s.snap.Load()
	full := &zoneSet{zones: fast.zones}
	remote := netip.MustParseAddrPort("127.0.0.1:5353")
	out := make([]byte, 65536)
	for _, name := range []string{"host1.example.test.", "HOST1.Example.Test.", "hOsT1.eXaMpLe.TeSt."} {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		req, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		for _, zs := range []*zoneSet{fast, full} {
			resp := s.handleUDP(zs, req, out, remote)
			an := 12 + len(name) + 1 + 4
			if len(resp) < an+2 || resp[an] != 0xc0 || resp[an+1] != 12 {
				t.Fatalf("%s (cache %v): answer owner is not a pointer to the question: %x", name, zs.cache != nil, resp)
			}
			r := new(mdns.Msg)
			if err := r.Unpack(resp); err != nil || len(r.Answer) != 1 || r.Answer[0].Header().Name != name {
				t.Fatalf("%s (cache %v): %v %v", name, zs.cache != nil, err, r)
			}
		}
	}
	for _, b := range [][]byte{
		{0, 1, 0x81, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0},  // compressed owner
		{0, 1, 0x81, 0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 1, 'A', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0}, // ancount too high
		{0, 1, 0x81, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 1, 'A', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 9}, // rdlength too long
	} {
		if got := pointOwners(slices.Clone(b)); !slices.Equal(got, b) {
			t.Errorf("pointOwners(%x) = %x, want it unchanged", b, got)
		}
	}
	b := []byte{0, 1, 0x81, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 1, 'A', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0}
	want := []byte{0, 1, 0x81, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0}
	if got := pointOwners(b); !slices.Equal(got, want) {
		t.Errorf("pointOwners = %x, want %x", got, want)
	}
}

func TestSourceRecordsNotModified(t *testing.T) {
	z := testZone(t, 1)
	var mixed mdns.RR
	for _, rr := range z.RRs {
		if strings.HasPrefix(rr.Header().Name, "MiXeD") {
			mixed = rr
		}
	}
	s, err := New(testConfig(), newFakeSource(z))
	if err != nil {
		t.Fatal(err)
	}
	s.reload()
	if mixed.Header().Name != "MiXeD.Example.Test." {
		t.Fatalf("source record changed to %q", mixed.Header().Name)
	}
	if n := s.snap.Load().zones["example.test."].nodes["mixed.example.test."]; n == nil {
		t.Fatal("owner not folded to lower case")
	}
}

// TestDSAtChildApex: with both a parent and a child zone served, a DS
// query at the child's apex is the parent's to answer when the parent
// delegates the child (RFC 4035 §3.1.4.1: authoritative NODATA with the
// parent's SOA, no DNSSEC here); without a delegation the child answers,
// since the parent would say NXDOMAIN for a name that has data below it.
func TestDSAtChildApex(t *testing.T) {
	parent := &Zone{Name: "example.test.", Serial: 3, RRs: rrs(t,
		"example.test. 3600 IN NS ns1.example.test.",
		"ns1.example.test. 300 IN A 192.0.2.1",
		"child.example.test. 300 IN NS ns1.example.test.")}
	child := &Zone{Name: "child.example.test.", Serial: 9, RRs: rrs(t, "www.child.example.test. 60 IN A 198.51.100.9")}
	orphan := &Zone{Name: "orphan.example.test.", Serial: 5, RRs: rrs(t, "www.orphan.example.test. 60 IN A 198.51.100.5")}
	s := startServer(t, testConfig(), newFakeSource(parent, child, orphan))
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range []struct{ qname, soaOwner string }{
			{"child.example.test.", "example.test."},
			{"CHILD.example.test.", "example.test."},
			{"orphan.example.test.", "orphan.example.test."},
		} {
			for range 2 { // over UDP: a cache miss, then a hit
				r := ask(t, s.Addr(), network, c.qname, mdns.TypeDS)
				if r.Rcode != mdns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 0 || len(r.Ns) != 1 {
					t.Fatalf("%s DS %s: %v", network, c.qname, r)
				}
				if soa, ok := r.Ns[0].(*mdns.SOA); !ok || !strings.EqualFold(soa.Hdr.Name, c.soaOwner) {
					t.Errorf("%s DS %s: authority %v, want the SOA of %s", network, c.qname, r.Ns[0], c.soaOwner)
				}
			}
		}
		// Other types at the child's apex stay the child's.
		if r := ask(t, s.Addr(), network, "child.example.test.", mdns.TypeSOA); len(r.Answer) != 1 || r.Answer[0].(*mdns.SOA).Serial != 9 {
			t.Errorf("%s SOA of the child: %v", network, r)
		}
	}
}

// TestZoneApexFromSource: a Zone's own NS names and mailbox replace the
// configured ones in its SOA and apex NS set (the controller serves the
// replicated settings this way), the SOA MNAME follows the zone's first NS
// unless Config.MName is set, and a zone without them keeps the
// configuration's.
func TestZoneApexFromSource(t *testing.T) {
	own := &Zone{Name: "own.example.test.", Serial: 9, NS: []string{"a.ns.example.org.", "b.ns.example.org."},
		RName: "dns.example.org.", RRs: rrs(t, "www.own.example.test. 60 IN A 192.0.2.1")}
	plain := &Zone{Name: "plain.example.test.", Serial: 3}
	for _, mname := range []string{"", "primary.example.net."} {
		cfg := testConfig()
		cfg.MName = mname
		s := startServer(t, cfg, newFakeSource(own, plain))
		addr := s.Addr()

		r := ask(t, addr, "udp", own.Name, mdns.TypeSOA)
		soa := r.Answer[0].(*mdns.SOA)
		wantM := "a.ns.example.org."
		if mname != "" {
			wantM = mname
		}
		if soa.Ns != wantM || soa.Mbox != "dns.example.org." || soa.Serial != 9 {
			t.Errorf("MName %q: SOA of own zone = %s", mname, soa)
		}
		got := section(ask(t, addr, "udp", own.Name, mdns.TypeNS).Answer)
		want := []string{"own.example.test. NS a.ns.example.org.", "own.example.test. NS b.ns.example.org."}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("NS of own zone = %q, want %q", got, want)
		}

		soa = ask(t, addr, "udp", plain.Name, mdns.TypeSOA).Answer[0].(*mdns.SOA)
		wantM = "ns1.example.test."
		if mname != "" {
			wantM = mname
		}
		if soa.Ns != wantM || soa.Mbox != "hostmaster.example.net." {
			t.Errorf("MName %q: SOA of plain zone = %s", mname, soa)
		}
		got = section(ask(t, addr, "udp", plain.Name, mdns.TypeNS).Answer)
		if len(got) != 2 || !strings.HasSuffix(got[0], "ns1.example.test.") {
			t.Errorf("NS of plain zone = %q", got)
		}
	}
}

// TestOPTCountAndMetaQtypes: RFC 6891 §6.1.1, more than one OPT record (or
// one outside the additional section) is FORMERR; OPT, TKEY and TSIG are
// not question types (FORMERR); MAILA and MAILB are not served (NOTIMP).
// Both UDP paths (a bare EDNS query takes the fast path, an option the
// full one) and TCP.
func TestOPTCountAndMetaQtypes(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 1)))
	opt := func(size uint16) *mdns.OPT {
		o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		o.SetUDPSize(size)
		return o
	}
	for _, network := range []string{"udp", "tcp"} {
		for range 2 { // over UDP: a cache fill, then a hit
			m := new(mdns.Msg)
			m.SetQuestion("host1.example.test.", mdns.TypeA)
			m.Extra = []mdns.RR{opt(1232), opt(4096)}
			if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeFormatError || len(r.Answer) != 0 || r.IsEdns0() != nil {
				t.Errorf("%s two OPT records: want FORMERR without OPT, got\n%v", network, r)
			}
			m = new(mdns.Msg)
			m.SetQuestion("host1.example.test.", mdns.TypeA)
			m.Answer = []mdns.RR{opt(1232)}
			if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeFormatError {
				t.Errorf("%s OPT in the answer section: rcode %s", network, mdns.RcodeToString[r.Rcode])
			}
			for _, c := range []struct {
				qtype uint16
				rcode int
			}{
				{mdns.TypeOPT, mdns.RcodeFormatError},
				{mdns.TypeTKEY, mdns.RcodeFormatError},
				{mdns.TypeTSIG, mdns.RcodeFormatError},
				{mdns.TypeMAILA, mdns.RcodeNotImplemented},
				{mdns.TypeMAILB, mdns.RcodeNotImplemented},
				{mdns.TypeANY, mdns.RcodeSuccess},
			} {
				for _, edns := range []int{0, 1, 2} {
					m := new(mdns.Msg)
					m.SetQuestion("host1.example.test.", c.qtype)
					if edns > 0 {
						m.SetEdns0(1232, false)
					}
					if edns == 2 {
						m.IsEdns0().Option = []mdns.EDNS0{&mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0102030405060708"}}
					}
					r := exchange(t, s.Addr(), network, m)
					if r.Rcode != c.rcode || len(r.Question) != 1 || r.Question[0].Qtype != c.qtype {
						t.Errorf("%s qtype %s (edns %d): rcode %s, want %s\n%v", network, mdns.TypeToString[c.qtype], edns,
							mdns.RcodeToString[r.Rcode], mdns.RcodeToString[c.rcode], r)
					}
					if c.rcode != mdns.RcodeSuccess && len(r.Answer)+len(r.Ns) != 0 {
						t.Errorf("%s qtype %s: records in an error reply\n%v", network, mdns.TypeToString[c.qtype], r)
					}
				}
			}
		}
	}
}

// TestRAClear: a query with RA (and AD) set gets RA=0 back on every reply,
// the header-only NOTIMP and FORMERR ones included, over UDP and TCP
// (dns-facts §4.20: not recursive).
func TestRAClear(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 1)))
	type query struct {
		what  string
		build func() *mdns.Msg
		rcode int
	}
	qs := []query{
		{"A", func() *mdns.Msg { return new(mdns.Msg).SetQuestion("host1.example.test.", mdns.TypeA) }, mdns.RcodeSuccess},
		{"UPDATE", func() *mdns.Msg { return new(mdns.Msg).SetUpdate("example.test.") }, mdns.RcodeNotImplemented},
		{"STATUS", func() *mdns.Msg {
			m := new(mdns.Msg).SetQuestion("example.test.", mdns.TypeA)
			m.Opcode = mdns.OpcodeStatus
			return m
		}, mdns.RcodeNotImplemented},
		{"no question", func() *mdns.Msg { m := new(mdns.Msg); m.Id = mdns.Id(); return m }, mdns.RcodeFormatError},
		{"MAILA", func() *mdns.Msg { return new(mdns.Msg).SetQuestion("example.test.", mdns.TypeMAILA) }, mdns.RcodeNotImplemented},
		{"TSIG qtype", func() *mdns.Msg { return new(mdns.Msg).SetQuestion("example.test.", mdns.TypeTSIG) }, mdns.RcodeFormatError},
		{"out of zone", func() *mdns.Msg { return new(mdns.Msg).SetQuestion("example.org.", mdns.TypeA) }, mdns.RcodeRefused},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, q := range qs {
			m := q.build()
			m.RecursionAvailable = true
			m.AuthenticatedData = true
			r := exchange(t, s.Addr(), network, m)
			if r.Rcode != q.rcode || r.RecursionAvailable || r.AuthenticatedData || !r.Response {
				t.Errorf("%s %s: rcode %s (want %s), ra=%v ad=%v qr=%v", network, q.what, mdns.RcodeToString[r.Rcode],
					mdns.RcodeToString[q.rcode], r.RecursionAvailable, r.AuthenticatedData, r.Response)
			}
		}
	}
	// The unparsable datagram path (UDP header reply).
	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte{0x12, 0x34, 0x00, 0xa0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', 'b'}) // RA, AD; truncated question
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil || n != 12 || buf[2]&0x80 == 0 || buf[3] != mdns.RcodeFormatError {
		t.Errorf("unparsable query: %x, %v; want a FORMERR header with RA=AD=0", buf[:n], err)
	}
}

// TestCNAMEIntoNestedZone: a CNAME whose target is in a zone nested in
// the CNAME's own (both served here) is answered by the nested zone: its
// data, its NXDOMAIN and SOA, never the parent's wildcard or NXDOMAIN for a
// name the parent does not hold (RFC 1034 §4.3.2 step 3a, back to step 1).
// A target in another zone served here that is not nested is not chased.
func TestCNAMEIntoNestedZone(t *testing.T) {
	parent := &Zone{Name: "example.test.", Serial: 5, RRs: rrs(t,
		"a.example.test. 300 IN CNAME x.deep.example.test.",
		"b.example.test. 300 IN CNAME nothing.deep.example.test.",
		"c.example.test. 300 IN CNAME x.other.test.",
		`*.example.test. 300 IN TXT "apex wildcard"`,
	)}
	other := &Zone{Name: "other.test.", Serial: 2, RRs: rrs(t, "x.other.test. 300 IN A 198.51.100.9")}
	s := startServer(t, testConfig(), newFakeSource(parent, deepZone(t), other))
	deepSOA := "deep.example.test. SOA ns1.example.test. hostmaster.example.net. 7 14400 3600 1209600 300"
	for _, tc := range []struct {
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		ns     []string
	}{
		{"a.example.test.", mdns.TypeA, mdns.RcodeSuccess,
			[]string{"a.example.test. CNAME x.deep.example.test.", "x.deep.example.test. A 198.51.100.1"}, nil},
		{"a.example.test.", mdns.TypeTXT, mdns.RcodeSuccess,
			[]string{"a.example.test. CNAME x.deep.example.test."}, []string{deepSOA}},
		{"b.example.test.", mdns.TypeA, mdns.RcodeNameError,
			[]string{"b.example.test. CNAME nothing.deep.example.test."}, []string{deepSOA}},
		// Not into another zone that is not nested: the resolver follows.
		{"c.example.test.", mdns.TypeA, mdns.RcodeSuccess,
			[]string{"c.example.test. CNAME x.other.test."}, nil},
	} {
		for _, network := range []string{"udp", "tcp"} {
			r := ask(t, s.Addr(), network, tc.qname, tc.qtype)
			if r.Rcode != tc.rcode || !r.Authoritative || !slices.Equal(section(r.Answer), tc.answer) || !slices.Equal(section(r.Ns), tc.ns) {
				t.Errorf("%s %s %s: rcode %s AA=%v\n answer %q\n    ns %q\nwant %s\n answer %q\n    ns %q", network, tc.qname,
					mdns.TypeToString[tc.qtype], mdns.RcodeToString[r.Rcode], r.Authoritative, section(r.Answer), section(r.Ns),
					mdns.RcodeToString[tc.rcode], tc.answer, tc.ns)
			}
		}
	}
}

// TestApexFromSource: a zone whose apex comes from the source (the
// cluster's settings) has the source's SOA mailbox, hostmaster.<zone> when
// the source names none, whatever this server's own RName; and its apex NS
// set has one TTL, the lowest, also with a tenant's apex NS record.
func TestApexFromSource(t *testing.T) {
	cfg := testConfig() // RName hostmaster.example.net.
	z := &Zone{Name: "example.test.", Serial: 3, NS: []string{"ns1.example.test."}, RRs: rrs(t,
		"example.test. 600 IN NS ns.ext.example.org.",
		"ns1.example.test. 300 IN A 192.0.2.1",
	)}
	s := startServer(t, cfg, newFakeSource(z))
	r := ask(t, s.Addr(), "udp", "example.test.", mdns.TypeSOA)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.SOA).Mbox != "hostmaster.example.test." {
		t.Errorf("SOA with the source's empty mailbox: %v", r.Answer)
	}
	r = ask(t, s.Addr(), "udp", "example.test.", mdns.TypeNS)
	if len(r.Answer) != 2 {
		t.Fatalf("apex NS: %v", r.Answer)
	}
	for _, rr := range r.Answer {
		if rr.Header().Ttl != 600 {
			t.Errorf("apex NS TTLs differ (want 600, the lowest): %v", r.Answer)
			break
		}
	}
	// A lower TTL on the tenant's record lowers the whole set.
	z2 := &Zone{Name: "example.test.", Serial: 4, NS: []string{"ns1.example.test."}, RName: "dns.example.net.", RRs: rrs(t,
		"example.test. 120 IN NS ns.ext.example.org.",
	)}
	s = startServer(t, cfg, newFakeSource(z2))
	r = ask(t, s.Addr(), "tcp", "example.test.", mdns.TypeNS)
	if len(r.Answer) != 2 || r.Answer[0].Header().Ttl != 120 || r.Answer[1].Header().Ttl != 120 {
		t.Errorf("apex NS: %v", r.Answer)
	}
	r = ask(t, s.Addr(), "tcp", "example.test.", mdns.TypeSOA)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.SOA).Mbox != "dns.example.net." || len(r.Ns) != 2 || r.Ns[0].Header().Ttl != 120 {
		t.Errorf("SOA with the source's mailbox, NS in authority: %v / %v", r.Answer, r.Ns)
	}
}

// TestTruncationOfAdditionalData: an answer that fits but whose additional
// addresses do not is sent without them and without TC (RFC 2181 §9); a
// referral whose glue does not fit is TC (RFC 9471).
func TestTruncationOfAdditionalData(t *testing.T) {
	var lines []string
	for i := range 8 {
		lines = append(lines, fmt.Sprintf("example.test. 300 IN MX %d mx%d.example.test.", i, i),
			fmt.Sprintf("deleg.example.test. 300 IN NS ns%d.deleg.example.test.", i))
		for j := range 4 {
			lines = append(lines, fmt.Sprintf("mx%d.example.test. 300 IN AAAA 2001:db8::%d:%d", i, i, j),
				fmt.Sprintf("ns%d.deleg.example.test. 300 IN AAAA 2001:db8::1:%d:%d", i, i, j))
		}
	}
	s := startServer(t, testConfig(), newFakeSource(&Zone{Name: "example.test.", Serial: 1, RRs: rrs(t, lines...)}))
	for range 2 { // a miss, then the cached answer
		r := ask(t, s.Addr(), "udp", "example.test.", mdns.TypeMX)
		if r.Truncated || len(r.Answer) != 8 || len(r.Extra) == 0 || len(r.Extra) >= 32 {
			t.Errorf("MX: tc=%v answer %d additional %d; want no TC, every MX, some of the addresses", r.Truncated, len(r.Answer), len(r.Extra))
		}
		r = ask(t, s.Addr(), "udp", "www.deleg.example.test.", mdns.TypeA)
		if !r.Truncated || r.Authoritative {
			t.Errorf("referral without room for its glue: tc=%v aa=%v authority %d additional %d", r.Truncated, r.Authoritative, len(r.Ns), len(r.Extra))
		}
	}
	r := ask(t, s.Addr(), "tcp", "example.test.", mdns.TypeMX)
	if r.Truncated || len(r.Extra) != 32 {
		t.Errorf("MX over TCP: tc=%v additional %d", r.Truncated, len(r.Extra))
	}
}

// TestTCPAnswerTooBig: an RRset larger than a TCP message (400 TXT records
// of 240 octets, which the API accepts) is answered over TCP with what
// fits and TC, also when the query is TSIG-signed; it was not answered at
// all (the response could not be packed) and the client timed out after
// UDP had sent it to TCP.
func TestTCPAnswerTooBig(t *testing.T) {
	var lines []string
	for i := range 400 {
		lines = append(lines, fmt.Sprintf(`huge.example.test. 300 IN TXT "%s-%03d"`, strings.Repeat("y", 240), i))
	}
	cfg := testConfig()
	cfg.TSIGKeys = map[string]string{testKey: testSecret}
	s := startServer(t, cfg, newFakeSource(&Zone{Name: "example.test.", Serial: 1, RRs: rrs(t, lines...)}))
	for _, signed := range []bool{false, true} {
		m := new(mdns.Msg)
		m.SetQuestion("HuGe.example.test.", mdns.TypeTXT)
		m.SetEdns0(4096, false)
		c := &mdns.Client{Net: "tcp", Timeout: 3 * time.Second}
		if signed {
			m.SetTsig(testKey, mdns.HmacSHA256, 300, time.Now().Unix())
			c.TsigSecret = map[string]string{testKey: testSecret}
		}
		r, _, err := c.Exchange(m, s.Addr())
		if err != nil {
			t.Fatalf("signed=%v: %v", signed, err)
		}
		if r.Rcode != mdns.RcodeSuccess || !r.Truncated || len(r.Answer) < 200 || len(r.Answer) >= 400 || r.IsEdns0() == nil {
			t.Errorf("signed=%v: rcode %d tc %v answers %d", signed, r.Rcode, r.Truncated, len(r.Answer))
		}
		if signed && r.IsTsig() == nil {
			t.Error("the truncated answer to a signed query is not signed")
		}
		if r.Question[0].Name != "HuGe.example.test." || r.Answer[0].Header().Name != "HuGe.example.test." {
			t.Errorf("signed=%v: spelling not echoed: %v %v", signed, r.Question, r.Answer[0].Header())
		}
	}
}
