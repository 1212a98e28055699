package netrouter

import (
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// TestRouterHairpinNAT: a VM reaches a VM of its project (and itself)
// through the other's 1:1 NAT public address, as a host on the internet
// does: admitted by the inbound allow rules (default drop), answered by the
// VM (not the router), the source it sees being the caller's public
// address (its 1:1 NAT address, else the router address), over repeated
// connections (no ICMP redirect sends the caller around the router).
func TestRouterHairpinNAT(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	// VM .6 has no NAT; VM .7 has its own (.22).
	spec.NAT = append(spec.NAT, api.NATSpec{Private: e.priv3 + ".7", Public: e.net3 + ".22"})
	e.ensure(e.b, spec)

	seg := e.b.names.vxlanBridge(e.vni)
	vm5, vm6, vm7 := e.prefix+"vm5", e.prefix+"vm6", e.prefix+"vm7"
	for i, h := range []string{vm5, vm6, vm7} {
		addr := e.priv3 + "." + string(rune('5'+i))
		e.addHost(h, seg, "", addr+"/24")
		e.sh("ip", "-n", h, "route", "add", "default", "via", e.priv3+".1")
	}
	inet := e.prefix + "inet"
	e.addHost(inet, e.cfg.PublicBridge, "", e.net3+".50/24")
	peers := e.listen(vm5, "0.0.0.0:2222")
	floating := e.net3 + ".20:2222"

	// No inbound allow rule: the floating address is closed from inside
	// the project as from the internet.
	for _, h := range []string{vm6, inet} {
		if err := dialFrom(h, floating, 500*time.Millisecond); err == nil {
			t.Errorf("%s reached the floating address without an allow rule", h)
		}
	}
	if _, recv := e.ping(vm6, e.net3+".20", 2, "0.1"); recv != 0 {
		t.Errorf("ping of the floating address answered without an ICMP allow rule")
	}
	if len(peers) != 0 {
		t.Fatalf("the VM saw connections: %d", len(peers))
	}

	spec.FirewallRules = append(spec.FirewallRules,
		api.FirewallRuleSpec{Order: 5, Allow: true, Protocol: "tcp", Source: "*", Destination: e.priv3 + ".5", Port: "2222"},
		api.FirewallRuleSpec{Order: 6, Allow: true, Protocol: "icmp", Source: "*", Destination: e.priv3 + ".5"})
	e.ensure(e.b, spec)

	for _, c := range []struct{ from, seen string }{
		{inet, e.net3 + ".50"},
		{vm6, e.net3 + ".10"}, // no NAT of its own: the router address
		{vm7, e.net3 + ".22"}, // its own 1:1 NAT address
		{vm5, e.net3 + ".20"}, // itself
	} {
		for i := 0; i < 5; i++ {
			if err := dialFrom(c.from, floating, 10*time.Second); err != nil {
				t.Fatalf("%s → %s, connection %d: %v", c.from, floating, i+1, err)
			}
			select {
			case got := <-peers:
				if got != c.seen {
					t.Errorf("%s → %s: the VM saw the connection from %s, want %s", c.from, floating, got, c.seen)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s → %s: connected, but not to the VM", c.from, floating)
			}
		}
	}
	if sent, recv := e.ping(vm6, e.net3+".20", 10, "0.05"); recv != sent {
		t.Errorf("ping of the floating address from the project: %d/%d", recv, sent)
	}
	// The caller still talks to the router, not to the VM directly.
	if out := e.sh("ip", "-n", vm6, "route", "get", e.net3+".20"); !strings.Contains(out, "via "+e.priv3+".1") {
		t.Errorf("the caller's route to the floating address bypasses the router: %s", out)
	}
	// No ICMP redirect points the caller at the VM (which does not own
	// the public address): the router sends none.
	if out := e.sh("ip", "netns", "exec", e.b.names.namespace(spec.ProjectID), "nstat", "-az", "IcmpOutRedirects"); !strings.Contains(strings.Join(strings.Fields(out), " "), "IcmpOutRedirects 0 ") {
		t.Errorf("the router sent ICMP redirects: %s", out)
	}
	// A port without an allow rule stays closed from inside too.
	e.listen(vm5, "0.0.0.0:2223")
	if err := dialFrom(vm6, e.net3+".20:2223", 500*time.Millisecond); err == nil {
		t.Error("hairpin reached a port without an allow rule")
	}
	// The router address itself is not forwarded anywhere.
	if err := dialFrom(vm6, e.net3+".10:2222", 500*time.Millisecond); err == nil {
		t.Error("the router address forwards to a VM")
	}
}
