package cluster

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
		waitFor(t, 30*time.Second, "raft metrics", func() bool {
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

	// Prometheus conventions: snake case, base units, _total on counters,
	// and no peer ids in names.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	conventional := regexp.MustCompile(`^raft_[a-z0-9]+(_[a-z0-9]+)*$`)
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "raft_") {
			continue
		}
		byName[name] = mf
		switch {
		case !conventional.MatchString(name):
			t.Errorf("%s is not in snake case", name)
		case mf.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total"):
			t.Errorf("counter %s has no _total", name)
		case regexp.MustCompile(`_time(_|$)`).MatchString(name) && !strings.HasSuffix(name, "_seconds"):
			t.Errorf("%s is a time not in seconds", name)
		}
	}
	for _, want := range []string{"raft_apply_total", "raft_commit_time_seconds", "raft_boltdb_store_logs_seconds",
		"raft_state_leader_total", "raft_state_candidate_total", "raft_fsm_apply_seconds"} {
		if byName[want] == nil {
			t.Errorf("no %s among %d raft families", want, len(byName))
		}
	}
	if mf := byName["raft_commit_time_seconds"]; mf != nil {
		// A commit on a single node takes well under a second: the value is
		// in seconds, not milliseconds.
		if q := mf.GetMetric()[0].GetSummary().GetSampleSum() / float64(mf.GetMetric()[0].GetSummary().GetSampleCount()); q <= 0 || q > 1 {
			t.Errorf("raft_commit_time_seconds: mean %v", q)
		}
	}
	if mf := byName["raft_state_candidate_total"]; mf == nil || mf.GetMetric()[0].GetCounter() == nil {
		t.Error("raft_state_candidate_total is not declared as a counter")
	}
}

func TestPromName(t *testing.T) {
	for _, tc := range []struct {
		kind metricKind
		key  []string
		want string
	}{
		{sampleKind, []string{"raft", "commitTime"}, "raft_commit_time_seconds"},
		{sampleKind, []string{"raft", "replication", "appendEntries", "rpc"}, "raft_replication_append_entries_rpc_seconds"},
		{sampleKind, []string{"raft", "boltdb", "logBatchSize"}, "raft_boltdb_log_batch_size_bytes"},
		{sampleKind, []string{"raft", "fsm", "applyBatchNum"}, "raft_fsm_apply_batch_num"},
		{counterKind, []string{"raft", "transition", "heartbeat_timeout"}, "raft_transition_heartbeat_timeout_total"},
		{counterKind, []string{"raft", "boltdb", "txstats", "nodeDeref"}, "raft_boltdb_txstats_node_deref_total"},
		{gaugeKind, []string{"raft", "boltdb", "freePageBytes"}, "raft_boltdb_free_page_bytes"},
		{gaugeKind, []string{"raft", "fsm", "lastRestoreDuration"}, "raft_fsm_last_restore_duration_seconds"},
		{gaugeKind, []string{"raft", "peers"}, "raft_peers"},
		// acronyms are one word (this was raft_net_get_r_p_c_type_seconds)
		{sampleKind, []string{"raft", "net", "getRPCType"}, "raft_net_get_rpc_type_seconds"},
		{sampleKind, []string{"raft", "net", "rpcDecode"}, "raft_net_rpc_decode_seconds"},
	} {
		if got := promName(tc.kind, tc.key); got != tc.want {
			t.Errorf("promName(%v) = %s, want %s", tc.key, got, tc.want)
		}
	}
	p := &promNames{}
	if !p.name(sampleKind, []string{"raft", "replication", "heartbeat", "node2"}, false).drop {
		t.Error("a key naming a peer is not dropped")
	}
	if n := p.name(sampleKind, []string{"raft", "replication", "heartbeat"}, true); n.drop || n.scale != 0.001 {
		t.Errorf("the labelled heartbeat series: %+v", n)
	}
}

// recordingSink records the names and label names it is given.
type recordingSink struct {
	metrics.BlackholeSink
	got []string
}

func (r *recordingSink) AddSampleWithLabels(key []string, _ float32, labels []metrics.Label) {
	s := strings.Join(key, ".")
	for _, l := range labels {
		s += " " + l.Name + "=" + l.Value
	}
	r.got = append(r.got, s)
}

// TestPromLabelsSnakeCase: label names are snake case too. raft labels
// its transport timings rpcType, which promtool check metrics flags
// ("label names should be written in 'snake_case' not 'camelCase'").
func TestPromLabelsSnakeCase(t *testing.T) {
	rec := &recordingSink{}
	p := &promNames{sink: rec}
	p.AddSampleWithLabels([]string{"raft", "net", "rpcDecode"}, 1, []metrics.Label{{Name: "rpcType", Value: "AppendEntries"}})
	p.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 1, []metrics.Label{{Name: "peer_id", Value: "n2"}})
	want := []string{"raft_net_rpc_decode_seconds rpc_type=AppendEntries", "raft_replication_append_entries_rpc_seconds peer_id=n2"}
	if strings.Join(rec.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", rec.got, want)
	}
}
