package systemtest

import (
	"encoding/json"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// HostObject is a network namespace or a link of the root namespace, with
// its alias: a link's ifalias, a namespace's loopback's (Regent's ownership
// tags, "regent:<prefix>:...", live there).
type HostObject struct {
	Namespace   bool
	Name, Alias string
}

// HostObjects lists the host's network namespaces and root-namespace links.
func HostObjects() []HostObject {
	var objs []HostObject
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			objs = append(objs, HostObject{Namespace: true, Name: f[0], Alias: loopbackAlias(f[0])})
		}
	}
	for _, l := range links() {
		objs = append(objs, HostObject{Name: l.Attrs().Name, Alias: l.Attrs().Alias})
	}
	return objs
}

func loopbackAlias(ns string) string {
	out, err := exec.Command("ip", "-j", "-n", ns, "link", "show", "lo").Output()
	if err != nil {
		return ""
	}
	var lo []struct {
		Alias string `json:"ifalias"`
	}
	if json.Unmarshal(out, &lo) != nil || len(lo) == 0 {
		return ""
	}
	return lo[0].Alias
}

// links lists the root namespace's links, repeating a dump the kernel
// interrupted (links of concurrent tests come and go).
func links() []netlink.Link {
	for i := 0; ; i++ {
		ls, err := netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 9 {
			return ls
		}
	}
}

// Scrub removes the namespaces (the processes in them killed first: a
// dnsmasq or charon would otherwise outlive its namespace) and the
// root-namespace links that match, namespaces first, and returns what it
// removed ("namespace x", "link y").
func Scrub(match func(HostObject) bool) []string {
	var removed []string
	objs := HostObjects()
	for _, o := range objs {
		if !o.Namespace || !match(o) {
			continue
		}
		pids, _ := exec.Command("ip", "netns", "pids", o.Name).Output()
		for _, p := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = exec.Command("ip", "netns", "del", o.Name).Run()
		removed = append(removed, "namespace "+o.Name)
	}
	for _, o := range objs {
		if o.Namespace || !match(o) {
			continue
		}
		// A veth whose peer was in a namespace removed above is gone already.
		if l, err := netlink.LinkByName(o.Name); err == nil {
			_ = netlink.LinkDel(l)
			removed = append(removed, "link "+o.Name)
		}
	}
	return removed
}

// SweepStale removes what killed earlier runs of a package left on the host
// (a CI run cut off at the end of its time never ran its cleanups). Call it
// from TestMain with the package's HoldPackage lock held: no other run of
// the package is live then, so everything named after one of its test
// prefixes is stale. stale matches a name or alias the package's tests
// make; its first non-empty group is the prefix. Every namespace or link
// whose name starts with a prefix found, or whose alias starts with
// "regent:<prefix>:", goes. It returns what it removed.
func SweepStale(stale *regexp.Regexp) []string {
	prefixes := map[string]bool{}
	note := func(s string) {
		m := stale.FindStringSubmatch(s)
		for i := 1; i < len(m); i++ {
			if m[i] != "" {
				prefixes[m[i]] = true
				return
			}
		}
	}
	for _, o := range HostObjects() {
		note(o.Name)
		note(o.Alias)
	}
	if len(prefixes) == 0 {
		return nil
	}
	return Scrub(func(o HostObject) bool {
		for p := range prefixes {
			if strings.HasPrefix(o.Name, p) || strings.HasPrefix(o.Alias, "regent:"+p+":") {
				return true
			}
		}
		return false
	})
}
