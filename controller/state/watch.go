package state

import (
	"context"

	"github.com/hashicorp/go-memdb"
)

// watchLimit is the most channels a Watch collects; past it the Watch is
// broad (a wait on many channels costs a goroutine per 32 of them).
const watchLimit = 2048

// Watch collects the memdb watch channels of everything a read
// transaction made by ReadTxn.Watching reads: Wait then returns as soon as
// any of it changes, and not for changes elsewhere in the same tables.
// Consul's blocking queries watch what they read the same way.
type Watch struct {
	ws      memdb.WatchSet
	n       int
	abandon <-chan struct{}
	// broad: a read could not be watched (a scan from a bound, which memdb
	// cannot watch) or there were more than watchLimit channels. Only a
	// change of the tables then tells whether the answer may have changed.
	broad bool
}

// Precise reports whether every read of the transaction is watched, so
// that Wait returns for every change that can alter what it read.
func (w *Watch) Precise() bool { return !w.broad }

func (w *Watch) add(ch <-chan struct{}) {
	switch {
	case w.broad:
	case ch == nil:
		w.broad = true
	case w.n >= watchLimit:
		w.broad = true
		w.ws = nil
	default:
		if _, ok := w.ws[ch]; !ok {
			w.ws.Add(ch)
			w.n++
		}
	}
}

// Wait blocks until something the transaction read changes, the state is
// replaced by a restore, one of extra (nil ones are ignored) is closed, or
// ctx ends (then it returns ctx's error). Only for a Precise watch.
func (w *Watch) Wait(ctx context.Context, extra ...<-chan struct{}) error {
	ws := memdb.NewWatchSet()
	for ch := range w.ws {
		ws.Add(ch)
	}
	for _, ch := range extra {
		if ch != nil {
			ws.Add(ch)
		}
	}
	if w.abandon != nil {
		ws.Add(w.abandon)
	}
	return ws.WatchCtx(ctx)
}

// Watching returns a copy of r whose reads add their watch channels to the
// returned Watch. Table indexes (TableIndex, MaxIndex) are not watched: they
// change with every write to a table.
func (r *ReadTxn) Watching() (*ReadTxn, *Watch) {
	w := &Watch{ws: memdb.NewWatchSet(), abandon: r.abandon}
	c := *r
	c.txn = memTxn{Txn: r.txn.Txn, w: w}
	return &c, w
}

// memTxn is the memdb transaction of a ReadTxn. With a Watch, its reads add
// the channels that fire when what they read changes; without, it is the
// memdb transaction itself.
type memTxn struct {
	*memdb.Txn
	w *Watch
}

func (t memTxn) First(table, index string, args ...any) (any, error) {
	if t.w == nil {
		return t.Txn.First(table, index, args...)
	}
	ch, raw, err := t.Txn.FirstWatch(table, index, args...)
	if err == nil {
		t.w.add(ch)
	}
	return raw, err
}

func (t memTxn) Last(table, index string, args ...any) (any, error) {
	if t.w == nil {
		return t.Txn.Last(table, index, args...)
	}
	ch, raw, err := t.Txn.LastWatch(table, index, args...)
	if err == nil {
		t.w.add(ch)
	}
	return raw, err
}

func (t memTxn) Get(table, index string, args ...any) (memdb.ResultIterator, error) {
	it, err := t.Txn.Get(table, index, args...)
	if err == nil && t.w != nil {
		t.w.add(it.WatchCh())
	}
	return it, err
}

func (t memTxn) GetReverse(table, index string, args ...any) (memdb.ResultIterator, error) {
	it, err := t.Txn.GetReverse(table, index, args...)
	if err == nil && t.w != nil {
		t.w.add(it.WatchCh())
	}
	return it, err
}

// The reads below cannot be watched: they make a Watch broad.

func (t memTxn) LowerBound(table, index string, args ...any) (memdb.ResultIterator, error) {
	if t.w != nil {
		t.w.add(nil)
	}
	return t.Txn.LowerBound(table, index, args...)
}

func (t memTxn) ReverseLowerBound(table, index string, args ...any) (memdb.ResultIterator, error) {
	if t.w != nil {
		t.w.add(nil)
	}
	return t.Txn.ReverseLowerBound(table, index, args...)
}

func (t memTxn) LongestPrefix(table, index string, args ...any) (any, error) {
	if t.w != nil {
		t.w.add(nil)
	}
	return t.Txn.LongestPrefix(table, index, args...)
}
