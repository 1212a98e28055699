package server_test

import (
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestWorkQueueMetric: regent_work_queue_objects counts the objects that
// wait for a robot or are being worked on, by kind and state; a robot
// taking the fixture's VM moves it from requested to building.
func TestWorkQueueMetric(t *testing.T) {
	_, f, x := computeSetup(t)
	c := f.c.For(t)
	metric := func(kind, state string) string {
		m := string(c.Do("GET", "/metrics", nil, "").Expect(200).Body)
		prefix := `regent_work_queue_objects{kind="` + kind + `",state="` + state + `"} `
		for _, l := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				return v
			}
		}
		return "absent"
	}
	if got := metric("vm", "requested"); got != "1" {
		t.Fatalf("VMs requested: %s, want 1 (the fixture's)", got)
	}
	c.Do("PATCH", apitest.Path("/iaas/vm/", x.vm), map[string]any{"state": 2, "expected_state": 1}, x.robotR).Expect(200)
	if got, building := metric("vm", "requested"), metric("vm", "building"); got != "0" || building != "1" {
		t.Errorf("after the robot took it: requested %s, building %s", got, building)
	}
}
