// Package hostinfo reads what the agent reports about its server: CPU
// cores, memory, free disk per storage type, and network interfaces. It
// reads /proc and statfs directly, so the figures match the host even where
// libvirt's node information is unreliable (virtual machines).
package hostinfo

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/regentcloud/regent/pkg/api"
)

// Capacity reads the host's cores, memory and, for each storage type, the
// size and free space of the file system holding its directory.
func Capacity(storage map[string]string) (api.Capacity, error) {
	c := api.Capacity{CPUCores: runtime.NumCPU()}
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
	for _, t := range types {
		var st syscall.Statfs_t
		if err := syscall.Statfs(storage[t], &st); err != nil {
			return c, fmt.Errorf("storage type %s: %w", t, err)
		}
		const gb = 1 << 30
		c.Storage = append(c.Storage, api.StorageCapacity{Type: t,
			TotalGB: st.Blocks * uint64(st.Bsize) / gb, FreeGB: st.Bavail * uint64(st.Bsize) / gb})
	}
	return c, nil
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

// Interfaces lists the host's network interfaces with a hardware address
// (loopback and tunnels without one are left out), by name.
func Interfaces() ([]api.AgentInterface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []api.AgentInterface
	for _, i := range ifs {
		if len(i.HardwareAddr) == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		ai := api.AgentInterface{Name: i.Name, MAC: i.HardwareAddr.String(), Up: i.Flags&net.FlagUp != 0, Addresses: []string{}}
		if addrs, err := i.Addrs(); err == nil {
			for _, a := range addrs {
				ai.Addresses = append(ai.Addresses, a.String())
			}
		}
		out = append(out, ai)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}
