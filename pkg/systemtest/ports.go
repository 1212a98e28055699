package systemtest

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	portMu    sync.Mutex
	portsUsed = map[string]bool{}
)

// FreeAddr returns host:port with a port nobody listens on (TCP or UDP) right
// now and that this test binary has not handed out before, for a daemon the
// test starts as a separate process.
//
// The port comes from below the kernel's ephemeral range: a port taken from
// that range (by listening on :0) can be handed to an outgoing connection —
// raft, HTTP, another test package — between this check and the daemon
// binding it, and the daemon then fails with "address already in use".
func FreeAddr(t testing.TB, host string) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := staticPortRange()
	for range 1000 {
		addr := net.JoinHostPort(host, strconv.Itoa(lo+rand.IntN(hi-lo)))
		if portsUsed[addr] {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		// A DNS server binds UDP on its port too.
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		pc.Close()
		portsUsed[addr] = true
		return addr
	}
	t.Fatalf("no free port on %s in %d-%d", host, lo, hi)
	return ""
}

// staticPortRange is the range FreeAddr draws from: the 12,000 ports below
// the start of net.ipv4.ip_local_port_range (32768 when it cannot be read).
func staticPortRange() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				hi = n
			}
		}
	}
	return max(hi-12000, 1024), hi
}
