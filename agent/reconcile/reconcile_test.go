package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/pkg/systemtest"
)

type obj struct {
	key     string
	version int
}

// fakeHost is a Handler over an in-memory host; failN makes the first N
// applies of a key fail.
type fakeHost struct {
	mu      sync.Mutex
	built   map[string]int
	applies map[string]int
	failN   map[string]int
	removed []string
	listErr error // Owned fails with it when set
}

func newFakeHost() *fakeHost {
	return &fakeHost{built: map[string]int{}, applies: map[string]int{}, failN: map[string]int{}}
}

func (h *fakeHost) Apply(_ context.Context, o obj) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applies[o.key]++
	if h.failN[o.key] > 0 {
		h.failN[o.key]--
		return errors.New("boom")
	}
	h.built[o.key] = o.version
	return nil
}

func (h *fakeHost) Owned(context.Context) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.listErr != nil {
		return nil, h.listErr
	}
	var out []string
	for k := range h.built {
		out = append(out, k)
	}
	return out, nil
}

func (h *fakeHost) Remove(_ context.Context, k string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.built, k)
	h.removed = append(h.removed, k)
	return nil
}

func (h *fakeHost) state() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps(h.built)
}

func maps(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func newLoop(t *testing.T, h *fakeHost) *Loop[obj] {
	l := New(context.Background(), Config[obj]{
		Key:        func(o obj) string { return o.key },
		Version:    func(o obj) string { return fmt.Sprint(o.version) },
		Handler:    h,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	t.Cleanup(l.Stop)
	return l
}

func eventually(t *testing.T, f func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestAppliesAndRetries(t *testing.T) {
	h := newFakeHost()
	h.failN["b"] = 3
	l := newLoop(t, h)
	l.Sync([]obj{{"a", 1}, {"b", 1}}, true)
	eventually(t, func() bool { s := h.state(); return s["a"] == 1 && s["b"] == 1 }, "a and b built")
	h.mu.Lock()
	if h.applies["b"] != 4 || h.applies["a"] != 1 {
		t.Errorf("applies = %v, want a once and b four times", h.applies)
	}
	h.mu.Unlock()
	// the same versions again: nothing to do
	l.Sync([]obj{{"a", 1}, {"b", 1}}, true)
	time.Sleep(30 * time.Millisecond)
	h.mu.Lock()
	if h.applies["a"] != 1 {
		t.Errorf("a re-applied without a change: %d", h.applies["a"])
	}
	h.mu.Unlock()
}

func TestNewerVersionReplacesRetry(t *testing.T) {
	h := newFakeHost()
	h.failN["a"] = 1000 // version 1 never succeeds
	l := newLoop(t, h)
	l.Sync([]obj{{"a", 1}}, true)
	eventually(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.applies["a"] >= 2 }, "retries")
	h.mu.Lock()
	h.failN["a"] = 0
	h.mu.Unlock()
	l.Sync([]obj{{"a", 2}}, true)
	eventually(t, func() bool { return h.state()["a"] == 2 }, "version 2 built")
}

func TestCompleteFetchCollectsLeftovers(t *testing.T) {
	h := newFakeHost()
	h.built["stale"] = 7 // from a previous run of the agent
	l := newLoop(t, h)
	// a partial list never removes anything
	l.Sync([]obj{{"a", 1}}, false)
	eventually(t, func() bool { return h.state()["a"] == 1 }, "a built")
	if _, ok := h.state()["stale"]; !ok {
		t.Fatal("partial sync removed a leftover")
	}
	l.Sync([]obj{{"a", 1}}, true)
	if s := h.state(); !slices.Equal(h.removed, []string{"stale"}) || s["a"] != 1 {
		t.Errorf("after complete sync: host %v, removed %v", s, h.removed)
	}
	// a no longer desired object is removed after the next complete fetch
	l.Sync(nil, true)
	if _, ok := h.state()["a"]; ok {
		t.Errorf("a still built: %v", h.state())
	}
}

func TestOneFailureDoesNotBlockOthers(t *testing.T) {
	h := newFakeHost()
	h.failN["bad"] = 1 << 30
	l := newLoop(t, h)
	var objs []obj
	for i := 0; i < 20; i++ {
		objs = append(objs, obj{fmt.Sprintf("o%d", i), 1})
	}
	l.Sync(append([]obj{{"bad", 1}}, objs...), true)
	eventually(t, func() bool { return len(h.state()) == 20 }, "20 good objects built")
}

// TestGCFailureLoggedOnce: a host that cannot list its objects (libvirtd
// down) skips garbage collection at every complete fetch, but says so
// once, and once more when it works again.
func TestGCFailureLoggedOnce(t *testing.T) {
	h := newFakeHost()
	var logs systemtest.Buffer
	l := New(context.Background(), Config[obj]{
		Key:     func(o obj) string { return o.key },
		Version: func(o obj) string { return fmt.Sprint(o.version) },
		Handler: h, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs}),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	t.Cleanup(l.Stop)
	h.mu.Lock()
	h.built["stale"], h.listErr = 1, errors.New("libvirt: connection refused")
	h.mu.Unlock()
	for range 5 {
		l.Sync(nil, true)
	}
	if n := strings.Count(logs.String(), "garbage collection skipped"); n != 1 {
		t.Errorf("the failure is logged %d times over 5 fetches:\n%s", n, logs.String())
	}
	h.mu.Lock()
	h.listErr = nil
	h.mu.Unlock()
	l.Sync(nil, true)
	l.Sync(nil, true)
	if n := strings.Count(logs.String(), "garbage collection resumed"); n != 1 || !slices.Equal(h.removed, []string{"stale"}) {
		t.Errorf("recovery logged %d times, removed %v:\n%s", n, h.removed, logs.String())
	}
}

// TestRetryCutsTheBackoff: an object waiting out a long backoff after a
// failure is applied again at once when Retry says what it waited for is
// back; a built object is not applied again.
func TestRetryCutsTheBackoff(t *testing.T) {
	h := newFakeHost()
	h.failN["b"] = 1
	l := New(context.Background(), Config[obj]{
		Key:        func(o obj) string { return o.key },
		Version:    func(o obj) string { return fmt.Sprint(o.version) },
		Handler:    h,
		MinBackoff: time.Hour, MaxBackoff: time.Hour,
	})
	t.Cleanup(l.Stop)
	l.Sync([]obj{{"a", 1}, {"b", 1}}, true)
	eventually(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.built["a"] == 1 && h.applies["b"] == 1
	}, "a built, b failed once")
	l.Retry()
	eventually(t, func() bool { return h.state()["b"] == 1 }, "b built after Retry, within its hour of backoff")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.applies["a"] != 1 {
		t.Errorf("a applied %d times, want once", h.applies["a"])
	}
}

// blockingHost is a Handler whose first Apply blocks, its context ended or
// not (a libvirt call under way), until released; it records Applies under
// way at once and Removes made while one was.
type blockingHost struct {
	release   chan struct{}
	started   chan struct{} // closed when the first Apply began
	mu        sync.Mutex
	applies   int
	inflight  int
	overlap   int // Applies begun while another was under way
	removed   int
	removedIn int // Removes made while an Apply was under way
}

func (h *blockingHost) Apply(_ context.Context, o obj) error {
	h.mu.Lock()
	h.applies++
	first := h.applies == 1
	if h.inflight > 0 {
		h.overlap++
	}
	h.inflight++
	h.mu.Unlock()
	if first {
		close(h.started)
		<-h.release
	}
	h.mu.Lock()
	h.inflight--
	h.mu.Unlock()
	return nil
}

func (h *blockingHost) Owned(context.Context) ([]string, error) { return []string{"a"}, nil }

func (h *blockingHost) Remove(context.Context, string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed++
	if h.inflight > 0 {
		h.removedIn++
	}
	return nil
}

func (h *blockingHost) counts() (applies, overlap, removed, removedIn int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.applies, h.overlap, h.removed, h.removedIn
}

// TestStoppedWorkerFinishesFirst: an object no longer desired whose Apply
// is under way is removed only once that Apply returned, and an object
// desired again gets its next Apply only then. Before, a complete Sync
// stopped the worker without waiting: Remove ran beside the Apply, and a
// re-added key ran a second worker beside the first. A complete Sync does
// not wait for that Apply either (a hung one held every Sync up for
// StopWait): the object is removed at a later complete Sync.
func TestStoppedWorkerFinishesFirst(t *testing.T) {
	h := &blockingHost{release: make(chan struct{}), started: make(chan struct{})}
	cfg := Config[obj]{
		Key:        func(o obj) string { return o.key },
		Version:    func(o obj) string { return fmt.Sprint(o.version) },
		Handler:    h,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}
	l := New(context.Background(), cfg)
	defer l.Stop()
	released := false
	defer func() {
		if !released {
			close(h.release)
		}
	}()
	l.Sync([]obj{{"a", 1}}, true)
	<-h.started
	start := time.Now()
	l.Sync(nil, true) // a goes while its Apply is under way
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a complete Sync waited %s for a stopped worker's Apply", took)
	}
	if _, _, removed, _ := h.counts(); removed != 0 {
		t.Fatal("a was removed while its Apply was under way")
	}
	l.Sync([]obj{{"a", 2}}, true) // and comes back
	time.Sleep(100 * time.Millisecond)
	if applies, _, _, _ := h.counts(); applies != 1 {
		t.Fatalf("%d Applies of a while the first was under way", applies-1)
	}
	close(h.release)
	released = true
	eventually(t, func() bool { applies, _, _, _ := h.counts(); return applies == 2 }, "a's second apply")
	l.Sync(nil, true)
	applies, overlap, removed, removedIn := h.counts()
	if overlap != 0 || removedIn != 0 || removed != 1 || applies != 2 {
		t.Errorf("applies %d (%d beside another), removes %d (%d beside an apply): want 2 (0), 1 (0)", applies, overlap, removed, removedIn)
	}
}

// TestHungApplyDoesNotHoldUpSync: a complete Sync that drops an object
// whose Apply hangs returns at once and leaves it; once the Apply
// returned, a later complete Sync removes it.
func TestHungApplyDoesNotHoldUpSync(t *testing.T) {
	h := &blockingHost{release: make(chan struct{}), started: make(chan struct{})}
	l := New(context.Background(), Config[obj]{Key: func(o obj) string { return o.key },
		Version: func(o obj) string { return fmt.Sprint(o.version) }, Handler: h, MinBackoff: 5 * time.Millisecond})
	defer l.Stop()
	l.Sync([]obj{{"a", 1}}, true)
	<-h.started
	start := time.Now()
	l.Sync(nil, true)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a complete Sync waited %s for a hung Apply", took)
	}
	if _, _, removed, _ := h.counts(); removed != 0 {
		t.Fatal("removed beside its Apply")
	}
	close(h.release)
	eventually(t, func() bool {
		l.Sync(nil, true)
		_, _, removed, _ := h.counts()
		return removed == 1
	}, "a removed at a later Sync")
	if _, overlap, _, removedIn := h.counts(); overlap != 0 || removedIn != 0 {
		t.Errorf("%d Applies beside another, %d removes beside an apply", overlap, removedIn)
	}
}
