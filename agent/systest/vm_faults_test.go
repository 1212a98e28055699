package systest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// Fault tests of the hypervisor role (issue 7, done-when 4 and 5): the
// real regent-agent process, driven through the controller API, while
// libvirtd restarts under it or while it is SIGKILLed mid-build.

// hypervisor is an env with a controller, an agent with the hypervisor
// role, a registered image and the segment bridge of the region's first
// VNI, as TestAgentVMs sets them up.
type hypervisor struct {
	*env
	vmRoot    string // the agent's directories (world-readable)
	domPrefix string
	pool      string // the storage type's libvirt pool
	imageVol  string // the image's volume name in that pool
	config    string // the agent's config file
}

// newHypervisor starts it all with an image of imageMiB MiB of data (a
// bigger image makes the import, and so BUILDING, last longer).
func newHypervisor(t *testing.T, imageMiB int) *hypervisor {
	e := newEnv(t)
	requireLibvirt(t)
	h := &hypervisor{env: e, vmRoot: vmTestRoot(t, e.prefix), domPrefix: e.prefix + "-"}
	e.cleanupDomains(h.domPrefix)
	// Before that cleanup (cleanups run last first): libvirtd answers, even
	// if this test, or another on the host, has just restarted it.
	t.Cleanup(func() { libvirtdUp(t) })
	e.disks = filepath.Join(h.vmRoot, "pool-ssd")
	images := filepath.Join(h.vmRoot, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	image, sum := makeImage(t, filepath.Join(images, "data.qcow2"), 0x5a, imageMiB)
	e.startController()
	e.catalogue()
	h.pool = "regent-" + h.domPrefix + "SSD" + e.prefix
	h.setImage(image, sum)
	h.config = e.writeAgentConfig(`["hypervisor"]`, fmt.Sprintf(`domain_type = "qemu"
domain_prefix = %q
storage_root = %q
image_dir = %q
seed_dir = %q
console_log_dir = %q
backup_dir = %q
shutdown_timeout = "3s"
image_retention = "0s"
`, h.domPrefix, filepath.Join(h.vmRoot, "pools"), images, h.seeds(), filepath.Join(h.vmRoot, "console"), filepath.Join(h.vmRoot, "backups")))
	e.startAgent(h.config)
	bridge := netrouter.SegmentBridge(e.prefix, netrouter.ModeVXLAN, api.VNIMin)
	sh(t, "ip", "link", "add", bridge, "type", "bridge")
	sh(t, "ip", "link", "set", bridge, "up")
	return h
}

// makeImage writes a qcow2 image with mib MiB of data (byte pattern) and
// returns its path and sha256.
func makeImage(t *testing.T, path string, pattern byte, mib int) (string, string) {
	t.Helper()
	sh(t, "qemu-img", "create", "-q", "-f", "qcow2", path, fmt.Sprintf("%dM", 2*mib))
	// Real data, so that the import copies (and hashes) mib MiB.
	sh(t, "qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P 0x%x 0 %dM", pattern, mib), path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hash := sha256.New()
	if _, err := io.Copy(hash, f); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(hash.Sum(nil))
}

// setImage points the test's image at path (an operator publishing a new
// version of the image).
func (h *hypervisor) setImage(path, sum string) {
	h.api.must(h.root, "PATCH", fmt.Sprintf("/iaas/image/%d/", h.img), map[string]any{"source": path, "sha256": sum}, 200)
	h.imageVol = fmt.Sprintf("image_%d_%s", h.img, sum[:16]) // agent/vm imageVolume
}

func (h *hypervisor) seeds() string { return filepath.Join(h.vmRoot, "seeds") }

// cloud creates a project with one subnet and a VM per entry of disks
// (the GB of each VM's storages, the first primary); it returns the
// project and the VM ids.
func (h *hypervisor) cloud(disks ...[]int) (uint64, []uint64) {
	var vms []any
	for i, d := range disks {
		vms = append(vms, h.vmBody(fmt.Sprintf("vm-%d", i), h.img, 10+i, d...))
	}
	return h.cloudWith("p-"+h.prefix, vms...)
}

// vmBody is a VM of image img at address .<host> of the subnet, with a
// storage of each of gb (the first primary).
func (h *hypervisor) vmBody(name string, img uint64, host int, gb ...int) map[string]any {
	var st []any
	for j, g := range gb {
		st = append(st, map[string]any{"name": fmt.Sprintf("d%d", j), "gb": g, "primary": j == 0})
	}
	return map[string]any{"name": name, "image_id": img, "storage_type_id": h.st,
		"cpu": 1, "ram": 1, "dns": "1.1.1.1", "gateway_subnet": h.priv3 + ".1/24", "public_key": sshKey,
		"storages":     st,
		"ip_addresses": []any{map[string]any{"address": fmt.Sprintf("%s.%d", h.priv3, host), "nat": false}}}
}

// cloudWith creates project name with one subnet and vms; it returns the
// project and the VM ids.
func (h *hypervisor) cloudWith(name string, vms ...any) (uint64, []uint64) {
	c := h.api.must(h.root, "POST", "/iaas/cloud/", map[string]any{
		"project":        map[string]any{"name": name, "region_id": h.region, "grace_period": 0},
		"subnets":        []any{map[string]any{"name": "a", "address_range": h.priv3 + ".1/24"}},
		"vms":            vms,
		"firewall_rules": []any{},
	}, 201)
	var ids []uint64
	for _, v := range c["vms"].([]any) {
		ids = append(ids, num(v.(map[string]any)["id"]))
	}
	return num(c["project"].(map[string]any)["id"]), ids
}

func (h *hypervisor) domain(project, vm uint64) string {
	return fmt.Sprintf("%s%d_%d", h.domPrefix, project, vm)
}

// domains lists the domains with the test's prefix, sorted.
func (h *hypervisor) domains() []string {
	var out []string
	for _, d := range strings.Fields(virsh(h.t, "list", "--all", "--name")) {
		if strings.HasPrefix(d, h.domPrefix) {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// volumes are the pool's volumes as libvirt lists them (without a
// refresh: as the agent left libvirt's view) and the files in its
// directory, both sorted.
func (h *hypervisor) volumes() (libvirt, files []string) {
	for _, line := range strings.Split(virsh(h.t, "vol-list", h.pool), "\n")[2:] {
		if f := strings.Fields(line); len(f) > 0 {
			libvirt = append(libvirt, f[0])
		}
	}
	sort.Strings(libvirt)
	return libvirt, dirNames(h.t, h.disks)
}

// wantVolumes checks that the pool holds exactly the image and want, in
// libvirt and on disk (no partial import, no volume of another build).
func (h *hypervisor) wantVolumes(want ...string) {
	h.t.Helper()
	want = append([]string{h.imageVol}, want...)
	sort.Strings(want)
	lv, files := h.volumes()
	if !slices.Equal(lv, want) {
		h.t.Errorf("pool %s lists volumes %v, want %v", h.pool, lv, want)
	}
	if !slices.Equal(files, want) {
		h.t.Errorf("pool directory %s holds %v, want %v", h.disks, files, want)
	}
}

// dirNames lists a directory's entries, hidden ones included, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// vmState is the VM's state as the API shows it.
func (h *hypervisor) vmState(id uint64) int { return int(num(h.vmRecord(id)["state"])) }

var reconnectsRe = regexp.MustCompile(`(?m)^regent_agent_libvirt_reconnects_total (\S+)$`)

// reconnects is the agent's regent_agent_libvirt_reconnects_total (-1
// when it does not export it).
func (h *hypervisor) reconnects() float64 {
	m := reconnectsRe.FindStringSubmatch(h.metricsText())
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// libvirtdPid is the pid of the running libvirtd (0 when none).
func libvirtdPid() int {
	b, err := os.ReadFile("/run/libvirtd.pid")
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

func libvirtdUp(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("bash", "../../scripts/libvirtd-up.sh").CombinedOutput(); err != nil {
		t.Fatalf("start libvirtd: %v\n%s", err, out)
	}
	waitLibvirtd(t)
}

// TestAgentLibvirtdRestart (done-when 4): libvirtd stops (SIGTERM, as a
// package upgrade or an operator does) while the agent builds two VMs
// (their volumes, definitions and starts), and comes back a few seconds
// later. The agent reconnects by itself (its
// regent_agent_libvirt_reconnects_total counts it), both VMs end RUNNING
// with exactly one domain each, the pool holds exactly their volumes and
// the image, and a quiesce after the restart reaches libvirtd (QUIESCED
// and the domain shut off): the agent works on a live connection.
func TestAgentLibvirtdRestart(t *testing.T) {
	// It stops libvirtd: no other package's test may use it meanwhile.
	// Whatever happens below, libvirtd runs again when the test ends (the
	// other tests on this host need it): newHypervisor's cleanup starts it.
	systemtest.Hold(t, "libvirtd", true)
	h := newHypervisor(t, 64)
	before := h.reconnects()
	if before < 0 {
		t.Fatalf("the agent does not export regent_agent_libvirt_reconnects_total")
	}

	project, ids := h.cloud([]int{1}, []int{1, 1})
	// Stop libvirtd once the image is imported (the volumes, domain
	// definitions and starts, all libvirt calls, follow) with a VM still
	// BUILDING.
	eventually(t, "a VM BUILDING with the image imported", 3*time.Minute, func() bool {
		if _, err := os.Stat(filepath.Join(h.disks, h.imageVol)); err != nil {
			return false
		}
		running := 0
		for _, id := range ids {
			switch h.vmState(id) {
			case api.StateBuilding:
				return true
			case api.StateRunning:
				running++
			}
		}
		if running == len(ids) {
			t.Fatal("both VMs RUNNING before the test saw one BUILDING after the import")
		}
		return false
	})
	var building []string
	for _, id := range ids {
		building = append(building, fmt.Sprintf("%d:%s", id, api.StateNames[h.vmState(id)]))
	}
	pid := libvirtdPid()
	if pid == 0 {
		t.Fatal("no libvirtd running (/run/libvirtd.pid)")
	}
	t.Logf("stopping libvirtd (pid %d) with VMs %v", pid, building)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	eventually(t, "libvirtd to exit", time.Minute, func() bool { return syscall.Kill(pid, 0) != nil })
	// Down for a few seconds: the agent's calls fail and are retried.
	time.Sleep(4 * time.Second)
	libvirtdUp(t)
	t.Logf("libvirtd down for %v", time.Since(stopped).Round(time.Millisecond))

	var want, vols []string
	for _, id := range ids {
		h.vmAt(id, api.StateRunning, 5*time.Minute)
		d := h.domain(project, id)
		want = append(want, d)
		if st := domState(d); st != "running" {
			t.Errorf("domain %s is %q", d, st)
		}
		for _, s := range h.vmSpec(num(h.vmRecord(id)["server_id"]), id).Storages {
			vols = append(vols, fmt.Sprintf("%s_%d.qcow2", d, s.ID))
		}
	}
	sort.Strings(want)
	if got := h.domains(); !slices.Equal(got, want) {
		t.Errorf("domains after the libvirtd restart: %v, want exactly %v", got, want)
	}
	h.wantVolumes(vols...)
	if after := h.reconnects(); after <= before {
		t.Errorf("regent_agent_libvirt_reconnects_total %v → %v across a libvirtd restart", before, after)
	}
	if log, _ := os.ReadFile(h.agent.logPath); !strings.Contains(string(log), "reconnected to libvirtd") {
		t.Errorf("the agent did not log its reconnect")
	}

	// A state change after the restart reaches libvirtd.
	h.api.must(h.root, "PATCH", fmt.Sprintf("/iaas/vm/%d/", ids[0]), map[string]any{"state": api.StateQuiesce}, 200)
	h.vmAt(ids[0], api.StateQuiesced, 2*time.Minute)
	if d := h.domain(project, ids[0]); domState(d) != "shut off" {
		t.Errorf("quiesced domain %s is %q", d, domState(d))
	}
	if st := domState(h.domain(project, ids[1])); st != "running" {
		t.Errorf("the other domain is %q", st)
	}
	if got := h.domains(); !slices.Equal(got, want) {
		t.Errorf("domains after the quiesce: %v, want exactly %v", got, want)
	}
}

// TestAgentKilledMidBuild (done-when 5): the agent is SIGKILLed twice
// while it builds a VM with two disks, first while it imports the image
// (a partial import file in the pool, which a pool refresh has put in
// libvirt's list; the operator then publishes a new version of the image
// before the agent restarts), then once the VM's first volume exists, and
// restarted with the same config each time. The VM ends
// RUNNING with exactly one domain; the pool holds exactly the image and
// the VM's two volumes (libvirt's list and the directory agree: no
// partial import, no stray volume) and the seed directory only its seed.
// A scrub then leaves only the image.
func TestAgentKilledMidBuild(t *testing.T) {
	h := newHypervisor(t, 512)
	project, ids := h.cloud([]int{1, 1})
	id := ids[0]
	dom := h.domain(project, id)

	kill := func(at string) {
		t.Helper()
		if !h.agent.signal(syscall.SIGKILL, 10*time.Second) {
			t.Fatal("agent survived SIGKILL")
		}
		t.Logf("agent SIGKILLed %s: VM %s, domain %q, pool directory %v", at,
			api.StateNames[h.vmState(id)], domState(dom), dirNames(t, h.disks))
	}

	// 1. During the image import: its temporary file is in the pool.
	var partial []string
	eventually(t, "the image import to start", 2*time.Minute, func() bool {
		partial, _ = filepath.Glob(filepath.Join(h.disks, ".import-*"))
		if len(partial) == 0 && h.vmState(id) == api.StateRunning {
			t.Fatal("VM RUNNING before the test saw the import: make the image bigger")
		}
		return len(partial) > 0
	})
	// A pool refresh now (the heartbeat's capacity refresh does the same)
	// puts the partial file in libvirt's list: the agent must take it out
	// of libvirt's view too, not only off the disk.
	virsh(t, "pool-refresh", h.pool)
	kill("mid-import")
	if st := h.vmState(id); st != api.StateBuilding {
		t.Fatalf("VM %s after the kill, want BUILDING", api.StateNames[st])
	}
	// While the agent is down the operator publishes a new version of the
	// image: the restarted agent imports that one, and the partial import
	// of the old one must not stay behind (on disk or in libvirt's list).
	h.setImage(makeImage(t, filepath.Join(h.vmRoot, "images", "data-v2.qcow2"), 0x33, 256))
	h.startAgent(h.config)

	// 2. Once the VM's first volume exists (before or around the domain
	// definition).
	first := func() string {
		for _, f := range dirNames(t, h.disks) {
			if strings.HasPrefix(f, dom+"_") {
				return f
			}
		}
		return ""
	}
	eventually(t, "the VM's first volume", 3*time.Minute, func() bool {
		if first() == "" && h.vmState(id) == api.StateRunning {
			t.Fatal("VM RUNNING before the test saw its volume")
		}
		return first() != ""
	})
	kill("after the first volume")
	h.startAgent(h.config)

	took := h.vmAt(id, api.StateRunning, 5*time.Minute)
	t.Logf("after the second restart, RUNNING in %v", took.Round(time.Millisecond))
	if got := h.domains(); !slices.Equal(got, []string{dom}) {
		t.Errorf("domains %v, want exactly [%s]", got, dom)
	}
	if st := domState(dom); st != "running" {
		t.Errorf("domain %s is %q", dom, st)
	}
	var vols []string
	for _, s := range h.vmSpec(num(h.vmRecord(id)["server_id"]), id).Storages {
		vols = append(vols, fmt.Sprintf("%s_%d.qcow2", dom, s.ID))
	}
	if len(vols) != 2 {
		t.Fatalf("the VM has %d storages, want 2", len(vols))
	}
	h.wantVolumes(vols...)
	for _, p := range partial {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("partial import %s left behind", p)
		}
	}
	if got := dirNames(t, h.seeds()); !slices.Equal(got, []string{dom + "-seed.iso"}) {
		t.Errorf("seed directory holds %v, want only %s-seed.iso", got, dom)
	}

	// Scrub: the VM's volumes and seed go, and (image_retention = "0s")
	// the image at the complete work fetch after CLOSED.
	h.api.must(h.root, "PATCH", fmt.Sprintf("/iaas/vm/%d/", id), map[string]any{"state": api.StateScrub}, 200)
	h.vmAt(id, api.StateClosed, 2*time.Minute)
	if got := h.domains(); len(got) > 0 {
		t.Errorf("domains after the scrub: %v", got)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		lv, files := h.volumes()
		if len(lv) == 0 && len(files) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("30s after the scrub the pool lists %v and its directory holds %v, want nothing", lv, files)
			break
		}
	}
	if got := dirNames(t, h.seeds()); len(got) > 0 {
		t.Errorf("seed directory after the scrub: %v", got)
	}
}
