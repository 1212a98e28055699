package netrouter

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/vishvananda/netlink"
)

// upWatch records every moment the kernel reports link name up in the
// root namespace while it runs.
type upWatch struct {
	t      *testing.T
	name   string
	marker string // a root link of the test's own: stop's sync point
	mu     sync.Mutex
	ups    []string
	synced chan struct{} // closed when marker shows the alias set by stop
	done   chan struct{}
	wg     sync.WaitGroup
}

// watchUp watches name; marker is a root-namespace link only the test
// touches (stop sets its alias).
func watchUp(t *testing.T, name, marker string) *upWatch {
	t.Helper()
	w := &upWatch{t: t, name: name, marker: marker, synced: make(chan struct{}), done: make(chan struct{})}
	syncAlias := "regent-test-sync-" + name + "-"
	ch := make(chan netlink.LinkUpdate, 256)
	if err := netlink.LinkSubscribe(ch, w.done); err != nil {
		t.Fatal(err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for u := range ch {
			if u.Attrs().Name == marker && strings.HasPrefix(u.Attrs().Alias, syncAlias) {
				select {
				case <-w.synced:
				default:
					close(w.synced)
				}
			}
			if u.Attrs().Name == name && u.Attrs().Flags&net.FlagUp != 0 {
				w.mu.Lock()
				w.ups = append(w.ups, u.Attrs().OperState.String())
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// stop ends the watch and returns the up events it saw. The kernel sends
// link notifications in order: once the marker's alias change arrives,
// every notification of what happened before stop has arrived too. (The
// alias is set again every second, in case a notification is dropped.)
func (w *upWatch) stop() []string {
	w.t.Helper()
	l, err := netlink.LinkByName(w.marker)
	if err != nil {
		w.t.Fatalf("sync the link watch: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		if err := netlink.LinkSetAlias(l, "regent-test-sync-"+w.name+"-"+strconv.Itoa(i)); err != nil {
			w.t.Fatalf("sync the link watch: %v", err)
		}
		select {
		case <-w.synced:
		case <-time.After(time.Second):
			if time.Now().After(deadline) {
				w.t.Fatal("the link watch did not see the marker's alias change in 30 s")
			}
			continue
		}
		break
	}
	_ = netlink.LinkSetAlias(l, "")
	close(w.done)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ups
}

// TestRouterQuiescedUpdate: EnsureQuiesced (the update of a QUIESCED
// router) applies the spec's changes with the router down all the way: the
// public veth never comes up (watched on netlink), no dnsmasq or metadata
// service runs, nothing is forwarded; a failing step leaves it so; a new
// router is built quiesced; a later Ensure (restart) brings it all up.
func TestRouterQuiescedUpdate(t *testing.T) {
	e := newSysenv(t)
	ctx := context.Background()
	spec := e.spec(e.projectID())
	ns := e.b.names.namespace(spec.ProjectID)
	conf := filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)
	pubVeth := e.b.names.publicVeth(spec.ProjectID)

	inet := e.prefix + "inet"
	e.addHost(inet, e.cfg.PublicBridge, "", e.net3+".50/24")
	e.listen(inet, e.net3+".50:8080")

	assertDown := func(t *testing.T, what string, w *upWatch) {
		t.Helper()
		if ups := w.stop(); len(ups) > 0 {
			t.Errorf("%s: the public veth came up (%q)", what, ups)
		}
		l, err := netlink.LinkByName(pubVeth)
		if err != nil {
			t.Fatalf("%s: public veth: %v", what, err)
		}
		if l.Attrs().Flags&net.FlagUp != 0 {
			t.Errorf("%s: the public veth is up", what)
		}
		if n := dnsmasqCount(conf); n != 0 {
			t.Errorf("%s: %d dnsmasq processes in a quiesced router", what, n)
		}
		if _, _, err := httpGetFrom(ns, "http://169.254.169.254/v1/metadata"); err == nil {
			t.Errorf("%s: the metadata service answers in a quiesced router", what)
		}
		if sent, recv := e.ping(inet, e.net3+".10", 2, "0.1"); recv != 0 {
			t.Errorf("%s: the quiesced router answers on its public address (%d/%d)", what, recv, sent)
		}
	}

	// A router that is not on the host (a restarted host) is built quiesced.
	w := watchUp(t, pubVeth, e.prefix+"h1") // inet's host-side veth
	res, err := e.b.EnsureQuiesced(ctx, spec)
	if err != nil {
		t.Fatalf("EnsureQuiesced of a new router: %v", err)
	}
	t.Logf("quiesced build: %v, %d changes", res.Duration, len(res.Changes))
	assertDown(t, "quiesced build", w)
	if got := e.sh("ip", "-n", ns, "-4", "-o", "addr", "show", nsPublicIf); !strings.Contains(got, e.net3+".20/24") {
		t.Errorf("quiesced build without the NAT address: %s", got)
	}

	// Running, then quiesced.
	vm5 := e.prefix + "vm5"
	e.addHost(vm5, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:05", e.priv3+".5/24")
	e.sh("ip", "-n", vm5, "route", "add", "default", "via", e.priv3+".1")
	e.ensure(e.b, spec)
	if err := dialFrom(vm5, e.net3+".50:8080", 10*time.Second); err != nil {
		t.Fatalf("running router does not forward: %v", err)
	}
	if err := e.b.Quiesce(ctx, spec); err != nil {
		t.Fatal(err)
	}

	// The update: a second NAT address and an inbound allow rule for it.
	spec.NAT = append(spec.NAT, api.NATSpec{Private: e.priv3 + ".5", Public: e.net3 + ".21"})
	spec.NAT = spec.NAT[1:]
	spec.FirewallRules = append(spec.FirewallRules, api.FirewallRuleSpec{Order: 5, Allow: true, Protocol: "tcp", Source: "*", Destination: e.priv3 + ".5", Port: "2222"})

	// A step failing half way (after the links) leaves it quiesced.
	seen := map[string]bool{}
	e.b.hook = func(step string) error {
		seen[step] = true
		if step == "vpn" {
			return errors.New("injected failure")
		}
		return nil
	}
	w = watchUp(t, pubVeth, e.prefix+"h1")
	if _, err := e.b.EnsureQuiesced(ctx, spec); err == nil {
		t.Fatal("the injected failure was not returned")
	}
	e.b.hook = nil
	if !seen["links"] || seen["dhcp"] {
		t.Errorf("steps run: %v", seen)
	}
	assertDown(t, "failed quiesced update", w)
	if err := dialFrom(vm5, e.net3+".50:8080", 500*time.Millisecond); err == nil {
		t.Error("a router whose quiesced update failed forwards")
	}

	// The update goes through, still quiesced.
	w = watchUp(t, pubVeth, e.prefix+"h1")
	res, err = e.b.EnsureQuiesced(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("quiesced update: %v: %q", res.Duration, res.Changes)
	assertDown(t, "quiesced update", w)
	addrs := e.sh("ip", "-n", ns, "-4", "-o", "addr", "show", nsPublicIf)
	if !strings.Contains(addrs, e.net3+".21/24") || strings.Contains(addrs, e.net3+".20/24") {
		t.Errorf("NAT addresses not updated while quiesced: %s", addrs)
	}
	if rules := e.sh("ip", "netns", "exec", ns, "nft", "list", "chain", "inet", tableName, chainInbound); !strings.Contains(rules, "tcp dport 2222 accept") {
		t.Errorf("firewall not updated while quiesced:\n%s", rules)
	}
	if err := dialFrom(vm5, e.net3+".50:8080", 500*time.Millisecond); err == nil {
		t.Error("a router updated quiesced forwards")
	}

	// Restart: up with the update in place, with nothing left to build
	// but the public side and the services.
	peers := e.listen(vm5, "0.0.0.0:2222")
	res = e.ensure(e.b, spec)
	t.Logf("restart: %v: %q", res.Duration, res.Changes)
	for _, ch := range res.Changes {
		if strings.HasPrefix(ch, "nftables") || strings.HasPrefix(ch, "address") {
			t.Errorf("restart after a quiesced update changed %q: the update was not complete", ch)
		}
	}
	if err := dialFrom(inet, e.net3+".21:2222", 10*time.Second); err != nil {
		t.Fatalf("the updated NAT does not work after the restart: %v", err)
	}
	<-peers
	if n := dnsmasqStarted(conf); n != 1 {
		t.Errorf("%d dnsmasq processes after the restart", n)
	}
}

// TestStrayDnsmasqReplaced: a dnsmasq of an earlier agent process that
// the pid file does not name (the agent was killed between starting it
// and dnsmasq writing the file) is found by its command line and replaced
// when the router starts its services; before, it kept the DHCP port and
// the router's own dnsmasq failed to start, restarted with backoff for
// ever beside it.
func TestStrayDnsmasqReplaced(t *testing.T) {
	e := newSysenv(t)
	ctx := context.Background()
	spec := e.spec(e.projectID())
	ns := e.b.names.namespace(spec.ProjectID)
	dir := e.b.routerDir(spec.ID)
	conf := filepath.Join(dir, dnsmasqConf)
	e.ensure(e.b, spec)
	if n := dnsmasqStarted(conf); n != 1 {
		t.Fatalf("%d dnsmasq processes after the build", n)
	}
	if err := e.b.Quiesce(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// The earlier agent's dnsmasq, as the builder starts it.
	stray := exec.Command("ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file="+conf)
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = stray.Wait(); close(exited) }()
	t.Cleanup(func() { _ = stray.Process.Kill(); <-exited })
	eventually(t, "the stray dnsmasq running", 30*time.Second, func() bool { return dnsmasqCount(conf) == 1 })
	eventually(t, "the stray's pid file", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, dnsmasqPid))
		return err == nil
	})
	if err := os.Remove(filepath.Join(dir, dnsmasqPid)); err != nil {
		t.Fatal(err)
	}

	r := e.ensure(e.b, spec)
	if !slices.Contains(r.Changes, "dhcp: replaced dnsmasq of an earlier agent") {
		t.Errorf("changes %q: the stray was not replaced", r.Changes)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the stray dnsmasq still runs 30 s after the router started its services")
	}
	rs, _ := e.b.state(spec.ID)
	eventually(t, "the router's own dnsmasq, alone", 30*time.Second, func() bool {
		pids := dnsmasqPids(conf)
		return len(pids) == 1 && rs.dhcp != nil && pids[0] == rs.dhcp.pid()
	})
}

// TestRouterQuiesceBadSpec: a built router whose spec became one Ensure
// refuses (it went UNRESOURCED) can still be quiesced, as SCRUB asks
// before the scrub: its public veth goes down and its services stop;
// then it is scrubbed. Quiesce used to plan the whole spec and fail.
func TestRouterQuiesceBadSpec(t *testing.T) {
	e := newSysenv(t)
	ctx := context.Background()
	spec := e.spec(e.projectID())
	ns := e.b.names.namespace(spec.ProjectID)
	conf := filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)
	e.ensure(e.b, spec)
	if n := dnsmasqStarted(conf); n != 1 {
		t.Fatalf("%d dnsmasq processes after the build", n)
	}

	bad := *spec
	bad.PublicIP = "not-an-address"
	bad.Subnets = slices.Clone(spec.Subnets)
	bad.Subnets[0].AddressRange = "10.0.0.1/33"
	var se *SpecError
	if _, err := e.b.Ensure(ctx, &bad); !errors.As(err, &se) {
		t.Fatalf("Ensure of the bad spec: %v, want a *SpecError", err)
	}
	if err := e.b.Quiesce(ctx, &bad); err != nil {
		t.Fatalf("Quiesce of a router with a bad spec: %v", err)
	}
	l, err := netlink.LinkByName(e.b.names.publicVeth(spec.ProjectID))
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		t.Error("the public veth is up after Quiesce")
	}
	eventually(t, "no dnsmasq", 10*time.Second, func() bool { return dnsmasqCount(conf) == 0 })
	if _, _, err := httpGetFrom(ns, "http://169.254.169.254/v1/metadata"); err == nil {
		t.Error("the metadata service answers after Quiesce")
	}
	if err := e.b.Scrub(ctx, bad.ID); err != nil {
		t.Fatal(err)
	}
	e.assertScrubbed(spec, conf)
}

// TestStrayDnsmasqStoppedWithoutSubnets: a dnsmasq of an earlier agent
// process is stopped when the router it served has no subnets left (it
// used to be replaced only when the router had subnets, and otherwise ran
// on with the old bindings).
func TestStrayDnsmasqStoppedWithoutSubnets(t *testing.T) {
	e := newSysenv(t)
	ctx := context.Background()
	spec := e.spec(e.projectID())
	ns := e.b.names.namespace(spec.ProjectID)
	conf := filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)
	e.ensure(e.b, spec)
	if n := dnsmasqStarted(conf); n != 1 {
		t.Fatalf("%d dnsmasq processes after the build", n)
	}
	// The agent stops (its dnsmasq with it); the earlier agent's dnsmasq
	// is one it left running.
	if err := e.b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agent's dnsmasq stopped", 10*time.Second, func() bool { return dnsmasqCount(conf) == 0 })
	stray := exec.Command("ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file="+conf)
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = stray.Wait(); close(exited) }()
	t.Cleanup(func() { _ = stray.Process.Kill(); <-exited })
	eventually(t, "the stray dnsmasq running", 30*time.Second, func() bool { return dnsmasqCount(conf) == 1 })

	// The next agent: the router's subnets are gone.
	e.b = e.newBuilder()
	spec.Subnets, spec.NAT, spec.Metadata, spec.FirewallRules = nil, nil, nil, nil
	r := e.ensure(e.b, spec)
	if !slices.Contains(r.Changes, "dhcp: stopped dnsmasq of an earlier agent") {
		t.Errorf("changes %q: the stray was not stopped", r.Changes)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the stray dnsmasq still runs 30 s after an Ensure of the router without subnets")
	}
}
