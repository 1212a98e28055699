package systest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// cpuTicks is the CPU time (user + system, clock ticks of 10 ms) process
// pid has used.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// metricValue is the value of an unlabelled series in the agent's /metrics.
func (e *env) metricValue(name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(e.metricsText())
	if m == nil {
		e.t.Fatalf("/metrics lacks %s", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestAgentControllerOutage: the controller dies (SIGKILL) right after a
// firewall change and stays away for 20 s. Meanwhile the agent keeps the
// router, backs off (its fetches and CPU are counted), and, once the
// controller is back at the same address, fetches again, converges to the
// change and reports RUNNING at its generation; the host then holds what
// the same spec gave before (no duplicate links, rules or dnsmasq).
func TestAgentControllerOutage(t *testing.T) {
	e := newEnv(t)
	e.startController()
	e.catalogue()
	config := e.writeAgentConfig(`["network"]`, "")
	e.startAgent(config)
	cloud := e.api.must(e.root, "POST", "/iaas/cloud/", e.cloudBody(), 201)
	project := num(cloud["project"].(map[string]any)["id"])
	vrID := num(cloud["virtual_router"].(map[string]any)["id"])
	e.converged(vrID, 60*time.Second)
	ns := e.prefix + "P" + strconv.FormatUint(project, 10)
	before := e.hostState(ns)
	goroutines := e.metricValue("go_goroutines")

	allow := []any{map[string]any{"allow": true, "source": "*", "destination": e.priv3 + ".0/24", "protocol": "tcp", "port": "2222"}}
	e.setFirewall(project, allow)
	if !e.ctl.signal(syscall.SIGKILL, 10*time.Second) {
		t.Fatal("controller survived SIGKILL")
	}
	killed := time.Now()
	errs0 := e.metricValue("regent_agent_work_fetch_errors_total")
	pid := e.agent.pid()
	ticks0 := cpuTicks(t, pid)
	const outage = 20 * time.Second
	time.Sleep(outage)
	ticks := cpuTicks(t, pid) - ticks0
	fetchErrs := e.metricValue("regent_agent_work_fetch_errors_total") - errs0
	health, _ := http.Get("http://" + e.metrics + "/healthz")
	var healthBody string
	if health != nil {
		var b bytes.Buffer
		b.ReadFrom(health.Body)
		health.Body.Close()
		healthBody = b.String()
	}
	t.Logf("controller down %v: the agent used %d ms of CPU (%.2f%%), %v failed work fetches; /healthz: %q",
		outage, ticks*10, float64(ticks*10)/float64(outage.Milliseconds())*100, fetchErrs, strings.TrimSpace(healthBody))
	// Backoff 1 s doubling to 30 s: at most 5 fetches in 20 s (each
	// tries both configured controllers).
	if fetchErrs > 6 {
		t.Errorf("%v failed work fetches in %v: no backoff", fetchErrs, outage)
	}
	if ticks*10 > int(outage.Milliseconds())/20 {
		t.Errorf("the agent used %d ms of CPU in %v with the controller down (more than 5%%)", ticks*10, outage)
	}
	if !strings.Contains(healthBody, "degraded") {
		t.Errorf("/healthz during the outage: %q, want degraded", healthBody)
	}

	e.ctl.start()
	eventually(t, "the controller serving again", 60*time.Second, func() bool {
		return e.api.do(e.root, "GET", "/membership/region/", nil).status == 200
	})
	back := time.Now()
	took := e.converged(vrID, 120*time.Second)
	t.Logf("controller back after %v; router RUNNING at the new generation %v later", back.Sub(killed).Round(time.Millisecond), took.Round(time.Millisecond))
	if !strings.Contains(sh(t, "ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "regent", "inbound"), "dport 2222 accept") {
		t.Error("the firewall change made before the outage is not in the router")
	}
	eventually(t, "the agent healthy again", 60*time.Second, func() bool {
		resp, err := http.Get("http://" + e.metrics + "/healthz")
		if err != nil {
			return false
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		return strings.TrimSpace(b.String()) == "ok"
	})
	e.setFirewall(project, []any{})
	e.converged(vrID, 60*time.Second)
	if after := e.hostState(ns); after != before {
		t.Errorf("host after the outage and the same spec differs:\n--- before\n%s--- after\n%s", before, after)
	}
	if g := e.metricValue("go_goroutines"); g > goroutines+5 {
		t.Errorf("goroutines %v before the outage, %v after", goroutines, g)
	} else {
		t.Logf("goroutines %v before the outage, %v after", goroutines, g)
	}
	if st := num(e.vr(vrID)["state"]); st != api.StateRunning {
		t.Errorf("router state %d", st)
	}
}

// metadataFrom fetches url from inside namespace host, as a VM does.
func metadataFrom(host, url string) (int, string, error) {
	return systemtest.GetVia(func(fn func() error) error { return inNetns(host, fn) }, url)
}

// TestAgentMetadataDuringControllerOutage: an agent restarted while the
// controller is down serves its routers' metadata from the copy of the
// last work it saved (data_dir/router-metadata.json, mode 0600), to a VM
// fetching it over HTTP from 169.254.169.254; it builds and removes
// nothing from that copy, says so in regent_agent_metadata_from_cache,
// and once the controller is back the fetched work replaces it. Before,
// the metadata servers died with the old agent process and the new one
// served nothing until its first work fetch: a VM booting during the
// outage failed its metadata fetch (connection refused).
func TestAgentMetadataDuringControllerOutage(t *testing.T) {
	e := newEnv(t)
	e.startController()
	e.catalogue()
	config := e.writeAgentConfig(`["network"]`, "")
	e.startAgent(config)
	e.api.create(e.root, "/iaas/server/", map[string]any{"region_id": e.region, "type_id": 2, "storage_type_id": e.st,
		"cores": 64, "ram": 256, "gb": 10000, "enabled": true})
	withUserdata := e.vmBody("vm-a", 10, 10, false)
	withUserdata["userdata"] = "#cloud-config\n"
	cloud := e.api.must(e.root, "POST", "/iaas/cloud/", e.cloudBody(withUserdata), 201)
	project := num(cloud["project"].(map[string]any)["id"])
	vrID := num(cloud["virtual_router"].(map[string]any)["id"])
	e.converged(vrID, 60*time.Second)
	spec := e.spec()
	if len(spec.Metadata) != 1 || len(spec.Subnets) != 1 || len(spec.Subnets[0].DHCP) != 1 {
		t.Fatalf("router spec: %+v", spec)
	}
	ns := e.prefix + "P" + strconv.FormatUint(project, 10)
	bridge := e.prefix + "b" + strconv.FormatUint(uint64(spec.Subnets[0].VNI), 10)
	vm, stranger := e.prefix+"vm0", e.prefix+"vm1"
	e.addHost(vm, bridge, spec.Subnets[0].DHCP[0].MAC, spec.Metadata[0].Address+"/24")
	e.addHost(stranger, bridge, "", e.priv3+".99/24")
	for _, h := range []string{vm, stranger} {
		sh(t, "ip", "-n", h, "route", "add", "default", "via", e.priv3+".1")
	}
	const url = "http://169.254.169.254/v1/metadata"
	wantDoc := func(what string) {
		t.Helper()
		code, body, err := metadataFrom(vm, url)
		var doc struct {
			InstanceID string   `json:"instance-id"`
			Keys       []string `json:"public-keys"`
		}
		if err != nil || code != 200 || json.Unmarshal([]byte(body), &doc) != nil ||
			doc.InstanceID != spec.Metadata[0].InstanceID || len(doc.Keys) != 1 || doc.Keys[0] != sshKey {
			t.Fatalf("%s: metadata: %d %v %s", what, code, err, body)
		}
		if code, body, err := metadataFrom(vm, "http://169.254.169.254/v1/userdata"); err != nil || code != 200 || body != "#cloud-config\n" {
			t.Fatalf("%s: userdata: %d %v %q", what, code, err, body)
		}
		// A VM the router has no metadata for: a clear 404.
		if code, _, err := metadataFrom(stranger, url); err != nil || code != 404 {
			t.Fatalf("%s: metadata for an unknown address: %d %v", what, code, err)
		}
	}
	wantDoc("controller up")

	saved := filepath.Join(e.dir, "agent", "router-metadata.json")
	eventually(t, "the saved metadata", 30*time.Second, func() bool {
		b, err := os.ReadFile(saved)
		return err == nil && strings.Contains(string(b), spec.Metadata[0].InstanceID)
	})
	if st, err := os.Stat(saved); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("saved metadata: %v %v, want mode 0600", st, err)
	}

	// The controller goes, then the agent is restarted.
	if !e.ctl.signal(syscall.SIGKILL, 10*time.Second) {
		t.Fatal("controller survived SIGKILL")
	}
	if !e.agent.signal(syscall.SIGTERM, 30*time.Second) {
		t.Fatal("agent did not stop on SIGTERM")
	}
	if _, _, err := metadataFrom(vm, url); err == nil {
		t.Fatal("metadata still served with the agent stopped")
	}
	before := e.hostState(ns)
	e.launchAgent(config, false)
	eventually(t, "metadata served by the restarted agent without a controller", 30*time.Second, func() bool {
		code, _, err := metadataFrom(vm, url)
		return err == nil && code == 200
	})
	wantDoc("controller down, agent restarted")
	if v := e.metricValue("regent_agent_metadata_from_cache"); v != 1 {
		t.Errorf("regent_agent_metadata_from_cache = %v during the outage, want 1", v)
	}
	if !strings.Contains(e.agent.log(), "serving the routers' metadata from the saved copy") {
		t.Error("the agent does not log that it serves the saved metadata")
	}
	// Nothing built or removed from the saved copy.
	if after := e.hostState(ns); after != before {
		t.Errorf("the agent changed the host from its saved copy:\n--- before\n%s--- after\n%s", before, after)
	}

	// The controller is back: the fetched work replaces the copy.
	e.ctl.start()
	eventually(t, "the agent's first work fetch", 120*time.Second, func() bool {
		return e.metricValue("regent_agent_metadata_from_cache") == 0
	})
	e.converged(vrID, 120*time.Second)
	wantDoc("controller back")
}

// TestAgentRobotTokenRotation: a robot token is rotated the way
// docs/operations.md says, with the agent running: a new token is
// created and written into token_file, then the old one is revoked. The
// agent's waiting work poll is answered 401 at the revocation; it reads
// token_file again and goes on with the new token at once, no restart:
// a firewall change made after the revocation reaches the router.
func TestAgentRobotTokenRotation(t *testing.T) {
	e := newEnv(t)
	e.tokenFile = filepath.Join(e.dir, "robot.token")
	e.startController()
	e.catalogue()
	e.startAgent(e.writeAgentConfig(`["network"]`, ""))
	cloud := e.api.must(e.root, "POST", "/iaas/cloud/", e.cloudBody(), 201)
	project := num(cloud["project"].(map[string]any)["id"])
	vrID := num(cloud["virtual_router"].(map[string]any)["id"])
	e.converged(vrID, 60*time.Second)

	next := e.api.must(e.root, "POST", "/membership/token/", map[string]any{"kind": "robot", "region_id": e.region, "name": "robot2-" + e.prefix}, 201)
	if err := os.WriteFile(e.tokenFile, []byte(next["token"].(string)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.api.must(e.root, "DELETE", fmt.Sprintf("/membership/token/%d/", e.robotID), nil, 204)
	revoked := time.Now()
	eventually(t, "the agent on the new token", 30*time.Second, func() bool {
		return strings.Contains(e.agent.log(), "token_file changed; using the new token")
	})
	t.Logf("the agent took the new token %v after the revocation", time.Since(revoked).Round(time.Millisecond))

	allow := []any{map[string]any{"allow": true, "source": "*", "destination": e.priv3 + ".0/24", "protocol": "tcp", "port": "2223"}}
	e.setFirewall(project, allow)
	e.converged(vrID, 60*time.Second)
	ns := e.prefix + "P" + strconv.FormatUint(project, 10)
	if !strings.Contains(sh(t, "ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "regent", "inbound"), "dport 2223 accept") {
		t.Error("the firewall change made after the rotation is not in the router")
	}
	if !e.agent.running() {
		t.Fatal("the agent stopped")
	}
}
