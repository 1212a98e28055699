package netrouter

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// pubAddrs lists the IPv4 addresses of the router's pub0 in the kernel's
// order, each with " secondary" when it is one.
func (e *sysenv) pubAddrs(ns string) []string {
	e.t.Helper()
	var out []string
	for _, l := range strings.Split(e.sh("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", nsPublicIf), "\n") {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				a := f[i+1]
				if strings.Contains(l, " secondary ") {
					a += " secondary"
				}
				out = append(out, a)
			}
		}
	}
	return out
}

// TestRouterPublicAddressStaysPrimary: when the router's public address
// changes, the new one is pub0's primary address of the floating subnet
// (the router's own source address, and what the connected route
// prefers), not a 1:1 NAT address the kernel promoted when the old primary
// went (promote_secondaries=1 in the namespace).
func TestRouterPublicAddressStaysPrimary(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	ns := e.b.names.namespace(spec.ProjectID)
	e.ensure(e.b, spec)
	if got := e.pubAddrs(ns); len(got) != 2 || got[0] != e.net3+".10/24" {
		t.Fatalf("pub0 after the build: %q", got)
	}

	spec.PublicIP = e.net3 + ".12/24"
	e.ensure(e.b, spec)
	got := e.pubAddrs(ns)
	if len(got) != 2 || got[0] != e.net3+".12/24" || got[1] != e.net3+".20/24 secondary" {
		t.Fatalf("pub0 after the router address changed: %q, want %s.12/24 primary and the NAT address %s.20/24 secondary", got, e.net3, e.net3)
	}
	// The router's own traffic leaves from its address.
	if out := e.sh("ip", "-n", ns, "route", "get", e.net3+".50"); !strings.Contains(out, "src "+e.net3+".12 ") {
		t.Errorf("route to the floating subnet: %s, want src %s.12", out, e.net3)
	}
	if out := e.sh("ip", "-n", ns, "route", "get", "192.0.2.1"); !strings.Contains(out, "src "+e.net3+".12 ") {
		t.Errorf("default route: %s, want src %s.12", out, e.net3)
	}
	// And again with the NAT addresses changing at the same time.
	spec.PublicIP = e.net3 + ".13/24"
	spec.NAT[0].Public = e.net3 + ".21"
	e.ensure(e.b, spec)
	if got := e.pubAddrs(ns); len(got) != 2 || got[0] != e.net3+".13/24" || got[1] != e.net3+".21/24 secondary" {
		t.Fatalf("pub0 after the router and NAT addresses changed: %q", got)
	}
	// Unchanged: nothing to do.
	if res := e.ensure(e.b, spec); len(res.Changes) != 0 {
		t.Errorf("second Ensure changed %q", res.Changes)
	}
}

// TestRouterNATFromSecondFloatingSubnet: a 1:1 NAT address drawn from a
// second floating subnet (a /28 here, the router's is a /24) carries that
// subnet's prefix length on pub0, so only that subnet is on-link; the
// rest of its /24 is reached through the gateway, as for any address
// outside the router's floating subnets.
func TestRouterNATFromSecondFloatingSubnet(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	ns := e.b.names.namespace(spec.ProjectID)
	sec := fmt.Sprintf("100.%d.%d", 128+rand.IntN(64), rand.IntN(256))
	spec.NAT[0].PublicPrefixLength = 24
	spec.NAT = append(spec.NAT, api.NATSpec{Private: e.priv3 + ".6", Public: sec + ".20", PublicPrefixLength: 28})
	e.ensure(e.b, spec)
	got := e.pubAddrs(ns)
	if !slices.Contains(got, sec+".20/28") || !slices.Contains(got, e.net3+".20/24 secondary") {
		t.Fatalf("pub0: %q, want %s.20/28 (its own subnet's length) and %s.20/24", got, sec, e.net3)
	}
	if out := e.sh("ip", "-n", ns, "route", "get", sec+".100"); !strings.Contains(out, "via "+e.net3+".1 ") {
		t.Errorf("route to %s.100 (outside the NAT address's /28): %s, want via the gateway %s.1", sec, out, e.net3)
	}
	if out := e.sh("ip", "-n", ns, "route", "get", sec+".25"); strings.Contains(out, " via ") {
		t.Errorf("route to %s.25 (in the NAT address's /28): %s, want on-link", sec, out)
	}
	if res := e.ensure(e.b, spec); len(res.Changes) != 0 {
		t.Errorf("second Ensure changed %q", res.Changes)
	}
}

// pubMAC is the MAC of the router's pub0.
func (e *sysenv) pubMAC(ns string) string {
	e.t.Helper()
	f := strings.Fields(e.sh("ip", "-n", ns, "-o", "link", "show", nsPublicIf))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "link/ether" {
			return f[i+1]
		}
	}
	e.t.Fatalf("pub0 of %s has no MAC: %q", ns, f)
	return ""
}

// neighMAC is host's neighbour entry for addr ("" when it has none).
func (e *sysenv) neighMAC(host, addr string) string {
	f := strings.Fields(e.sh("ip", "-n", host, "neigh", "show", addr, "dev", "eth0"))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

// TestRouterGratuitousARP: a public address that is (re)added to a
// router's pub0 is announced by gratuitous ARP, so a neighbour on the
// public network that still maps it to another MAC is updated at once,
// not after its ~30 s reachable time: here a 1:1 NAT address moves from
// router A to router B, and router A's namespace is built again (a new
// pub0, a new MAC) behind the builder's back.
func TestRouterGratuitousARP(t *testing.T) {
	e := newSysenv(t)
	a, b := e.spec(e.projectID()), e.spec(e.projectID())
	b.PublicIP, b.NAT = e.net3+".11/24", nil
	b.Subnets[0].AddressRange, b.Subnets[0].VNI = "10.254.8.1/24", e.vni+8
	b.Subnets[0].DHCP, b.FirewallRules, b.Metadata = nil, nil, nil
	e.ensure(e.b, a)
	e.ensure(e.b, b)
	nsA, nsB := e.b.names.namespace(a.ProjectID), e.b.names.namespace(b.ProjectID)
	inet := e.prefix + "inet"
	e.addHost(inet, e.cfg.PublicBridge, "", e.net3+".50/24")
	nat := e.net3 + ".20"
	// The neighbour learns A's MAC for the router address and the NAT
	// address (ARP is answered even though nothing answers the ping).
	_, _ = e.try("ip", "netns", "exec", inet, "ping", "-c", "1", "-W", "1", e.net3+".10")
	_, _ = e.try("ip", "netns", "exec", inet, "ping", "-c", "1", "-W", "1", nat)
	macA := e.pubMAC(nsA)
	if got := e.neighMAC(inet, nat); got != macA {
		t.Fatalf("neighbour entry for %s: %q, want router A's %s", nat, got, macA)
	}

	// The NAT address moves to router B.
	b.NAT = []api.NATSpec{{Private: "10.254.8.5", Public: nat}}
	a.NAT, a.Metadata[0].IPAddresses[0].PublicIP = nil, ""
	e.ensure(e.b, a)
	e.ensure(e.b, b)
	macB := e.pubMAC(nsB)
	eventually(t, "the neighbour to map "+nat+" to router B's MAC "+macB, 3*time.Second, func() bool {
		return e.neighMAC(inet, nat) == macB
	})

	// Router A's namespace is built again: a new pub0 with a new MAC.
	e.sh("ip", "netns", "del", nsA)
	e.ensure(e.b, a)
	newA := e.pubMAC(nsA)
	if newA == macA {
		t.Fatalf("the new pub0 has the old MAC %s", macA)
	}
	eventually(t, "the neighbour to map "+e.net3+".10 to router A's new MAC "+newA, 3*time.Second, func() bool {
		return e.neighMAC(inet, e.net3+".10") == newA
	})
}
