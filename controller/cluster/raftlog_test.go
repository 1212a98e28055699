package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regentcloud/regent/pkg/systemtest"
)

// TestPeerFailuresLoggedOnce: a leader whose follower is down logs the
// failed heartbeats to it once, not at every retry (raft retries about
// twice a heartbeat timeout: ~3 error lines a second with the production
// 500 ms, for as long as the follower is down); the other nodes' lines and
// a later failure past repeatEvery are logged, the latter with the count
// of those left out.
func TestPeerFailuresLoggedOnce(t *testing.T) {
	// n1 leads (it bootstraps); should the lead move to n2 on a loaded
	// machine, n2 then logs its own failures to n3: each node's logger
	// writes the failure once, and one of them writes it.
	logs := map[string]*systemtest.Buffer{"n1": {}, "n2": {}}
	nodes := startCluster(t, 3, func(c *Config) {
		if b, ok := logs[c.NodeID]; ok {
			c.Logger = hclog.New(&hclog.LoggerOptions{Name: c.NodeID, Output: b, Level: hclog.Info})
		}
	})
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // heartbeat timeout 1 s here: ~6 retries
	total := 0
	for id, b := range logs {
		n := strings.Count(b.String(), "failed to heartbeat to")
		if n > 1 {
			t.Errorf("%s: %d lines of failed heartbeats to the stopped follower, want at most 1:\n%s", id, n, b.String())
		}
		total += n
	}
	if total == 0 {
		t.Errorf("no line of failed heartbeats to the stopped follower:\nn1:\n%s\nn2:\n%s", logs["n1"], logs["n2"])
	}

	// The logic, on a clock of its own.
	var b strings.Builder
	now := time.Unix(1000, 0)
	l := quietRepeats(hclog.New(&hclog.LoggerOptions{Output: &b}))
	l.(*repeatLogger).now = func() time.Time { return now }
	step := func(d time.Duration, msg, peer string) {
		now = now.Add(d)
		l.Error(msg, "peer", peer, "error", "refused")
	}
	step(0, "failed to heartbeat to", "a")           // logged
	step(time.Second, "failed to heartbeat to", "a") // left out
	step(0, "failed to heartbeat to", "b")           // another peer: logged
	step(0, "failed to appendEntries to", "a")       // another line: logged
	for range 59 {
		step(time.Second, "failed to heartbeat to", "a") // left out until a minute has passed
	}
	step(2*time.Minute, "failed to heartbeat to", "a") // a new episode: logged, nothing counted
	step(0, "elsewhere", "a")
	step(0, "elsewhere", "a")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{"failed to heartbeat to: peer=a", "failed to heartbeat to: peer=b", "failed to appendEntries to: peer=a",
		"failed to heartbeat to: peer=a error=refused repeated=59", "failed to heartbeat to: peer=a error=refused\n",
		"elsewhere", "elsewhere"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i]+"\n", w) {
			t.Errorf("line %d: %q, want %q", i, lines[i], w)
		}
	}
}
