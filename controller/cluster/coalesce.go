package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Coalescer puts several commands into one raft entry and splits the FSM's
// response to it again. The FSM package implements it; the cluster only
// decides which commands go together.
type Coalescer interface {
	// Encode renders cmds (each as Apply received it) as one entry.
	Encode(cmds [][]byte) []byte
	// Split returns one response per command of an Encode entry.
	Split(resp any, n int) []any
	// Retry reports that a command of a coalesced entry was not applied and
	// must be submitted again in a later entry.
	Retry(resp any) bool
}

// Defaults of the group commit (Config.MaxCoalesce, Config.CoalesceInflight,
// Config.CoalesceLinger).
const (
	DefaultMaxCoalesce      = 256
	DefaultCoalesceInflight = 1
	DefaultCoalesceLinger   = 5 * time.Millisecond
	coalesceMaxBytes        = 1 << 20
	// lingerMin is the concurrency below which an entry never waits: with
	// a few writers, latency matters more than what batching saves.
	lingerMin = 8
	// concurrencyWindow is how long a concurrency estimate holds.
	concurrencyWindow = 250 * time.Millisecond
)

// batcher is the leader's group commit: while CoalesceInflight entries are
// on their way through raft, new commands queue; when one completes, the
// whole queue (up to MaxCoalesce commands or 1 MiB) goes out as one entry.
// A lone command goes out as it is, so an idle cluster pays nothing.
//
// Under load the next entry also lingers (MySQL's binlog group commit
// sync_delay/no_delay_count, adaptive): when an entry completes, its
// commands and those queued meanwhile are how many writers are waiting on
// the leader right now; the highest such count of the last 250 ms is the
// concurrency. With 8 or more, the next entry waits until 7/8 of that many
// commands are queued, at most linger. The writers of the entry that just
// completed need a moment to send their next request; waiting for them
// makes entries about twice as large, and every entry costs each node a
// log write with two fsyncs, an AppendEntries and the wake-ups around
// them, so the CPU per write falls (docs/benchmarks.md, sixth session).
type batcher struct {
	c        *Cluster
	co       Coalescer
	max      int
	inflight int           // allowed in flight
	linger   time.Duration // 0: never

	perEntry prometheus.Histogram
	deferred prometheus.Counter

	mu      sync.Mutex
	queue   []*call
	flying  int
	kick    chan struct{}
	stopped bool
	// peak is the concurrency estimate: the most commands waiting when an
	// entry completed, since peakAt.
	peak   int
	peakAt time.Time
}

// call is one command waiting for its entry.
type call struct {
	cmd   []byte
	ctx   context.Context
	resp  any
	index uint64
	err   error
	done  chan struct{}
}

func newBatcher(c *Cluster, co Coalescer, max, inflight int, linger time.Duration, reg prometheus.Registerer) *batcher {
	if max <= 0 {
		max = DefaultMaxCoalesce
	}
	if inflight <= 0 {
		inflight = DefaultCoalesceInflight
	}
	switch {
	case linger == 0:
		linger = DefaultCoalesceLinger
	case linger < 0:
		linger = 0
	}
	b := &batcher{c: c, co: co, max: max, inflight: inflight, linger: linger, kick: make(chan struct{}, 1),
		perEntry: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regent_raft_entry_commands",
			Help:    "Commands per raft entry the leader wrote (group commit: more than one when writes arrive while an entry is in flight).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regent_raft_commands_deferred_total",
			Help: "Commands of a coalesced entry that the FSM deferred to a later entry (they changed an object an earlier command of the entry changed).",
		}),
	}
	if reg != nil {
		reg.MustRegister(b.perEntry, b.deferred)
	}
	return b
}

// apply queues cmd and waits for its outcome. Once the command has gone
// into an entry it waits for that entry whatever ctx does (as raft.Apply's
// future would), but no longer than CommitWait from the call
// (ErrCommitTimeout); before that, ctx or CommitWait (ErrNotSubmitted) end
// the wait and the command is dropped.
func (b *batcher) apply(ctx context.Context, cmd []byte) (any, uint64, error) {
	cl := &call{cmd: cmd, ctx: ctx, done: make(chan struct{})}
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return nil, 0, ErrShutdown
	}
	b.queue = append(b.queue, cl)
	b.mu.Unlock()
	b.poke()
	// raft waits for ever for an entry the followers cannot store (full
	// disks): commitWait bounds the wait for the entry, once it is sent, and
	// for a command queued behind it.
	timer := time.NewTimer(b.c.cfg.CommitWait)
	defer timer.Stop()
	select {
	case <-cl.done:
		return cl.resp, cl.index, cl.err
	case <-ctx.Done():
		if b.unqueue(cl) {
			return nil, 0, ctx.Err()
		}
	case <-timer.C:
		if b.unqueue(cl) {
			return nil, 0, ErrNotSubmitted
		}
		select {
		case <-cl.done: // settled just now
			return cl.resp, cl.index, cl.err
		default:
			return nil, 0, ErrCommitTimeout // in an entry that has not committed
		}
	}
	// Already in an entry.
	select {
	case <-cl.done:
		return cl.resp, cl.index, cl.err
	case <-timer.C:
		return nil, 0, ErrCommitTimeout
	}
}

// unqueue takes cl out of the queue and reports whether it was still there
// (not yet sent in an entry).
func (b *batcher) unqueue(cl *call) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range b.queue {
		if q == cl {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			return true
		}
	}
	return false
}

func (b *batcher) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// run sends entries until stop is closed; on the way out it fails whatever
// is still queued with ErrShutdown.
func (b *batcher) run(stop <-chan struct{}) {
	var wg sync.WaitGroup
	defer func() {
		b.mu.Lock()
		b.stopped = true
		q := b.queue
		b.queue = nil
		b.mu.Unlock()
		for _, cl := range q {
			cl.err = ErrShutdown
			close(cl.done)
		}
		wg.Wait()
	}()
	for {
		select {
		case <-stop:
			return
		case <-b.kick:
		}
		for {
			b.mu.Lock()
			if len(b.queue) == 0 || b.flying >= b.inflight {
				b.mu.Unlock()
				break
			}
			if !b.lingerLocked(stop) {
				b.mu.Unlock()
				return
			}
			n, size := 0, 0
			for n < len(b.queue) && n < b.max && (n == 0 || size+len(b.queue[n].cmd) <= coalesceMaxBytes) {
				size += len(b.queue[n].cmd)
				n++
			}
			batch := make([]*call, n)
			copy(batch, b.queue)
			b.queue = append(b.queue[:0], b.queue[n:]...)
			b.flying++
			b.mu.Unlock()
			b.perEntry.Observe(float64(len(batch)))

			var f raft.ApplyFuture
			if len(batch) == 1 {
				f = b.c.raft.Apply(batch[0].cmd, enqueueTimeout(batch[0].ctx))
			} else {
				cmds := make([][]byte, len(batch))
				for i, cl := range batch {
					cmds[i] = cl.cmd
				}
				f = b.c.raft.Apply(b.co.Encode(cmds), 0)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.finish(f, batch)
			}()
		}
	}
}

// finish waits for an entry and hands each command its outcome; commands
// the FSM deferred go to the front of the queue.
func (b *batcher) finish(f raft.ApplyFuture, batch []*call) {
	err := f.Error()
	var resps []any
	if err == nil {
		if len(batch) == 1 {
			resps = []any{f.Response()}
		} else {
			resps = b.co.Split(f.Response(), len(batch))
		}
	}
	var again []*call
	for i, cl := range batch {
		if err != nil {
			cl.err = err
		} else if b.co.Retry(resps[i]) {
			again = append(again, cl)
			continue
		} else {
			cl.resp, cl.index = resps[i], f.Index()
		}
		close(cl.done)
	}
	b.deferred.Add(float64(len(again)))
	b.mu.Lock()
	b.flying--
	if now, n := time.Now(), len(b.queue)+len(batch); n >= b.peak || now.Sub(b.peakAt) > concurrencyWindow {
		b.peak, b.peakAt = n, now
	}
	if len(again) > 0 {
		if b.stopped {
			for _, cl := range again {
				cl.err = ErrShutdown
				close(cl.done)
			}
		} else {
			b.queue = append(again, b.queue...)
		}
	}
	b.mu.Unlock()
	b.poke()
}

// lingerLocked waits, while the leader is busy, until 7/8 of the recent
// concurrency is queued or linger has passed; it returns false when stop
// closed meanwhile. b.mu is held on entry and on return. It only waits
// with no entry in flight (CoalesceInflight > 1): the writers it waits for
// come back from the entry that completed, and those of an entry still in
// flight cannot.
func (b *batcher) lingerLocked(stop <-chan struct{}) bool {
	target := min(b.peak*7/8, b.max)
	if b.linger <= 0 || b.flying > 0 || b.peak < lingerMin || len(b.queue) >= target || time.Since(b.peakAt) > concurrencyWindow {
		return true
	}
	t := time.NewTimer(b.linger)
	defer t.Stop()
	for len(b.queue) < target {
		b.mu.Unlock()
		select {
		case <-b.kick: // a command was queued
		case <-t.C:
			b.mu.Lock()
			return true
		case <-stop:
			b.mu.Lock()
			return false
		}
		b.mu.Lock()
	}
	return true
}
