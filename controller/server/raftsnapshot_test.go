package server_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/regentcloud/regent/controller/cluster"
	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
)

// snapshotDirs lists the finished raft snapshots in dataDir.
func snapshotDirs(t *testing.T, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "raft", "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestRaftSnapshotPolicyReachesRaft: raft_snapshot_threshold,
// raft_snapshot_interval and raft_trailing_logs (-raft-snapshot-threshold
// and so on) are what raft runs with, and a node told to snapshot every 100
// entries does so after about 100 writes (and the snapshot, like the
// node's other files, is owner-only); without them raft runs with the
// defaults. There were no such settings: raft always ran with 8192 entries
// every 2m.
func TestRaftSnapshotPolicyReachesRaft(t *testing.T) {
	threshold, trailing := 100, 20
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) {
		c.RaftSnapshotThreshold, c.RaftTrailingLogs, c.RaftSnapshotInterval = &threshold, &trailing, "5s"
	}})
	want := raft.ReloadableConfig{TrailingLogs: 20, SnapshotInterval: 5 * time.Second, SnapshotThreshold: 100}
	if got := n.Server.Cluster().Raft().ReloadableConfig(); got.TrailingLogs != want.TrailingLogs ||
		got.SnapshotInterval != want.SnapshotInterval || got.SnapshotThreshold != want.SnapshotThreshold {
		t.Fatalf("raft runs with %+v, want %+v", got, want)
	}
	dataDir := n.Server.Config().DataDir
	if s := snapshotDirs(t, dataDir); len(s) != 0 {
		t.Fatalf("snapshots before any write: %v", s)
	}
	c := n.Client(t)
	for i := range threshold + 10 {
		c.Do("POST", "/membership/member/", map[string]any{"name": fmt.Sprintf("snap-%d", i)}, n.RootToken).Expect(201)
	}
	// raft looks every 5-10s; a loaded machine may take longer.
	deadline := time.Now().Add(90 * time.Second)
	for len(snapshotDirs(t, dataDir)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no raft snapshot 90s after %d writes with a threshold of %d", threshold+10, threshold)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The scheduled snapshot, like the rest of the node's files in the
	// data dir (t.TempDir made the dir itself 0755), is the owner's only.
	if fi, err := os.Stat(filepath.Join(dataDir, server.RootTokenFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("root.token: %v %v", fi.Mode(), err)
	}
	err := filepath.WalkDir(filepath.Join(dataDir, "raft"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err == nil && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %s: readable by group or others", path, info.Mode().Perm())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	d := apitest.Start(t, apitest.Options{NodeID: "defaults"})
	if got := d.Server.Cluster().Raft().ReloadableConfig(); got.TrailingLogs != cluster.DefaultTrailingLogs ||
		got.SnapshotInterval != cluster.DefaultSnapshotInterval || got.SnapshotThreshold != cluster.DefaultSnapshotThreshold {
		t.Fatalf("without the settings raft runs with %+v", got)
	}
}
