package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"
)

func testSpec(e *testEnv) *api.VMSpec {
	return &api.VMSpec{
		ID: 7, ProjectID: 42, Name: "web1", State: 4, Generation: 1,
		CPU: 1, RAMMB: 128,
		Image: api.ImageSpec{ID: 3, Filename: "tiny.qcow2", CloudInit: true,
			Source: e.image, SHA256: e.imageSum},
		StorageType: "ssd",
		Storages:    []api.StorageSpec{{ID: 11, Name: "root", GB: 1, Primary: true}},
		NICs: []api.NICSpec{{SubnetID: 5, MAC: "52:54:00:ab:cd:07", Addresses: []string{"10.0.0.2/24"},
			Gateway: "10.0.0.1", VNI: e.vni}},
		Metadata: api.MetadataSpec{InstanceID: "42_7", Hostname: "web1", PublicKeys: []string{"ssh-ed25519 AAAA test"}},
	}
}

// TestSystemLifecycle builds a VM on a real libvirtd (QEMU TCG) and takes
// it through quiesce, restart, update and scrub.
func TestSystemLifecycle(t *testing.T) {
	// It restarts libvirtd: no other package's test may use it meanwhile.
	systemtest.Hold(t, "libvirtd", true)
	c := needLibvirt(t)
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	b := systemBuilder(t, c, c, e, e.config())
	b.SetServerID(1) // registered
	spec := testSpec(e)
	name := b.DomainName(spec)

	// Build, twice: the second is a no-op.
	start := time.Now()
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Logf("build to running: %v", time.Since(start))
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("second build: %v", err)
	}
	names, _ := c.ListDomains(ctx)
	n := 0
	for _, x := range names {
		if x == name {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("domains named %s: %d", name, n)
	}
	wantState(t, ctx, b, spec, StateRunning)
	d := liveXML(t, ctx, c, name)
	if d.VCPU.Value != 1 || d.Memory.bytes() != 128<<20 || d.Type != "qemu" {
		t.Errorf("vcpu %d memory %d type %s", d.VCPU.Value, d.Memory.bytes(), d.Type)
	}
	disks := map[string]diskXML{}
	for _, dk := range d.Devices.Disks {
		disks[dk.Target.Dev] = dk
	}
	vda := disks["vda"]
	if vda.Source == nil || filepath.Base(vda.Source.File) != name+"_11.qcow2" || vda.Target.Bus != "virtio" {
		t.Errorf("vda: %+v", vda)
	}
	if cd, ok := disks["hdc"]; !ok || cd.Device != "cdrom" || cd.Source == nil || cd.Source.File != b.seedPath(name) {
		t.Errorf("seed cdrom: %+v", cd)
	}
	if len(d.Devices.Interfaces) != 1 {
		t.Fatalf("interfaces: %+v", d.Devices.Interfaces)
	}
	ifc := d.Devices.Interfaces[0]
	if ifc.MAC.Address != "52:54:00:ab:cd:07" || ifc.Source.Bridge != e.bridge || ifc.Target == nil {
		t.Fatalf("interface: %+v", ifc)
	}
	master := run(t, "ip", "-o", "link", "show", ifc.Target.Dev)
	if !strings.Contains(master, "master "+e.bridge) {
		t.Errorf("tap %s is not on %s: %s", ifc.Target.Dev, e.bridge, master)
	}
	if d.SysInfo == nil || !hasEntry(d.SysInfo.System, "product", "CloudCIX") || d.OS.SMBIOS == nil {
		t.Errorf("sysinfo: %+v os %+v", d.SysInfo, d.OS)
	}
	vol := filepath.Join(e.root, "pools", "ssd", name+"_11.qcow2")
	info := run(t, "qemu-img", "info", "-U", vol)
	if !strings.Contains(info, "backing file: "+filepath.Join(e.root, "pools", "ssd", "image_3_")) || !strings.Contains(info, "virtual size: 1 GiB") {
		t.Errorf("primary volume:\n%s", info)
	}
	if _, err := os.Stat(b.consoleLog(name)); err != nil {
		t.Errorf("console log: %v", err)
	}

	// Capacity and metrics.
	capa, err := b.Capacity(ctx)
	if err != nil || capa.CPUCores < 1 || capa.RAMMB < 512 {
		t.Errorf("capacity %+v: %v", capa, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "domain" && l.GetValue() == name {
					seen[mf.GetName()] = true
				}
			}
		}
	}
	for _, want := range []string{"regent_vm_cpu_seconds_total", "regent_vm_memory_bytes", "regent_vm_block_read_bytes_total",
		"regent_vm_network_receive_bytes_total", "regent_vm_domain_state"} {
		if !seen[want] {
			t.Errorf("metric %s missing for %s (have %v)", want, name, seen)
		}
	}

	// libvirtd restarts under the builder: the connection comes back, the
	// domain kept running, and building again makes no duplicate.
	reconnects := c.Reconnects()
	restartLibvirtd(t)
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("build after libvirtd restart: %v", err)
	}
	if c.Reconnects() <= reconnects {
		t.Errorf("reconnects %d → %d across a libvirtd restart", reconnects, c.Reconnects())
	}
	wantState(t, ctx, b, spec, StateRunning)
	if doms, _ := b.Domains(ctx); len(doms) != 1 || doms[0] != name {
		t.Errorf("domains after libvirtd restart: %v", doms)
	}

	// Quiesce: the guest does not boot an OS, ignores ACPI, and is destroyed
	// after the timeout.
	if err := b.Quiesce(ctx, spec); err != nil {
		t.Fatalf("quiesce: %v", err)
	}
	wantState(t, ctx, b, spec, StateShutoff)
	if err := b.Quiesce(ctx, spec); err != nil {
		t.Fatalf("second quiesce: %v", err)
	}

	// Restart.
	if err := b.Restart(ctx, spec); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := b.Restart(ctx, spec); err != nil {
		t.Fatalf("second restart: %v", err)
	}
	wantState(t, ctx, b, spec, StateRunning)

	// Update: vCPU, RAM, grow the primary disk, add a disk.
	spec.CPU, spec.RAMMB, spec.Generation = 2, 192, 2
	spec.Storages[0].GB = 2
	spec.Storages = append(spec.Storages, api.StorageSpec{ID: 12, Name: "data", GB: 1})
	if err := b.Update(ctx, spec); err != nil {
		t.Fatalf("update: %v", err)
	}
	wantState(t, ctx, b, spec, StateRunning)
	d = liveXML(t, ctx, c, name)
	if d.VCPU.Value != 2 || d.Memory.bytes() != 192<<20 {
		t.Errorf("after update: vcpu %d memory %d", d.VCPU.Value, d.Memory.bytes())
	}
	var targets []string
	for _, dk := range d.Devices.Disks {
		targets = append(targets, dk.Target.Dev)
	}
	if strings.Join(targets, ",") != "vda,vdb,hdc" {
		t.Errorf("disks after update: %v", targets)
	}
	if info := run(t, "qemu-img", "info", "-U", vol); !strings.Contains(info, "virtual size: 2 GiB") {
		t.Errorf("primary after update:\n%s", info)
	}
	// Growing a disk of a running domain goes through QEMU.
	spec.Storages[1].GB = 2
	if err := b.Update(ctx, spec); err != nil {
		t.Fatalf("update disk: %v", err)
	}
	vdb := filepath.Join(e.root, "pools", "ssd", name+"_12.qcow2")
	if info := run(t, "qemu-img", "info", "-U", vdb); !strings.Contains(info, "virtual size: 2 GiB") {
		t.Errorf("vdb after live grow:\n%s", info)
	}

	// Scrub: nothing left.
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatalf("scrub: %v", err)
	}
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatalf("second scrub: %v", err)
	}
	if _, ok, err := b.State(ctx, spec); ok || err != nil {
		t.Errorf("domain after scrub: ok=%v err=%v", ok, err)
	}
	left, _ := filepath.Glob(filepath.Join(e.root, "pools", "ssd", name+"*"))
	if len(left) > 0 {
		t.Errorf("volumes left: %v", left)
	}
	for _, f := range []string{b.seedPath(name), b.consoleLog(name)} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left", f)
		}
	}
}

func hasEntry(es []entryXML, name, value string) bool {
	for _, e := range es {
		if e.Name == name && e.Value == value {
			return true
		}
	}
	return false
}

func wantState(t *testing.T, ctx context.Context, b *Builder, spec *api.VMSpec, want DomainState) {
	t.Helper()
	st, ok, err := b.State(ctx, spec)
	if err != nil || !ok || st != want {
		t.Fatalf("state %v (defined %v, err %v), want %v", st, ok, err, want)
	}
}

func liveXML(t *testing.T, ctx context.Context, c *Conn, name string) *domainXML {
	t.Helper()
	x, err := c.DomainXML(ctx, name, false)
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDomainXML(x)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
