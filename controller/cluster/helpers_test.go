package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/regentcloud/regent/pkg/systemtest"
)

// kvFSM is the test FSM: a string map. Commands are JSON {"k":..,"v":..};
// snapshots are JSON {"index":N,"kv":{...}}.
type kvFSM struct {
	mu    sync.Mutex
	kv    map[string]string
	index uint64 // last applied log index
}

type kvCmd struct {
	K string `json:"k"`
	V string `json:"v"`
}

type kvResult struct {
	Index uint64
	Prev  string
}

type kvSnapshot struct {
	Index uint64            `json:"index"`
	KV    map[string]string `json:"kv"`
}

func newKV() *kvFSM { return &kvFSM{kv: map[string]string{}} }

func (f *kvFSM) Apply(l *raft.Log) any {
	if len(l.Data) > 0 && l.Data[0] == 'B' {
		return f.applyBatch(l)
	}
	var c kvCmd
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.kv[c.K]
	f.kv[c.K] = c.V
	f.index = l.Index
	return kvResult{Index: l.Index, Prev: prev}
}

// kvCoalescer coalesces kv commands as "B" + a JSON array of them; the kv
// FSM defers a command whose key an earlier command of the entry set.
type kvCoalescer struct{}

type kvDeferred struct{}

func (kvCoalescer) Encode(cmds [][]byte) []byte {
	raws := make([]json.RawMessage, len(cmds))
	for i, c := range cmds {
		raws[i] = c
	}
	b, _ := json.Marshal(raws)
	return append([]byte{'B'}, b...)
}

func (kvCoalescer) Split(resp any, n int) []any {
	rs, _ := resp.([]any)
	if len(rs) != n {
		panic(fmt.Sprintf("kv batch response %v for %d commands", resp, n))
	}
	return rs
}

func (kvCoalescer) Retry(resp any) bool { _, ok := resp.(kvDeferred); return ok }

func (f *kvFSM) applyBatch(l *raft.Log) any {
	var cmds []kvCmd
	if err := json.Unmarshal(l.Data[1:], &cmds); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]any, len(cmds))
	seen := map[string]bool{}
	for i, c := range cmds {
		if seen[c.K] {
			out[i] = kvDeferred{}
			continue
		}
		seen[c.K] = true
		out[i] = kvResult{Index: l.Index, Prev: f.kv[c.K]}
		f.kv[c.K] = c.V
	}
	f.index = l.Index
	return out
}

func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &kvSnap{kvSnapshot{Index: f.index, KV: maps.Clone(f.kv)}}, nil
}

func decodeKV(r io.Reader) (kvSnapshot, error) {
	var s kvSnapshot
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("decode kv snapshot: %w", err)
	}
	if s.KV == nil {
		return s, errors.New("kv snapshot has no kv")
	}
	return s, nil
}

// Restore builds the new map aside and swaps it in only when it decoded.
func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := decodeKV(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv, f.index = s.KV, s.Index
	return nil
}

func (f *kvFSM) ValidateSnapshot(r io.Reader) (uint64, error) {
	s, err := decodeKV(r)
	return s.Index, err
}

func (f *kvFSM) get(k string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.kv[k]
	return v, ok
}

// applied is the last index the FSM itself has applied. raft's
// AppliedIndex moves when entries are handed to the FSM, just before they
// are applied, so tests that then read the FSM wait on this instead.
func (f *kvFSM) applied() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index
}

func (f *kvFSM) all() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.kv)
}

type kvSnap struct{ s kvSnapshot }

func (s *kvSnap) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *kvSnap) Release() {}

// testWriter forwards log lines to t.Log until the test ends, then drops them
// (raft's connection goroutines may log briefly after Shutdown).
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	level := hclog.Info
	if l := os.Getenv("REGENT_TEST_LOG"); l != "" {
		level = hclog.LevelFromString(l)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: w, Level: level})
}

type node struct {
	*Cluster
	fsm *kvFSM
	cfg Config
}

// startNode starts a node on a free loopback port with its own data dir;
// mod adjusts the config. It is shut down at the end of the test.
func startNode(t *testing.T, id string, bootstrap bool, mod func(*Config)) *node {
	t.Helper()
	cfg := Config{
		NodeID:    id,
		DataDir:   filepath.Join(t.TempDir(), id),
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: bootstrap,
		Logger:    testLogger(t, id),
	}
	if mod != nil {
		mod(&cfg)
	}
	// The production defaults (heartbeat 500 ms, lease 250 ms) are tuned
	// for a LAN of idle machines; under -race on a loaded 2-core CI machine
	// a leader starved for a quarter second stepped down mid-test ("failed
	// to contact quorum"). Tests that do not set their own get more slack.
	if cfg.HeartbeatTimeout == 0 && cfg.LeaderLeaseTimeout == 0 {
		cfg.HeartbeatTimeout, cfg.LeaderLeaseTimeout = time.Second, time.Second
	}
	return startNodeCfg(t, cfg)
}

func startNodeCfg(t *testing.T, cfg Config) *node {
	t.Helper()
	fsm := newKV()
	c, err := New(cfg, fsm)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() {
		if err := c.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", cfg.NodeID, err)
		}
	})
	return &node{Cluster: c, fsm: fsm, cfg: cfg}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitLeader(t *testing.T, n *node) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	id, err := n.WaitForLeader(ctx)
	if err != nil {
		t.Fatalf("%s: no leader: %v", n.NodeID(), err)
	}
	if id != n.NodeID() {
		t.Fatalf("%s: leader is %s, want self", n.NodeID(), id)
	}
	waitFor(t, 30*time.Second, "leadership", n.IsLeader)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func set(t *testing.T, n *node, k, v string) (kvResult, uint64) {
	t.Helper()
	resp, idx, err := n.Apply(ctxT(t, 30*time.Second), cmd(k, v))
	if err != nil {
		t.Fatalf("Apply(%s=%s) on %s: %v", k, v, n.NodeID(), err)
	}
	r, ok := resp.(kvResult)
	if !ok {
		t.Fatalf("Apply response %T %v, want kvResult", resp, resp)
	}
	return r, idx
}

func cmd(k, v string) []byte {
	b, _ := json.Marshal(kvCmd{K: k, V: v})
	return b
}

// startCluster bootstraps the first node and adds the others as voters.
func startCluster(t *testing.T, n int, mod func(*Config)) []*node {
	t.Helper()
	nodes := []*node{startNode(t, "n1", true, mod)}
	waitLeader(t, nodes[0])
	for i := 2; i <= n; i++ {
		nd := startNode(t, fmt.Sprintf("n%d", i), false, mod)
		// On a loaded machine n1 can lose leadership for a moment while the
		// configuration grows; retry until it has it again.
		waitFor(t, 30*time.Second, "AddVoter("+nd.NodeID()+")", func() bool {
			return nodes[0].AddVoter(nd.NodeID(), nd.Addr()) == nil
		})
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes[1:] {
		waitFor(t, 30*time.Second, nd.NodeID()+" to see the leader", func() bool {
			id, _ := nd.Leader()
			return id == "n1"
		})
	}
	return nodes
}

func serverIDs(t *testing.T, n *node) []string {
	t.Helper()
	ss, err := n.Servers()
	if err != nil {
		t.Fatalf("Servers: %v", err)
	}
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return ids
}

// restartLogged starts a node again on cfg's data dir at raft address addr
// (its configuration records the address), with its log going to the
// returned buffer, and waits until it leads.
func restartLogged(t *testing.T, cfg Config, addr string) (*node, *systemtest.Buffer) {
	t.Helper()
	logs := &systemtest.Buffer{}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeID, Output: logs, Level: hclog.Info})
	cfg.RaftAddr = addr
	n := startNodeCfg(t, cfg)
	waitLeader(t, n)
	return n, logs
}
