package robot

import (
	"slices"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

func TestBucketFilesEveryRobotState(t *testing.T) {
	b := newBucket()
	for id, s := range map[uint64]int{1: api.StateRequested, 2: api.StateQuiesce, 3: api.StateRestart, 4: api.StateScrub,
		5: api.StateScrubQueue, 6: api.StateRunningUpdate, 7: api.StateQuiescedUpdate} {
		if !b.add(id, s, true) {
			t.Errorf("state %d not listed", s)
		}
	}
	for _, s := range []int{api.StateBuilding, api.StateRunning, api.StateQuiesced, api.StateUnresourced, api.StateClosed} {
		if b.add(99, s, true) {
			t.Errorf("state %d listed", s)
		}
	}
	if b.add(98, api.StateScrubQueue, false) {
		t.Error("SCRUB_QUEUE listed before its grace period passed")
	}
	// CloudCIX lists SCRUB in both scrub buckets and mirrors the update buckets
	if !slices.Equal(b.ScrubPrep, []uint64{4}) || !slices.Contains(b.Scrub, 4) || !slices.Contains(b.Scrub, 5) ||
		!slices.Equal(b.UpdateRunning, b.RunningUpdate) || !slices.Equal(b.UpdateQuiesced, b.QuiescedUpdate) {
		t.Errorf("bucket = %+v", b)
	}
}

func TestCapacityChanged(t *testing.T) {
	s := &api.Server{Cores: 16, RAM: 64, GB: 1000}
	c := func(cores int, ramGB, disk uint64) api.Capacity {
		return api.Capacity{CPUCores: cores, RAMMB: ramGB * 1024, Storage: []api.StorageCapacity{{Type: "SSD", TotalGB: disk}}}
	}
	for _, tc := range []struct {
		c    api.Capacity
		want bool
	}{
		{c(16, 64, 1000), false},
		{c(16, 66, 1030), false}, // within 5 %
		{c(8, 64, 1000), true},
		{c(16, 80, 1000), true},
		{c(16, 64, 2000), true},
		// The agent's storage named in another case than the type (as
		// registration matches it): a grown disk is a change too.
		{api.Capacity{CPUCores: 16, RAMMB: 64 * 1024, Storage: []api.StorageCapacity{{Type: "ssd", TotalGB: 2000}}}, true},
	} {
		if got := CapacityChanged(s, tc.c, "SSD"); got != tc.want {
			t.Errorf("CapacityChanged(%+v) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestBucketFilesSnapshotScrubUnderScrubOnly(t *testing.T) {
	b := newBucket()
	if !b.addObject(1, api.StateScrub, false) || !b.addObject(2, api.StateRequested, false) || b.addObject(3, api.StateRunning, true) {
		t.Fatal("addObject listed the wrong states")
	}
	if !slices.Equal(b.Scrub, []uint64{1}) || len(b.ScrubPrep) != 0 || !slices.Equal(b.Build, []uint64{2}) {
		t.Errorf("bucket = %+v", b)
	}
}
