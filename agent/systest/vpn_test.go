package systest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

const e2ePSK = "E2eRegentVpnKey7f31c9"

// charons lists the charon processes whose configuration lies under dir.
func charons(dir string) []int {
	var out []int
	for _, pid := range processes("charon-systemd") {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if strings.Contains(string(env), "STRONGSWAN_CONF="+dir) {
			out = append(out, pid)
		}
	}
	return out
}

// ikeSAs is what charon itself (swanctl over the instance's socket) shows
// of its IKE SAs: each SA's header line (name, unique id, state, SPIs),
// which changes when the SA is re-established.
func ikeSAs(t *testing.T, vpnDir, ns string) string {
	out := sh(t, "swanctl", "--list-sas", "--uri", "unix://"+filepath.Join(vpnDir, ns, "charon.vici"))
	var sas []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, ns+"-") && strings.Contains(l, ": #") {
			sas = append(sas, strings.TrimSpace(l))
		}
	}
	return strings.Join(sas, "\n")
}

// saUniqueID is the unique id of an IKE SA header line of swanctl
// --list-sas ("<conn>: #<id>, ESTABLISHED, …"), "" if there is none.
func saUniqueID(line string) string {
	_, rest, ok := strings.Cut(line, ": #")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ",")
	return id
}

// saSPIs is the IKE SPI pair of an IKE SA header line ("…, IKEv2,
// <spi>_i[*] <spi>_r[*]") without the mark of the local side: the same
// on both peers for one SA.
func saSPIs(line string) string {
	i := strings.LastIndex(line, ", ")
	return strings.ReplaceAll(line[i+2:], "*", "")
}

// TestAgentVPNs: two projects whose routers the agent builds get a VPN to
// each other through the API (the API's default algorithms); the agent
// runs a charon per router, GET /iaas/vpn_status/{id}/ shows ESTABLISHED
// for both, a "VM" of one project pings one of the other through the
// tunnel; the agent killed, the charons and the tunnel stay up and the
// restarted agent adopts them (same IKE SAs) and applies what changed
// meanwhile; the key reaches no log, and deleting a VPN stops its charon.
func TestAgentVPNs(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/charon-systemd"); err != nil {
		systemtest.Skip(t, "needs charon-systemd (scripts/setup-deps.sh)")
	}
	// charon outlives the agent: the charons of this test are killed after
	// the agent stopped (registered before newEnv's cleanup, so it runs
	// after it), or the agent would restart them.
	var vpnDir string
	t.Cleanup(func() {
		if vpnDir == "" {
			return
		}
		for _, pid := range charons(vpnDir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	e := newEnv(t)
	vpnDir = filepath.Join(e.dir, "agent", "vpn")
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(vpnDir, "*", "charon.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("==== %s (tail) ====\n%s", l, tail(string(b), 12<<10))
			}
		}
	})
	e.startController()
	e.catalogue()
	// No resync within the test: what heals a router must be the event
	// itself (a killed charon: the supervisor and its Restarted hook), not
	// a periodic re-apply of every router.
	e.resync = "5m"
	config := e.writeAgentConfig(`["network"]`, `vpn_mode = "libipsec"`+"\n")
	e.startAgent(config)

	type side struct {
		priv3            string
		project, vr, sub uint64
		ns, pub, bridge  string
		vpn              uint64
		host             string
	}
	var r3 uint32
	fmt.Sscanf(strings.Split(e.priv3, ".")[2], "%d", &r3)
	sides := []*side{{priv3: e.priv3}, {priv3: fmt.Sprintf("10.250.%d", r3)}}
	for i, s := range sides {
		cloud := e.api.must(e.root, "POST", "/iaas/cloud/", map[string]any{
			"project":        map[string]any{"name": fmt.Sprintf("v%d-%s", i, e.prefix), "region_id": e.region, "grace_period": 0},
			"subnets":        []any{map[string]any{"name": "a", "address_range": s.priv3 + ".1/24"}},
			"vms":            []any{},
			"firewall_rules": []any{},
		}, 201)
		s.project = num(cloud["project"].(map[string]any)["id"])
		s.vr = num(cloud["virtual_router"].(map[string]any)["id"])
		s.sub = num(cloud["subnets"].([]any)[0].(map[string]any)["id"])
		s.ns = e.prefix + "P" + strconv.FormatUint(s.project, 10)
	}
	for _, s := range sides {
		e.converged(s.vr, 60*time.Second)
	}
	// The routers' public addresses and segments, from the work spec.
	c := e.api.must(e.robot, "GET", fmt.Sprintf("/v1/agent/work?router_id=%d", e.router), nil, 200)
	b, _ := json.Marshal(c)
	var w api.Work
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	for _, r := range w.Routers {
		for _, s := range sides {
			if r.ID == s.vr {
				s.pub = strings.Split(r.PublicIP, "/")[0]
				s.bridge = e.prefix + "b" + strconv.FormatUint(uint64(r.Subnets[0].VNI), 10)
			}
		}
	}
	for i, s := range sides {
		if s.pub == "" || len(s.bridge) > 15 {
			t.Fatalf("router %d: public %q, bridge %q", s.vr, s.pub, s.bridge)
		}
		s.host = fmt.Sprintf("%svh%d", e.prefix, i)
		e.addHost(s.host, s.bridge, "", s.priv3+".5/24")
		sh(t, "ip", "-n", s.host, "route", "add", "default", "via", s.priv3+".1")
	}

	start := time.Now()
	for i, s := range sides {
		peer := sides[1-i]
		s.vpn = e.api.create(e.root, "/iaas/vpn/", map[string]any{"virtual_router_id": s.vr,
			"ike_gateway_value": peer.pub, "ike_pre_shared_key": e2ePSK,
			"routes": []any{map[string]any{"local_subnet_id": s.sub, "remote_subnet": peer.priv3 + ".0/24"}}})
	}
	for _, s := range sides {
		e.converged(s.vr, 60*time.Second)
	}
	status := func(s *side) map[string]any {
		return e.api.must(e.root, "GET", fmt.Sprintf("/iaas/vpn_status/%d/", s.vpn), nil, 200)
	}
	took := eventually(t, "both VPNs ESTABLISHED in /iaas/vpn_status/", 90*time.Second, func() bool {
		for _, s := range sides {
			st := status(s)
			ch, _ := st["children"].([]any)
			if st["ike_state"] != "ESTABLISHED" || len(ch) != 1 || ch[0].(map[string]any)["state"] != "INSTALLED" {
				return false
			}
		}
		return true
	})
	t.Logf("VPNs created → ESTABLISHED in vpn_status (agent apply, IKE, next heartbeat): %v (since the first create %v)",
		took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if n := len(charons(vpnDir)); n != 2 {
		t.Errorf("%d charon processes, want 2 (one per router)", n)
	}
	t.Logf("vpn_status: %v", status(sides[0]))

	t.Run("ping through the tunnel", func(t *testing.T) {
		if s, r := ping(t, sides[0].host, sides[1].priv3+".5", 5); r != s {
			t.Fatalf("ping %s → %s: %d/%d", sides[0].host, sides[1].priv3+".5", r, s)
		}
		peers := listen(t, sides[1].host, sides[1].priv3+".5:7000")
		if err := dialFrom(sides[0].host, sides[1].priv3+".5:7000", 3*time.Second); err != nil {
			t.Fatal(err)
		}
		if p := <-peers; p != sides[0].priv3+".5" {
			t.Fatalf("B saw %s, want A's private address (no SNAT into the VPN)", p)
		}
	})

	t.Run("agent killed: charon and the tunnel stay, the new agent adopts them", func(t *testing.T) {
		// A second VPN on router 0 (on-traffic: it never comes up), to be
		// deleted while no agent runs.
		extra := e.api.create(e.root, "/iaas/vpn/", map[string]any{"virtual_router_id": sides[0].vr,
			"ike_gateway_value": "192.0.2.77", "ike_pre_shared_key": e2ePSK, "traffic_selector": true,
			"ipsec_establish_time": "on-traffic",
			"routes":               []any{map[string]any{"local_subnet_id": sides[0].sub, "remote_subnet": "198.18.7.0/24"}}})
		e.converged(sides[0].vr, 60*time.Second)
		extraConn := fmt.Sprintf("%s-%d", sides[0].ns, extra)
		if out := sh(t, "swanctl", "--list-conns", "--uri", "unix://"+filepath.Join(vpnDir, sides[0].ns, "charon.vici")); !strings.Contains(out, extraConn+":") {
			t.Fatalf("%s not loaded:\n%s", extraConn, out)
		}
		// Both sides initiated at once, so each pair of routers may hold two
		// IKE SAs (one per initiator). charon often drops one by itself
		// (unique=replace), but not always, and a side that drops its copy on
		// the peer's INITIAL_CONTACT tells the peer nothing: the peer keeps a
		// stale SA until DPD gives up, minutes later. The test settles on one
		// SA known to both sides, so that "the same IKE SA" below is well
		// defined: an SA whose SPIs the peer does not hold is stale and goes
		// at once (--force: no DELETE exchange to wait for); of several SAs
		// both sides hold, the newer ones are closed on one side (the DELETE
		// takes the peer's copy).
		eventually(t, "one IKE SA per router, the same on both", 60*time.Second, func() bool {
			lines := map[string][]string{}
			held := map[string]map[string]bool{}
			for _, s := range sides {
				held[s.ns] = map[string]bool{}
				if sa := ikeSAs(t, vpnDir, s.ns); sa != "" {
					lines[s.ns] = strings.Split(sa, "\n")
				}
				for _, l := range lines[s.ns] {
					held[s.ns][saSPIs(l)] = true
				}
			}
			a, b := sides[0].ns, sides[1].ns
			if len(lines[a]) == 1 && len(lines[b]) == 1 && saSPIs(lines[a][0]) == saSPIs(lines[b][0]) {
				return true
			}
			terminate := func(ns, line string) {
				if id := saUniqueID(line); id != "" {
					_, _ = try("swanctl", "--terminate", "--ike-id", id, "--force", "--timeout", "5",
						"--uri", "unix://"+filepath.Join(vpnDir, ns, "charon.vici"))
				}
			}
			stale := false
			for _, s := range sides {
				peer := b
				if s.ns == b {
					peer = a
				}
				for _, l := range lines[s.ns] {
					if !held[peer][saSPIs(l)] {
						terminate(s.ns, l)
						stale = true
					}
				}
			}
			if !stale && len(lines[a]) > 1 {
				for _, l := range lines[a][1:] {
					terminate(a, l)
				}
			}
			return false
		})
		single := time.Now().Truncate(time.Second).Add(time.Second)
		eventually(t, "a status report with one IKE SA", 30*time.Second, func() bool {
			for _, s := range sides {
				at, _ := time.Parse(time.RFC3339, fmt.Sprint(status(s)["time"]))
				if at.Before(single) {
					return false
				}
			}
			return true
		})
		old := charons(vpnDir)
		sas := map[string]string{}
		est := map[uint64]int64{} // when each IKE SA was established (unix seconds), as vpn_status says
		for _, s := range sides {
			sas[s.ns] = ikeSAs(t, vpnDir, s.ns)
			st := status(s)
			at, _ := time.Parse(time.RFC3339, fmt.Sprint(st["time"]))
			est[s.vpn] = at.Unix() - int64(num(st["established_seconds"]))
			if sas[s.ns] == "" || st["ike_state"] != "ESTABLISHED" {
				t.Fatalf("%s: IKE SAs %q, status %v", s.ns, sas[s.ns], st)
			}
		}
		e.agent.signal(syscall.SIGKILL, 10*time.Second)
		down := time.Now()
		time.Sleep(2 * time.Second)
		if now := charons(vpnDir); fmt.Sprint(now) != fmt.Sprint(old) {
			t.Fatalf("charons %v after the agent's death, before %v", now, old)
		}
		if s, r := ping(t, sides[0].host, sides[1].priv3+".5", 5); r != s {
			t.Fatalf("ping through the tunnel with the agent down: %d/%d", r, s)
		}
		// A change while no agent runs: the extra VPN is deleted.
		e.api.must(e.root, "DELETE", fmt.Sprintf("/iaas/vpn/%d/", extra), nil, 204)

		// Reports carry whole seconds: only one read after the restart counts.
		restarted := time.Now().Truncate(time.Second).Add(time.Second)
		e.startAgent(config)
		for _, s := range sides {
			e.converged(s.vr, 60*time.Second)
		}
		took := eventually(t, "both VPNs reported ESTABLISHED by the new agent", 60*time.Second, func() bool {
			for _, s := range sides {
				st := status(s)
				at, _ := time.Parse(time.RFC3339, fmt.Sprint(st["time"]))
				if st["ike_state"] != "ESTABLISHED" || at.Before(restarted) {
					return false
				}
			}
			return true
		})
		t.Logf("agent restart → VPNs reported ESTABLISHED again: %v (agent down %v)", took.Round(time.Millisecond),
			restarted.Sub(down).Round(time.Second))
		for _, s := range sides {
			st := status(s)
			at, _ := time.Parse(time.RFC3339, fmt.Sprint(st["time"]))
			e2 := at.Unix() - int64(num(st["established_seconds"]))
			if d := e2 - est[s.vpn]; d < -2 || d > 2 {
				t.Errorf("%s: IKE SA established at %d before the restart, %d after", s.ns, est[s.vpn], e2)
			}
			if now := ikeSAs(t, vpnDir, s.ns); now != sas[s.ns] {
				t.Errorf("%s: IKE SAs before the restart:\n%s\nafter:\n%s", s.ns, sas[s.ns], now)
			} else {
				t.Logf("%s: same IKE SA (%s), established at %s", s.ns, now, time.Unix(e2, 0).UTC().Format(time.TimeOnly))
			}
		}
		if now := charons(vpnDir); fmt.Sprint(now) != fmt.Sprint(old) {
			t.Fatalf("charons %v after the restart, before %v (want the same, one per router)", now, old)
		}
		eventually(t, "the VPN deleted while the agent was down unloaded", 30*time.Second, func() bool {
			out := sh(t, "swanctl", "--list-conns", "--uri", "unix://"+filepath.Join(vpnDir, sides[0].ns, "charon.vici"))
			return !strings.Contains(out, extraConn+":") && strings.Contains(out, fmt.Sprintf("%s-%d:", sides[0].ns, sides[0].vpn))
		})
		if !strings.Contains(e.agent.log(), "charon adopted") {
			t.Error("no \"charon adopted\" in the agent's log")
		}
		if s, r := ping(t, sides[1].host, sides[0].priv3+".5", 3); r != s {
			t.Fatalf("ping B→A after the restart: %d/%d", r, s)
		}
	})

	t.Run("charon killed: its VPN routes come back without a resync", func(t *testing.T) {
		// In libipsec mode the routes into the remote subnet go into
		// charon's TUN device and die with it. The agent's resync is 5
		// minutes away: only the daemon's vpn.Config.Restarted hook
		// (Builder.RestoreVPNRoutes after the supervisor's restart) can put
		// them back within this test; without it B's traffic to A's subnet
		// would be dropped (the router's vpn_egress chain keeps it from
		// the default route) until then.
		b, a := sides[1], sides[0]
		routes := func() string {
			return strings.TrimSpace(sh(t, "ip", "-n", b.ns, "-4", "route", "show", "proto", "152"))
		}
		want := a.priv3 + ".0/24 dev ipsec0"
		if got := routes(); !strings.Contains(got, want) {
			t.Fatalf("B's VPN routes before the kill: %q", got)
		}
		old := charons(filepath.Join(vpnDir, b.ns, "strongswan.conf"))
		if len(old) != 1 {
			t.Fatalf("charon of %s: %v", b.ns, old)
		}
		applies := strings.Count(e.agent.log(), "vpns ensured")
		killed := time.Now()
		if err := syscall.Kill(old[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a new charon for "+b.ns, 30*time.Second, func() bool {
			now := charons(filepath.Join(vpnDir, b.ns, "strongswan.conf"))
			return len(now) == 1 && now[0] != old[0]
		})
		eventually(t, "B's VPN route into the new ipsec0", 30*time.Second, func() bool {
			return strings.Contains(routes(), want)
		})
		t.Logf("charon of %s killed → its VPN route back %v later", b.ns, time.Since(killed).Round(time.Millisecond))
		if !strings.Contains(e.agent.log(), "vpn routes restored after charon restart") {
			t.Error("no \"vpn routes restored after charon restart\" in the agent's log")
		}
		eventually(t, "ping B→A through the tunnel again", 60*time.Second, func() bool {
			s, r := ping(t, b.host, a.priv3+".5", 1)
			return s == r
		})
		if s, r := ping(t, b.host, a.priv3+".5", 3); r != s {
			t.Fatalf("ping B→A after the restart: %d/%d", r, s)
		}
		if n := strings.Count(e.agent.log(), "vpns ensured"); n != applies {
			t.Errorf("%d VPN applies ran meanwhile: the routes may have come back by an apply, not the hook", n-applies)
		}
	})

	t.Run("no key in any log", func(t *testing.T) {
		logs := e.agent.log() + e.ctl.log()
		_ = filepath.WalkDir(vpnDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				b, _ := os.ReadFile(p)
				logs += string(b)
			}
			return nil
		})
		if strings.Contains(logs, e2ePSK) {
			t.Fatal("the pre-shared key is in a log")
		}
	})

	t.Run("deleting a VPN stops its charon", func(t *testing.T) {
		e.api.must(e.root, "DELETE", fmt.Sprintf("/iaas/vpn/%d/", sides[0].vpn), nil, 204)
		e.converged(sides[0].vr, 60*time.Second)
		eventually(t, "one charon left", 30*time.Second, func() bool { return len(charons(vpnDir)) == 1 })
		if _, err := os.Stat(filepath.Join(vpnDir, sides[0].ns)); !os.IsNotExist(err) {
			t.Errorf("run dir of the router without VPNs left: %v", err)
		}
	})
}
