package systemtest

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSweepStale leaves on the host what a killed run of a package would
// (a namespace named after its prefix with a process in it, a router
// namespace known only by its loopback's tag, a bridge, a tagged
// link) beside an object of a prefix the package never made, and checks
// that SweepStale removes the first four, kills the process, and leaves
// the last.
func TestSweepStale(t *testing.T) {
	if os.Geteuid() != 0 {
		Skip(t, "the sweep test makes namespaces and links: run as root")
	}
	for _, tool := range []string{"ip", "sleep"} {
		if _, err := exec.LookPath(tool); err != nil {
			Skip(t, "the sweep test needs %s (iproute2)", tool)
		}
	}
	// "x" prefixes: no package's tests use them. The lock keeps two runs of
	// this test from sweeping each other's objects.
	release, err := HoldPackage("systemtest-sweep")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	n := time.Now().UnixNano()
	tag := "x" + strconv.FormatInt(36*36+n%(36*36), 36)[1:]
	other := "x" + strconv.FormatInt(36*36+(n+1)%(36*36), 36)[1:]
	ns, routerNS := tag+"vma", fmt.Sprintf("P99%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		for _, n := range []string{ns, routerNS} {
			_ = exec.Command("ip", "netns", "del", n).Run()
		}
		for _, l := range []string{tag + "pub", tag + "x7", other + "keep"} {
			_ = exec.Command("ip", "link", "del", l).Run()
		}
	})
	run("ip", "link", "add", tag+"pub", "type", "bridge")
	run("ip", "link", "add", tag+"x7", "type", "bridge") // no dummy module on every kernel
	run("ip", "link", "set", tag+"x7", "alias", "regent:"+tag+":segment:vxlan:7")
	// Named after another prefix, but nothing stale names that prefix.
	run("ip", "link", "add", other+"keep", "type", "bridge")
	run("ip", "netns", "add", ns)
	run("ip", "netns", "add", routerNS)
	run("ip", "-n", routerNS, "link", "set", "lo", "alias", "regent:"+tag+":router:1:2")
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()

	removed := SweepStale(regexp.MustCompile(`^(x[0-9a-z]{2})pub$|^regent:(x[0-9a-z]{2}):`))
	slices.Sort(removed)
	want := []string{"link " + tag + "pub", "link " + tag + "x7", "namespace " + ns, "namespace " + routerNS}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("the process in the stale namespace still runs")
		_ = sleeper.Process.Kill()
	}
	var left []string
	for _, o := range HostObjects() {
		if strings.HasPrefix(o.Name, tag) || o.Name == routerNS {
			left = append(left, o.Name)
		}
	}
	if len(left) > 0 {
		t.Errorf("still on the host after the sweep: %q", left)
	}
	if !slices.ContainsFunc(HostObjects(), func(o HostObject) bool { return o.Name == other+"keep" }) {
		t.Errorf("the sweep removed %skeep, which no stale name pointed to", other)
	}
}
