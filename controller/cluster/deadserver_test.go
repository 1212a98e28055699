package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestPickDeadServer(t *testing.T) {
	now := time.Now()
	after, stale := 2*time.Second, 10*time.Second
	dead := failure{since: now.Add(-5 * time.Second), last: now.Add(-100 * time.Millisecond)}
	young := failure{since: now.Add(-time.Second), last: now}
	staleF := failure{since: now.Add(-time.Minute), last: now.Add(-time.Minute)}
	voters := func(ids ...string) []raft.Server {
		var out []raft.Server
		for _, id := range ids {
			out = append(out, raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		servers []raft.Server
		failing map[raft.ServerID]failure
		want    string // "" = none
	}{
		{"healthy", voters("a", "b", "c"), nil, ""},
		{"3 voters 1 dead", voters("a", "b", "c"), map[raft.ServerID]failure{"c": dead}, "c"},
		{"not dead long enough", voters("a", "b", "c"), map[raft.ServerID]failure{"c": young}, ""},
		{"stale failure is not trusted", voters("a", "b", "c"), map[raft.ServerID]failure{"c": staleF}, ""},
		{"3 voters 2 dead: keep both", voters("a", "b", "c"), map[raft.ServerID]failure{"b": dead, "c": dead}, ""},
		{"3 voters, 1 dead, 1 flapping", voters("a", "b", "c"), map[raft.ServerID]failure{"b": young, "c": dead}, ""},
		{"5 voters 2 dead: oldest first", voters("a", "b", "c", "d", "e"),
			map[raft.ServerID]failure{"d": dead, "e": {since: dead.since.Add(-time.Second), last: now}}, "e"},
		{"4 voters 1 dead", voters("a", "b", "c", "d"), map[raft.ServerID]failure{"d": dead}, "d"},
		{"never self", voters("a", "b", "c"), map[raft.ServerID]failure{"a": dead}, ""},
		{"2 voters 1 dead", voters("a", "b"), map[raft.ServerID]failure{"b": dead}, "b"},
		{"nonvoter dead", append(voters("a", "b", "c"), raft.Server{ID: "n", Suffrage: raft.Nonvoter}),
			map[raft.ServerID]failure{"b": dead, "c": dead, "n": dead}, "n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := pickDeadServer(tc.servers, "a", tc.failing, now, after, stale)
			got := ""
			if ok {
				got = string(s.ID)
			}
			if got != tc.want {
				t.Fatalf("picked %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDeadServerCleanup(t *testing.T) {
	nodes := startCluster(t, 3, func(c *Config) { c.DeadServerCleanup = 2 * time.Second })
	leader := nodes[0]
	set(t, leader, "k", "v")

	// Healthy peers are left alone.
	time.Sleep(2500 * time.Millisecond)
	if ids := serverIDs(t, leader); len(ids) != 3 || leader.DeadServersRemoved() != 0 {
		t.Fatalf("healthy cluster lost servers: %v", ids)
	}

	stopped := time.Now()
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "n3 to be removed", func() bool {
		return slices.Equal(serverIDs(t, leader), []string{"n1", "n2"})
	})
	took := time.Since(stopped)
	t.Logf("n3 removed %s after it stopped", took)
	// The clock starts at n3's last successful heartbeat, a moment before
	// it stopped.
	if took < 1500*time.Millisecond {
		t.Fatalf("removed after %s, before DeadServerCleanup", took)
	}
	// The counter moves once the removal has committed, just after the
	// configuration shows it.
	waitFor(t, 30*time.Second, "the removal to be counted", func() bool { return leader.DeadServersRemoved() == 1 })
	if leader.Stats()["dead_servers_removed"] != "1" {
		t.Fatalf("DeadServersRemoved = %d", leader.DeadServersRemoved())
	}
	// n2 learns the new configuration and the cluster keeps working.
	_, idx := set(t, leader, "k", "v2")
	waitFor(t, 30*time.Second, "n2 to apply", func() bool { return nodes[1].fsm.applied() >= idx })
	if ids := serverIDs(t, nodes[1]); !slices.Equal(ids, []string{"n1", "n2"}) {
		t.Fatalf("n2 sees %v", ids)
	}
}
