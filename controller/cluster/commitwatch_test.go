package cluster

import (
	"testing"
	"time"
)

func TestCommitWatch(t *testing.T) {
	var w commitWatch
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	steps := []struct {
		leader       bool
		commit, last uint64
		now          float64
		want         time.Duration // stalled at now
	}{
		{true, 10, 10, 0, 0},               // nothing waits
		{true, 10, 12, 1, 0},               // entries start waiting
		{true, 10, 12, 3, 2 * time.Second}, // and wait on
		{true, 11, 13, 4, 0},               // the index moves: under load, not stalled
		{true, 11, 13, 9, 5 * time.Second}, // stands still again
		{false, 11, 13, 10, 0},             // a follower: never
		{true, 11, 13, 11, 0},              // leader again: counts afresh
		{true, 11, 13, 12.5, 1500 * time.Millisecond},
		{true, 13, 13, 13, 0}, // caught up
	}
	for i, s := range steps {
		w.observe(s.leader, s.commit, s.last, at(s.now))
		if got, idx := w.stalled(at(s.now)); got != s.want || idx != s.commit {
			t.Errorf("step %d: stalled = %s at %d, want %s at %d", i, got, idx, s.want, s.commit)
		}
	}
}
