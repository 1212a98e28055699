package systest

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJoinWithNodeIDInUse starts a second process with a live member's node
// id (other addresses, -join): the cluster refuses it with 409
// regent_operator_join_105 naming the id and the address that has it, and
// the live member stays a healthy voter at its address. Once that member is
// gone (killed), the same join is the legitimate "node came back with a new
// address" case and is accepted.
func TestJoinWithNodeIDInUse(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader(30 * time.Second)
	victim := c.followers(leader)[0]

	// A second process with the victim's id and its own addresses.
	impostor := newNode(t, c.base, victim.name, "-join", leader.httpAddr, "-cluster-token", c.ctok)
	impostor.dir = filepath.Join(c.base, victim.name+"-impostor")
	impostor.logPath = filepath.Join(c.base, victim.name+"-impostor.log")
	c.nodes = append(c.nodes, impostor)
	impostor.start()
	// The 409's detail, JSON inside a quoted log value, names the id and
	// the live server's address.
	want := victim.name + `\\" is already in use by a healthy server at ` + victim.raftAddr
	err := waitFor(30*time.Second, func() error {
		if log := impostor.tail(64 << 10); !strings.Contains(log, "409 Conflict") || !strings.Contains(log, want) ||
			!strings.Contains(log, "regent_operator_join_105") {
			return fmt.Errorf("impostor's log does not show the 409 naming %s at %s", victim.name, victim.raftAddr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The victim is still a voter at its own address, and the cluster
	// writes through it.
	ms, err := c.members(leader)
	if err != nil {
		t.Fatal(err)
	}
	// Its record (the HTTP address followers forward to) is untouched.
	found := false
	for _, m := range ms {
		if m.ID == victim.name {
			found = m.Suffrage == "voter" && m.RaftAddr == victim.raftAddr && m.HTTPAddr == victim.URL()
		}
	}
	if !found || len(ms) != 3 {
		t.Fatalf("members after the refused join: %+v", ms)
	}
	c.create(victim, "member", map[string]any{"name": "after-refused-join"})
	if log := leader.tail(1 << 20); strings.Contains(log, "replacing it") {
		t.Fatalf("the leader replaced a live server:\n%s", log)
	}

	// The victim dies: now the impostor is the node coming back with a new
	// address, and its (retried) join replaces the old address.
	victim.kill()
	err = waitFor(30*time.Second, func() error {
		ms, err := c.members(leader)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.ID == victim.name && m.RaftAddr == impostor.raftAddr && m.Suffrage == "voter" {
				return nil
			}
		}
		return fmt.Errorf("%s not yet at %s: %+v", victim.name, impostor.raftAddr, ms)
	})
	if err != nil {
		t.Fatal(err)
	}
	if log := leader.tail(1 << 20); !strings.Contains(log, "server changed address; replacing it") {
		t.Fatalf("no replacement logged by the leader")
	}
}

// TestJoinWrongClusterToken: a node whose cluster token the cluster refuses
// (403) stops at once with exit status 78 (the unit's
// RestartPreventExitStatus) and says what to fix, instead of retrying
// forever: a wrong token, or a member that has no cluster token at all
// (then it says that, not that the joiner's token is wrong).
func TestJoinWrongClusterToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leader []string // node1's extra flags
		want   func(c *cluster) []string
	}{
		{"wrong token", nil, func(c *cluster) []string {
			return []string{"join refused: the cluster token is wrong or missing; not retrying",
				"regent-controller: join refused by http://" + c.nodes[0].httpAddr, "regent_operator_join_201",
				"set cluster_token (-cluster-token or $REGENT_CLUSTER_TOKEN) to the cluster's token"}
		}},
		{"member without a token", []string{"-cluster-token", ""}, func(c *cluster) []string {
			return []string{"join refused: the member asked has no cluster token; not retrying",
				"regent-controller: join refused by http://" + c.nodes[0].httpAddr, "regent_operator_join_203",
				"the cluster's nodes run without a cluster token; set the same cluster_token on them and on this node"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startClusterWith(t, 1, func(int) []string { return tc.leader })
			n := newNode(t, c.base, "node2", "-join", c.nodes[0].httpAddr, "-cluster-token", "not-"+c.ctok)
			c.nodes = append(c.nodes, n)
			start := time.Now()
			n.start()
			select {
			case <-n.done:
			case <-time.After(60 * time.Second):
				t.Fatal("node with a refused cluster token still running after 60s")
			}
			n.mu.Lock()
			exitErr := n.exitErr
			n.mu.Unlock()
			t.Logf("exited after %s: %v", time.Since(start).Round(time.Millisecond), exitErr)
			var ee *exec.ExitError
			if !errors.As(exitErr, &ee) || ee.ExitCode() != 78 {
				t.Fatalf("exit: %v, want status 78", exitErr)
			}
			log := n.tail(64 << 10)
			for _, want := range tc.want(c) {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q", want)
				}
			}
			if strings.Contains(log, "join failed; retrying") {
				t.Error("a 403 was retried")
			}
		})
	}
}
