package dns

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/hashicorp/go-hclog"
	mdns "github.com/miekg/dns"
)

// benchZone is the dns-facts §8 benchmark zone: SOA, NS, MX, TXT, CNAME
// www, SRV, a wildcard and 10,000 A records hostN.
func benchZone(t testing.TB) *Zone {
	lines := []string{
		"ns1.example.test. 3600 IN A 127.0.0.1",
		"ns2.example.test. 3600 IN A 127.0.0.2",
		"example.test. 3600 IN MX 10 mail.example.test.",
		"mail.example.test. 3600 IN A 192.0.2.25",
		`example.test. 3600 IN TXT "v=spf1 -all"`,
		"www.example.test. 3600 IN CNAME host1.example.test.",
		"_sip._tcp.example.test. 3600 IN SRV 10 5 5060 host2.example.test.",
		"*.wild.example.test. 3600 IN A 192.0.2.99",
	}
	z := &Zone{Name: "example.test.", Serial: 1, RRs: rrs(t, lines...)}
	for i := range 10000 {
		z.RRs = append(z.RRs, &mdns.A{
			Hdr: mdns.RR_Header{Name: fmt.Sprintf("host%d.example.test.", i), Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 3600},
			A:   []byte{10, byte(i >> 16), byte(i >> 8), byte(i)},
		})
	}
	return z
}

func benchConfig() Config {
	return Config{Addr: "127.0.0.1:0", NS: []string{"ns1.example.test.", "ns2.example.test."}}
}

// benchQueries is the §8 mix: 60% existing A, 10% NXDOMAIN, 10% www
// (CNAME chase), 10% AAAA NODATA, 10% MX at the apex.
func benchQueries(n int) [][]byte {
	var out [][]byte
	for i := range n {
		m := new(mdns.Msg)
		switch i % 10 {
		case 0, 1, 2, 3, 4, 5:
			m.SetQuestion(fmt.Sprintf("host%d.example.test.", (i*7919)%10000), mdns.TypeA)
		case 6:
			m.SetQuestion(fmt.Sprintf("nx%d.example.test.", i%1000), mdns.TypeA)
		case 7:
			m.SetQuestion("www.example.test.", mdns.TypeA)
		case 8:
			m.SetQuestion(fmt.Sprintf("host%d.example.test.", i%10000), mdns.TypeAAAA)
		case 9:
			m.SetQuestion("example.test.", mdns.TypeMX)
		}
		b, _ := m.Pack()
		out = append(out, b)
	}
	return out
}

func newBenchServer(b *testing.B, cacheEntries int) (*Server, *zoneSet) {
	cfg := benchConfig()
	cfg.CacheEntries = cacheEntries
	s, err := New(cfg, newFakeSource(benchZone(b)))
	if err != nil {
		b.Fatal(err)
	}
	s.reload()
	return s, s.snap.Load()
}

// mixCase returns the queries with the letters of their names in random
// case, as 0x20 resolvers send them (deterministic).
func mixCase(qs [][]byte) [][]byte {
	out := make([][]byte, len(qs))
	x := uint32(1)
	for i, q := range qs {
		q = bytes.Clone(q)
		for j := 12; j < len(q) && q[j] != 0; j += 1 + int(q[j]) {
			for k := j + 1; k <= j+int(q[j]); k++ {
				if x = x*1664525 + 1013904223; x>>31 == 1 && 'a' <= q[k] && q[k] <= 'z' {
					q[k] -= 'a' - 'A'
				}
			}
		}
		out[i] = q
	}
	return out
}

// BenchmarkHandleUDP measures the packet handler without sockets: the fast
// path (cache hits after warm-up) and the full miekg path (cache off), with
// lower-case queries and with 0x20 (mixed-case) ones.
func BenchmarkHandleUDP(b *testing.B) {
	lower := benchQueries(20000)
	mixed := mixCase(lower)
	remote := netip.MustParseAddrPort("127.0.0.1:5353")
	for _, bc := range []struct {
		name  string
		cache int
		qs    [][]byte
	}{{"fast", 0, lower}, {"full", -1, lower}, {"fast-0x20", 0, mixed}, {"full-0x20", -1, mixed}} {
		qs := bc.qs
		b.Run(bc.name, func(b *testing.B) {
			s, zs := newBenchServer(b, bc.cache)
			out := make([]byte, 65536)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if s.handleUDP(zs, qs[i%len(qs)], out, remote) == nil {
					b.Fatal("no response")
				}
				i++
			}
		})
	}
}

// BenchmarkServeUDP measures round trips over loopback sockets.
func BenchmarkServeUDP(b *testing.B) {
	s := startServer(b, benchConfig(), newFakeSource(benchZone(b)))
	qs := benchQueries(20000)
	b.RunParallel(func(pb *testing.PB) {
		c, err := (&mdns.Client{}).Dial(s.Addr())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		i := 0
		for pb.Next() {
			if _, err := c.Write(qs[i%len(qs)]); err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkZoneRebuild: what a node does for each change of a zone of 10,000
// records: build the new zone, and its journal entry (the differences from
// the version before, for IXFR).
func BenchmarkZoneRebuild(b *testing.B) {
	st, err := testConfig().validate()
	if err != nil {
		b.Fatal(err)
	}
	log := hclog.NewNullLogger()
	version := func(serial uint32) *Zone {
		z := testZone(b, serial)
		for i := range 10000 {
			z.RRs = append(z.RRs, rrs(b, fmt.Sprintf("h%d.example.test. 60 IN A 10.0.%d.%d", i, i>>8&255, i&255))...)
		}
		z.RRs = append(z.RRs, rrs(b, fmt.Sprintf("v.example.test. 60 IN TXT \"%d\"", serial))...)
		return z
	}
	a, c := version(1), version(2)
	old := buildZone(a, st, log)
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			buildZone(c, st, log)
		}
	})
	b.Run("journal", func(b *testing.B) {
		z := buildZone(c, st, log)
		for b.Loop() {
			nextJournal(old, z)
		}
	})
}
