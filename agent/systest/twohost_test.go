package systest

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
	"github.com/vishvananda/netlink"
)

// testHost is one test "host": a network namespace on the underlay with
// its own address, running its own regent-agent (nsenter --net: the agent
// sees only the host's links; the mount namespace is shared, so router
// namespaces it creates show in `ip netns` and cleanup finds them).
type testHost struct {
	ns      string // namespace
	addr    string // underlay address = VTEP
	metrics string // the agent's metrics address, reachable from the test
	agent   *proc
}

// addTestHost plugs namespace ns into the underlay bridge with addr/24 on
// its eth0.
func (e *env) addTestHost(ns, rootSide, underlay, addr string) *testHost {
	t := e.t
	sh(t, "ip", "netns", "add", ns)
	sh(t, "ip", "link", "add", rootSide, "type", "veth", "peer", "name", "eth0", "netns", ns)
	sh(t, "ip", "link", "set", rootSide, "master", underlay, "up")
	sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	sh(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	return &testHost{ns: ns, addr: addr, metrics: addr + ":8090"}
}

// startHostAgent runs regent-agent inside h with the config body (the
// common attributes are added here).
func (e *env) startHostAgent(h *testHost, name, body string) {
	t := e.t
	cfg := fmt.Sprintf(`controllers = [%q]
token = %q
data_dir = %q
segment_mode = "vxlan"
vtep_addr = %q
underlay_device = "eth0"
link_prefix = %q
namespace_prefix = %q
metrics_addr = %q
log_level = "debug"
work_wait = "30s"
resync_interval = "2s"
`, e.api.base, e.robot, filepath.Join(e.dir, name), h.addr, e.prefix, e.prefix+"P", h.metrics) + body
	path := filepath.Join(e.dir, name+".hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h.agent = &proc{t: t, name: name, logPath: filepath.Join(e.dir, name+".log"),
		args: []string{"nsenter", "--net=/run/netns/" + h.ns, bins.agent, "-config", path}}
	e.others = append(e.others, h.agent)
	h.agent.start()
	hc := &http.Client{Timeout: 2 * time.Second}
	eventually(t, name+"'s /healthz", 30*time.Second, func() bool {
		if !h.agent.running() {
			t.Fatalf("%s exited:\n%s", name, h.agent.log())
		}
		resp, err := hc.Get("http://" + h.metrics + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// fdb is the VTEPs the all-zero FDB entries of dev in namespace ns point at.
func fdb(ns, dev string) []string {
	out, err := try("bridge", "-n", ns, "fdb", "show", "dev", dev)
	if err != nil {
		return nil
	}
	var vteps []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "00:00:00:00:00:00" && f[1] == "dst" {
			vteps = append(vteps, f[2])
		}
	}
	return vteps
}

// bridgePorts lists the links enslaved to bridge in namespace ns.
func bridgePorts(t *testing.T, ns, bridge string) []string {
	var ports []string
	for _, line := range strings.Split(sh(t, "ip", "-n", ns, "-br", "link", "show", "master", bridge), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			ports = append(ports, strings.SplitN(f[0], "@", 2)[0])
		}
	}
	return ports
}

// TestTwoHosts (issue 6, done-when 4): two agents on two test hosts,
// network namespaces on a shared underlay bridge, each with its own
// address = VTEP, each agent running inside its host. Host B has the
// network role (the project's router), host A the hypervisor role (the
// only server of the region, so the VM is placed there). Agent A makes
// the VM's segment on host A (bridge + VXLAN device with its FDB towards
// B); a "VM" namespace plugged into that bridge with the VM's MAC gets its
// address by DHCP from the router on host B, over VXLAN, and pings the
// gateway. When the VM is CLOSED, agent A removes the segment.
func TestTwoHosts(t *testing.T) {
	requireSystem(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		systemtest.Skip(t, "nsenter (util-linux) is required")
	}
	r := rand.Uint32()
	e := &env{t: t, prefix: randomPrefix(),
		// 100.96-127: agent/netrouter's tests (run at the same time) draw
		// theirs from 100.64-95, so the two never put one /24 on two bridges.
		net3:  fmt.Sprintf("100.%d.%d", 96+r%32, (r>>6)%256),
		priv3: fmt.Sprintf("10.%d.%d", 100+(r>>14)%100, (r>>22)%256),
		dir:   t.TempDir()}
	ul3 := fmt.Sprintf("172.%d.%d", 16+(r>>3)%16, (r>>11)%256)
	e.hostname = "agent-" + e.prefix + "b" // the router record's asset tag
	e.httpHost = ul3 + ".1"
	t.Cleanup(e.cleanup)

	// The underlay: a bridge in the root namespace (the controller listens
	// on its address) and one veth per test host.
	underlay := e.prefix + "ul"
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: underlay}}); err != nil {
		t.Fatal(err)
	}
	sh(t, "ip", "addr", "add", e.httpHost+"/24", "dev", underlay)
	sh(t, "ip", "link", "set", underlay, "up")
	hostA := e.addTestHost(e.prefix+"ha", e.prefix+"ua", underlay, ul3+".11")
	hostB := e.addTestHost(e.prefix+"hb", e.prefix+"ub", underlay, ul3+".12")
	if s, r := ping(t, hostA.ns, hostB.addr, 2); r != s {
		t.Fatalf("underlay: host A cannot reach host B (%d/%d)", r, s)
	}

	e.startController()
	e.catalogue()
	disks := filepath.Join(e.dir, "disks")
	if err := os.MkdirAll(disks, 0o755); err != nil {
		t.Fatal(err)
	}
	e.startHostAgent(hostA, "agent-a", fmt.Sprintf("hostname = %q\nroles = [\"hypervisor\"]\nstorage = { %q = %q }\n",
		"agent-"+e.prefix+"a", "SSD"+e.prefix, disks))
	e.startHostAgent(hostB, "agent", fmt.Sprintf("hostname = %q\nroles = [\"network\"]\npublic_bridge = %q\npublic_bridge_addr = \"%s.1/24\"\n",
		e.hostname, e.prefix+"pub", e.net3))

	start := time.Now()
	cloud := e.api.must(e.root, "POST", "/iaas/cloud/", e.cloudBody(e.vmBody("vm-a", 10, 10, false)), 201)
	project := num(cloud["project"].(map[string]any)["id"])
	vrID := num(cloud["virtual_router"].(map[string]any)["id"])
	vmID := num(cloud["vms"].([]any)[0].(map[string]any)["id"])
	vm := e.api.must(e.root, "GET", fmt.Sprintf("/iaas/vm/%d/", vmID), nil, 200)
	serverA := e.api.must(e.root, "GET", fmt.Sprintf("/iaas/server/%d/", num(vm["server_id"])), nil, 200)
	if serverA["hostname"] != "agent-"+e.prefix+"a" || serverA["vtep"] != hostA.addr {
		t.Fatalf("the VM is not on host A's server (hostname agent-%sa, vtep %s): %v", e.prefix, hostA.addr, serverA)
	}
	e.converged(vrID, 60*time.Second)
	t.Logf("router on host B: cloud create → RUNNING in %v", time.Since(start).Round(time.Millisecond))

	spec := e.spec()
	if len(spec.Subnets) != 1 || len(spec.Subnets[0].DHCP) != 1 {
		t.Fatalf("router spec: %+v", spec)
	}
	vni := strconv.FormatUint(uint64(spec.Subnets[0].VNI), 10)
	bridge, vxlan := e.prefix+"b"+vni, e.prefix+"x"+vni
	if len(bridge) > 15 {
		t.Fatalf("segment bridge name %s: VNI too long for the test's naming", bridge)
	}
	binding := spec.Subnets[0].DHCP[0]

	// Host A: the VM's segment, its FDB towards host B only; host B: the
	// router's segment, its FDB towards host A.
	took := eventually(t, "the VM's segment on host A, FDB → host B", 30*time.Second, func() bool {
		v := fdb(hostA.ns, vxlan)
		return len(v) == 1 && v[0] == hostB.addr
	})
	t.Logf("segment on host A %v after the router was RUNNING", took.Round(time.Millisecond))
	eventually(t, "the router's segment on host B, FDB → host A", 30*time.Second, func() bool {
		v := fdb(hostB.ns, vxlan)
		return len(v) == 1 && v[0] == hostA.addr
	})
	alias := sh(t, "ip", "-n", hostA.ns, "-d", "link", "show", bridge)
	if !strings.Contains(alias, "regent:"+e.prefix+":segment:vxlan:"+vni) {
		t.Errorf("segment bridge on host A lacks its ownership tag:\n%s", alias)
	}
	if out, _ := try("ip", "-n", hostA.ns, "-br", "link"); strings.Contains(out, e.prefix+"s") || strings.Contains(out, e.prefix+"p") {
		t.Errorf("host A (hypervisor only) has router links:\n%s", out)
	}

	// The VM: a namespace plugged into host A's segment bridge.
	vmNS, tap := e.prefix+"vm", e.prefix+"t1"
	e.hosts = append(e.hosts, vmNS) // cleanup deletes it
	sh(t, "ip", "netns", "add", vmNS)
	sh(t, "ip", "-n", hostA.ns, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", vmNS)
	sh(t, "ip", "-n", hostA.ns, "link", "set", tap, "master", bridge, "up")
	sh(t, "ip", "-n", vmNS, "link", "set", "lo", "up")
	sh(t, "ip", "-n", vmNS, "link", "set", "eth0", "address", binding.MAC)
	sh(t, "ip", "-n", vmNS, "link", "set", "eth0", "up")
	if ports := strings.Join(bridgePorts(t, hostA.ns, bridge), " "); ports != vxlan+" "+tap && ports != tap+" "+vxlan {
		t.Fatalf("host A's segment bridge ports: %q (want only the VXLAN device and the VM's tap)", ports)
	}

	dhcpStart := time.Now()
	e.dhcp(vmNS)
	t.Logf("DHCP over VXLAN (VM on host A, dnsmasq on host B): bound in %v", time.Since(dhcpStart).Round(time.Millisecond))
	if out := sh(t, "ip", "-n", vmNS, "-4", "-br", "addr", "show", "eth0"); !strings.Contains(out, binding.IP+"/24") {
		t.Fatalf("VM: want %s by DHCP, have %s", binding.IP, out)
	}
	if s, r := ping(t, vmNS, e.priv3+".1", 5); r != s {
		t.Errorf("VM on host A → gateway on host B: %d/%d", r, s)
	}

	t.Run("closed VM: segment collected on host A", func(t *testing.T) {
		// The tap goes first (a used bridge is never collected).
		sh(t, "ip", "-n", hostA.ns, "link", "del", tap)
		// Host A's agent builds the VM: here it has no image to build from,
		// so the VM ends UNRESOURCED (or RUNNING where it could build it).
		vmState := func() int {
			return int(num(e.api.must(e.root, "GET", fmt.Sprintf("/iaas/vm/%d/", vmID), nil, 200)["state"]))
		}
		eventually(t, "host A's agent to act on the VM", 60*time.Second, func() bool {
			s := vmState()
			return s == api.StateUnresourced || s == api.StateRunning
		})
		// Still on host A while the VM is not CLOSED.
		time.Sleep(500 * time.Millisecond)
		if v := fdb(hostA.ns, vxlan); len(v) != 1 {
			t.Fatalf("the segment of a VM that is not CLOSED went away on host A: %v", v)
		}
		if vmState() == api.StateUnresourced {
			// the operator's retry path: UNRESOURCED → SCRUB; the agent scrubs it
			e.api.must(e.robot, "PATCH", fmt.Sprintf("/iaas/vm/%d/", vmID), map[string]any{"state": api.StateScrub, "expected_state": api.StateUnresourced}, 200)
			eventually(t, "the VM CLOSED by host A's agent", 90*time.Second, func() bool { return vmState() == api.StateClosed })
		}
		// Closing the VM freed its address, so the router is updated; the
		// project can be deleted once everything is stable again.
		eventually(t, "the virtual router RUNNING again", 60*time.Second, func() bool { return num(e.vr(vrID)["state"]) == api.StateRunning })
		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/project/%d/", project), map[string]any{"state": api.StateScrub}, 200)
		eventually(t, "the VM CLOSED", 90*time.Second, func() bool { return vmState() == api.StateClosed })
		took := eventually(t, "host A's segment removed", 30*time.Second, func() bool {
			_, err := try("ip", "-n", hostA.ns, "link", "show", bridge)
			return err != nil
		})
		t.Logf("segment removed from host A %v after the VM was CLOSED", took.Round(time.Millisecond))
		if out := sh(t, "ip", "-n", hostA.ns, "-br", "link"); strings.Contains(out, vxlan) {
			t.Errorf("VXLAN device left on host A:\n%s", out)
		}
		eventually(t, "the virtual router CLOSED", 90*time.Second, func() bool { return num(e.vr(vrID)["state"]) == api.StateClosed })
		eventually(t, "host B's segment removed", 30*time.Second, func() bool {
			_, err := try("ip", "-n", hostB.ns, "link", "show", bridge)
			return err != nil
		})
	})
}
