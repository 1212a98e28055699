package dns

import (
	"fmt"
	"slices"
	"strings"
	"testing"

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
			if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeFormatError {
				t.Errorf("%s qdcount %d: rcode %s", network, len(qd), mdns.RcodeToString[r.Rcode])
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
	// header. An UPDATE is NOTIMP whatever its counts.
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
				if want != mdns.RcodeSuccess && (r.Authoritative || len(r.Question)+len(r.Answer)+len(r.Ns)+len(r.Extra) != 0) {
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

func TestCaseEcho(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 1)))
	for _, network := range []string{"udp", "tcp"} {
		for i, name := range []string{"WwW.ExAmPlE.TeSt.", "www.EXAMPLE.test.", "WWW.EXAMPLE.TEST."} {
			m := new(mdns.Msg)
			m.SetQuestion(name, mdns.TypeA)
			m.RecursionDesired = i%2 == 0
			m.CheckingDisabled = i == 1
			r := exchange(t, s.Addr(), network, m)
			if r.Question[0].Name != name {
				t.Errorf("%s: question %q, want %q", network, r.Question[0].Name, name)
			}
			if r.Id != m.Id || r.RecursionDesired != m.RecursionDesired || r.CheckingDisabled != m.CheckingDisabled {
				t.Errorf("%s: id/RD/CD not echoed", network)
			}
			if len(r.Answer) != 2 || !strings.EqualFold(r.Answer[1].Header().Name, "host1.example.test.") {
				t.Errorf("%s: answer %v", network, r.Answer)
			}
		}
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
