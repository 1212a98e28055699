package api

import (
	"math"
	"testing"
	"time"
)

// TestScrubDueLongGracePeriods: an object in SCRUB_QUEUE is due once its
// project's grace period (hours) has passed, and a grace period too long
// for a time.Duration (5,000,000 h, math.MaxInt) is never over, rather
// than wrapping around to a negative one that ended long ago.
func TestScrubDueLongGracePeriods(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	changed := now.Add(-3 * time.Hour).Format(time.RFC3339Nano)
	for _, c := range []struct {
		state, grace int
		want         bool
	}{
		{StateScrubQueue, 0, true},
		{StateScrubQueue, 2, true},
		{StateScrubQueue, 3, false},
		{StateScrubQueue, 168, false},
		{StateScrubQueue, 2_562_047, false}, // the longest a Duration counts
		{StateScrubQueue, 2_562_048, false},
		{StateScrubQueue, 5_000_000, false},
		{StateScrubQueue, math.MaxInt, false},
		{StateScrub, 0, false},
	} {
		if got := ScrubDue(c.state, changed, c.grace, now); got != c.want {
			t.Errorf("ScrubDue(state %d, 3 h ago, grace %d h) = %v, want %v", c.state, c.grace, got, c.want)
		}
	}
}
