package dns

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
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

// failingListener fails Accept with a temporary error (as EMFILE is) until
// ok is closed, then accepts one end of a pipe.
type failingListener struct {
	net.Listener
	calls atomic.Int32
	ok    chan struct{}
}

type tempErr struct{}

func (tempErr) Error() string   { return "accept4: too many open files" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

func (l *failingListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	select {
	case <-l.ok:
		c, _ := net.Pipe()
		return c, nil
	default:
		return nil, tempErr{}
	}
}

func (l *failingListener) Close() error { return nil }

// TestTCPAcceptBackoff: while Accept fails with a temporary error (the
// process is out of file descriptors) the listener retries with a growing
// pause instead of handing the error to miekg/dns's server, which retries
// at once, in a loop that took a core; the connection that comes once the
// condition ends is accepted.
func TestTCPAcceptBackoff(t *testing.T) {
	inner := &failingListener{ok: make(chan struct{})}
	s := &Server{log: hclog.NewNullLogger()}
	l := newLimitListener(inner, 2, s)
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("Accept returned during the failure (%v, %v): miekg/dns would retry at once", r.c, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	// 5, 10, 20, 40, 80, 160 ms: 7 tries in 300 ms.
	if n := inner.calls.Load(); n > 10 {
		t.Errorf("%d Accept calls in 300 ms", n)
	}
	close(inner.ok)
	select {
	case r := <-done:
		if r.err != nil || r.c == nil {
			t.Fatalf("Accept after the failure: %v, %v", r.c, r.err)
		}
		_ = r.c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return once the failure ended")
	}
	// Close ends an Accept that waits out a failure.
	inner2 := &failingListener{ok: make(chan struct{})}
	l2 := newLimitListener(inner2, 1, s)
	go func() {
		_, err := l2.Accept()
		done <- result{nil, err}
	}()
	time.Sleep(20 * time.Millisecond)
	_ = l2.Close()
	select {
	case r := <-done:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}
