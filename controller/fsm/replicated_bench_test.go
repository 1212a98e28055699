package fsm_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/regentcloud/regent/controller/cluster"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// BenchmarkReplicatedCreates is the ceiling of the replicated core on this
// machine: three nodes in this one process (hashicorp/raft, raft-boltdb/v2
// stores in temporary directories, TCP on loopback, the group commit) and
// 64 goroutines applying member creates straight into the leader's
// cluster.Apply. No HTTP, auth, JSON response or process boundary is in
// the way, so scripts/bench/writes (the same creates through the API, one
// process per node) can only come in below it. "fsm" applies them with the
// real FSM (go-memdb); "noop" with an FSM that only answers, to separate
// raft and the log store from the state store. Both in one run:
//
//	go test -run '^$' -bench ReplicatedCreates -benchtime 60000x ./controller/fsm
func BenchmarkReplicatedCreates(b *testing.B) {
	for _, tc := range []struct {
		name string
		fsm  func() raft.FSM
	}{
		{"fsm", func() raft.FSM { return fsm.New(state.New(), hclog.NewNullLogger(), nil) }},
		{"noop", func() raft.FSM { return noopFSM{} }},
	} {
		leader := startReplicated(b, tc.fsm)
		var seq atomic.Uint64
		b.Run(tc.name, func(b *testing.B) {
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0))) // 64 clients
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c, err := fsm.NewCommand(fsm.MemberCreateType, time.Now(), fsm.Actor{},
						&api.Member{Name: fmt.Sprintf("bench-%d", seq.Add(1))})
					if err != nil {
						b.Error(err)
						return
					}
					data, err := c.Encode()
					if err != nil {
						b.Error(err)
						return
					}
					resp, _, err := leader.Apply(context.Background(), data)
					if err != nil {
						b.Error(err)
						return
					}
					if r, ok := resp.(fsm.Result); !ok || r.Err != nil {
						b.Errorf("apply: %#v", resp)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
		})
	}
}

// startReplicated starts three nodes on loopback with the FSMs mk makes,
// bootstraps the state (member 1 and the root user) and returns the leader.
func startReplicated(b *testing.B, mk func() raft.FSM) *cluster.Cluster {
	b.Helper()
	dir := b.TempDir()
	var nodes []*cluster.Cluster
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		c, err := cluster.New(cluster.Config{NodeID: fmt.Sprintf("n%d", i), DataDir: filepath.Join(dir, fmt.Sprint(i)),
			RaftAddr: "127.0.0.1:0", Bootstrap: i == 1, Logger: hclog.NewNullLogger(), Coalesce: fsm.Coalescer{}}, mk())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Shutdown() })
		nodes = append(nodes, c)
		if i == 1 {
			if _, err := c.WaitForLeader(ctx); err != nil {
				b.Fatal(err)
			}
			continue
		}
		for nodes[0].AddVoter(c.NodeID(), c.Addr()) != nil {
			if ctx.Err() != nil {
				b.Fatalf("AddVoter(%s): %v", c.NodeID(), ctx.Err())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, n := range nodes[1:] {
		for id, _ := n.Leader(); id != "n1"; id, _ = n.Leader() {
			if ctx.Err() != nil {
				b.Fatalf("%s sees no leader", n.NodeID())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	c, err := fsm.NewCommand(fsm.BootstrapType, time.Now(), fsm.Actor{}, fsm.BootstrapPayload{MemberName: "CIX", Username: "root",
		Token: &state.TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_abcd"}, Hash: "00"}})
	if err != nil {
		b.Fatal(err)
	}
	data, _ := c.Encode()
	if _, _, err := nodes[0].Apply(ctx, data); err != nil {
		b.Fatal(err)
	}
	return nodes[0]
}

// noopFSM answers every command (and each command of a coalesced entry)
// with an empty result and keeps nothing.
type noopFSM struct{}

func (noopFSM) Apply(l *raft.Log) any {
	if len(l.Data) > 0 && fsm.MessageType(l.Data[0]) == fsm.BatchType {
		cmds, err := fsm.DecodeBatch(l.Data)
		if err != nil {
			panic(err)
		}
		out := make([]any, len(cmds))
		for i := range out {
			out[i] = fsm.Result{}
		}
		return out
	}
	return fsm.Result{}
}

func (noopFSM) Snapshot() (raft.FSMSnapshot, error) { return noopSnap{}, nil }
func (noopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type noopSnap struct{}

func (noopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (noopSnap) Release()                          {}
