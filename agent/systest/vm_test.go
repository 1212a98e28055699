package systest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// requireLibvirt skips (or, with REGENT_SYSTEM_TESTS=1, fails) without
// libvirtd and QEMU; it starts libvirtd with scripts/libvirtd-up.sh when
// it is installed but not running.
func requireLibvirt(t *testing.T) {
	t.Helper()
	// Other packages' tests use the same libvirtd (go test runs packages
	// in parallel): hold it shared, so a test that restarts it waits.
	systemtest.Hold(t, "libvirtd", false)
	var missing []string
	for _, bin := range []string{"/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "virsh", "qemu-img", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		systemtest.Skip(t, "VM system test needs %s (scripts/setup-deps.sh installs libvirt and QEMU)", strings.Join(missing, ", "))
	}
	// A missing socket, or a stale one of a libvirtd that died (a host
	// restart leaves it): start libvirtd.
	if _, err := try("virsh", "-c", "qemu:///system", "version"); err != nil {
		if out, err := exec.Command("bash", "../../scripts/libvirtd-up.sh").CombinedOutput(); err != nil {
			t.Fatalf("start libvirtd: %v\n%s", err, out)
		}
	}
	waitLibvirtd(t)
}

// waitLibvirtd waits for libvirtd to answer (the start script returns when
// the socket exists, which a stale socket already does).
func waitLibvirtd(t *testing.T) {
	t.Helper()
	var out string
	var err error
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(100 * time.Millisecond) {
		if out, err = try("virsh", "-c", "qemu:///system", "version"); err == nil {
			return
		}
	}
	t.Fatalf("libvirtd does not answer: %v\n%s", err, out)
}

func virsh(t *testing.T, args ...string) string {
	t.Helper()
	return sh(t, append([]string{"virsh", "-c", "qemu:///system"}, args...)...)
}

// domainXML is what the test reads of a domain's XML.
type domainXML struct {
	VCPU   string `xml:"vcpu"`
	Memory struct {
		Value uint64 `xml:",chardata"`
		Unit  string `xml:"unit,attr"`
	} `xml:"memory"`
	Disks []struct {
		Device string `xml:"device,attr"`
		Source struct {
			File string `xml:"file,attr"`
		} `xml:"source"`
		Target struct {
			Dev string `xml:"dev,attr"`
		} `xml:"target"`
	} `xml:"devices>disk"`
	Interfaces []struct {
		MAC struct {
			Address string `xml:"address,attr"`
		} `xml:"mac"`
		Source struct {
			Bridge string `xml:"bridge,attr"`
		} `xml:"source"`
		Target struct {
			Dev string `xml:"dev,attr"`
		} `xml:"target"`
	} `xml:"devices>interface"`
}

func dumpXML(t *testing.T, domain string) domainXML {
	t.Helper()
	var d domainXML
	if err := xml.Unmarshal([]byte(virsh(t, "dumpxml", domain)), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// disks maps a domain's disk targets (vda, …) to their volume files.
func (d domainXML) disks() map[string]string {
	out := map[string]string{}
	for _, dk := range d.Disks {
		if dk.Device == "disk" {
			out[dk.Target.Dev] = dk.Source.File
		}
	}
	return out
}

// virtualSize is a disk image's size in bytes.
func virtualSize(t *testing.T, file string) uint64 {
	t.Helper()
	var info struct {
		VirtualSize uint64 `json:"virtual-size"`
	}
	if err := json.Unmarshal([]byte(sh(t, "qemu-img", "info", "-U", "--output", "json", file)), &info); err != nil {
		t.Fatal(err)
	}
	return info.VirtualSize
}

func domState(domain string) string {
	out, err := try("virsh", "-c", "qemu:///system", "domstate", domain)
	if err != nil {
		return "none"
	}
	return strings.TrimSpace(out)
}

// vmRecord is the VM as the API shows it.
func (e *env) vmRecord(id uint64) map[string]any {
	return e.api.must(e.root, "GET", fmt.Sprintf("/iaas/vm/%d/", id), nil, 200)
}

// vmAt waits until VM id is in state at its current generation.
func (e *env) vmAt(id uint64, state int, timeout time.Duration) time.Duration {
	return eventually(e.t, fmt.Sprintf("VM %d %s at its generation", id, api.StateNames[state]), timeout, func() bool {
		v := e.vmRecord(id)
		if num(v["state"]) == api.StateUnresourced {
			e.t.Fatalf("VM UNRESOURCED: %s: %s", v["error_code"], v["error_detail"])
		}
		if state == api.StateClosed {
			return num(v["state"]) == uint64(state)
		}
		return num(v["state"]) == uint64(state) && num(v["observed_generation"]) == num(v["generation"])
	})
}

// vmSpec is the VM's work spec as the agent receives it.
func (e *env) vmSpec(server, id uint64) api.VMSpec {
	c := e.api.must(e.robot, "GET", fmt.Sprintf("/v1/agent/work?server_id=%d", server), nil, 200)
	b, _ := json.Marshal(c)
	var w api.Work
	if err := json.Unmarshal(b, &w); err != nil {
		e.t.Fatalf("work: %v %s", err, b)
	}
	for _, v := range w.VMs {
		if v.ID == id {
			return v
		}
	}
	e.t.Fatalf("VM %d not in the work of server %d: %s", id, server, b)
	return api.VMSpec{}
}

// vmTestRoot makes a world-readable directory for the agent's pools,
// seeds and console logs (QEMU runs as libvirt-qemu and must reach them).
func vmTestRoot(t *testing.T, prefix string) string {
	t.Helper()
	root := filepath.Join("/var/lib/regent-test", "agent-"+prefix)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root, filepath.Dir(root)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	return root
}

// cleanupDomains stops the agent (so that it rebuilds nothing), then
// removes every domain and pool with the prefix, whatever state the test
// left them in.
func (e *env) cleanupDomains(prefix string) {
	e.t.Cleanup(func() {
		if e.agent != nil && !e.agent.signal(syscall.SIGTERM, 15*time.Second) {
			e.agent.signal(syscall.SIGKILL, 5*time.Second)
		}
		removeLibvirt(
			func(d string) bool { return strings.HasPrefix(d, prefix) },
			func(p string) bool { return strings.HasPrefix(p, "regent-"+prefix) })
	})
}

// removeLibvirt destroys and undefines the domains and storage pools whose
// names match (the volumes' files are the test's to remove) and returns
// what it removed ("domain x", "pool y").
func removeLibvirt(domain, pool func(string) bool) []string {
	var removed []string
	virsh := func(args ...string) (string, error) {
		return try(append([]string{"virsh", "-c", "qemu:///system"}, args...)...)
	}
	out, _ := virsh("list", "--all", "--name")
	for _, d := range strings.Fields(out) {
		if domain(d) {
			_, _ = virsh("destroy", d)
			if _, err := virsh("undefine", d, "--nvram", "--snapshots-metadata"); err == nil {
				removed = append(removed, "domain "+d)
			}
		}
	}
	out, _ = virsh("pool-list", "--all", "--name")
	for _, p := range strings.Fields(out) {
		if pool(p) {
			_, _ = virsh("pool-destroy", p)
			if _, err := virsh("pool-undefine", p); err == nil {
				removed = append(removed, "pool "+p)
			}
		}
	}
	return removed
}

// sweepStaleVMs removes what killed earlier runs left in libvirt and under
// /var/lib/regent-test (their domains, autostarted pools and disk images);
// like sweepStale's, it runs with the package lock held, when no other
// run's VMs are live. agent/vm's tests name theirs rgt<n>- and are not
// touched.
func sweepStaleVMs() []string {
	removed := removeLibvirt(staleDomain.MatchString, stalePool.MatchString)
	dirs, _ := filepath.Glob("/var/lib/regent-test/agent-z???")
	for _, d := range dirs {
		if os.RemoveAll(d) == nil {
			removed = append(removed, "directory "+d)
		}
	}
	return removed
}

// TestAgentVMs (issue 7, done-when 1 and 2): a controller and a
// regent-agent with the hypervisor role as processes, libvirtd with QEMU
// TCG; the project's router is not built (no network role). The
// test makes a tiny qcow2 image and registers it with its path and
// sha256; a cloud create with one VM ends with a running domain whose XML
// has the VM's vCPUs, memory, disks, MAC and segment bridge, its tap on
// that bridge, and the VM RUNNING. Then, each through the API and the
// agent: quiesce → shut off and QUIESCED; restart → running and RUNNING;
// an update of vCPU, RAM and disks (grow the primary, add one) → applied
// to the domain; scrub (grace period 0) → CLOSED with no domain, no
// volumes, no seed. The test creates the segment bridge (named by
// netrouter.SegmentBridge) itself.
func TestAgentVMs(t *testing.T) {
	h := newHypervisor(t, 1)
	e, domPrefix := h.env, h.domPrefix
	// The VM's segment bridge (newHypervisor makes it): the hypervisor
	// role does not make segments (the virtual router of the network role,
	// or the hypervisor's segment set-up, does), so the test makes it for
	// the first VNI of a region and checks below that the VM got that VNI.
	// A network role here would make a VXLAN device for it, whose VNI
	// clashes with other tests on this host.
	bridge := netrouter.SegmentBridge(e.prefix, netrouter.ModeVXLAN, api.VNIMin)

	// Capacity comes from libvirt: the pool of the storage type exists.
	if out := virsh(t, "pool-list", "--all", "--name"); !strings.Contains(out, "regent-"+domPrefix+"SSD"+e.prefix) {
		t.Errorf("no pool for the storage type after registration: %s", out)
	}

	start := time.Now()
	cloud := e.api.must(e.root, "POST", "/iaas/cloud/", e.cloudBody(e.vmBody("vm-a", 10, 1, false)), 201)
	project := num(cloud["project"].(map[string]any)["id"])
	vmID := num(cloud["vms"].([]any)[0].(map[string]any)["id"])
	e.vmAt(vmID, api.StateRunning, 3*time.Minute)
	build := time.Since(start)
	t.Logf("VM build, cloud create → RUNNING (image import, volumes, seed, define, start): %v", build.Round(time.Millisecond))
	fmt.Printf("BENCH vm_build_seconds %.3f\n", build.Seconds())

	server := num(e.vmRecord(vmID)["server_id"])
	spec := e.vmSpec(server, vmID)
	domain := fmt.Sprintf("%s%d_%d", domPrefix, project, vmID)
	if spec.NICs[0].VNI != api.VNIMin {
		t.Fatalf("the VM's VNI is %d, not the region's first (%d): the test made the wrong bridge", spec.NICs[0].VNI, api.VNIMin)
	}

	t.Run("running domain", func(t *testing.T) {
		if st := domState(domain); st != "running" {
			t.Fatalf("domain %s is %q", domain, st)
		}
		d := dumpXML(t, domain)
		if strings.TrimSpace(d.VCPU) != "1" || d.Memory.Value != 1<<20 || d.Memory.Unit != "KiB" {
			t.Errorf("vcpu %q memory %d %s, want 1 and 1 GiB", d.VCPU, d.Memory.Value, d.Memory.Unit)
		}
		disks := d.disks()
		if len(disks) != 1 || disks["vda"] == "" {
			t.Fatalf("disks %v, want vda only", disks)
		}
		if !strings.HasPrefix(disks["vda"], e.disks+"/") {
			t.Errorf("vda %s is not in the storage type's directory %s", disks["vda"], e.disks)
		}
		if got := virtualSize(t, disks["vda"]); got != 1<<30 {
			t.Errorf("vda is %d bytes, want 1 GiB", got)
		}
		if len(d.Interfaces) != 1 {
			t.Fatalf("interfaces: %+v", d.Interfaces)
		}
		nic := d.Interfaces[0]
		if !strings.EqualFold(nic.MAC.Address, spec.NICs[0].MAC) || nic.Source.Bridge != bridge {
			t.Errorf("nic mac %s bridge %s, want %s on %s", nic.MAC.Address, nic.Source.Bridge, spec.NICs[0].MAC, bridge)
		}
		master, err := os.Readlink(filepath.Join("/sys/class/net", nic.Target.Dev, "master"))
		if err != nil || filepath.Base(master) != bridge {
			t.Errorf("tap %s master %q (%v), want %s", nic.Target.Dev, master, err, bridge)
		}
	})

	t.Run("agent restart adopts the domain", func(t *testing.T) {
		// SIGKILL and restart: the running domain is neither duplicated
		// nor restarted (same domain id), and the VM stays RUNNING.
		id := strings.TrimSpace(virsh(t, "domid", domain))
		if !e.agent.signal(syscall.SIGKILL, 10*time.Second) {
			t.Fatal("agent survived SIGKILL")
		}
		e.startAgent(e.agent.args[2])
		time.Sleep(3 * time.Second) // a resync (2 s) re-ensures it
		e.vmAt(vmID, api.StateRunning, 30*time.Second)
		if now := strings.TrimSpace(virsh(t, "domid", domain)); now != id {
			t.Errorf("domain id %s → %s: the restarted agent restarted the domain", id, now)
		}
		n := 0
		for _, d := range strings.Fields(virsh(t, "list", "--all", "--name")) {
			if strings.HasPrefix(d, domPrefix) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d domains with the test's prefix after the restart, want 1", n)
		}
	})
	t.Run("quiesce", func(t *testing.T) {
		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/vm/%d/", vmID), map[string]any{"state": api.StateQuiesce}, 200)
		took := e.vmAt(vmID, api.StateQuiesced, 2*time.Minute)
		t.Logf("quiesce, PATCH → QUIESCED: %v (ACPI shutdown timeout 3s: the tiny image has no OS)", took.Round(time.Millisecond))
		fmt.Printf("BENCH vm_quiesce_seconds %.3f\n", took.Seconds())
		if st := domState(domain); st != "shut off" {
			t.Errorf("quiesced domain is %q", st)
		}
	})
	t.Run("restart", func(t *testing.T) {
		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/vm/%d/", vmID), map[string]any{"state": api.StateRestart}, 200)
		took := e.vmAt(vmID, api.StateRunning, 2*time.Minute)
		t.Logf("restart, PATCH → RUNNING: %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH vm_restart_seconds %.3f\n", took.Seconds())
		if st := domState(domain); st != "running" {
			t.Errorf("restarted domain is %q", st)
		}
	})
	t.Run("update vcpu, ram and disks", func(t *testing.T) {
		primary := spec.Storages[0].ID
		start := time.Now()
		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/vm/%d/", vmID), map[string]any{"cpu": 2, "ram": 2,
			"storages": []any{map[string]any{"id": primary, "gb": 2}, map[string]any{"name": "data", "gb": 1}}}, 200)
		e.vmAt(vmID, api.StateRunning, 2*time.Minute)
		took := time.Since(start)
		t.Logf("update (vCPU, RAM: restart with a 3s ACPI timeout; disk grow, disk add), PATCH → RUNNING: %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH vm_update_seconds %.3f\n", took.Seconds())
		if st := domState(domain); st != "running" {
			t.Errorf("updated domain is %q", st)
		}
		d := dumpXML(t, domain)
		if strings.TrimSpace(d.VCPU) != "2" || d.Memory.Value != 2<<20 {
			t.Errorf("after update: vcpu %q memory %d KiB, want 2 and 2 GiB", d.VCPU, d.Memory.Value)
		}
		disks := d.disks()
		if len(disks) != 2 || disks["vdb"] == "" {
			t.Fatalf("after update: disks %v, want vda and vdb", disks)
		}
		if got := virtualSize(t, disks["vda"]); got != 2<<30 {
			t.Errorf("vda is %d bytes after the update, want 2 GiB", got)
		}
		if got := virtualSize(t, disks["vdb"]); got != 1<<30 {
			t.Errorf("vdb is %d bytes, want 1 GiB", got)
		}
	})
	t.Run("live disk grow", func(t *testing.T) {
		// A disk-only update needs no restart: QEMU grows the running disk.
		d := dumpXML(t, domain)
		var data uint64
		for _, s := range e.vmSpec(server, vmID).Storages {
			if !s.Primary {
				data = s.ID
			}
		}
		start := time.Now()
		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/vm/%d/", vmID), map[string]any{
			"storages": []any{map[string]any{"id": data, "gb": 3}}}, 200)
		e.vmAt(vmID, api.StateRunning, time.Minute)
		took := time.Since(start)
		t.Logf("disk-only update (live block resize), PATCH → RUNNING: %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH vm_disk_update_seconds %.3f\n", took.Seconds())
		if got := virtualSize(t, d.disks()["vdb"]); got != 3<<30 {
			t.Errorf("vdb is %d bytes after a live grow, want 3 GiB", got)
		}
		if st := domState(domain); st != "running" {
			t.Errorf("domain is %q after a disk-only update", st)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		m := e.metricsText()
		for _, want := range []string{`regent_agent_reconcile_total{kind="vm",result="ok"}`, "regent_vm_libvirt_up 1",
			`regent_agent_build_duration_seconds_bucket{action="build",kind="vm"`} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("scrub", func(t *testing.T) {
		files := dumpXML(t, domain).disks()
		e.api.must(e.root, "PATCH", fmt.Sprintf("/iaas/vm/%d/", vmID), map[string]any{"state": api.StateScrub}, 200)
		took := e.vmAt(vmID, api.StateClosed, 2*time.Minute)
		t.Logf("scrub, PATCH SCRUB → CLOSED (grace period 0): %v", took.Round(time.Millisecond))
		fmt.Printf("BENCH vm_scrub_seconds %.3f\n", took.Seconds())
		if st := domState(domain); st != "none" {
			t.Errorf("scrubbed domain still there: %q", st)
		}
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("volume %s left behind", f)
			}
		}
		left, _ := filepath.Glob(filepath.Join(e.disks, domain+"*"))
		seeds, _ := filepath.Glob(filepath.Join(h.seeds(), domain+"*"))
		if len(left)+len(seeds) > 0 {
			t.Errorf("files left behind: %v %v", left, seeds)
		}
		if vols := virsh(t, "vol-list", "regent-"+domPrefix+"SSD"+e.prefix); strings.Contains(vols, domain) {
			t.Errorf("pool still lists volumes of %s:\n%s", domain, vols)
		}
		// image_retention = "0s": the image volume no VM, disk or backup
		// uses any more goes at the complete fetch after CLOSED.
		img := filepath.Join(e.disks, h.imageVol)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if _, err := os.Stat(img); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("image volume %s still there 30s after the scrub", img)
			}
		}
		if vols := virsh(t, "vol-list", h.pool); strings.Contains(vols, h.imageVol) {
			t.Errorf("pool still lists the pruned image volume:\n%s", vols)
		}
		// The agent counts the prune after PruneImages returns, a moment
		// after the file went.
		var m string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if m = e.metricsText(); strings.Contains(m, "regent_agent_image_volumes_removed_total 1\n") || time.Now().After(deadline) {
				break
			}
		}
		if !strings.Contains(m, "regent_agent_image_volumes_removed_total 1\n") {
			t.Errorf("/metrics does not count the pruned image volume:\n%s", grepLines(m, "image_volumes"))
		}
	})
}
