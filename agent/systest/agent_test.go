package systest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
	"github.com/vishvananda/netlink"
)

// digestRe finds the ruleset digest the builder keeps in chain regent_meta.
var digestRe = regexp.MustCompile(`digest:[0-9a-f]+`)

const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA test@regent"

// env is one controller, one agent and the test's host namespaces.
type env struct {
	t        *testing.T
	prefix   string // 4 characters: link prefix of the agent and the test
	net3     string // floating /24 "100.A.B"
	priv3    string // project subnet /24 "10.C.D"
	dir      string
	disks    string // the storage type's directory ("": <dir>/disks)
	hostname string
	api      *apiClient
	root     string
	robot    string
	robotID  uint64
	ctl      *proc
	agent    *proc
	metrics  string
	hosts    []string
	// httpHost is the controller's HTTP listen address (default
	// 127.0.0.1); others are further agents cleanup stops.
	httpHost string
	others   []*proc
	// resync is the agent's resync_interval ("": 2s).
	resync string
	// tokenFile, when set, is the agent's token_file (writeAgentConfig
	// writes the robot token there instead of into the config).
	tokenFile string

	region, st, img, router uint64
}

func newEnv(t *testing.T) *env {
	requireSystem(t)
	r := rand.Uint32()
	e := &env{t: t, prefix: randomPrefix(),
		// 100.96-127: agent/netrouter's tests (run at the same time) draw
		// theirs from 100.64-95, so the two never put one /24 on two bridges.
		net3:  fmt.Sprintf("100.%d.%d", 96+r%32, (r>>6)%256),
		priv3: fmt.Sprintf("10.%d.%d", 100+(r>>14)%100, (r>>22)%256),
		dir:   t.TempDir()}
	e.hostname = "agent-" + e.prefix
	t.Cleanup(e.cleanup)
	// The public bridge is the floating subnet's wire; its root-namespace
	// address (the agent puts it there) is the floating gateway and the VTEP.
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: e.prefix + "pub"}}); err != nil {
		t.Fatal(err)
	}
	sh(t, "ip", "link", "set", e.prefix+"pub", "up")
	return e
}

func (e *env) startController() {
	t := e.t
	data := filepath.Join(e.dir, "controller")
	httpAddr := freeAddr(t)
	if e.httpHost != "" {
		httpAddr = freeAddrOn(t, e.httpHost)
	}
	e.ctl = &proc{t: t, name: "controller", logPath: filepath.Join(e.dir, "controller.log"),
		args: []string{bins.controller, "server", "-bootstrap", "-node-id", "n1", "-data-dir", data,
			"-http-addr", httpAddr, "-raft-addr", freeAddr(t), "-dns-addr", "off"}}
	e.ctl.start()
	e.api = &apiClient{t: t, base: "http://" + httpAddr, hc: &http.Client{Timeout: 30 * time.Second}}
	eventually(t, "the controller's root token", 30*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(data, "root.token"))
		if err == nil && strings.HasSuffix(string(b), "\n") {
			e.root = strings.TrimSpace(string(b))
			return true
		}
		if !e.ctl.running() {
			t.Fatalf("controller exited:\n%s", e.ctl.log())
		}
		return false
	})
	eventually(t, "the controller serving", 30*time.Second, func() bool {
		return e.api.do(e.root, "GET", "/membership/region/", nil).status == 200
	})
}

// catalogue creates the region and everything a cloud needs, and the
// router record the agent's hostname matches.
func (e *env) catalogue() {
	a, root := e.api, e.root
	e.region = a.create(root, "/membership/region/", map[string]any{"name": "r-" + e.prefix, "customers": []uint64{}})
	tok := a.must(root, "POST", "/membership/token/", map[string]any{"kind": "robot", "region_id": e.region, "name": "robot-" + e.prefix}, 201)
	e.robot, e.robotID = tok["token"].(string), num(tok["id"])
	e.st = a.create(root, "/iaas/storage_type/", map[string]any{"name": "SSD" + e.prefix})
	e.img = a.create(root, "/iaas/image/", map[string]any{"display_name": "Ubuntu 24.04", "server_type_id": 2,
		"cloud_init": true, "multiple_ips": true, "filename": "noble.qcow2"})
	a.create(root, "/iaas/region_image/", map[string]any{"region_id": e.region, "image_id": e.img})
	asn := a.create(root, "/iaas/asn/", map[string]any{"member_id": 1, "number": 4_200_000_000 + rand.IntN(90_000_000)})
	alloc := a.create(root, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": e.net3 + ".0/24", "type": "public"})
	fs := a.create(root, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": e.net3 + ".1/24"})
	e.router = a.create(root, "/iaas/router/", map[string]any{"region_id": e.region, "capacity": 5, "enabled": true,
		"floating_subnet_ids": []uint64{fs}, "asset_tag": e.hostname})
}

// writeAgentConfig writes the agent's config with roles (an HCL list) and
// extra attributes.
func (e *env) writeAgentConfig(roles, extra string) string {
	disks := e.disks
	if disks == "" {
		disks = filepath.Join(e.dir, "disks")
	}
	os.MkdirAll(disks, 0o755)
	e.metrics = freeAddr(e.t)
	path := filepath.Join(e.dir, "agent.hcl")
	token := fmt.Sprintf("token = %q", e.robot)
	if e.tokenFile != "" {
		if err := os.WriteFile(e.tokenFile, []byte(e.robot+"\n"), 0o600); err != nil {
			e.t.Fatal(err)
		}
		token = fmt.Sprintf("token_file = %q", e.tokenFile)
	}
	cfg := fmt.Sprintf(`controllers = ["http://127.0.0.1:1", %q]
%s
hostname = %q
roles = %s
data_dir = %q
storage = { %q = %q }
segment_mode = "vxlan"
public_bridge = %q
public_bridge_addr = "%s.1/24"
vtep_addr = "%s.1"
underlay_device = %q
link_prefix = %q
namespace_prefix = %q
metrics_addr = %q
log_level = "debug"
work_wait = "30s"
resync_interval = %q
%s`, e.api.base, token, e.hostname, roles, filepath.Join(e.dir, "agent"), "SSD"+e.prefix, disks,
		e.prefix+"pub", e.net3, e.net3, e.prefix+"pub", e.prefix, e.prefix+"P", e.metrics, cmp.Or(e.resync, "2s"), extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

func (e *env) startAgent(config string) { e.launchAgent(config, true) }

// launchAgent starts the agent and waits for its /healthz: for a 200 when
// registered, else for any answer (it says 503 until it registers, which
// it cannot while no controller answers).
func (e *env) launchAgent(config string, registered bool) {
	if e.agent == nil {
		e.agent = &proc{t: e.t, name: "agent", logPath: filepath.Join(e.dir, "agent.log"),
			args: []string{bins.agent, "-config", config}}
	}
	e.agent.start()
	hc := &http.Client{Timeout: 2 * time.Second}
	eventually(e.t, "the agent's /healthz", 30*time.Second, func() bool {
		if !e.agent.running() {
			e.t.Fatalf("agent exited:\n%s", e.agent.log())
		}
		resp, err := hc.Get("http://" + e.metrics + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 || !registered
	})
}

// vmBody is a VM of a cloud create: 1 CPU, 1 GB, a primary disk of gb
// in the env's storage type, the address .host of the env's private /24.
func (e *env) vmBody(name string, host, gb int, nat bool) map[string]any {
	return map[string]any{"name": name, "image_id": e.img, "storage_type_id": e.st, "cpu": 1, "ram": 1,
		"dns": "1.1.1.1", "gateway_subnet": e.priv3 + ".1/24", "public_key": sshKey,
		"storages":     []any{map[string]any{"name": "root", "gb": gb, "primary": true}},
		"ip_addresses": []any{map[string]any{"address": fmt.Sprintf("%s.%d", e.priv3, host), "nat": nat}}}
}

// cloudBody is a cloud create of the env's project: one subnet, the
// env's private /24, with vms, no firewall rules.
func (e *env) cloudBody(vms ...map[string]any) map[string]any {
	list := make([]any, 0, len(vms))
	for _, v := range vms {
		list = append(list, v)
	}
	return map[string]any{
		"project":        map[string]any{"name": "p-" + e.prefix, "region_id": e.region, "grace_period": 0},
		"subnets":        []any{map[string]any{"name": "a", "address_range": e.priv3 + ".1/24"}},
		"vms":            list,
		"firewall_rules": []any{},
	}
}

func (e *env) metricsText() string {
	resp, err := http.Get("http://" + e.metrics + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// vr is the virtual router as the API shows it.
func (e *env) vr(id uint64) map[string]any {
	return e.api.must(e.root, "GET", fmt.Sprintf("/iaas/virtual_router/%d/", id), nil, 200)
}

// converged waits until the router is RUNNING at its current generation.
func (e *env) converged(id uint64, timeout time.Duration) time.Duration {
	return eventually(e.t, "the virtual router RUNNING at its generation", timeout, func() bool {
		v := e.vr(id)
		if num(v["state"]) == api.StateUnresourced {
			e.t.Fatalf("virtual router UNRESOURCED: %v", v)
		}
		return num(v["state"]) == api.StateRunning && num(v["observed_generation"]) == num(v["generation"])
	})
}

// spec is the router's work spec as the agent receives it.
func (e *env) spec() api.RouterSpec {
	c := e.api.must(e.robot, "GET", fmt.Sprintf("/v1/agent/work?router_id=%d", e.router), nil, 200)
	b, _ := json.Marshal(c)
	var w api.Work
	if err := json.Unmarshal(b, &w); err != nil || len(w.Routers) != 1 {
		e.t.Fatalf("work: %v %s", err, b)
	}
	return w.Routers[0]
}

func (e *env) setFirewall(project uint64, rules []any) {
	e.api.must(e.root, "PUT", fmt.Sprintf("/iaas/cloud/%d/", project), map[string]any{"firewall_rules": rules}, 200)
}

// addHost creates namespace name with eth0 (mac) plugged into bridge.
func (e *env) addHost(name, bridge, mac, addr string) {
	t := e.t
	e.hosts = append(e.hosts, name)
	hostSide := e.prefix + "h" + strconv.Itoa(len(e.hosts))
	sh(t, "ip", "netns", "add", name)
	sh(t, "ip", "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", name)
	sh(t, "ip", "link", "set", hostSide, "master", bridge, "up")
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	if mac != "" {
		sh(t, "ip", "-n", name, "link", "set", "eth0", "address", mac)
	}
	sh(t, "ip", "-n", name, "link", "set", "eth0", "up")
	if addr != "" {
		sh(t, "ip", "-n", name, "addr", "add", addr, "dev", "eth0")
	}
}

func (e *env) delHost(name string) {
	if i := slices.Index(e.hosts, name); i >= 0 {
		// Deleting the namespace frees its veth asynchronously: delete
		// the host side now, so the segment bridge is free at once.
		_, _ = try("ip", "link", "del", e.prefix+"h"+strconv.Itoa(i+1))
	}
	killPidFile(filepath.Join(e.dir, name+".dhclient.pid"))
	_, _ = try("ip", "netns", "del", name)
	_ = os.RemoveAll(filepath.Join("/etc/netns", name))
}

// dhcp runs dhclient once in host until a lease is bound.
func (e *env) dhcp(host string) {
	t := e.t
	if err := os.MkdirAll(filepath.Join("/etc/netns", host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("/etc/netns", host, "resolv.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(e.dir, host+".dhclient.conf")
	os.WriteFile(conf, []byte("timeout 20;\nretry 1;\ninitial-interval 1;\nrequest subnet-mask, broadcast-address, routers, interface-mtu;\n"), 0o644)
	sh(t, "ip", "netns", "exec", host, "dhclient", "-4", "-1", "-cf", conf,
		"-pf", filepath.Join(e.dir, host+".dhclient.pid"), "-lf", filepath.Join(e.dir, host+".dhclient.leases"), "eth0")
}

func killPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processes lists pids whose command line contains s.
func processes(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, pid)
		}
	}
	return out
}

// hostState is what the host shows of the agent's routers: the agent's
// links (name, kind, master, alias), the namespace's addresses and routes,
// the number of nft rules and of dnsmasq processes.
func (e *env) hostState(ns string) string {
	var lines []string
	links := linkList()
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range links {
		a := l.Attrs()
		if strings.HasPrefix(a.Name, e.prefix) && !strings.HasPrefix(a.Name, e.prefix+"h") {
			lines = append(lines, fmt.Sprintf("link %s %s master=%s alias=%s", a.Name, l.Type(), names[a.MasterIndex], a.Alias))
		}
	}
	sort.Strings(lines)
	out := strings.Join(lines, "\n") + "\n"
	out += sh(e.t, "ip", "-n", ns, "-br", "addr") + sh(e.t, "ip", "-n", ns, "route")
	out += fmt.Sprintf("nft rules: %d\n", e.nftRules(ns))
	out += fmt.Sprintf("dnsmasq: %d\n", len(processes(filepath.Join(e.dir, "agent", "routers"))))
	return out
}

func (e *env) nftRules(ns string) int {
	s := sh(e.t, "ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset")
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, o := range doc.Nftables {
		if _, ok := o["rule"]; ok {
			n++
		}
	}
	return n
}

func (e *env) cleanup() {
	for _, a := range append([]*proc{e.agent}, e.others...) {
		if a != nil && !a.signal(syscall.SIGTERM, 15*time.Second) {
			a.signal(syscall.SIGKILL, 5*time.Second)
		}
	}
	if e.ctl != nil {
		e.ctl.signal(syscall.SIGKILL, 5*time.Second)
	}
	for _, pid := range processes(filepath.Join(e.dir, "agent", "routers")) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, h := range e.hosts {
		e.delHost(h)
	}
	systemtest.Scrub(func(o systemtest.HostObject) bool { return strings.HasPrefix(o.Name, e.prefix) })
	// A hypervisor agent makes a pool for the test's storage type
	// (regent-<domain prefix>SSD<prefix>) whether or not it builds VMs.
	removeLibvirt(func(d string) bool { return strings.HasPrefix(d, e.prefix+"-") },
		func(p string) bool { return strings.HasPrefix(p, "regent-") && strings.HasSuffix(p, "SSD"+e.prefix) })
	if e.t.Failed() {
		for _, a := range append([]*proc{e.agent}, e.others...) {
			if a != nil {
				e.t.Logf("==== %s log ====\n%s", a.name, a.log())
			}
		}
		if e.ctl != nil {
			e.t.Logf("==== controller log (tail) ====\n%s", tail(e.ctl.log(), 16<<10))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestAgentEndToEnd: a single-node controller and regent-agent (network
// role; the VMs are placed on a server record no agent builds, and the
// test plays their robot) as processes. A cloud with one subnet and two VMs gets its
// virtual router built by the agent; two "VM" namespaces on the segment
// bridge get their addresses by DHCP, reach each other and the gateway,
// leave SNATed, and are reachable on the NAT address only while an allow
// rule exists. The agent survives SIGKILL mid-update, and a project
// delete scrubs everything.
func TestAgentEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.startController()
	e.catalogue()
	config := e.writeAgentConfig(`["network"]`, "")
	e.startAgent(config)
	// The VMs' hypervisor: a server record no agent acts for (TestAgentVMs
	// has the agent build VMs).
	e.api.create(e.root, "/iaas/server/", map[string]any{"region_id": e.region, "type_id": 2, "storage_type_id": e.st,
		"cores": 64, "ram": 256, "gb": 10000, "enabled": true})
	m := e.metricsText()
	for _, want := range []string{"regent_agent_capacity_cpu_cores", "regent_agent_capacity_memory_bytes",
		`regent_agent_capacity_disk_free_bytes{storage_type="SSD` + e.prefix + `"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	start := time.Now()
	cloud := e.api.must(e.root, "POST", "/iaas/cloud/", e.cloudBody(e.vmBody("vm-a", 10, 10, true), e.vmBody("vm-b", 11, 10, false)), 201)
	project := num(cloud["project"].(map[string]any)["id"])
	vrID := num(cloud["virtual_router"].(map[string]any)["id"])
	var vmIDs []uint64
	for _, v := range cloud["vms"].([]any) {
		vmIDs = append(vmIDs, num(v.(map[string]any)["id"]))
	}
	e.converged(vrID, 60*time.Second)
	buildTime := time.Since(start)
	t.Logf("router build, cloud create → RUNNING (agent claim, build, report): %v", buildTime.Round(time.Millisecond))

	spec := e.spec()
	ns := e.prefix + "P" + strconv.FormatUint(project, 10)
	if len(spec.Subnets) != 1 || len(spec.Subnets[0].DHCP) != 2 || len(spec.NAT) != 1 {
		t.Fatalf("router spec: %+v", spec)
	}
	routerIP := strings.Split(spec.PublicIP, "/")[0]
	natPublic, natPrivate := spec.NAT[0].Public, spec.NAT[0].Private
	bridge := e.prefix + "b" + strconv.FormatUint(uint64(spec.Subnets[0].VNI), 10)
	if len(bridge) > 15 {
		t.Fatalf("segment bridge name %s: VNI too long for the test's naming", bridge)
	}

	inet := e.prefix + "inet"
	e.addHost(inet, e.prefix+"pub", "", e.net3+".50/24")
	hosts := map[string]api.DHCPHostSpec{}
	var names []string
	for i, b := range spec.Subnets[0].DHCP {
		name := e.prefix + "vm" + strconv.Itoa(i)
		e.addHost(name, bridge, b.MAC, "")
		hosts[name] = b
		names = append(names, name)
	}
	natHost, plainHost := names[0], names[1]
	if hosts[natHost].IP != natPrivate {
		natHost, plainHost = plainHost, natHost
	}

	t.Run("dhcp", func(t *testing.T) {
		for _, h := range names {
			e.dhcp(h)
			if out := sh(t, "ip", "-n", h, "-4", "-br", "addr", "show", "eth0"); !strings.Contains(out, hosts[h].IP+"/24") {
				t.Fatalf("%s: want %s by DHCP, have %s", h, hosts[h].IP, out)
			}
		}
	})
	t.Run("ping", func(t *testing.T) {
		for _, c := range [][2]string{{natHost, hosts[plainHost].IP}, {plainHost, hosts[natHost].IP},
			{natHost, e.priv3 + ".1"}, {plainHost, e.priv3 + ".1"}} {
			if s, r := ping(t, c[0], c[1], 3); r != s {
				t.Errorf("ping %s from %s: %d/%d", c[1], c[0], r, s)
			}
		}
	})
	t.Run("snat", func(t *testing.T) {
		peers := listen(t, inet, e.net3+".50:8080")
		if err := dialFrom(plainHost, e.net3+".50:8080", 3*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := <-peers; got != routerIP {
			t.Errorf("a VM without NAT left as %s, want the router address %s", got, routerIP)
		}
		if err := dialFrom(natHost, e.net3+".50:8080", 3*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := <-peers; got != natPublic {
			t.Errorf("the NATed VM left as %s, want %s", got, natPublic)
		}
	})

	allow := []any{map[string]any{"allow": true, "source": "*", "destination": e.priv3 + ".0/24", "protocol": "tcp", "port": "2222"}}
	target := natPublic + ":2222"
	peers := listen(t, natHost, "0.0.0.0:2222")
	t.Run("inbound only with an allow rule", func(t *testing.T) {
		if err := dialFrom(inet, target, 500*time.Millisecond); err == nil {
			t.Fatal("inbound TCP reached the VM without an allow rule")
		}
		start := time.Now()
		e.setFirewall(project, allow)
		e.converged(vrID, 30*time.Second)
		t.Logf("firewall update, PUT → RUNNING: %v", time.Since(start).Round(time.Millisecond))
		if err := dialFrom(inet, target, 3*time.Second); err != nil {
			t.Fatalf("inbound TCP with an allow rule: %v", err)
		}
		if got := <-peers; got != e.net3+".50" {
			t.Errorf("inbound connection came from %s", got)
		}
		e.setFirewall(project, []any{})
		e.converged(vrID, 30*time.Second)
		if err := dialFrom(inet, target, 500*time.Millisecond); err == nil {
			t.Fatal("inbound TCP reached the VM after the allow rule was removed")
		}
	})

	t.Run("firewall updates under a 20 pps ping", func(t *testing.T) {
		// Done-when 2: the ruleset swaps in one nft transaction, so a
		// flow through the router (VM → public host: forward chain and
		// SNAT) loses nothing while the firewall changes again and again.
		// Pings of 10 s at 20 pps, one after another until the updates
		// are done: a loaded machine may take longer than one for them.
		const count = 200
		var out bytes.Buffer
		var waitErr error
		var pings int
		updated, done := make(chan struct{}), make(chan struct{})
		var cmd *exec.Cmd
		var cmdMu sync.Mutex
		go func() {
			defer close(done)
			for {
				c := exec.Command("ip", "netns", "exec", plainHost, "ping", "-n", "-q", "-i", "0.05", "-W", "1",
					"-c", strconv.Itoa(count), e.net3+".50")
				c.Stdout, c.Stderr = &out, &out
				cmdMu.Lock()
				cmd = c
				err := c.Start()
				cmdMu.Unlock()
				if err != nil {
					waitErr = err
					return
				}
				pings++
				if err := c.Wait(); err != nil {
					waitErr = err // exit status 1: a loss, counted below
				}
				select {
				case <-updated:
					return
				default:
				}
			}
		}()
		defer func() {
			select {
			case <-updated:
			default:
				close(updated)
				cmdMu.Lock()
				if cmd != nil && cmd.Process != nil {
					_ = cmd.Process.Kill() // the test failed early
				}
				cmdMu.Unlock()
			}
			<-done
		}()
		priv := e.priv3 + ".0/24"
		block := map[string]any{"allow": false, "source": priv, "destination": "*", "protocol": "tcp", "port": "25", "debug_logging": true}
		icmp := map[string]any{"allow": true, "source": "*", "destination": priv, "protocol": "icmp"}
		rulesets := [][]any{allow, {block}, append(slices.Clone(allow), block, icmp), {}}
		time.Sleep(time.Second) // the ping is under way
		start := time.Now()
		changes := 0
		digests := map[string]bool{} // of the ruleset in the router's namespace
		for i := 0; i < 12; i++ {
			e.setFirewall(project, rulesets[i%len(rulesets)])
			e.converged(vrID, 30*time.Second)
			changes++
			digests[digestRe.FindString(sh(t, "ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "regent", "regent_meta"))] = true
		}
		took := time.Since(start)
		if len(digests) != len(rulesets) || digests[""] {
			t.Errorf("the router's ruleset digest took %d values across %d different rule sets: the updates did not all reach nftables", len(digests), len(rulesets))
		}
		select {
		case <-done:
			t.Fatalf("the ping ended before the %d updates did (%v): %v\n%s", changes, took, waitErr, out.String())
		default:
		}
		close(updated)
		<-done
		if waitErr != nil {
			t.Logf("ping: %v", waitErr)
		}
		sent, recv := 0, 0
		ms := pingStats.FindAllStringSubmatch(out.String(), -1)
		for _, m := range ms {
			s, _ := strconv.Atoi(m[1])
			r, _ := strconv.Atoi(m[2])
			sent, recv = sent+s, recv+r
		}
		if len(ms) != pings {
			t.Fatalf("%d pings, %d summaries: %s", pings, len(ms), out.String())
		}
		t.Logf("firewall under traffic: %d firewall changes (PUT → RUNNING each) in %v during %d back-to-back 20 pps pings VM → public host: %d of %d packets lost",
			changes, took.Round(time.Millisecond), pings, sent-recv, sent)
		if sent != count*pings || recv != sent {
			t.Errorf("lost %d of %d pings across %d firewall changes (want 0)", sent-recv, sent, changes)
		}
	})

	t.Run("SIGKILL mid-update and restart", func(t *testing.T) {
		before := e.hostState(ns)
		// Change the rules until the agent is caught building
		// (RUNNING_UPDATING): kill it there.
		extra := map[string]any{"allow": true, "source": "*", "destination": e.priv3 + ".0/24", "protocol": "tcp", "port": "2223"}
		killedIn := 0
		for attempt := 0; attempt < 20 && killedIn != api.StateRunningUpdating; attempt++ {
			rules := allow
			if attempt%2 == 1 {
				rules = append(slices.Clone(allow), extra)
			}
			e.setFirewall(project, rules)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				st := num(e.vr(vrID)["state"])
				if st == api.StateRunningUpdating {
					if !e.agent.signal(syscall.SIGKILL, 10*time.Second) {
						t.Fatal("agent survived SIGKILL")
					}
					killedIn = int(st)
					break
				}
				if st == api.StateRunning {
					break
				}
			}
		}
		if killedIn == 0 {
			e.agent.signal(syscall.SIGKILL, 10*time.Second)
			t.Log("never caught the agent in RUNNING_UPDATING in 20 updates; killed it in RUNNING")
		} else {
			t.Logf("killed the agent (SIGKILL) in state %d (%s)", killedIn, api.StateNames[killedIn])
		}
		e.startAgent(config)
		took := e.converged(vrID, 60*time.Second)
		t.Logf("converged %v after the restart", took.Round(time.Millisecond))
		if err := dialFrom(inet, target, 3*time.Second); err != nil {
			t.Fatalf("the update made across the kill did not arrive: %v", err)
		}
		<-peers
		e.setFirewall(project, []any{})
		e.converged(vrID, 30*time.Second)
		if after := e.hostState(ns); after != before {
			t.Errorf("host after kill, restart and the same spec differs:\n--- before\n%s--- after\n%s", before, after)
		}
		for _, c := range [][2]string{{natHost, hosts[plainHost].IP}, {plainHost, e.priv3 + ".1"}} {
			if s, r := ping(t, c[0], c[1], 3); r != s {
				t.Errorf("after restart: ping %s from %s: %d/%d", c[1], c[0], r, s)
			}
		}
	})

	t.Run("drift repair", func(t *testing.T) {
		// Someone removes the router's nft table and takes its public
		// veth down: the next resync (2 s here) puts both back.
		rules := e.nftRules(ns)
		sh(t, "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "regent")
		sh(t, "ip", "link", "set", e.prefix+"p"+strconv.FormatUint(project, 10), "down")
		took := eventually(t, "the nft table and the public veth repaired", 15*time.Second, func() bool {
			out, _ := try("ip", "-br", "link", "show", e.prefix+"p"+strconv.FormatUint(project, 10))
			return e.nftRules(ns) == rules && strings.Contains(out, "UP")
		})
		t.Logf("drift repaired in %v", took.Round(time.Millisecond))
		if s, r := ping(t, plainHost, e.net3+".50", 3); r != s {
			t.Errorf("after drift repair: ping the public host %d/%d", r, s)
		}
		// A hand edit inside the table (its stored digest still
		// matches): the resync applies the ruleset again all the same.
		sh(t, "ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", "regent", "outbound")
		if e.nftRules(ns) == rules {
			t.Fatal("flushing a chain changed nothing: the check proves nothing")
		}
		took = eventually(t, "the flushed chain repaired", 15*time.Second, func() bool { return e.nftRules(ns) == rules })
		t.Logf("a hand-flushed chain repaired in %v", took.Round(time.Millisecond))
	})

	t.Run("hairpin NAT", func(t *testing.T) {
		// A project VM reaches the NATed VM through its public address,
		// admitted by the inbound allow rule as from the internet, and
		// seen from the router address (the NATed VM itself: from its own).
		e.setFirewall(project, allow)
		e.converged(vrID, 30*time.Second)
		for from, seen := range map[string]string{plainHost: routerIP, natHost: natPublic} {
			if err := dialFrom(from, target, 3*time.Second); err != nil {
				t.Fatalf("%s → %s: %v", from, target, err)
			}
			if got := <-peers; got != seen {
				t.Errorf("%s → %s: the VM saw %s, want %s", from, target, got, seen)
			}
		}
	})

	t.Run("update while quiesced stays quiesced", func(t *testing.T) {
		// QUIESCE → QUIESCED; a firewall change → QUIESCED_UPDATE → the
		// agent applies it and reports QUIESCED, the public veth down all
		// along (watched on netlink) and no dnsmasq; RESTART → RUNNING.
		pubVeth := e.prefix + "p" + strconv.FormatUint(project, 10)
		atGeneration := func(state int) func() bool {
			return func() bool {
				v := e.vr(vrID)
				if num(v["state"]) == api.StateUnresourced {
					t.Fatalf("virtual router UNRESOURCED: %v", v)
				}
				return int(num(v["state"])) == state && num(v["observed_generation"]) == num(v["generation"])
			}
		}
		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/virtual_router/%d/", vrID), map[string]any{"state": api.StateQuiesce}, 200)
		eventually(t, "the router QUIESCED", 30*time.Second, atGeneration(api.StateQuiesced))

		updates := make(chan netlink.LinkUpdate, 256)
		stop := make(chan struct{})
		if err := netlink.LinkSubscribe(updates, stop); err != nil {
			t.Fatal(err)
		}
		var ups []string
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for u := range updates {
				if u.Attrs().Name == pubVeth && u.Attrs().Flags&net.FlagUp != 0 {
					ups = append(ups, u.Attrs().OperState.String())
				}
			}
		}()
		port := map[string]any{"allow": true, "source": "*", "destination": e.priv3 + ".0/24", "protocol": "tcp", "port": "2224"}
		e.setFirewall(project, append(slices.Clone(allow), port))
		if st := int(num(e.vr(vrID)["state"])); st != api.StateQuiescedUpdate && st != api.StateQuiescedUpdating && st != api.StateQuiesced {
			t.Fatalf("a firewall change of a QUIESCED router made it %d", st)
		}
		took := eventually(t, "the router QUIESCED at the new generation", 30*time.Second, atGeneration(api.StateQuiesced))
		t.Logf("quiesced update: PUT → QUIESCED in %v", took.Round(time.Millisecond))
		time.Sleep(200 * time.Millisecond)
		close(stop)
		<-watched
		if len(ups) > 0 {
			t.Errorf("the public veth came up during the quiesced update: %q", ups)
		}
		if !strings.Contains(sh(t, "ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "regent", "inbound"), "dport 2224 accept") {
			t.Error("the firewall change was not applied while quiesced")
		}
		if n := len(processes(filepath.Join(e.dir, "agent", "routers"))); n != 0 {
			t.Errorf("%d dnsmasq processes in a quiesced router", n)
		}
		if s, r := ping(t, plainHost, e.net3+".50", 2); r != 0 {
			t.Errorf("a quiesced router forwards: %d/%d", r, s)
		}

		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/virtual_router/%d/", vrID), map[string]any{"state": api.StateRestart}, 200)
		e.converged(vrID, 30*time.Second)
		if s, r := ping(t, plainHost, e.net3+".50", 3); r != s {
			t.Errorf("after the restart: ping the public host %d/%d", r, s)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		m := e.metricsText()
		for _, want := range []string{`regent_agent_reconcile_total{kind="virtual_router",result="ok"}`,
			"regent_agent_build_duration_seconds_bucket", "regent_agent_last_work_fetch_timestamp_seconds"} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("delete scrubs everything", func(t *testing.T) {
		// The VM hosts leave the segment first (their veths would keep the
		// shared bridge in use).
		for _, h := range names {
			e.delHost(h)
		}
		// Nobody builds VMs yet: the test plays their robot (a project
		// changes state only when everything in it is stable).
		for _, id := range vmIDs {
			for _, step := range [][2]int{{1, 2}, {2, 4}} {
				e.api.must(e.robot, "PATCH", fmt.Sprintf("/iaas/vm/%d/", id), map[string]any{"state": step[1], "expected_state": step[0]}, 200)
			}
		}
		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/project/%d/", project), map[string]any{"state": api.StateScrub}, 200)
		for _, id := range vmIDs {
			for _, step := range [][2]int{{8, 14}, {14, 9}, {9, 17}, {17, 99}} {
				e.api.must(e.robot, "PATCH", fmt.Sprintf("/iaas/vm/%d/", id), map[string]any{"state": step[1], "expected_state": step[0]}, 200)
			}
		}
		took := eventually(t, "the virtual router CLOSED", 90*time.Second, func() bool { return num(e.vr(vrID)["state"]) == api.StateClosed })
		t.Logf("scrub: project delete → router CLOSED in %v", took.Round(time.Millisecond))
		eventually(t, "the router's host objects gone", 10*time.Second, func() bool {
			out, _ := try("ip", "netns", "list")
			return !strings.Contains(out, ns)
		})
		links := linkList()
		for _, l := range links {
			a := l.Attrs()
			if strings.HasPrefix(a.Alias, "regent:"+e.prefix+":router") || strings.HasPrefix(a.Alias, "regent:"+e.prefix+":segment") {
				t.Errorf("link %s (%s) left behind", a.Name, a.Alias)
			}
			if strings.HasPrefix(a.Name, e.prefix) && a.Name != e.prefix+"pub" && a.Name != e.prefix+"h1" /* inet */ {
				t.Errorf("link %s left behind", a.Name)
			}
		}
		if n := len(processes(filepath.Join(e.dir, "agent", "routers"))); n != 0 {
			t.Errorf("%d dnsmasq processes left", n)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "agent", "routers", "router-"+strconv.FormatUint(spec.ID, 10))); err == nil {
			t.Errorf("router state directory left behind")
		}
	})
}
