package vm

import (
	"strings"
	"testing"

	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
)

func unitBuilder(t *testing.T, l Libvirt, cfg Config) *Builder {
	t.Helper()
	if cfg.DomainType == "" {
		cfg.DomainType = "qemu"
	}
	b, err := New(cfg, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.SetServerID(1) // registered
	return b
}

func xmlSpec() *api.VMSpec {
	return &api.VMSpec{ID: 7, ProjectID: 42, Generation: 3, CPU: 2, RAMMB: 2048,
		Image:       api.ImageSpec{ID: 3},
		StorageType: "ssd",
		Storages:    []api.StorageSpec{{ID: 30, GB: 5}, {ID: 11, GB: 20, Primary: true}, {ID: 12, GB: 1}},
		NICs: []api.NICSpec{
			{MAC: "52:54:00:AB:CD:07", VNI: 100, VLAN: 1000},
			{MAC: "52:54:00:ab:cd:17", VNI: 101, VLAN: 1001},
		},
	}
}

func TestDomainXML(t *testing.T) {
	b := unitBuilder(t, nil, Config{NamePrefix: "t-", StorageRoot: "/pools", SeedDir: "/seeds", ConsoleLogDir: "/logs"})
	p, err := b.plan(xmlSpec())
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Disks {
		p.Disks[i].Path = "/pools/ssd/" + p.Disks[i].Volume
	}
	x, err := domainXMLFor(p)
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDomainXML(string(x))
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != "qemu" || d.Name != "t-42_7" || d.UUID != domainUUID("t-42_7") {
		t.Errorf("type %s name %s uuid %s", d.Type, d.Name, d.UUID)
	}
	if d.VCPU.Value != 2 || d.Memory.bytes() != 2048<<20 || d.CurrentMemory.bytes() != 2048<<20 {
		t.Errorf("vcpu %d memory %d", d.VCPU.Value, d.Memory.bytes())
	}
	// Primary first, then the others by storage id; the seed last.
	var disks []string
	for _, dk := range d.Devices.Disks {
		disks = append(disks, dk.Target.Dev+"="+dk.Source.File+"/"+dk.Target.Bus+"/"+dk.Driver.Type)
	}
	want := "vda=/pools/ssd/t-42_7_11.qcow2/virtio/qcow2,vdb=/pools/ssd/t-42_7_12.qcow2/virtio/qcow2," +
		"vdc=/pools/ssd/t-42_7_30.qcow2/virtio/qcow2,hdc=/seeds/t-42_7-seed.iso/ide/raw"
	if got := strings.Join(disks, ","); got != want {
		t.Errorf("disks\n %s\nwant\n %s", got, want)
	}
	if cd := d.Devices.Disks[3]; cd.Device != "cdrom" || cd.ReadOnly == nil || cd.Snapshot != "no" {
		t.Errorf("seed: %+v", cd)
	}
	if len(d.Devices.Interfaces) != 2 {
		t.Fatalf("interfaces %+v", d.Devices.Interfaces)
	}
	for i, want := range []struct{ mac, br string }{
		{"52:54:00:ab:cd:07", netrouter.SegmentBridge("", netrouter.ModeVXLAN, 100)},
		{"52:54:00:ab:cd:17", netrouter.SegmentBridge("", netrouter.ModeVXLAN, 101)},
	} {
		ifc := d.Devices.Interfaces[i]
		if ifc.Type != "bridge" || ifc.MAC.Address != want.mac || ifc.Source.Bridge != want.br || ifc.Model.Type != "virtio" {
			t.Errorf("interface %d: %+v %+v %+v", i, ifc, ifc.MAC, ifc.Source)
		}
	}
	if br := d.Devices.Interfaces[0].Source.Bridge; br != "rgb100" {
		t.Errorf("bridge %s, want rgb100 (netrouter's default naming)", br)
	}
	if d.SysInfo == nil || d.SysInfo.Type != "smbios" || !hasEntry(d.SysInfo.System, "product", "CloudCIX") {
		t.Errorf("sysinfo %+v", d.SysInfo)
	}
	if d.OS.SMBIOS == nil || d.OS.SMBIOS.Mode != "sysinfo" || d.OS.Type.Value != "hvm" {
		t.Errorf("os %+v", d.OS)
	}
	if len(d.Devices.Serials) != 1 || d.Devices.Serials[0].Log == nil || d.Devices.Serials[0].Log.File != "/logs/t-42_7-serial.log" {
		t.Errorf("serial %+v", d.Devices.Serials)
	}
	if d.Metadata == nil || d.Metadata.VM == nil || d.Metadata.VM.ID != 7 || d.Metadata.VM.Generation != 3 {
		t.Errorf("metadata %+v", d.Metadata)
	}
	if !strings.Contains(string(x), `xmlns="`+regentNS+`"`) {
		t.Errorf("metadata namespace missing:\n%s", x)
	}

	// VLAN segments use the VLAN bridge; kvm where configured.
	b = unitBuilder(t, nil, Config{DomainType: "kvm", SegmentMode: netrouter.ModeVLAN, BridgePrefix: "zz"})
	p, _ = b.plan(xmlSpec())
	x, _ = domainXMLFor(p)
	d, _ = parseDomainXML(string(x))
	if d.Type != "kvm" || d.Devices.Interfaces[0].Source.Bridge != netrouter.SegmentBridge("zz", netrouter.ModeVLAN, 1000) {
		t.Errorf("vlan/kvm: type %s bridge %s", d.Type, d.Devices.Interfaces[0].Source.Bridge)
	}
}

func TestPlanRejects(t *testing.T) {
	b := unitBuilder(t, nil, Config{})
	for name, mut := range map[string]func(s *api.VMSpec){
		"no cpu":      func(s *api.VMSpec) { s.CPU = 0 },
		"no ram":      func(s *api.VMSpec) { s.RAMMB = 0 },
		"no primary":  func(s *api.VMSpec) { s.Storages[1].Primary = false },
		"two primary": func(s *api.VMSpec) { s.Storages[0].Primary = true },
		"zero gb":     func(s *api.VMSpec) { s.Storages[2].GB = 0 },
		"bad mac":     func(s *api.VMSpec) { s.NICs[0].MAC = "52:54:00" },
		"no segment":  func(s *api.VMSpec) { s.NICs[1].VNI = 0 },
	} {
		s := xmlSpec()
		mut(s)
		if _, err := b.plan(s); ErrorCode(err) != CodeBadSpec {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNames(t *testing.T) {
	for i, want := range map[int]string{0: "vda", 1: "vdb", 25: "vdz", 26: "vdaa", 27: "vdab"} {
		if got := diskTarget(i); got != want {
			t.Errorf("diskTarget(%d) = %s, want %s", i, got, want)
		}
	}
	u := domainUUID("42_7")
	if len(u) != 36 || u[14] != '5' || u != domainUUID("42_7") || u == domainUUID("42_8") {
		t.Errorf("uuid %s", u)
	}
	if _, err := New(Config{DomainType: "xen"}, nil, nil); err == nil {
		t.Error("xen accepted")
	}
}
