package hostinfo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/systemtest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestCapacityReadsThisHost(t *testing.T) {
	dir := t.TempDir()
	var r Reader
	c, err := r.Capacity(map[string]string{"SSD": dir, "HDD": "/"})
	if err != nil {
		t.Fatal(err)
	}
	online, err := OnlineCPUs("/sys/devices/system/cpu/online")
	if err != nil {
		online = runtime.NumCPU()
	}
	if c.CPUCores != online || c.RAMMB == 0 {
		t.Errorf("capacity = %+v, want %d cores", c, online)
	}
	if len(c.Storage) != 2 || c.Storage[0].Type != "HDD" || c.Storage[1].Type != "SSD" {
		t.Fatalf("storage = %+v, want HDD then SSD", c.Storage)
	}
	for _, s := range c.Storage {
		if s.FreeGB > s.TotalGB {
			t.Errorf("%s: free %d > total %d", s.Type, s.FreeGB, s.TotalGB)
		}
	}
	if _, err := r.Capacity(map[string]string{"SSD": filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing storage directory is not an error")
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-3\n": 4, "0-3,8-11": 8, "0,2,4-5": 4, "1-1": 1} {
		if n, err := ParseCPUList(in); err != nil || n != want {
			t.Errorf("ParseCPUList(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"", "x", "3-1", "0-", "-2", "0,,1", "0-3 8"} {
		if n, err := ParseCPUList(in); err == nil {
			t.Errorf("ParseCPUList(%q) = %d, no error", in, n)
		}
	}
	p := filepath.Join(t.TempDir(), "online")
	os.WriteFile(p, []byte("0-31,64-95\n"), 0o644)
	if n, err := OnlineCPUs(p); err != nil || n != 64 {
		t.Errorf("OnlineCPUs = %d, %v", n, err)
	}
	r := Reader{CPUOnline: p}
	if c, err := r.Capacity(nil); err != nil || c.CPUCores != 64 {
		t.Errorf("capacity with 64 CPUs online: %+v, %v", c, err)
	}
}

// TestCapacityCountsCPUsOutsideTheAffinity: an agent whose CPU affinity
// is narrower than the host (a child of this test under one CPU) reports
// the host's online CPUs. Before, it reported runtime.NumCPU, the
// affinity's: the server record flipped to fewer cores whenever libvirt
// did not answer.
func TestCapacityCountsCPUsOutsideTheAffinity(t *testing.T) {
	if os.Getenv("HOSTINFO_CHILD") == "1" {
		var r Reader
		c, err := r.Capacity(nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("cores=%d numcpu=%d\n", c.CPUCores, runtime.NumCPU())
		return
	}
	online, err := OnlineCPUs("/sys/devices/system/cpu/online")
	if err != nil || online < 2 {
		t.Skipf("needs 2 online CPUs (%d, %v)", online, err)
	}
	var out []byte
	done := make(chan error, 1)
	go func() {
		// The thread ends with this goroutine (locked, never unlocked):
		// its narrowed affinity goes with it.
		runtime.LockOSThread()
		var one unix.CPUSet
		one.Set(0)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			done <- err
			return
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCapacityCountsCPUsOutsideTheAffinity$", "-test.count=1")
		cmd.Env = append(os.Environ(), "HOSTINFO_CHILD=1")
		var err error
		out, err = cmd.CombinedOutput()
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := fmt.Sprintf("cores=%d numcpu=1", online)
	if !strings.Contains(string(out), want) {
		t.Errorf("child under one CPU: %s; want %s", out, want)
	}
}

// TestHungStorageIsBounded: a storage directory whose statfs does not
// return (a hung mount) costs a capacity read StatTimeout, the others are
// still read, and it is not asked again while that statfs is under way.
// Before, the heartbeat goroutine blocked in it for ever.
func TestHungStorageIsBounded(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	// Not a tight timeout: the healthy directory's statfs goes through a
	// goroutine too, and a loaded machine may be slow to run it.
	r := Reader{StatTimeout: time.Second}
	r.statfs = func(dir string, st *syscall.Statfs_t) error {
		if dir == "/hung" {
			calls.Add(1)
			<-release
		}
		return syscall.Statfs("/", st)
	}
	storage := map[string]string{"HDD": "/hung", "SSD": "/"}
	for range 3 {
		start := time.Now()
		c, err := r.Capacity(storage)
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("a capacity read took %s", took)
		}
		if err == nil || !strings.Contains(err.Error(), "storage type HDD") || !strings.Contains(err.Error(), "did not answer") {
			t.Errorf("error %v does not name the hung type", err)
		}
		if len(c.Storage) != 1 || c.Storage[0].Type != "SSD" {
			t.Errorf("storage %+v: want SSD alone", c.Storage)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d statfs of the hung directory under way, want 1", n)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := r.Capacity(storage)
		if err == nil && len(c.Storage) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the directory answers again, but: %+v, %v", c, err)
		}
		time.Sleep(10 * time.Millisecond)
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

// TestInterfacesOfABusyHost (system): in a namespace of its own, 60 links
// tagged as the agent's segment bridges, 60 veth ends, a tap and a bridge
// named as the agent's are left out, and of 61 host links 40 reported (the
// bound is a parameter: 512 of 1,800 real links was the same test, and
// the kernel's removal of that many with the namespace held the global
// rtnl lock for some 20 s on this machine, stalling every netlink call of
// the tests run beside it; TestHostLinksBound checks MaxInterfaces itself).
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
	const limit = 40
	for i := range 60 {
		add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("sg%d", i)}}, fmt.Sprintf("regent:rg:segment:vxlan:%d", i))
		add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("host%03d", i)}}, "")
	}
	for i := range 30 {
		add(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("rgp%d", i)}, PeerName: fmt.Sprintf("vethx%d", i)}, "")
	}
	add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "rgb4242"}}, "")
	add(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}, "")
	if out, err := exec.Command("ip", "-n", name, "tuntap", "add", "mode", "tap", "name", "vnet0").CombinedOutput(); err != nil {
		t.Fatalf("ip tuntap add: %v: %s", err, out)
	}
	ifs, left, err := interfacesOf(h, "rg", limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != limit || left != 61-limit {
		t.Fatalf("reported %d, left out %d: want %d and %d", len(ifs), left, limit, 61-limit)
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

// TestHungStoragesCostOneTimeout: storage types are read at once, so
// three on one dead NFS server cost a read one StatTimeout, not three; and
// a later read does not wait for a statfs still under way from an earlier
// one again. Before, each type waited StatTimeout in turn, at every read.
func TestHungStoragesCostOneTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	const timeout = 2 * time.Second
	r := Reader{StatTimeout: timeout}
	r.statfs = func(dir string, st *syscall.Statfs_t) error {
		if strings.HasPrefix(dir, "/nfs") {
			<-release
		}
		return syscall.Statfs("/", st)
	}
	storage := map[string]string{"HDD": "/nfs1", "SSD": "/nfs2", "NVME": "/nfs3", "LOCAL": "/"}
	start := time.Now()
	c, err := r.Capacity(storage)
	if took := time.Since(start); took > 2*timeout {
		t.Errorf("the first read took %s: the hung types were waited for in turn", took)
	}
	if err == nil || len(c.Storage) != 1 {
		t.Errorf("storage %+v, error %v: want LOCAL alone and the others named", c.Storage, err)
	}
	start = time.Now()
	c, err = r.Capacity(storage)
	if took := time.Since(start); took > timeout/2 {
		t.Errorf("the second read took %s: it waited for the pending statfs again", took)
	}
	if err == nil || !strings.Contains(err.Error(), "storage type NVME") || len(c.Storage) != 1 {
		t.Errorf("second read: storage %+v, error %v", c.Storage, err)
	}
}
