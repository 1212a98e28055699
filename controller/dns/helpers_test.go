package dns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeSource is an in-memory Source.
type fakeSource struct {
	mu    sync.Mutex
	index uint64
	zones map[string]*Zone
	ch    chan struct{}
}

func newFakeSource(zones ...*Zone) *fakeSource {
	f := &fakeSource{index: 1, zones: map[string]*Zone{}, ch: make(chan struct{})}
	for _, z := range zones {
		f.zones[z.Name] = z
	}
	return f
}

func (f *fakeSource) Serials() (uint64, map[string]uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]uint32, len(f.zones))
	for n, z := range f.zones {
		m[n] = z.Serial
	}
	return f.index, m
}

func (f *fakeSource) Zone(name string) (*Zone, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	z, ok := f.zones[name]
	return z, ok
}

func (f *fakeSource) Wait(ctx context.Context, index uint64) uint64 {
	for {
		f.mu.Lock()
		if f.index > index {
			i := f.index
			f.mu.Unlock()
			return i
		}
		ch := f.ch
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return index
		case <-ch:
		}
	}
}

// put replaces (or adds) a zone and advances the index.
func (f *fakeSource) put(z *Zone) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	f.zones[z.Name] = z
	close(f.ch)
	f.ch = make(chan struct{})
}

func rrs(t testing.TB, lines ...string) []mdns.RR {
	t.Helper()
	var out []mdns.RR
	for _, l := range lines {
		rr, err := mdns.NewRR(l)
		if err != nil {
			t.Fatalf("NewRR(%q): %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

func testZone(t testing.TB, serial uint32) *Zone {
	var big []string
	for i := range 15 {
		big = append(big, fmt.Sprintf(`big.example.test. 300 IN TXT "%s-%02d"`, strings.Repeat("x", 40), i))
	}
	lines := append([]string{
		"example.test. 3600 IN NS ns3.example.test.",
		"ns1.example.test. 300 IN A 192.0.2.1",
		"ns1.example.test. 300 IN AAAA 2001:db8::1",
		"ns3.example.test. 300 IN A 192.0.2.3",
		"www.example.test. 300 IN CNAME host1.example.test.",
		"host1.example.test. 300 IN A 192.0.2.10",
		"mail.example.test. 300 IN A 192.0.2.20",
		"example.test. 300 IN MX 10 mail.example.test.",
		"example.test. 300 IN MX 20 mx.example.org.",
		`example.test. 300 IN TXT "v=spf1 -all"`,
		"_sip._tcp.example.test. 300 IN SRV 0 5 5060 host1.example.test.",
		"*.wild.example.test. 300 IN A 192.0.2.30",
		"exists.wild.example.test. 300 IN A 192.0.2.31",
		"*.wc.example.test. 300 IN CNAME host1.example.test.",
		"a.*.went.example.test. 300 IN A 192.0.2.32",
		"a.b.ent.example.test. 300 IN A 192.0.2.40",
		"sub.example.test. 300 IN NS ns.sub.example.test.",
		"sub.example.test. 300 IN NS ns.example.org.",
		"ns.sub.example.test. 300 IN A 192.0.2.50",
		"*.example.test. 300 IN TXT \"apex wildcard\"",
		"loop1.example.test. 300 IN CNAME loop2.example.test.",
		"loop2.example.test. 300 IN CNAME loop1.example.test.",
		"ext.example.test. 300 IN CNAME www.example.org.",
		"gone.example.test. 300 IN CNAME nothing.host1.example.test.",
		"MiXeD.Example.Test. 300 IN A 192.0.2.60",
	}, big...)
	return &Zone{Name: "example.test.", Serial: serial, RRs: rrs(t, lines...)}
}

func deepZone(t testing.TB) *Zone {
	return &Zone{Name: "deep.example.test.", Serial: 7, RRs: rrs(t, "x.deep.example.test. 60 IN A 198.51.100.1")}
}

func testConfig() Config {
	return Config{
		Addr:          "127.0.0.1:0",
		NS:            []string{"ns1.example.test", "ns2.example.net."},
		RName:         "hostmaster.example.net.",
		AllowTransfer: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}
}

// startServer runs a server on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, cfg Config, src Source) *Server {
	t.Helper()
	s, err := New(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func exchange(t testing.TB, addr, network string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 10 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange %s %v: %v", network, m.Question, err)
	}
	return r
}

func ask(t testing.TB, addr, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return exchange(t, addr, network, m)
}

// section renders RRs as "name TYPE rdata" lines, TTL and class dropped.
func section(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == mdns.TypeOPT {
			continue
		}
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append([]string{f[0], f[3]}, f[4:]...), " "))
	}
	return out
}
