//go:build linux

package dns

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestUDPPortNotShared reproduces the audit's "reply that is its own
// query": dig sets SO_REUSEPORT on its sockets, and when the server's
// socket has it too, the kernel may hand the server's port to dig as its
// ephemeral port (same user); dig, connected to the server's address, then
// reads its own query (QR=0, "ad", cookie "(echoed)") instead of the answer.
// The server must keep its port to itself: a client asking for it with
// SO_REUSEPORT, on the wildcard or the server's address, is refused.
func TestUDPPortNotShared(t *testing.T) {
	s := startServer(t, testConfig(), newFakeSource(testZone(t, 1)))
	_, port, _ := net.SplitHostPort(s.Addr())
	for _, host := range []string{"0.0.0.0", "127.0.0.1"} {
		lc := net.ListenConfig{Control: reusePort} // as dig and a second server socket do
		pc, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(host, port))
		if err != nil {
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("bind %s:%s: %v, want EADDRINUSE", host, port, err)
			}
			continue
		}
		// The port was shared: show what a client bound to it sees.
		m := new(mdns.Msg)
		m.SetQuestion("sub.example.test.", mdns.TypeDS)
		m.AuthenticatedData = true
		b, _ := m.Pack()
		addr, _ := net.ResolveUDPAddr("udp4", s.Addr())
		_, _ = pc.WriteTo(b, addr)
		_ = pc.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 2048)
		n, _, rerr := pc.ReadFrom(buf)
		what := "no reply"
		if rerr == nil && n >= 3 {
			what = "a reply with QR=" + strconv.Itoa(int(buf[2]>>7))
		}
		pc.Close()
		t.Errorf("a SO_REUSEPORT client could bind the server's port %s:%s (%s): a client given it as its source port reads its own query", host, port, what)
	}
}
