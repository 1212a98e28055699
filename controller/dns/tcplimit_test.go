package dns

import (
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestTCPConnectionLimit: clients that open TCP connections and send
// nothing (or a length prefix and then nothing) hold at most TCPConns of
// them; the next client waits for one to close instead of taking another
// file descriptor, the metrics show it, and UDP keeps answering.
func TestTCPConnectionLimit(t *testing.T) {
	cfg := testConfig()
	cfg.TCPConns = 3
	cfg.Registerer = prometheus.NewRegistry()
	s := startServer(t, cfg, newFakeSource(testZone(t, 1)))
	var held []net.Conn
	for i := range cfg.TCPConns {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i == 0 {
			_, _ = c.Write([]byte{0, 40}) // a length, then silence
		}
		held = append(held, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for value(t, s.metrics.tcpConns) != 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := value(t, s.metrics.tcpConns); got != 3 {
		t.Fatalf("regent_dns_tcp_connections = %v, want 3", got)
	}
	m := new(mdns.Msg)
	m.SetQuestion("host1.example.test.", mdns.TypeA)
	c := &mdns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
	if r, _, err := c.Exchange(m, s.Addr()); err == nil {
		t.Fatalf("a fourth TCP connection was served while three were held: %v", r)
	}
	if r := ask(t, s.Addr(), "udp", "host1.example.test.", mdns.TypeA); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("udp while TCP is full: %v", r)
	}
	if got := value(t, s.metrics.tcpWaits); got < 1 {
		t.Errorf("regent_dns_tcp_limit_reached_total = %v, want ≥ 1", got)
	}
	// A slot frees when a held connection closes: the next client is
	// served.
	_ = held[1].Close()
	if r := ask(t, s.Addr(), "tcp", "host1.example.test.", mdns.TypeA); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("tcp after a slot freed: %v", r)
	}
}
