package daemon

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/pkg/api"
)

// capability is a Linux capability bit (linux/capability.h).
type capability struct {
	bit  uint
	name string
}

var (
	capNetAdmin = capability{12, "CAP_NET_ADMIN"}
	capSysAdmin = capability{21, "CAP_SYS_ADMIN"}
)

// CheckPrivileges refuses to start without the capabilities the roles
// need, instead of failing later at the first nftables, link or namespace
// call with "operation not permitted": both roles make bridges and VXLAN
// devices (CAP_NET_ADMIN), the network role also network namespaces
// (CAP_SYS_ADMIN). Run as root, they are all there.
func CheckPrivileges(cfg *Config) error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil // no /proc: the first real call will say
	}
	return checkCaps(string(status), os.Geteuid(), cfg.Roles)
}

// checkCaps checks the CapEff line of a /proc/<pid>/status text.
func checkCaps(status string, euid int, roles []string) error {
	var eff uint64
	found := false
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil
			}
			eff, found = n, true
		}
	}
	if !found {
		return nil
	}
	need := []capability{capNetAdmin}
	for _, r := range roles {
		if r == api.RoleNetwork {
			need = append(need, capSysAdmin)
		}
	}
	var names, missing []string
	for _, c := range need {
		names = append(names, c.name)
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("must run as root: roles %s need %s, and it runs as uid %d without %s "+
		"(deploy/regent-agent.service runs it as root)",
		strings.Join(roles, ", "), strings.Join(names, " and "), euid, strings.Join(missing, ", "))
}
