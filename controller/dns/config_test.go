package dns

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestConfigValidation(t *testing.T) {
	good := testConfig()
	if _, err := New(good, newFakeSource()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if _, err := New(good, nil); err == nil {
		t.Error("nil Source accepted")
	}
	cases := map[string]struct {
		mod  func(*Config)
		want string
	}{
		"no addr":          {func(c *Config) { c.Addr = "" }, "Addr is required"},
		"bad addr":         {func(c *Config) { c.Addr = "localhost" }, "Addr"},
		"no NS":            {func(c *Config) { c.NS = nil }, "NS name is required"},
		"bad NS":           {func(c *Config) { c.NS = []string{"a..b"} }, "not a host name"},
		"email rname":      {func(c *Config) { c.RName = "hostmaster@example.net" }, "mailbox"},
		"retry>=refresh":   {func(c *Config) { c.Refresh, c.Retry = 600, 600 }, "retry"},
		"expire too low":   {func(c *Config) { c.Expire = 100 }, "expire"},
		"bad prefix":       {func(c *Config) { c.AllowTransfer = []netip.Prefix{{}} }, "invalid prefix"},
		"bad notify":       {func(c *Config) { c.Notify = []string{":53"} }, "host:port"},
		"bad secret":       {func(c *Config) { c.TSIGKeys = map[string]string{"k.": "!!"} }, "not base64"},
		"unknown alg":      {func(c *Config) { c.TSIGKeys = map[string]string{"k.": testSecret}; c.TSIGAlgorithm = "md4" }, "algorithm"},
		"bad notify key":   {func(c *Config) { c.TSIGKeys = map[string]string{"k.": testSecret}; c.NotifyKey = "x." }, "NotifyKey"},
		"key without keys": {func(c *Config) { c.NotifyKey = "x." }, "NotifyKey"},
		"udp size":         {func(c *Config) { c.UDPSize = 100 }, "UDPSize"},
	}
	for name, tc := range cases {
		cfg := testConfig()
		tc.mod(&cfg)
		_, err := New(cfg, newFakeSource())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	st, err := testConfig().validate()
	if err != nil {
		t.Fatal(err)
	}
	if st.Refresh != DefaultRefresh || st.Retry != DefaultRetry || st.Expire != DefaultExpire || st.Minimum != DefaultMinimum ||
		st.TTL != DefaultTTL || st.UDPSize != DefaultUDPSize || st.MName != "ns1.example.test." {
		t.Errorf("defaults not applied: %+v", st)
	}
	cfg := testConfig()
	cfg.Notify = []string{"192.0.2.1", "[2001:db8::1]:5353"}
	st, err = cfg.validate()
	if err != nil || st.notifyAddrs[0] != "192.0.2.1:53" || st.notifyAddrs[1] != "[2001:db8::1]:5353" {
		t.Errorf("notify targets: %v %v", st, err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Registerer = reg
	s := startServer(t, cfg, newFakeSource(testZone(t, 1), deepZone(t)))
	for range 3 {
		ask(t, s.Addr(), "udp", "host1.example.test.", mdns.TypeA)
	}
	ask(t, s.Addr(), "tcp", "nx.host1.example.test.", mdns.TypeA)
	ask(t, s.Addr(), "udp", "example.org.", mdns.TypeTXT)
	m := new(mdns.Msg)
	m.SetAxfr("example.test.")
	if _, err := axfr(t, s.Addr(), m, nil); err != nil {
		t.Fatal(err)
	}
	if got := value(t, s.metrics.queries.WithLabelValues("A", "NOERROR")); got != 3 {
		t.Errorf("A/NOERROR = %v, want 3", got)
	}
	if got := value(t, s.metrics.queries.WithLabelValues("A", "NXDOMAIN")); got != 1 {
		t.Errorf("A/NXDOMAIN = %v", got)
	}
	if got := value(t, s.metrics.queries.WithLabelValues("TXT", "REFUSED")); got != 1 {
		t.Errorf("TXT/REFUSED = %v", got)
	}
	if got := value(t, s.metrics.zones); got != 2 {
		t.Errorf("zones = %v", got)
	}
	// The server counts a transfer after writing its last message, which
	// the client may have read already: wait for the count.
	deadline := time.Now().Add(30 * time.Second)
	for value(t, s.metrics.transfers.WithLabelValues(resultSuccess)) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := value(t, s.metrics.transfers.WithLabelValues(resultSuccess)); got != 1 {
		t.Errorf("transfers = %v", got)
	}
	if got := value(t, s.metrics.answers.WithLabelValues(answerFull)); got != 1 {
		t.Errorf("full transfer answers = %v", got)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "regent_dns_request_duration_seconds" {
			for _, m := range f.GetMetric() {
				if m.GetHistogram().GetSampleCount() == 0 {
					t.Errorf("no duration samples for %v", m.GetLabel())
				}
			}
		}
	}
	// A second server on the same registry fails clearly.
	if _, err := New(cfg, newFakeSource()); err == nil {
		t.Error("duplicate registration accepted")
	}
}

// TestConcurrentQueriesDuringUpdates runs parallel UDP and TCP queries while
// zones are replaced, for the race detector.
func TestConcurrentQueriesDuringUpdates(t *testing.T) {
	src := newFakeSource(testZone(t, 1))
	s := startServer(t, testConfig(), src)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		network := []string{"udp", "tcp"}[i%2]
		wg.Go(func() {
			c := &mdns.Client{Net: network, Timeout: 10 * time.Second}
			names := []string{"www.example.test.", "foo.wild.example.test.", "example.test.", "host.sub.example.test.", "x.example.test."}
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				m := new(mdns.Msg)
				m.SetQuestion(names[j%len(names)], []uint16{mdns.TypeA, mdns.TypeMX, mdns.TypeNS, mdns.TypeTXT}[j%4])
				if j%3 == 0 {
					m.SetEdns0(1232, true)
				}
				if _, _, err := c.Exchange(m, s.Addr()); err != nil {
					t.Errorf("%s: %v", network, err)
					return
				}
			}
		})
	}
	for i := range 20 {
		z := testZone(t, uint32(2+i))
		z.RRs = append(z.RRs, rrs(t, fmt.Sprintf("v%d.example.test. 60 IN A 192.0.2.%d", i, i))...)
		src.put(z)
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	// Updates reach the server asynchronously (it rebuilds from the source
	// when told, paced): the last one is served soon, not at once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ask(t, s.Addr(), "udp", "v19.example.test.", mdns.TypeA)
		if len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last update not served after 30 s: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestMetricsBADVERS: a query with EDNS version 1 is counted as BADVERS,
// the rcode it gets (miekg/dns names rcode 16 BADSIG, its TSIG meaning).
func TestMetricsBADVERS(t *testing.T) {
	cfg := testConfig()
	cfg.Registerer = prometheus.NewRegistry()
	s := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	for _, network := range []string{"udp", "tcp"} {
		m := new(mdns.Msg)
		m.SetQuestion("host1.example.test.", mdns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
		if r := exchange(t, s.Addr(), network, m); r.Rcode != mdns.RcodeBadVers {
			t.Fatalf("%s: rcode %d, want BADVERS", network, r.Rcode)
		}
	}
	if got := value(t, s.metrics.queries.WithLabelValues("A", "BADVERS")); got != 2 {
		t.Errorf("queries_total{A,BADVERS} = %v, want 2", got)
	}
	if got := value(t, s.metrics.queries.WithLabelValues("A", "BADSIG")); got != 0 {
		t.Errorf("queries_total{A,BADSIG} = %v, want 0", got)
	}
}

// TestTruncatedMetric: every UDP answer sent with TC is counted in
// regent_dns_truncated_total, from the packed-response cache (a miss and a
// hit) and from the full path (a query with an EDNS option); one that fits
// is not.
func TestTruncatedMetric(t *testing.T) {
	cfg := testConfig()
	cfg.Registerer = prometheus.NewRegistry()
	s := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	for range 2 {
		if r := ask(t, s.Addr(), "udp", "big.example.test.", mdns.TypeTXT); !r.Truncated {
			t.Fatal("want TC over 512-byte UDP")
		}
	}
	m := new(mdns.Msg)
	m.SetQuestion("big.example.test.", mdns.TypeTXT)
	m.SetEdns0(512, false)
	m.IsEdns0().Option = []mdns.EDNS0{&mdns.EDNS0_LOCAL{Code: 65001, Data: []byte{1}}}
	if r := exchange(t, s.Addr(), "udp", m); !r.Truncated {
		t.Fatal("want TC with a 512-byte EDNS size")
	}
	m.IsEdns0().SetUDPSize(4096)
	if r := exchange(t, s.Addr(), "udp", m); r.Truncated || len(r.Answer) != 15 {
		t.Fatalf("within 1232 bytes: tc=%v answers=%d", r.Truncated, len(r.Answer))
	}
	if got := value(t, s.metrics.truncated); got != 3 {
		t.Errorf("regent_dns_truncated_total = %v, want 3", got)
	}
}
