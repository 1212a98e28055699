package hostinfo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/systemtest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestCapacityReadsThisHost(t *testing.T) {
	dir := t.TempDir()
	c, err := Capacity(map[string]string{"SSD": dir, "HDD": "/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.CPUCores != runtime.NumCPU() || c.RAMMB == 0 {
		t.Errorf("capacity = %+v", c)
	}
	if len(c.Storage) != 2 || c.Storage[0].Type != "HDD" || c.Storage[1].Type != "SSD" {
		t.Fatalf("storage = %+v, want HDD then SSD", c.Storage)
	}
	for _, s := range c.Storage {
		if s.FreeGB > s.TotalGB {
			t.Errorf("%s: free %d > total %d", s.Type, s.FreeGB, s.TotalGB)
		}
	}
	if _, err := Capacity(map[string]string{"SSD": filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing storage directory is not an error")
	}
}

func TestMemTotal(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemFree: 1 kB\nMemTotal:       24576000 kB\n"), 0o644)
	if kb, err := MemTotalKiB(p); err != nil || kb/1024 != 24000 {
		t.Errorf("MemTotalKiB = %d, %v", kb, err)
	}
	os.WriteFile(p, []byte("nothing\n"), 0o644)
	if _, err := MemTotalKiB(p); err == nil {
		t.Error("no MemTotal line is not an error")
	}
}

func TestInterfaces(t *testing.T) {
	ifs, _, err := Interfaces("rg")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name == "lo" || i.MAC == "" {
			t.Errorf("unexpected interface %+v", i)
		}
	}
}

// TestHostLink: the host's NICs, bonds, VLANs and bridges (the public
// bridge too) are reported; VM taps, veths and the links of the agent with
// this prefix (tagged, or named as its segment links) are not.
func TestHostLink(t *testing.T) {
	mac := "52:54:00:00:00:01"
	for _, c := range []struct {
		l    Link
		want bool
	}{
		{Link{Name: "eth0", Type: "device", MAC: mac}, true},
		{Link{Name: "bond0", Type: "bond", MAC: mac}, true},
		{Link{Name: "bond0.100", Type: "vlan", MAC: mac}, true},
		{Link{Name: "vlan10", Type: "vlan", MAC: mac}, true},
		{Link{Name: "br0", Type: "bridge", MAC: mac}, true},
		{Link{Name: "br-public", Type: "bridge", MAC: mac, Alias: "regent:rg:public"}, true},
		{Link{Name: "otb7", Type: "bridge", MAC: mac, Alias: "regent:ot:segment:vxlan:7"}, true}, // another prefix's
		{Link{Name: "vxlan0", Type: "vxlan", MAC: mac}, true},
		{Link{Name: "lo", Type: "device", MAC: "00:00:00:00:00:00", Loopback: true}, false},
		{Link{Name: "wg0", Type: "wireguard"}, false},
		{Link{Name: "vnet12", Type: "tuntap", MAC: mac}, false},
		{Link{Name: "macvtap0", Type: "macvtap", MAC: mac}, false},
		{Link{Name: "rgp42", Type: "veth", MAC: mac, Alias: "regent:rg:router:3:42"}, false},
		{Link{Name: "veth1234", Type: "veth", MAC: mac}, false},
		{Link{Name: "rgb100", Type: "bridge", MAC: mac, Alias: "regent:rg:segment:vxlan:100"}, false},
		{Link{Name: "rgx100", Type: "vxlan", MAC: mac, Alias: "regent:rg:segment:vxlan:100"}, false},
		{Link{Name: "rgv30", Type: "vlan", MAC: mac, Alias: "regent:rg:segment:vlan:30"}, false},
		{Link{Name: "rgb100", Type: "bridge", MAC: mac}, false},    // ours, not tagged yet
		{Link{Name: "rgxh1a2b3c", Type: "vxlan", MAC: mac}, false}, // ours, hashed id
		{Link{Name: "rgl5", Type: "bridge", MAC: mac}, false},      // ours (VLAN segment bridge)
		{Link{Name: "rgbackup", Type: "bridge", MAC: mac}, true},   // not an id
		{Link{Name: "rgx100", Type: "device", MAC: mac}, true},     // a NIC, whatever its name
		{Link{Name: "dummy9", Type: "dummy", MAC: mac, Alias: "uplink"}, true},
	} {
		if got := HostLink(c.l, "rg"); got != c.want {
			t.Errorf("HostLink(%+v) = %v, want %v", c.l, got, c.want)
		}
	}
}

// TestHostLinksBound: at most the bound are kept, the NICs and bonds
// first, and the rest counted: the controller refuses a registration of
// more than MaxInterfaces.
func TestHostLinksBound(t *testing.T) {
	var links []Link
	for i := range 300 {
		links = append(links, Link{Name: fmt.Sprintf("vnet%d", i), Type: "tuntap", MAC: "fe:54:00:00:00:01"})
		links = append(links, Link{Name: fmt.Sprintf("rgb%d", i), Type: "bridge", MAC: "fe:54:00:00:00:02", Alias: fmt.Sprintf("regent:rg:segment:vxlan:%d", i)})
		links = append(links, Link{Name: fmt.Sprintf("d%03d", i), Type: "dummy", MAC: "fe:54:00:00:00:03"})
	}
	links = append(links, Link{Name: "zeth0", Type: "device", MAC: "52:54:00:00:00:01"})
	kept, left := HostLinks(links, "rg", 100)
	if len(kept) != 100 || left != 201 {
		t.Fatalf("kept %d, left %d: want 100 and 201", len(kept), left)
	}
	if kept[len(kept)-1].Name != "zeth0" || kept[0].Name != "d000" {
		t.Errorf("kept %s .. %s: want d000 .. zeth0 (the NIC kept, by name)", kept[0].Name, kept[len(kept)-1].Name)
	}
	if kept, left := HostLinks(links, "rg", MaxInterfaces); len(kept) != 301 || left != 0 {
		t.Errorf("under the bound: kept %d, left %d", len(kept), left)
	}
}

// TestInterfacesOfABusyHost (system): in a namespace of its own, 600 links
// tagged as the agent's segment bridges, 600 veth ends, a tap and a bridge
// named as the agent's are left out, and of 601 host links 512 reported.
func TestInterfacesOfABusyHost(t *testing.T) {
	if os.Geteuid() != 0 {
		systemtest.Skip(t, "hostinfo system test needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		systemtest.Skip(t, "hostinfo system test needs ip (iproute2)")
	}
	name := fmt.Sprintf("rghi%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	add := func(l netlink.Link, alias string) {
		t.Helper()
		if err := h.LinkAdd(l); err != nil {
			t.Fatalf("add %s: %v", l.Attrs().Name, err)
		}
		if alias != "" {
			if err := h.LinkSetAlias(l, alias); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 600 {
		add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("sg%d", i)}}, fmt.Sprintf("regent:rg:segment:vxlan:%d", i))
		add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("host%03d", i)}}, "")
	}
	for i := range 300 {
		add(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("rgp%d", i)}, PeerName: fmt.Sprintf("vethx%d", i)}, "")
	}
	add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "rgb4242"}}, "")
	add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}, "")
	if out, err := exec.Command("ip", "-n", name, "tuntap", "add", "mode", "tap", "name", "vnet0").CombinedOutput(); err != nil {
		t.Fatalf("ip tuntap add: %v: %s", err, out)
	}
	ifs, left, err := interfacesOf(h, "rg", MaxInterfaces)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != MaxInterfaces || left != 601-MaxInterfaces {
		t.Fatalf("reported %d, left out %d: want %d and %d", len(ifs), left, MaxInterfaces, 601-MaxInterfaces)
	}
	sawBridge := false
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "rg") || strings.HasPrefix(i.Name, "sg") || strings.HasPrefix(i.Name, "veth") || i.Name == "vnet0" || i.Name == "lo" || i.MAC == "" {
			t.Errorf("reported %+v", i)
		}
		sawBridge = sawBridge || i.Name == "br0"
	}
	if !sawBridge {
		t.Error("the host's bridge br0 is not among those reported")
	}
}
