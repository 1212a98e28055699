// Package hostinfo reads what the agent reports about its server: CPU
// cores, memory, free disk per storage type, and network interfaces. It
// reads /proc and statfs directly, so the figures match the host even where
// libvirt's node information is unreliable (virtual machines).
package hostinfo

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/vishvananda/netlink"
)

// Reader reads the host's capacity. The storage directories are read at
// once, and one whose file system does not answer (a hung NFS or FUSE
// mount) costs a read at most StatTimeout after its statfs began: it is
// not asked again until that statfs returns, and a later read does not
// wait for it again. The heartbeat that reads them goes on. The zero
// Reader is ready to use.
type Reader struct {
	// StatTimeout bounds a storage directory's statfs (0: 5 s).
	StatTimeout time.Duration
	// CPUOnline is the kernel's list of online CPUs (""
	// /sys/devices/system/cpu/online).
	CPUOnline string
	// statfs is syscall.Statfs (nil), a test's stand-in otherwise.
	statfs func(string, *syscall.Statfs_t) error

	mu      sync.Mutex
	pending map[string]*statCall // statfs under way, by directory
}

// statCall is one statfs under way; done is closed when st and err are
// set.
type statCall struct {
	done    chan struct{}
	started time.Time
	st      syscall.Statfs_t
	err     error
}

// Capacity reads the host's cores (its online CPUs), memory and, for each
// storage type, the size and free space of the file system holding its
// directory. A storage type it cannot read is left out and named in the
// error.
func (r *Reader) Capacity(storage map[string]string) (api.Capacity, error) {
	online := r.CPUOnline
	if online == "" {
		online = "/sys/devices/system/cpu/online"
	}
	c := api.Capacity{CPUCores: runtime.NumCPU()}
	// runtime.NumCPU counts the CPUs of the process's affinity mask,
	// which may be narrower than the host's.
	if n, err := OnlineCPUs(online); err == nil && n > 0 {
		c.CPUCores = n
	}
	memKiB, err := MemTotalKiB("/proc/meminfo")
	if err != nil {
		return c, err
	}
	c.RAMMB = memKiB / 1024
	types := make([]string, 0, len(storage))
	for t := range storage {
		types = append(types, t)
	}
	sort.Strings(types)
	type result struct {
		st  syscall.Statfs_t
		err error
	}
	res := make([]result, len(types))
	var wg sync.WaitGroup
	for i, t := range types {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].st, res[i].err = r.stat(storage[t])
		}()
	}
	wg.Wait()
	var errs []error
	for i, t := range types {
		st, err := res[i].st, res[i].err
		if err != nil {
			errs = append(errs, fmt.Errorf("storage type %s: %w", t, err))
			continue
		}
		const gb = 1 << 30
		c.Storage = append(c.Storage, api.StorageCapacity{Type: t,
			TotalGB: st.Blocks * uint64(st.Bsize) / gb, FreeGB: st.Bavail * uint64(st.Bsize) / gb})
	}
	return c, errors.Join(errs...)
}

// stat is statfs of dir, waiting until StatTimeout after its statfs
// began: the one already under way for dir, if there is one (past that
// time already: its error at once), else a new one.
func (r *Reader) stat(dir string) (syscall.Statfs_t, error) {
	timeout := r.StatTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	statfs := r.statfs
	if statfs == nil {
		statfs = syscall.Statfs
	}
	r.mu.Lock()
	sc, ok := r.pending[dir]
	if !ok {
		if r.pending == nil {
			r.pending = map[string]*statCall{}
		}
		sc = &statCall{done: make(chan struct{}), started: time.Now()}
		r.pending[dir] = sc
		// Not stoppable: a statfs that hangs holds this goroutine, one
		// per directory at most, until it returns.
		go func() {
			sc.err = statfs(dir, &sc.st)
			r.mu.Lock()
			delete(r.pending, dir)
			r.mu.Unlock()
			close(sc.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-sc.done: // answered (the timer below may have fired too)
		return sc.st, sc.err
	default:
	}
	t := time.NewTimer(time.Until(sc.started.Add(timeout)))
	defer t.Stop()
	select {
	case <-sc.done:
		return sc.st, sc.err
	case <-t.C:
		return syscall.Statfs_t{}, fmt.Errorf("statfs %s did not answer within %s (a hung mount?)", dir, time.Since(sc.started).Round(time.Millisecond))
	}
}

// OnlineCPUs counts the CPUs in a kernel CPU list file
// (/sys/devices/system/cpu/online: "0-3,8-11").
func OnlineCPUs(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := ParseCPUList(string(b))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// ParseCPUList counts the CPUs of a kernel CPU list: comma-separated CPUs
// and ranges, "0-3,8-11" (8), "0" (1).
func ParseCPUList(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty CPU list")
	}
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("CPU list %q: %q is not a CPU", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil || b < a {
				return 0, fmt.Errorf("CPU list %q: %q is not a range of CPUs", s, part)
			}
		}
		n += int(b - a + 1)
	}
	return n, nil
}

// MemTotalKiB reads MemTotal (KiB) from a meminfo file (/proc/meminfo):
// the host's RAM, which libvirt's node information misreports on some
// virtual machines.
func MemTotalKiB(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: MemTotal %q: %w", path, fields[1], err)
			}
			return kb, nil
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no MemTotal line", path)
}

// MaxInterfaces is the most interfaces a registration may report: the
// controller refuses more (agent_register_109).
const MaxInterfaces = 512

// Link is what decides whether a network interface is one of the host's
// own: its name, kind (netlink's: "device", "bond", "vlan", "bridge",
// "veth", "tuntap", "vxlan", ...), alias (ifalias), hardware address and
// whether it is the loopback.
type Link struct {
	Name     string
	Type     string
	Alias    string
	MAC      string
	Loopback bool
}

// HostLink reports whether l is one of the host's own interfaces, worth
// reporting: a physical NIC, bond, VLAN, the operator's bridge (the public
// bridge too). Left out are the loopback and links without a hardware
// address, VM taps (tuntap, macvtap: libvirt's vnetN), veth ends (router
// uplinks and subnets), and the links the agent with link prefix prefix
// made: those with its ownership alias (regent:<prefix>:router:… and
// regent:<prefix>:segment:…, see agent/netrouter) or, not tagged yet, its
// names (prefix + b/l bridge, x vxlan, v vlan + id). They come and go
// with the tenants' routers and VMs, and a busy host has hundreds.
func HostLink(l Link, prefix string) bool {
	if l.Loopback || l.MAC == "" {
		return false
	}
	switch l.Type {
	case "tuntap", "tap", "tun", "macvtap", "veth":
		return false
	}
	if strings.HasPrefix(l.Alias, "regent:"+prefix+":router:") || strings.HasPrefix(l.Alias, "regent:"+prefix+":segment:") {
		return false
	}
	return !agentName(l, prefix)
}

// agentName reports whether l is named and typed as one of the segment
// links the builder with prefix makes: prefix, a kind letter, then the
// decimal id or "h" and a base-36 hash (netrouter's naming.ifname).
func agentName(l Link, prefix string) bool {
	rest, ok := strings.CutPrefix(l.Name, prefix)
	if !ok || len(rest) < 2 {
		return false
	}
	kinds := map[byte]string{'b': "bridge", 'l': "bridge", 'x': "vxlan", 'v': "vlan"}
	if kinds[rest[0]] != l.Type {
		return false
	}
	id := rest[1:]
	if h, ok := strings.CutPrefix(id, "h"); ok && h != "" {
		id = strings.Trim(h, "0123456789abcdefghijklmnopqrstuvwxyz")
		return id == ""
	}
	return strings.Trim(id, "0123456789") == ""
}

// HostLinks keeps the host's own links (HostLink) and at most limit of them,
// the physical NICs and bonds first; left is how many of the host's own
// were left out for the bound.
func HostLinks(links []Link, prefix string, limit int) (kept []Link, left int) {
	for _, l := range links {
		if HostLink(l, prefix) {
			kept = append(kept, l)
		}
	}
	rank := func(l Link) int {
		switch l.Type {
		case "device", "bond":
			return 0
		case "vlan":
			return 1
		case "bridge":
			return 2
		}
		return 3
	}
	sort.SliceStable(kept, func(a, b int) bool {
		if ra, rb := rank(kept[a]), rank(kept[b]); ra != rb {
			return ra < rb
		}
		return kept[a].Name < kept[b].Name
	})
	if len(kept) > limit {
		left, kept = len(kept)-limit, kept[:limit]
	}
	sort.Slice(kept, func(a, b int) bool { return kept[a].Name < kept[b].Name })
	return kept, left
}

// Interfaces lists the host's own network interfaces (HostLinks: not the
// VM taps, veths and links of the agent with link prefix prefix), by name
// and at most MaxInterfaces of them; left is how many of the host's own
// were left out for that bound.
func Interfaces(prefix string) (ifs []api.AgentInterface, left int, err error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, 0, err
	}
	defer h.Close()
	return interfacesOf(h, prefix, MaxInterfaces)
}

// interfacesOf is Interfaces in h's network namespace, with limit as bound.
func interfacesOf(h *netlink.Handle, prefix string, limit int) ([]api.AgentInterface, int, error) {
	links, err := h.LinkList()
	if err != nil {
		return nil, 0, err
	}
	all := make([]Link, 0, len(links))
	byName := make(map[string]netlink.Link, len(links))
	for _, nl := range links {
		a := nl.Attrs()
		all = append(all, Link{Name: a.Name, Type: nl.Type(), Alias: a.Alias, MAC: a.HardwareAddr.String(),
			Loopback: a.Flags&net.FlagLoopback != 0})
		byName[a.Name] = nl
	}
	kept, left := HostLinks(all, prefix, limit)
	out := make([]api.AgentInterface, 0, len(kept))
	for _, l := range kept {
		nl := byName[l.Name]
		ai := api.AgentInterface{Name: l.Name, MAC: l.MAC, Up: nl.Attrs().Flags&net.FlagUp != 0, Addresses: []string{}}
		if addrs, err := h.AddrList(nl, netlink.FAMILY_ALL); err == nil {
			for _, a := range addrs {
				ai.Addresses = append(ai.Addresses, a.IPNet.String())
			}
		}
		out = append(out, ai)
	}
	return out, left, nil
}
