package netrouter

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
	"github.com/vishvananda/netlink"
)

// System test environment: a public bridge whose root-namespace address is
// the floating gateway (and the local VTEP), a "public" host namespace on
// it, and VM namespaces plugged into segment bridges. Every name is unique
// to the test, and everything is removed in t.Cleanup, also on failure.

// requireSystem skips (or, with REGENT_SYSTEM_TESTS=1, fails) when the
// test cannot run here.
func requireSystem(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "nft", "dnsmasq", "dhclient", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	systemtest.Skip(t, "netrouter system test needs %s (scripts/setup-deps.sh installs the tools; run as root)", strings.Join(missing, ", "))
}

type sysenv struct {
	t      testing.TB
	prefix string
	net3   string // "100.A.B": the floating /24
	priv3  string // "10.C.D": the project subnet /24
	vni    uint32
	cfg    Config
	b      *Builder
	logs   *systemtest.Buffer
	hosts  []string
}

func newSysenv(t testing.TB) *sysenv {
	requireSystem(t)
	r := rand.Uint32()
	e := &sysenv{
		t: t,
		// "y": agent/systest's prefixes start with "z" and are one longer,
		// so a netrouter prefix could otherwise be the start of theirs, and
		// the cleanup below, which deletes links by prefix, take a running
		// systest's public bridge (go test runs the packages at once).
		prefix: "y" + strconv.FormatUint(uint64(r%1296+1296), 36)[1:],
		// 100.64-95: agent/systest draws its floating /24s from 100.96-127,
		// so a router's public bridge address and route never meet theirs.
		net3:  fmt.Sprintf("100.%d.%d", 64+r%32, (r>>6)%256),
		priv3: fmt.Sprintf("10.%d.%d", (r>>14)%256, (r>>22)%256),
		vni:   100000 + r%9000000,
		logs:  &systemtest.Buffer{},
	}
	e.cfg = Config{
		PublicBridge:     e.prefix + "pub",
		PublicBridgeAddr: e.net3 + ".1/24",
		VTEPAddr:         e.net3 + ".1",
		Prefix:           e.prefix,
		StateDir:         t.TempDir(),
		Logger:           hclog.New(&hclog.LoggerOptions{Output: e.logs, Level: hclog.Debug}),
	}
	t.Cleanup(e.cleanup)
	e.b = e.newBuilder()
	// The underlay is the public bridge: it must exist before the first segment.
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: e.cfg.PublicBridge}}); err != nil {
		t.Fatal(err)
	}
	e.cfg.UnderlayDevice = e.cfg.PublicBridge
	e.b.cfg.UnderlayDevice = e.cfg.PublicBridge
	e.b.seg.cfg.UnderlayDevice = e.cfg.PublicBridge
	return e
}

func (e *sysenv) newBuilder() *Builder {
	b, err := New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *sysenv) cleanup() {
	ctx := context.Background()
	if rs, err := e.b.List(ctx); err == nil {
		for _, r := range rs {
			if err := e.b.Scrub(ctx, r.ID); err != nil {
				e.t.Errorf("cleanup: %v", err)
			}
		}
	}
	_ = e.b.Close(ctx)
	for _, h := range e.hosts {
		killPidFile(e.dhclientFiles(h, "eth0") + ".dhclient.pid")
		killPidFile(e.dhclientFiles(h, "eth1") + ".dhclient.pid")
		_ = exec.Command("ip", "netns", "del", h).Run()
		_ = os.RemoveAll(filepath.Join("/etc/netns", h))
	}
	if links, err := dumpRetry(netlink.LinkList); err == nil {
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, e.prefix) {
				_ = netlink.LinkDel(l)
			}
		}
	}
	if e.t.Failed() {
		e.t.Logf("builder log:\n%s", e.logs.String())
	}
}

func killPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
}

// spec is a router with one subnet, two DHCP bindings (VMs .5 and .6),
// VM .5 NATed to .20 of the floating subnet, and metadata for VM .5.
func (e *sysenv) spec(projectID uint64) *api.RouterSpec {
	return &api.RouterSpec{
		ID: projectID + 1, ProjectID: projectID,
		PublicIP: e.net3 + ".10/24", PublicGateway: e.net3 + ".1",
		NAT: []api.NATSpec{{Private: e.priv3 + ".5", Public: e.net3 + ".20"}},
		Subnets: []api.RouterSubnetSpec{{
			ID: projectID + 2, AddressRange: e.priv3 + ".1/24", VNI: e.vni,
			// Unowned addresses on the local bridge: flooding stays on this host.
			VTEPs: []string{e.net3 + ".77", e.net3 + ".78"},
			DHCP: []api.DHCPHostSpec{
				{MAC: "02:00:00:aa:00:05", IP: e.priv3 + ".5", Hostname: "vm5"},
				{MAC: "02:00:00:aa:00:06", IP: e.priv3 + ".6", Hostname: "vm6"},
			},
		}},
		FirewallRules: []api.FirewallRuleSpec{
			{Order: 1, Allow: false, Protocol: "tcp", Source: e.priv3 + ".0/24", Destination: "*", Port: "25", Log: true},
		},
		Metadata: []api.MetadataSpec{{
			Address: e.priv3 + ".5", InstanceID: fmt.Sprintf("%d_5", projectID), Hostname: "vm5", Userdata: "#cloud-config\n",
			IPAddresses: []api.MetadataAddress{{PrivateIP: e.priv3 + ".5", PublicIP: e.net3 + ".20", Subnet: e.priv3 + ".0/24", MAC: "02:00:00:aa:00:05"}},
		}},
	}
}

func (e *sysenv) projectID() uint64 { return 900000000 + uint64(rand.IntN(90000000)) }

func (e *sysenv) ensure(b *Builder, s *api.RouterSpec) Result {
	e.t.Helper()
	res, err := b.Ensure(context.Background(), s)
	if err != nil {
		e.t.Fatalf("Ensure: %v", err)
	}
	return res
}

// addHost creates namespace name with eth0 (mac) plugged into bridge; addr
// ("a.b.c.d/n") is optional.
func (e *sysenv) addHost(name, bridge, mac, addr string) {
	e.t.Helper()
	e.hosts = append(e.hosts, name)
	hostSide := e.prefix + "h" + strconv.Itoa(len(e.hosts))
	e.sh("ip", "netns", "add", name)
	e.sh("ip", "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", name)
	e.sh("ip", "link", "set", hostSide, "master", bridge, "up")
	e.sh("ip", "-n", name, "link", "set", "lo", "up")
	if mac != "" {
		e.sh("ip", "-n", name, "link", "set", "eth0", "address", mac)
	}
	e.sh("ip", "-n", name, "link", "set", "eth0", "up")
	if addr != "" {
		e.sh("ip", "-n", name, "addr", "add", addr, "dev", "eth0")
	}
}

// dhcp runs dhclient once in host; it returns when a lease is bound.
func (e *sysenv) dhcp(host string) {
	e.t.Helper()
	e.dhcpIf(host, "eth0")
}

// dhclientFiles is the prefix of the files of host's dhclient on dev.
func (e *sysenv) dhclientFiles(host, dev string) string {
	if dev == "eth0" {
		return filepath.Join(e.cfg.StateDir, host)
	}
	return filepath.Join(e.cfg.StateDir, host+"."+dev)
}

// dhcpIf runs dhclient once on dev of host; it returns when a lease is bound.
func (e *sysenv) dhcpIf(host, dev string) {
	e.t.Helper()
	// dhclient-script may write resolv.conf: give the namespace its own.
	if err := os.MkdirAll(filepath.Join("/etc/netns", host), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("/etc/netns", host, "resolv.conf"), nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
	conf := filepath.Join(e.cfg.StateDir, host+".dhclient.conf")
	if err := os.WriteFile(conf, []byte("timeout 20;\nretry 1;\ninitial-interval 1;\nrequest subnet-mask, broadcast-address, routers, interface-mtu, domain-name-servers;\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	files := e.dhclientFiles(host, dev)
	e.sh("ip", "netns", "exec", host, "dhclient", "-4", "-1", "-cf", conf,
		"-pf", files+".dhclient.pid", "-lf", files+".dhclient.leases", dev)
}

func (e *sysenv) sh(args ...string) string {
	e.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *sysenv) try(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// listen opens a TCP listener inside host's namespace; every accepted
// connection's remote address is sent on the returned channel.
func (e *sysenv) listen(host, addr string) <-chan string {
	e.t.Helper()
	var ln net.Listener
	err := withNetnsPath(nsPath(host), func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	peers := make(chan string, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	e.t.Cleanup(func() { ln.Close(); <-done })
	return peers
}

// dial connects from host's namespace.
func dialFrom(host, addr string, timeout time.Duration) error {
	var c net.Conn
	err := withNetnsPath(nsPath(host), func() (err error) {
		// The socket is created here; the handshake can finish elsewhere.
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial("tcp4", addr)
		return err
	})
	if err == nil {
		c.Close()
	}
	return err
}

// httpGetFrom fetches url from inside host's namespace.
func httpGetFrom(host, url string) (int, string, error) {
	return systemtest.GetVia(func(fn func() error) error { return withNetnsPath(nsPath(host), fn) }, url)
}

var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// ping returns packets sent and received.
func (e *sysenv) ping(host, dst string, count int, interval string) (int, int) {
	out, _ := e.try("ip", "netns", "exec", host, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", interval, "-W", "1", dst)
	m := pingStats.FindStringSubmatch(out)
	if m == nil {
		e.t.Fatalf("ping %s from %s: %s", dst, host, out)
	}
	sent, _ := strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	return sent, recv
}

// snapshot is everything of a router the host shows: links (root links
// tagged for it, namespace links), addresses, FDB and the nft table.
func (e *sysenv) snapshot(s *api.RouterSpec) string {
	e.t.Helper()
	ns := e.b.names.namespace(s.ProjectID)
	var b strings.Builder
	links, _ := dumpRetry(netlink.LinkList)
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, e.prefix) {
			fmt.Fprintf(&b, "root %s %s master=%d alias=%s\n", l.Type(), l.Attrs().Name, l.Attrs().MasterIndex, l.Attrs().Alias)
		}
	}
	b.WriteString(e.sh("ip", "-n", ns, "-br", "addr"))
	b.WriteString(e.sh("ip", "-n", ns, "route"))
	b.WriteString(e.sh("bridge", "fdb", "show", "dev", e.b.names.vxlanDev(s.Subnets[0].VNI)))
	b.WriteString(e.sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", tableName))
	return b.String()
}

// nftRuleCount counts the rules of the router's table.
func (e *sysenv) nftRuleCount(s *api.RouterSpec) int {
	out := e.sh("ip", "netns", "exec", e.b.names.namespace(s.ProjectID), "nft", "-j", "list", "table", "inet", tableName)
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
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

// dnsmasqCount counts dnsmasq processes serving conf.
func dnsmasqCount(conf string) int { return len(dnsmasqPids(conf)) }

// dnsmasqPids are the pids of the dnsmasq processes serving conf.
func dnsmasqPids(conf string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err == nil && cmdlineContains(pid, conf) {
			out = append(out, pid)
		}
	}
	return out
}

// dnsmasqStarted waits up to 30 s for a dnsmasq serving conf (the builder
// reports "dhcp started" when its supervisor is launched; the process
// itself starts a moment later, much later on a loaded machine) and
// returns how many serve it then.
func dnsmasqStarted(conf string) int {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := dnsmasqCount(conf)
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func eventually(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
