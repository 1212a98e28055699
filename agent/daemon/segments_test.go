package daemon

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
)

func TestSegmentsOfVMs(t *testing.T) {
	vms := []api.VMSpec{
		{ID: 1, State: api.StateRequested, NICs: []api.NICSpec{
			{SubnetID: 3, VNI: 5003, VTEPs: []string{"192.0.2.2"}},
			{SubnetID: 4, VNI: 5004, VLAN: 104, VTEPs: []string{}},
		}},
		{ID: 2, State: api.StateClosed, NICs: []api.NICSpec{{SubnetID: 9, VNI: 5009}}},
		{ID: 3, State: api.StateQuiesced, NICs: []api.NICSpec{{SubnetID: 3, VNI: 5003, VTEPs: []string{"192.0.2.1"}}}},
		{ID: 4, State: api.StateScrubQueue, NICs: []api.NICSpec{{SubnetID: 6, VNI: 70}}},
	}
	got := segmentsOf(vms)
	want := []netrouter.Segment{
		{VNI: 70},
		{VNI: 5003, VTEPs: []string{"192.0.2.1"}},
		{VNI: 5003, VTEPs: []string{"192.0.2.2"}},
		{VNI: 5004, VLAN: 104, VTEPs: []string{}},
	}
	if !sameSegments(got, want) {
		t.Fatalf("segments of the VMs:\n got %+v\nwant %+v", got, want)
	}
	if got := segmentsOf(nil); got == nil || len(got) != 0 {
		t.Fatalf("no VMs: %#v (want an empty, complete set)", got)
	}
	// The specs the loop keeps are not shared with the work answer.
	got[1].VTEPs = nil
	if segs := segmentsOf(vms); len(segs[1].VTEPs) != 1 {
		t.Fatal("segmentsOf shares the NICs' VTEP slices")
	}
}

// fakeSegments records Ensure calls and fails while fail is set.
type fakeSegments struct {
	mu    sync.Mutex
	calls [][]netrouter.Segment
	fail  error
}

func (f *fakeSegments) Ensure(_ context.Context, segs []netrouter.Segment) (netrouter.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, segs)
	return netrouter.Result{}, f.fail
}

func (f *fakeSegments) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// succeedFrom clears the failure and returns the number of calls so far,
// in one step: every call it does not count succeeds.
func (f *fakeSegments) succeedFrom() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = nil
	return len(f.calls)
}

func (f *fakeSegments) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// waitFor polls ok until it holds; the deadline is generous (a loaded CI
// machine under -race), success is as fast as the condition.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSegmentLoop(t *testing.T) {
	c := validConfig(t)
	c.ResyncInterval = "1h"
	if err := c.Finish(); err != nil {
		t.Fatal(err)
	}
	d, err := New(c, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	d.minRetry, d.maxRetry = 10*time.Millisecond, 20*time.Millisecond
	d.segWant = make(chan []netrouter.Segment, 1)
	f := &fakeSegments{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.segmentLoop(ctx, f); close(done) }()
	defer func() { cancel(); <-done }()

	a := []netrouter.Segment{{VNI: 5003, VTEPs: []string{"192.0.2.2"}}}
	d.wantSegments(a)
	waitFor(t, "the first ensure", func() bool { return f.n() == 1 })
	// The same set again (another work answer) costs nothing.
	d.wantSegments([]netrouter.Segment{{VNI: 5003, VTEPs: []string{"192.0.2.2"}}})
	time.Sleep(50 * time.Millisecond)
	if f.n() != 1 {
		t.Fatalf("an unchanged set was applied again: %d calls", f.n())
	}
	// A host failure is retried with backoff until it succeeds.
	f.setFail(errors.New("netlink: boom"))
	d.wantSegments([]netrouter.Segment{})
	waitFor(t, "retries", func() bool { return f.n() >= 4 })
	n := f.succeedFrom()
	waitFor(t, "the retry that succeeds", func() bool { return f.n() > n })
	time.Sleep(60 * time.Millisecond)
	settled := f.n()
	time.Sleep(60 * time.Millisecond)
	if f.n() != settled {
		t.Fatal("retries go on after a success")
	}
	// An invalid segment is not retried.
	f.setFail(errors.Join(&netrouter.InvalidSegmentsError{Err: errors.New("vni 0")}))
	d.wantSegments([]netrouter.Segment{{VNI: 0}})
	waitFor(t, "the invalid set applied once", func() bool { return f.n() == settled+1 })
	// The loop counts the outcome after Ensure returns.
	invalid := d.metrics.reconciles.WithLabelValues(kindSegment, resultInvalid)
	waitFor(t, "reconcile_total{segment,invalid} = 1", func() bool { return testutil.ToFloat64(invalid) >= 1 })
	time.Sleep(80 * time.Millisecond)
	if f.n() != settled+1 {
		t.Fatalf("an invalid set was retried: %d calls", f.n()-settled)
	}
	if got := testutil.ToFloat64(invalid); got != 1 {
		t.Errorf("reconcile_total{segment,invalid} = %v", got)
	}
}

func TestConfigHypervisorNeedsAVTEP(t *testing.T) {
	c := validConfig(t)
	c.Roles = []string{"hypervisor"}
	c.Storage = map[string]string{"SSD": t.TempDir()}
	c.VTEPAddr = ""
	if err := c.Finish(); err == nil || !strings.Contains(err.Error(), "vtep_addr") {
		t.Fatalf("a hypervisor without vtep_addr in vxlan mode: %v", err)
	}
}
