package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestInstallMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := InstallMetrics(reg); err != nil {
		t.Fatalf("InstallMetrics: %v", err)
	}
	if err := InstallMetrics(reg); err != nil {
		t.Fatalf("second InstallMetrics on the same registry: %v", err)
	}
	other := prometheus.NewRegistry()
	if err := InstallMetrics(other); err != nil {
		t.Fatalf("InstallMetrics on another registry: %v", err)
	}

	n := startNode(t, "m", true, nil)
	waitLeader(t, n)
	for i := 0; i < 5; i++ {
		set(t, n, "k", "v")
	}

	for _, r := range []*prometheus.Registry{reg, other} {
		var names []string
		waitFor(t, 5*time.Second, "raft metrics", func() bool {
			mfs, err := r.Gather()
			if err != nil {
				t.Fatalf("Gather: %v", err)
			}
			names = names[:0]
			seen := map[string]bool{}
			for _, mf := range mfs {
				names = append(names, mf.GetName())
				switch {
				case strings.HasPrefix(mf.GetName(), "raft_boltdb_"):
					seen["boltdb"] = true
				case strings.HasPrefix(mf.GetName(), "raft_"):
					seen["raft"] = true
				}
			}
			return seen["raft"] && seen["boltdb"]
		})
		t.Logf("%d metric families, e.g. %v", len(names), names[:min(len(names), 12)])
	}
}
