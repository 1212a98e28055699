package systest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLogJSON: with -log-json every line the node writes is a JSON object,
// the shutdown on SIGTERM included; the only plain text is the one-time
// root token banner of the bootstrap.
func TestLogJSON(t *testing.T) {
	n := newNode(t, t.TempDir(), "node1", "-bootstrap", "-log-json")
	t.Cleanup(func() {
		if n.running() {
			n.kill()
		}
		if t.Failed() {
			t.Logf("==== log of %s ====\n%s", n.name, n.tail(48<<10))
		}
	})
	n.start()
	tok := waitRootToken(t, n, 30*time.Second)
	n.stop()

	b, err := os.ReadFile(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	shutdown := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "", strings.HasPrefix(line, "==== node1 start"), // the test's own header
			strings.HasPrefix(line, "Regent controller bootstrapped. Root token"), line == "    "+tok:
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		if v["@message"] == "shutting down" && v["signal"] == "terminated" {
			shutdown = true
		}
	}
	if !shutdown {
		t.Error(`no JSON "shutting down" line`)
	}
}
