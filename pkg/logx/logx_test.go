package logx

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestDurations: in JSON a duration is its text, on the line, in With and
// in named sub-loggers (raft's); other values are untouched.
func TestDurations(t *testing.T) {
	var b strings.Builder
	l := Durations(hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: &b, Level: hclog.Trace}))
	l.Info("one", "took", 1500*time.Microsecond, "n", 3)
	l.Named("raft").With("timeout", 2*time.Second).Warn("two", "count", time.Duration(0))
	l.ResetNamed("x").Log(hclog.Debug, "three", "wait", time.Minute)
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != 3 || got[0]["took"] != "1.5ms" || got[0]["n"] != float64(3) ||
		got[1]["timeout"] != "2s" || got[1]["count"] != "0s" || got[1]["@module"] != "raft" || got[2]["wait"] != "1m0s" {
		t.Errorf("got %v", got)
	}
	if Durations(l) != l {
		t.Error("wrapped twice")
	}
}

// node is like *raft.Raft, which raft logs as the node entering a state:
// exported fields that say nothing, and a String that names it.
type node struct{ RestoreCommittedLogs bool }

func (n *node) String() string { return "Node at 10.0.0.1:8300 [Leader]" }

// TestStringers: in JSON a value with a String method but no JSON or text
// form is written as its String, as the text format writes it (raft's
// node and suffrage); a nil one, an error, a time and other values are
// left as hclog writes them.
func TestStringers(t *testing.T) {
	var b strings.Builder
	l := Durations(hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: &b}))
	var none *node
	at := time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC)
	l.Named("raft").Info("entering leader state", "leader", &node{}, "suffrage", raft.Voter, "none", none,
		"error", errors.New("boom"), "at", at, "peer", raft.Server{ID: "c2"})
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	peer, _ := m["peer"].(map[string]any)
	if m["leader"] != "Node at 10.0.0.1:8300 [Leader]" || m["suffrage"] != "Voter" || m["none"] != nil ||
		m["error"] != "boom" || m["at"] != "2026-11-24T01:02:03Z" || peer["ID"] != "c2" {
		t.Errorf("got %s", b.String())
	}
}
