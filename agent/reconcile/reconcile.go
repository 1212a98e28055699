// Package reconcile is the agent's level-triggered loop: it keeps what a
// host has equal to what the controller wants. Each desired object gets a
// worker of its own that applies the object with the handler's idempotent
// Apply, retrying with backoff until it succeeds; a newer version of the
// object replaces the one a worker is retrying. After a complete fetch of
// the desired set, objects the handler owns on the host but nobody wants
// any more are removed. A failure of one object never holds up another.
package reconcile

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Handler builds one kind of object on the host. Apply and Remove must be
// idempotent: the loop calls them again after a failure, after a restart
// of the agent, and whenever the object changes.
type Handler[T any] interface {
	// Apply makes the host match obj (which may ask for its removal, e.g.
	// a SCRUB state).
	Apply(ctx context.Context, obj T) error
	// Owned lists the keys of the objects of this kind present on the
	// host and tagged as this agent's.
	Owned(ctx context.Context) ([]string, error)
	// Remove deletes a leftover object that is no longer desired.
	Remove(ctx context.Context, key string) error
}

// Waiting marks err, an apply's failure, as a wait for something outside
// the object (a daemon the handler needs is away): the loop retries it
// with backoff like any failure, but logs it at debug level, since what
// noticed the absence says so once for all objects.
func Waiting(err error) error {
	if err == nil {
		return nil
	}
	return &waitingError{err: err}
}

type waitingError struct{ err error }

func (e *waitingError) Error() string { return e.err.Error() }
func (e *waitingError) Unwrap() error { return e.err }

// Config tunes a Loop.
type Config[T any] struct {
	// Key identifies an object; Version changes whenever the object does
	// (e.g. "<state>/<generation>").
	Key     func(T) string
	Version func(T) string
	Handler Handler[T]
	// Result, if set, is called after every attempt (err nil on success).
	Result func(obj T, err error, took time.Duration)
	// MinBackoff and MaxBackoff bound the retry delay (defaults 1s and 1m).
	MinBackoff, MaxBackoff time.Duration
	// StopWait is how long a worker of an object desired again waits for
	// the Apply of the object's stopped worker before it says so (default
	// 30s); it waits on after that.
	StopWait time.Duration
	Logger   hclog.Logger
}

// Loop runs the workers of one kind of object.
type Loop[T any] struct {
	cfg    Config[T]
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	workers map[string]*worker[T]
	// stopping are the stopped workers whose goroutine has not returned
	// yet (an Apply under way), by key.
	stopping map[string]*worker[T]

	gcMu  sync.Mutex
	gcErr string // the last failure to list owned objects, "" after a success
}

type worker[T any] struct {
	mu      sync.Mutex
	want    T
	version string
	done    string // version applied successfully
	wake    chan struct{}
	stop    context.CancelFunc
	exited  chan struct{} // closed when the worker's goroutine returns
	// applying is held while the worker applies, or waits for the
	// stopped worker of its key before it may: a complete Sync removes
	// the object of a stopped worker only with it held, and never waits
	// for it.
	applying sync.Mutex
}

// New starts a loop; Stop ends it.
func New[T any](ctx context.Context, cfg Config[T]) *Loop[T] {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Minute, cfg.MinBackoff)
	}
	if cfg.StopWait <= 0 {
		cfg.StopWait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	l := &Loop[T]{cfg: cfg, workers: map[string]*worker[T]{}, stopping: map[string]*worker[T]{}}
	l.ctx, l.cancel = context.WithCancel(ctx)
	return l
}

// Sync hands the loop the desired objects. With complete set (the fetch
// returned everything desired for this agent), objects the handler owns
// but that are not in objs are removed, and workers of objects that
// disappeared stop. A partial list only adds and updates.
//
// Never two Applies, or an Apply and a Remove, of one object at once: a
// worker started for a key again applies only once the stopped worker of
// that key returned, and an object whose stopped worker is applying it is
// not waited for but removed at a later complete Sync.
func (l *Loop[T]) Sync(objs []T, complete bool) {
	seen := map[string]bool{}
	l.mu.Lock()
	for _, o := range objs {
		k := l.cfg.Key(o)
		seen[k] = true
		w := l.workers[k]
		if w == nil {
			ctx, cancel := context.WithCancel(l.ctx)
			w = &worker[T]{wake: make(chan struct{}, 1), stop: cancel, exited: make(chan struct{})}
			l.workers[k] = w
			old := l.stopping[k]
			if old != nil {
				w.applying.Lock() // until old returned
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer l.exited(k, w)
				if old != nil {
					live := l.waitExit(ctx, k, old)
					w.applying.Unlock()
					if !live {
						return
					}
				}
				l.run(ctx, k, w)
			}()
		}
		w.mu.Lock()
		v := l.cfg.Version(o)
		changed := v != w.version
		w.want, w.version = o, v
		w.mu.Unlock()
		if changed {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	if complete {
		for k, w := range l.workers {
			if !seen[k] {
				w.stop()
				delete(l.workers, k)
				l.stopping[k] = w
			}
		}
	}
	l.mu.Unlock()
	if complete {
		l.collect(seen)
	}
}

// exited records that worker w of key returned.
func (l *Loop[T]) exited(key string, w *worker[T]) {
	l.mu.Lock()
	if l.stopping[key] == w {
		delete(l.stopping, key)
	}
	l.mu.Unlock()
	close(w.exited)
}

// waitExit waits until the stopped worker old of key returned (its own
// wait for an earlier one included), logging one that takes longer than
// StopWait, and reports whether ctx is still live.
func (l *Loop[T]) waitExit(ctx context.Context, key string, old *worker[T]) bool {
	t := time.NewTimer(l.cfg.StopWait)
	defer t.Stop()
	select {
	case <-old.exited:
	case <-t.C:
		l.cfg.Logger.Warn("the object is desired again, but the apply of its previous worker has not returned; waiting for it", "key", key)
		<-old.exited
	}
	return ctx.Err() == nil
}

// stopped returns the stopped worker of key that has not returned yet
// (nil for none).
func (l *Loop[T]) stopped(key string) *worker[T] {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopping[key]
}

// collect removes owned objects that are not desired.
func (l *Loop[T]) collect(desired map[string]bool) {
	owned, err := l.cfg.Handler.Owned(l.ctx)
	// A failure is logged when it starts or changes, and its end once: a
	// down libvirtd fails every fetch, and its own logs say so already.
	l.gcMu.Lock()
	last := l.gcErr
	if err != nil {
		l.gcErr = err.Error()
	} else {
		l.gcErr = ""
	}
	l.gcMu.Unlock()
	if err != nil {
		if err.Error() != last {
			l.cfg.Logger.Warn("listing owned objects failed; garbage collection skipped until it works", "error", err)
		}
		return
	}
	if last != "" {
		l.cfg.Logger.Info("listing owned objects works again; garbage collection resumed")
	}
	sort.Strings(owned)
	for _, k := range owned {
		if desired[k] {
			continue
		}
		// A stopped worker applies no more once its applying is taken
		// (its context is done); one applying now is not waited for (a
		// hung Apply would hold up every complete Sync).
		if w := l.stopped(k); w != nil {
			if !w.applying.TryLock() {
				l.cfg.Logger.Warn("leftover object still being applied by its stopped worker; removing it after a later complete fetch", "key", k)
				continue
			}
			l.remove(k)
			w.applying.Unlock()
			continue
		}
		l.remove(k)
	}
}

func (l *Loop[T]) remove(k string) {
	l.cfg.Logger.Info("removing leftover object", "key", k)
	if err := l.cfg.Handler.Remove(l.ctx, k); err != nil && !errors.Is(err, context.Canceled) {
		l.cfg.Logger.Warn("removing leftover object failed; will retry after the next complete fetch", "key", k, "error", err)
	}
}

func (l *Loop[T]) run(ctx context.Context, key string, w *worker[T]) {
	backoff := l.cfg.MinBackoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			obj, version := w.want, w.version
			w.mu.Unlock()
			if version == w.done {
				break
			}
			w.applying.Lock()
			if ctx.Err() != nil {
				w.applying.Unlock()
				return // stopped: its object may be being removed
			}
			start := time.Now()
			err := l.cfg.Handler.Apply(ctx, obj)
			took := time.Since(start)
			w.applying.Unlock()
			if ctx.Err() != nil {
				return
			}
			if l.cfg.Result != nil {
				l.cfg.Result(obj, err, took)
			}
			if err == nil {
				w.done = version
				backoff = l.cfg.MinBackoff
				l.cfg.Logger.Debug("object applied", "key", key, "version", version, "took", took)
				continue // a newer version may have arrived meanwhile
			}
			level := hclog.Warn
			var we *waitingError
			if errors.As(err, &we) {
				level = hclog.Debug
			}
			l.cfg.Logger.Log(level, "apply failed; retrying", "key", key, "version", version, "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-w.wake: // a newer version: try it at once
			case <-time.After(backoff):
				backoff = min(2*backoff, l.cfg.MaxBackoff)
			}
		}
	}
}

// Retry makes every worker that waits out a backoff after a failure try
// again now: what it waited for (the controller, libvirtd) is back, and
// with the backoff grown to MaxBackoff its object would otherwise wait up
// to that long. A worker with nothing to do ignores it.
func (l *Loop[T]) Retry() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.workers {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Stop ends every worker and waits for them.
func (l *Loop[T]) Stop() {
	l.cancel()
	l.wg.Wait()
}
