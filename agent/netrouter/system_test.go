package netrouter

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
	"github.com/vishvananda/netlink"
)

// TestRouterEndToEnd builds a router with one subnet and checks DHCP,
// forwarding, SNAT, 1:1 NAT with an inbound allow rule toggled by Ensure,
// an atomic firewall swap under a 20 pps ping, idempotence, metadata and
// Scrub.
func TestRouterEndToEnd(t *testing.T) {
	e := newSysenv(t)
	ctx := context.Background()
	spec := e.spec(e.projectID())
	ns := e.b.names.namespace(spec.ProjectID)

	res := e.ensure(e.b, spec)
	t.Logf("build: %v, %d changes", res.Duration, len(res.Changes))

	// The "internet": a host on the public bridge.
	e.addHost(e.prefix+"inet", e.cfg.PublicBridge, "", e.net3+".50/24")
	inet := e.prefix + "inet"
	// Two VMs on the segment bridge with the spec's MACs, addressed by DHCP.
	seg := e.b.names.vxlanBridge(spec.Subnets[0].VNI)
	vm5, vm6 := e.prefix+"vm5", e.prefix+"vm6"
	e.addHost(vm5, seg, "02:00:00:aa:00:05", "")
	e.addHost(vm6, seg, "02:00:00:aa:00:06", "")

	t.Run("dhcp", func(t *testing.T) {
		e.dhcp(vm5)
		e.dhcp(vm6)
		for host, want := range map[string]string{vm5: e.priv3 + ".5/24", vm6: e.priv3 + ".6/24"} {
			if out := e.sh("ip", "-n", host, "-4", "-br", "addr", "show", "eth0"); !strings.Contains(out, want) {
				t.Fatalf("%s: want %s by DHCP, have %s", host, want, out)
			}
			if out := e.sh("ip", "-n", host, "route"); !strings.Contains(out, "default via "+e.priv3+".1") {
				t.Fatalf("%s: no default route via the gateway: %s", host, out)
			}
			// The VXLAN segment's MTU (underlay 1500 - 50) comes with the lease.
			if out := e.sh("ip", "-n", host, "link", "show", "eth0"); !strings.Contains(out, "mtu 1450") {
				t.Errorf("%s: segment MTU not handed out by DHCP: %s", host, out)
			}
		}
	})

	t.Run("ping", func(t *testing.T) {
		for _, c := range [][2]string{{vm5, e.priv3 + ".6"}, {vm6, e.priv3 + ".5"}, {vm5, e.priv3 + ".1"}, {vm6, e.priv3 + ".1"}, {vm6, e.net3 + ".50"}} {
			if sent, recv := e.ping(c[0], c[1], 3, "0.1"); recv != sent {
				t.Errorf("ping %s from %s: %d/%d", c[1], c[0], recv, sent)
			}
		}
	})

	t.Run("snat", func(t *testing.T) {
		peers := e.listen(inet, e.net3+".50:8080")
		if err := dialFrom(vm6, e.net3+".50:8080", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := <-peers; got != e.net3+".10" {
			t.Errorf("VM without NAT left as %s, want the router address %s.10", got, e.net3)
		}
		if err := dialFrom(vm5, e.net3+".50:8080", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := <-peers; got != e.net3+".20" {
			t.Errorf("VM with 1:1 NAT left as %s, want %s.20", got, e.net3)
		}
		// The block rule (outbound tcp/25) holds.
		e.listen(inet, e.net3+".50:25")
		if err := dialFrom(vm6, e.net3+".50:25", 500*time.Millisecond); err == nil {
			t.Error("outbound tcp/25 passed a block rule")
		}
		// The block rule logs: its packets are in the policy log.
		eventually(t, "policy log entry of the block rule", 15*time.Second, func() bool {
			for _, l := range e.b.PolicyLog(spec.ID) {
				if l.Seq > 0 && l.Direction == "out" && l.Order == 1 && l.Action == "block" && l.Protocol == "tcp" &&
					l.Source.String() == e.priv3+".6" && l.DestinationPort == 25 {
					return true
				}
			}
			return false
		})
	})

	t.Run("inbound allow rule", func(t *testing.T) {
		peers := e.listen(vm5, "0.0.0.0:2222")
		target := e.net3 + ".20:2222"
		if err := dialFrom(inet, target, 500*time.Millisecond); err == nil {
			t.Fatal("inbound TCP reached the VM without an allow rule")
		}
		allow := api.FirewallRuleSpec{Order: 5, Allow: true, Protocol: "tcp", Source: "*", Destination: e.priv3 + ".5", Port: "2222", Log: true}
		spec.FirewallRules = append(spec.FirewallRules, allow)
		e.ensure(e.b, spec)
		if err := dialFrom(inet, target, 10*time.Second); err != nil {
			t.Fatalf("inbound TCP with an allow rule: %v", err)
		}
		if got := <-peers; got != e.net3+".50" {
			t.Errorf("inbound connection came from %s, want the public host", got)
		}
		eventually(t, "policy log entry of the allow rule", 15*time.Second, func() bool {
			for _, l := range e.b.PolicyLog(spec.ID) {
				if l.Direction == "in" && l.Order == 5 && l.Action == "allow" && l.Destination.String() == e.priv3+".5" &&
					l.DestinationPort == 2222 && l.Source.String() == e.net3+".50" {
					return true
				}
			}
			return false
		})
		spec.FirewallRules = spec.FirewallRules[:1]
		e.ensure(e.b, spec)
		if err := dialFrom(inet, target, 500*time.Millisecond); err == nil {
			t.Fatal("inbound TCP reached the VM after the allow rule was removed")
		}
	})

	t.Run("firewall update under 20 pps ping loses nothing", func(t *testing.T) {
		cmd := exec.Command("ip", "netns", "exec", vm5, "ping", "-n", "-q", "-c", "80", "-i", "0.05", "-W", "1", e.net3+".50")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		updates := 0
		var worst time.Duration
		for i := 0; i < 12; i++ {
			time.Sleep(250 * time.Millisecond)
			s := *spec
			s.FirewallRules = slices.Clone(spec.FirewallRules)
			if i%2 == 0 {
				s.FirewallRules = append(s.FirewallRules, api.FirewallRuleSpec{Order: 9, Allow: true, Protocol: "icmp", Source: "*", Destination: e.priv3 + ".0/24"})
			}
			r := e.ensure(e.b, &s)
			if len(r.Changes) == 0 {
				t.Fatal("a firewall change made no change")
			}
			worst = max(worst, r.Duration)
			updates++
		}
		_ = cmd.Wait()
		m := pingStats.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("ping: %s", out.String())
		}
		t.Logf("20 pps ping during %d firewall updates (slowest %v): %s transmitted, %s received", updates, worst, m[1], m[2])
		if m[1] != m[2] {
			t.Errorf("lost %s-%s packets during firewall updates", m[1], m[2])
		}
	})

	t.Run("metadata", func(t *testing.T) {
		code, body, err := httpGetFrom(vm5, "http://169.254.169.254/v1/metadata")
		if err != nil || code != 200 {
			t.Fatalf("metadata from VM: %d %v %s", code, err, body)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["instance-id"] != spec.Metadata[0].InstanceID {
			t.Fatalf("metadata document: %s", body)
		}
		if code, body, _ := httpGetFrom(vm5, "http://169.254.169.254/v1/userdata"); code != 200 || body != "#cloud-config\n" {
			t.Fatalf("userdata: %d %q", code, body)
		}
		if code, _, _ := httpGetFrom(vm6, "http://169.254.169.254/v1/metadata"); code != 404 {
			t.Fatalf("VM without metadata got %d", code)
		}
	})

	t.Run("ensure twice changes nothing", func(t *testing.T) {
		e.ensure(e.b, spec)
		before := e.snapshot(spec)
		rules := e.nftRuleCount(spec)
		if r := e.ensure(e.b, spec); len(r.Changes) != 0 {
			t.Fatalf("second Ensure changed: %q", r.Changes)
		}
		if after := e.snapshot(spec); after != before {
			t.Fatalf("host changed by a no-op Ensure:\n%s\n---\n%s", before, after)
		}
		if got := e.nftRuleCount(spec); got != rules {
			t.Fatalf("rules %d → %d", rules, got)
		}
	})

	t.Run("dhcp hosts reload and dnsmasq restart", func(t *testing.T) {
		conf := filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)
		spec.Subnets[0].DHCP = append(spec.Subnets[0].DHCP, api.DHCPHostSpec{MAC: "02:00:00:aa:00:07", IP: e.priv3 + ".7"})
		r := e.ensure(e.b, spec)
		if !slices.Contains(r.Changes, "dhcp hosts reloaded") || slices.Contains(r.Changes, "dhcp started") {
			t.Fatalf("a new binding should be a SIGHUP, not a restart: %q", r.Changes)
		}
		rs, _ := e.b.state(spec.ID)
		if f := e.b.Failing(); len(f) != 0 {
			t.Fatalf("failing before any exit: %q", f)
		}
		restarts := e.b.Restarts()
		// A crash loop: restarted each time, it shows in Failing (the
		// agent's health) and the restart count (its metric).
		for i := range failingExits {
			pid := rs.dhcp.pid()
			_ = syscall.Kill(pid, syscall.SIGKILL)
			eventually(t, "dnsmasq restarted", 30*time.Second, func() bool { p := rs.dhcp.pid(); return p != 0 && p != pid })
			if f := e.b.Failing(); i < failingExits-1 && len(f) != 0 {
				t.Fatalf("failing after %d exit(s): %q", i+1, f)
			}
		}
		if n := dnsmasqCount(conf); n != 1 {
			t.Fatalf("%d dnsmasq processes", n)
		}
		want := fmt.Sprintf("router %d: dnsmasq (DHCP) exited %d times in the last 1m0s, the last: signal: killed", spec.ID, failingExits)
		if f := e.b.Failing(); !slices.Equal(f, []string{want}) {
			t.Errorf("Failing = %q, want %q", f, want)
		}
		if n := e.b.Restarts() - restarts; n != failingExits {
			t.Errorf("%d restarts counted, want %d", n, failingExits)
		}
	})

	t.Run("quiesce and restart", func(t *testing.T) {
		e.listen(inet, e.net3+".50:8081")
		if err := e.b.Quiesce(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if err := dialFrom(vm6, e.net3+".50:8081", 500*time.Millisecond); err == nil {
			t.Fatal("a quiesced router forwards")
		}
		if n := dnsmasqCount(filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)); n != 0 {
			t.Fatalf("%d dnsmasq processes in a quiesced router", n)
		}
		r := e.ensure(e.b, spec)
		t.Logf("restart: %v: %q", r.Duration, r.Changes)
		if err := dialFrom(vm6, e.net3+".50:8081", 10*time.Second); err != nil {
			t.Fatalf("restarted router does not forward: %v", err)
		}
	})

	t.Run("list and scrub", func(t *testing.T) {
		rs, err := e.b.List(ctx)
		if err != nil || len(rs) != 1 || rs[0].ID != spec.ID || rs[0].Namespace != ns {
			t.Fatalf("List: %+v %v", rs, err)
		}
		conf := filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)
		// A port that is not the router's keeps the segment bridge.
		if err := e.b.Scrub(ctx, spec.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := netlink.LinkByName(e.b.names.vxlanBridge(spec.Subnets[0].VNI)); err != nil {
			t.Fatalf("segment bridge with VM ports removed: %v", err)
		}
		// Without the VMs, a second scrub (repeatable) removes it too.
		e.sh("ip", "link", "del", e.prefix+"h2")
		e.sh("ip", "link", "del", e.prefix+"h3")
		if err := e.b.Scrub(ctx, spec.ID); err != nil {
			t.Fatal(err)
		}
		e.assertScrubbed(spec, conf)
	})
}

func (e *sysenv) assertScrubbed(spec *api.RouterSpec, conf string) {
	t := e.t
	t.Helper()
	ns := e.b.names.namespace(spec.ProjectID)
	if _, err := os.Stat(nsPath(ns)); !os.IsNotExist(err) {
		t.Errorf("namespace %s left behind", ns)
	}
	links, _ := dumpRetry(netlink.LinkList)
	for _, l := range links {
		name := l.Attrs().Name
		// What remains of ours may only be the public bridge and the test's own host veths.
		if strings.HasPrefix(name, e.prefix) && name != e.cfg.PublicBridge && !strings.HasPrefix(name, e.prefix+"h") {
			t.Errorf("link %s (%s, alias %q) left behind", name, l.Type(), l.Attrs().Alias)
		}
		if strings.HasPrefix(l.Attrs().Alias, "regent:"+e.prefix+":router:") {
			t.Errorf("tagged link %s left behind", name)
		}
	}
	if n := dnsmasqCount(conf); n != 0 {
		t.Errorf("%d dnsmasq processes left behind", n)
	}
	if _, err := os.Stat(e.b.routerDir(spec.ID)); !os.IsNotExist(err) {
		t.Errorf("state dir left behind")
	}
	if rs, _ := e.b.List(context.Background()); len(rs) != 0 {
		t.Errorf("List after scrub: %+v", rs)
	}
}

// TestRouterUpdateIsADiff changes VTEPs, NAT, subnets and checks that the
// FDB and addresses follow, stale links go, and the namespace's public
// veth is never recreated.
func TestRouterUpdateIsADiff(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	e.ensure(e.b, spec)
	ns := e.b.names.namespace(spec.ProjectID)
	idx0 := e.sh("ip", "-n", ns, "-o", "link", "show", nsPublicIf)

	// Stale state a crashed or older build could leave: an extra tagged
	// veth of this router, an extra FDB entry and an extra address.
	e.sh("ip", "link", "add", e.prefix+"s999", "type", "veth", "peer", "name", e.prefix+"s999p")
	e.sh("ip", "link", "set", e.prefix+"s999", "alias", e.b.names.routerTag(spec.ID, spec.ProjectID))
	e.sh("ip", "-n", ns, "addr", "add", e.net3+".99/24", "dev", nsPublicIf)

	spec.Subnets[0].VTEPs = []string{e.net3 + ".78", e.net3 + ".79"}
	spec.NAT = append(spec.NAT, api.NATSpec{Private: e.priv3 + ".6", Public: e.net3 + ".21"})
	spec.Subnets = append(spec.Subnets, api.RouterSubnetSpec{ID: spec.ProjectID + 3, AddressRange: "10.255.1.1/24", VNI: e.vni + 1})
	r := e.ensure(e.b, spec)
	t.Logf("update: %v: %q", r.Duration, r.Changes)

	vx := e.b.names.vxlanDev(e.vni)
	fdb := e.sh("bridge", "fdb", "show", "dev", vx)
	if strings.Contains(fdb, e.net3+".77") || !strings.Contains(fdb, e.net3+".78") || !strings.Contains(fdb, e.net3+".79") {
		t.Errorf("fdb not reconciled:\n%s", fdb)
	}
	addrs := e.sh("ip", "-n", ns, "-4", "-o", "addr", "show", nsPublicIf)
	if strings.Contains(addrs, ".99/") || !strings.Contains(addrs, e.net3+".21/24") || !strings.Contains(addrs, e.net3+".10/24") {
		t.Errorf("public addresses not reconciled:\n%s", addrs)
	}
	if _, err := netlink.LinkByName(e.prefix + "s999"); err == nil {
		t.Error("stale tagged link survived")
	}
	if idx := e.sh("ip", "-n", ns, "-o", "link", "show", nsPublicIf); strings.Fields(idx)[0] != strings.Fields(idx0)[0] {
		t.Errorf("public veth was recreated by an update: %s → %s", idx0, idx)
	}
	// Removing the second subnet removes its veth and its (now unused) segment bridge.
	spec.Subnets = spec.Subnets[:1]
	e.ensure(e.b, spec)
	if _, err := netlink.LinkByName(e.b.names.vxlanBridge(e.vni + 1)); err == nil {
		t.Error("unused segment bridge survived")
	}
	if r := e.ensure(e.b, spec); len(r.Changes) != 0 {
		t.Errorf("no-op Ensure after update changed: %q", r.Changes)
	}

	// The namespace deleted behind the builder's back: Ensure rebuilds it
	// and moves DHCP and metadata into the new one.
	e.sh("ip", "netns", "del", ns)
	r = e.ensure(e.b, spec)
	if !slices.Contains(r.Changes, "namespace "+ns) || !slices.Contains(r.Changes, "metadata server started") {
		t.Fatalf("namespace not rebuilt: %q", r.Changes)
	}
	if code, _, err := httpGetFrom(ns, "http://169.254.169.254/v1/metadata"); err != nil || code != 404 {
		t.Errorf("metadata service not answering in the new namespace: %d %v", code, err)
	}
	if n := dnsmasqStarted(filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)); n != 1 {
		t.Errorf("%d dnsmasq processes after the rebuild", n)
	}
	if r := e.ensure(e.b, spec); len(r.Changes) != 0 {
		t.Errorf("no-op Ensure after the rebuild changed: %q", r.Changes)
	}
}

// TestRouterVXLANRemoteHost puts a VM on another "host" (a namespace with
// its own VTEP on the underlay): it reaches the router over VXLAN, gets its
// address by DHCP and pings the gateway and a VM on the router's host.
func TestRouterVXLANRemoteHost(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	remote := e.net3 + ".60"
	spec.Subnets[0].VTEPs = []string{remote}
	e.ensure(e.b, spec)

	hostB, vmB, vmA := e.prefix+"hostb", e.prefix+"vmb", e.prefix+"vma"
	e.addHost(hostB, e.cfg.PublicBridge, "", remote+"/24")
	e.addHost(vmA, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:05", "")
	vni := strconv.FormatUint(uint64(e.vni), 10)
	e.sh("ip", "-n", hostB, "link", "add", "vx0", "type", "vxlan", "id", vni, "local", remote, "dev", "eth0", "dstport", "4789", "nolearning")
	e.sh("ip", "-n", hostB, "link", "add", "br0", "type", "bridge")
	e.sh("ip", "-n", hostB, "link", "set", "vx0", "master", "br0", "up")
	e.sh("ip", "-n", hostB, "link", "set", "br0", "up")
	e.sh("ip", "netns", "exec", hostB, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", e.cfg.VTEPAddr)
	e.hosts = append(e.hosts, vmB)
	e.sh("ip", "netns", "add", vmB)
	e.sh("ip", "-n", hostB, "link", "add", "vm0", "type", "veth", "peer", "name", "eth0", "netns", vmB)
	e.sh("ip", "-n", hostB, "link", "set", "vm0", "master", "br0", "up")
	e.sh("ip", "-n", vmB, "link", "set", "eth0", "address", "02:00:00:aa:00:06")
	e.sh("ip", "-n", vmB, "link", "set", "eth0", "up")
	e.sh("ip", "-n", vmB, "link", "set", "lo", "up")

	e.dhcp(vmB)
	e.dhcp(vmA)
	if out := e.sh("ip", "-n", vmB, "-4", "-br", "addr", "show", "eth0"); !strings.Contains(out, e.priv3+".6/24") {
		t.Fatalf("remote VM has no DHCP address: %s", out)
	}
	for _, dst := range []string{e.priv3 + ".1", e.priv3 + ".5"} {
		if sent, recv := e.ping(vmB, dst, 3, "0.1"); recv != sent {
			t.Errorf("remote VM → %s over VXLAN: %d/%d", dst, recv, sent)
		}
	}
}

// TestRouterKillMidBuild runs Ensure in a child process and SIGKILLs it at
// each build step, then Ensure in this process must converge to exactly
// the router a clean build gives: no duplicate links or rules, one dnsmasq.
func TestRouterKillMidBuild(t *testing.T) {
	e := newSysenv(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, stop := range []string{"namespace", "public-veth", "segments", "nftables", "metadata"} {
		t.Run(stop, func(t *testing.T) {
			spec := e.spec(e.projectID())
			ready := filepath.Join(e.cfg.StateDir, "ready-"+stop)
			cfg := e.cfg
			cfg.Logger = nil
			arg, err := json.Marshal(helperArgs{Config: cfg, Spec: spec, Stop: stop, Ready: ready})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "REGENT_NETROUTER_HELPER="+string(arg))
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			eventually(t, "helper to reach "+stop, 60*time.Second, func() bool {
				select {
				case <-exited:
					t.Fatalf("helper exited early:\n%s", out.String())
				default:
				}
				_, err := os.Stat(ready)
				return err == nil
			})
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited

			r := e.ensure(e.b, spec)
			t.Logf("converged after a kill at %q with %d changes in %v", stop, len(r.Changes), r.Duration)
			if r := e.ensure(e.b, spec); len(r.Changes) != 0 {
				t.Fatalf("not converged: %q", r.Changes)
			}
			ns := e.b.names.namespace(spec.ProjectID)
			nsLinks := strings.Fields(e.sh("ip", "-n", ns, "-o", "-br", "link"))
			var names []string
			for _, f := range nsLinks {
				if f == "lo" || f == nsPublicIf+"@if" || strings.HasPrefix(f, nsPublicIf+"@") || strings.HasPrefix(f, nsSubnetIf) {
					names = append(names, strings.SplitN(f, "@", 2)[0])
				}
			}
			slices.Sort(names)
			if want := []string{"lo", nsPublicIf, nsSubnetName(spec.Subnets[0].ID)}; !slices.Equal(names, want) {
				t.Errorf("namespace links %q, want %q", names, want)
			}
			tagged := 0
			links, _ := dumpRetry(netlink.LinkList)
			for _, l := range links {
				if l.Attrs().Alias == e.b.names.routerTag(spec.ID, spec.ProjectID) {
					tagged++
				}
			}
			if tagged != 2 {
				t.Errorf("%d tagged host links, want 2 (public and subnet veth)", tagged)
			}
			conf := filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)
			if n := dnsmasqStarted(conf); n != 1 {
				t.Errorf("%d dnsmasq processes, want 1", n)
			}
			d, _ := plan(spec, e.b.names, ModeVXLAN)
			if got, want := e.nftRuleCount(spec), expectedRules(d); got != want {
				t.Errorf("%d nft rules, want %d", got, want)
			}
			if code, _, err := httpGetFrom(ns, "http://169.254.169.254/v1/metadata"); err != nil || code != 404 {
				t.Errorf("metadata service not answering in the namespace: %d %v", code, err)
			}
			if err := e.b.Scrub(context.Background(), spec.ID); err != nil {
				t.Fatal(err)
			}
			e.assertScrubbed(spec, conf)
		})
	}
}

func expectedRules(d *desired) int {
	fake := newFakeNft()
	tx := fake.NewTransaction()
	renderRuleset(tx, d, rulesetOpts{nflogGroup: 100})
	_ = fake.Run(context.Background(), tx)
	rules, _ := fake.ListRules(context.Background(), "")
	return len(rules)
}

type helperArgs struct {
	Config Config
	Spec   *api.RouterSpec
	Stop   string
	Ready  string
}

// TestMain runs the child of TestRouterKillMidBuild when
// REGENT_NETROUTER_HELPER is set, and the tests otherwise.
func TestMain(m *testing.M) {
	if raw := os.Getenv("REGENT_NETROUTER_HELPER"); raw != "" {
		killMidBuildHelper(raw)
	}
	flag.Parse()
	if testing.Short() || os.Geteuid() != 0 {
		os.Exit(m.Run()) // the system tests skip, or fail under REGENT_SYSTEM_TESTS=1
	}
	// A run killed before its cleanups (a CI run cut off at the end of its
	// time) leaves its routers' namespaces, bridges, VXLAN devices and
	// public routes behind. With the package lock held no other run of this
	// package is live, so everything named after a test prefix is stale.
	release, err := systemtest.HoldPackage("agent-netrouter")
	if err != nil {
		fmt.Fprintln(os.Stderr, "netrouter:", err)
		os.Exit(1)
	}
	for _, name := range systemtest.SweepStale(staleName) {
		fmt.Fprintf(os.Stderr, "netrouter: removed %s left by an earlier run\n", name)
	}
	code := m.Run()
	release()
	os.Exit(code)
}

// staleName matches what this package's system tests name after their
// prefix: the public bridge (<prefix>pub), the host veths (<prefix>h<n>)
// and whatever a builder tags (alias regent:<prefix>:..., its router
// namespaces' loopbacks included).
var staleName = regexp.MustCompile(`^(y[0-9a-z]{2})(pub|h[0-9]+)$|^regent:(y[0-9a-z]{2}):`)

// killMidBuildHelper builds until the step named in its arguments,
// reports, and waits to be killed; it exits 1 on any other outcome.
func killMidBuildHelper(raw string) {
	var a helperArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	b, err := New(a.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	b.hook = func(step string) error {
		if step == a.Stop {
			_ = os.WriteFile(a.Ready, nil, 0o644)
			select {}
		}
		return nil
	}
	_, err = b.Ensure(context.Background(), a.Spec)
	fmt.Fprintln(os.Stderr, "helper reached the end of Ensure:", err)
	os.Exit(1)
}

// TestTwoRoutersConcurrently builds two routers at once on one public
// bridge; scrubbing one leaves the other working.
func TestTwoRoutersConcurrently(t *testing.T) {
	e := newSysenv(t)
	a, b := e.spec(e.projectID()), e.spec(e.projectID())
	b.PublicIP, b.NAT = e.net3+".11/24", []api.NATSpec{{Private: "10.254.7.5", Public: e.net3 + ".22"}}
	b.Subnets[0].AddressRange, b.Subnets[0].VNI = "10.254.7.1/24", e.vni+7
	b.Subnets[0].DHCP = []api.DHCPHostSpec{{MAC: "02:00:00:bb:00:05", IP: "10.254.7.5"}}
	b.FirewallRules, b.Metadata = nil, nil
	errs := make(chan error, 2)
	for _, s := range []*api.RouterSpec{a, b} {
		go func() { _, err := e.b.Ensure(context.Background(), s); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*api.RouterSpec{a, b} {
		if r := e.ensure(e.b, s); len(r.Changes) != 0 {
			t.Fatalf("router %d not converged: %q", s.ID, r.Changes)
		}
	}
	if rs, _ := e.b.List(context.Background()); len(rs) != 2 {
		t.Fatalf("List: %+v", rs)
	}
	if err := e.b.Scrub(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	e.assertScrubbedRouterOnly(a)
	if r := e.ensure(e.b, b); len(r.Changes) != 0 {
		t.Fatalf("scrubbing router A changed router B: %q", r.Changes)
	}
	if sent, recv := e.ping(e.b.names.namespace(b.ProjectID), e.net3+".1", 3, "0.1"); recv != sent {
		t.Fatalf("router B lost its public side: %d/%d", recv, sent)
	}
}

// assertScrubbedRouterOnly checks that nothing of spec's router is left
// (other routers of the builder may remain).
func (e *sysenv) assertScrubbedRouterOnly(spec *api.RouterSpec) {
	t := e.t
	t.Helper()
	if _, err := os.Stat(nsPath(e.b.names.namespace(spec.ProjectID))); !os.IsNotExist(err) {
		t.Error("namespace left behind")
	}
	links, _ := dumpRetry(netlink.LinkList)
	for _, l := range links {
		if id, _, ok := e.b.names.parseRouterTag(l.Attrs().Alias); ok && id == spec.ID {
			t.Errorf("link %s left behind", l.Attrs().Name)
		}
		if l.Attrs().Name == e.b.names.vxlanBridge(spec.Subnets[0].VNI) {
			t.Errorf("segment bridge %s left behind", l.Attrs().Name)
		}
	}
}
