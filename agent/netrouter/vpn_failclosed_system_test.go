package netrouter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
	"golang.org/x/sys/unix"
)

// vpnFenceDrops sums the packet counters of the drop rules of the
// router's vpn_egress chain (0 when the chain is missing).
func (e *sysenv) vpnFenceDrops(ns string) int {
	e.t.Helper()
	out, err := e.try("ip", "netns", "exec", ns, "nft", "list", "chain", "inet", tableName, chainVPNEgress)
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range regexp.MustCompile(`counter packets (\d+) bytes \d+ drop`).FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// fakeTUN stands in for kernel-libipsec's ipsec0: a TUN device of this
// process in a router namespace, gone (with the routes into it) when it
// is closed, as charon's is when charon dies. Like a peer behind the
// tunnel it answers every UDP datagram routed into it, so a flow through
// it is established for conntrack.
type fakeTUN struct {
	f    *os.File
	done chan struct{}
}

func (e *sysenv) startFakeTUN(ns string) *fakeTUN {
	e.t.Helper()
	var f *os.File
	if err := withNetnsPath(nsPath(ns), func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(vpn.TUNDevice)
		if err == nil {
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("tun %s: %w", vpn.TUNDevice, err)
		}
		f = os.NewFile(uintptr(fd), vpn.TUNDevice) // non-blocking: Close ends a Read
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	tun := &fakeTUN{f: f, done: make(chan struct{})}
	go func() {
		defer close(tun.done)
		buf := make([]byte, 2048)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			p := buf[:n]
			if n < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP || n < int(p[0]&0x0f)*4+8 {
				continue
			}
			// The answer: addresses and ports swapped (the IP checksum
			// holds: same sum), no UDP checksum (0: none, valid in IPv4).
			u := int(p[0]&0x0f) * 4
			var a [4]byte
			copy(a[:], p[12:16])
			copy(p[12:16], p[16:20])
			copy(p[16:20], a[:])
			p[u], p[u+1], p[u+2], p[u+3] = p[u+2], p[u+3], p[u], p[u+1]
			p[u+6], p[u+7] = 0, 0
			_, _ = f.Write(p)
		}
	}()
	return tun
}

// Close removes the device (charon died); it is safe to call twice.
func (t *fakeTUN) Close() {
	_ = t.f.Close()
	<-t.done
}

// TestVPNDeviceMissingFailsClosed: a VPN's remote subnets are routed
// into its tunnel device (ipsec0 in libipsec mode), which exists only
// while charon runs. Before charon is up, after it died (the kernel drops
// the routes with its TUN device), or when the router's only VPN does
// not run, there is no route: the traffic of the project subnet to the
// remote subnet followed the default route and left the router's public
// side unencrypted (and, exempt from SNAT as VPN traffic, with its private
// source), and a flow that had entered the tunnel went on out of the
// public side as an established connection. Now the ruleset lets a
// remote subnet's traffic leave only by its VPN's device (chain
// vpn_egress, first in forward, before the established accept, and in
// output for the router's own packets): without the device it is
// dropped, while ordinary internet traffic still passes.
//
// The router's gateway is a "public" host namespace that holds an address
// in the remote subnet and listens on UDP: whatever leaves the router
// towards the remote subnet arrives there.
func TestVPNDeviceMissingFailsClosed(t *testing.T) {
	ctx := context.Background()
	e, spec, f := newFenceEnv(t)
	ns, inet, vm, pubHost, r3, remoteAddr, got := f.ns, f.inet, f.vm, f.pubHost, f.r3, f.remoteAddr, f.got

	// expectOnly sends n datagrams to the remote subnet (through send),
	// then one to the public host, and checks that the public host
	// received only the latter: the datagrams take the same path through
	// the router, so a leaked one would have arrived before it.
	mark := 0
	expectOnly := func(when string, send func(payload string), n int) {
		t.Helper()
		dropsBefore := e.vpnFenceDrops(ns)
		for i := range n {
			send(fmt.Sprintf("%s: to the remote subnet %d", when, i))
		}
		mark++
		internet := fmt.Sprintf("%s: to the internet %d", when, mark)
		e.sendUDP(vm, e.priv3+".5", pubHost+":7002", internet)
		r := received(got, []string{internet}, 500*time.Millisecond)
		if !slices.Equal(r, []string{internet}) {
			t.Fatalf("%s: the public side received %q; want only %q (ordinary internet traffic passes, none to the remote subnet)", when, r, internet)
		}
		if drops := e.vpnFenceDrops(ns) - dropsBefore; drops < n {
			t.Fatalf("%s: the vpn_egress chain dropped %d packets, want %d", when, drops, n)
		}
	}
	newFlow := func(payload string) { e.sendUDP(vm, e.priv3+".5", remoteAddr+":7002", payload) }

	// No charon: no ipsec0, no route into it.
	if out := e.sh("ip", "-n", ns, "route", "show", r3+".0/24"); out != "" {
		t.Fatalf("route to the remote subnet without its device: %q", out)
	}
	expectOnly("no charon", newFlow, 3)
	// The router's own packets too (its gateway address answering a
	// remote host): the send fails (EPERM) or goes nowhere.
	expectOnly("no charon, from the router", func(payload string) {
		_ = withNetnsPath(nsPath(ns), func() error {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(e.priv3 + ".1")}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(remoteAddr+":7002")))
			if err != nil {
				return err
			}
			defer c.Close()
			_, _ = c.Write([]byte(payload))
			return nil
		})
	}, 2)

	// charon is up (a TUN device of this process, named as
	// kernel-libipsec's): the route goes into it, and a flow through it is
	// answered.
	tun := e.startFakeTUN(ns)
	defer tun.Close()
	if _, err := e.b.EnsureVPNRoutes(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if out := e.sh("ip", "-n", ns, "route", "show", r3+".0/24"); !strings.Contains(out, "dev "+vpn.TUNDevice) {
		t.Fatalf("route to the remote subnet: %q, want into %s", out, vpn.TUNDevice)
	}
	var flow *net.UDPConn
	if err := withNetnsPath(nsPath(vm), func() (err error) {
		flow, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(e.priv3 + ".5")}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(remoteAddr+":7002")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer flow.Close()
	// The "peer" answers through the tunnel: the flow is established
	// (conntrack has seen its reply).
	if _, err := flow.Write([]byte("into the tunnel")); err != nil {
		t.Fatal(err)
	}
	_ = flow.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 64)
	if n, err := flow.Read(buf); err != nil || string(buf[:n]) != "into the tunnel" {
		t.Fatalf("no answer through the tunnel: %q %v", buf[:n], err)
	}
	expectOnly("device up", newFlow, 0)

	// charon dies: the kernel removes its TUN device and the route with it.
	tun.Close()
	eventually(t, vpn.TUNDevice+" and its route gone", 10*time.Second, func() bool {
		out, _ := e.try("ip", "-n", ns, "link", "show", vpn.TUNDevice)
		return !strings.Contains(out, vpn.TUNDevice+":") && e.sh("ip", "-n", ns, "route", "show", r3+".0/24") == ""
	})
	expectOnly("charon died, established flow", func(p string) {
		if _, err := flow.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}, 3)
	expectOnly("charon died, new flow", newFlow, 3)

	// An Ensure meanwhile (a resync, a firewall change) changes nothing.
	e.ensure(e.b, spec)
	expectOnly("charon died, after an Ensure", newFlow, 2)

	// Without the VPN the remote subnet is ordinary internet: it leaves,
	// SNATed to the router's 1:1 NAT address of the VM.
	spec.VPNs = nil
	e.ensure(e.b, spec)
	peers := e.listen(inet, remoteAddr+":7003")
	if err := dialFrom(vm, remoteAddr+":7003", 10*time.Second); err != nil {
		t.Fatalf("to %s without the VPN: %v", remoteAddr, err)
	}
	if p := <-peers; p != e.net3+".20" {
		t.Fatalf("without the VPN the public host saw %s, want the VM's NAT address %s.20", p, e.net3)
	}
}

// TestRouterRulesetBeforeLinks: on a first build of a router's namespace
// (the host rebooted, the namespace was deleted) the ruleset must be in
// place before the links come up. The builder brought pub0, the subnet
// veths and the default route up (links) before it applied the ruleset
// (nftables): in between the router forwarded with no firewall and no
// NAT, so a VM's traffic to a VPN's remote subnet (no charon yet) left
// unencrypted, and its internet traffic with its private source. Probed
// at the step after the links ("vpn"), with the VMs of the project
// already sending, as they do when only the network node restarts.
func TestRouterRulesetBeforeLinks(t *testing.T) {
	e, spec, f := newFenceEnv(t)
	ns, inet, vm, pubHost, remoteAddr, got := f.ns, f.inet, f.vm, f.pubHost, f.remoteAddr, f.got
	peers := e.listen(inet, pubHost+":7003")

	// The namespace goes; the next Ensure builds it from scratch.
	e.sh("ip", "netns", "del", ns)
	var probed bool
	var udp []string
	var peer string
	var dialErr error
	e.b.hook = func(step string) error {
		if step != "vpn" || probed {
			return nil
		}
		probed = true
		// The gateway's MAC changed with the namespace.
		_, _ = e.try("ip", "-n", vm, "neigh", "flush", "all")
		e.sendUDP(vm, e.priv3+".5", remoteAddr+":7002", "to the remote subnet")
		e.sendUDP(vm, e.priv3+".5", pubHost+":7002", "to the internet")
		udp = received(got, []string{"to the internet"}, 500*time.Millisecond)
		if dialErr = dialFrom(vm, pubHost+":7003", 10*time.Second); dialErr == nil {
			select {
			case peer = <-peers:
			case <-time.After(10 * time.Second):
			}
		}
		return nil
	}
	res, err := e.b.Ensure(context.Background(), spec)
	e.b.hook = nil
	if err != nil {
		t.Fatal(err)
	}
	if !probed {
		t.Fatalf("Ensure did not reach the vpn step: %q", res.Changes)
	}
	t.Logf("rebuilt: %q", res.Changes)
	if !slices.Equal(udp, []string{"to the internet"}) {
		t.Errorf("right after the links came up the public side received %q; want only %q", udp, "to the internet")
	}
	if dialErr != nil || peer != e.net3+".20" {
		t.Errorf("right after the links came up a VM's connection to the internet came from %q (%v); want its NAT address %s.20", peer, dialErr, e.net3)
	}
}

// fenceEnv is what the VPN fence tests share: a router whose one VPN
// (no charon runs) routes the project subnet to a random remote /24;
// host inet on the public bridge is the router's gateway (pubHost) and
// also holds remoteAddr, in that /24; host vm sits on the project
// subnet behind the router; got receives the UDP datagrams sent to
// inet's port 7002.
type fenceEnv struct {
	ns, inet, vm, pubHost, r3, remoteAddr string
	got                                   <-chan string
}

func newFenceEnv(t *testing.T) (*sysenv, *api.RouterSpec, fenceEnv) {
	t.Helper()
	e := newSysenv(t)
	pid := e.projectID()
	spec := e.spec(pid)
	f := fenceEnv{pubHost: e.net3 + ".50", r3: fmt.Sprintf("172.30.%d", rand.IntN(256))}
	spec.PublicGateway = f.pubHost
	f.remoteAddr = f.r3 + ".99"
	spec.VPNs = []api.VPNSpec{{ID: pid + 3, Routes: []api.VPNRouteSpec{{LocalSubnet: e.priv3 + ".0/24", RemoteSubnet: f.r3 + ".0/24"}}}}
	e.ensure(e.b, spec)
	f.ns = e.b.names.namespace(pid)

	f.inet, f.vm = e.prefix+"in", e.prefix+"vm"
	e.addHost(f.inet, e.cfg.PublicBridge, "", f.pubHost+"/24")
	e.sh("ip", "-n", f.inet, "addr", "add", f.remoteAddr+"/32", "dev", "eth0")
	e.sh("ip", "-n", f.inet, "route", "add", e.priv3+".0/24", "via", e.net3+".10")
	e.addHost(f.vm, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:05", e.priv3+".5/24")
	e.sh("ip", "-n", f.vm, "route", "add", "default", "via", e.priv3+".1")
	f.got = e.listenUDP(f.inet, "0.0.0.0:7002")
	return e, spec, f
}
