package logx

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
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
