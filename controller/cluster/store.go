package cluster

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// diskStore is the node's raft log and stable store (raft.db) with a record
// of its writes: raft retries a follower's failed log write for ever and
// says so only in its log, so without this record a node whose disk is full
// or unwritable looks healthy while it falls further behind.
type diskStore struct {
	*raftboltdb.BoltStore

	// fault, when set (tests only), is called before every write and its
	// error returned instead of writing.
	fault func() error

	// raft, once set, gives the applied index for DeleteRange's check;
	// stateConflict, when set, is called (and does not return) when the
	// leader's log contradicts applied entries: see DeleteRange.
	raft          atomic.Pointer[raft.Raft]
	stateConflict func(error)

	// termSaveFailed, when set, is called (and does not return) when
	// raft's current term cannot be saved: see Config.TermSaveFailed.
	termSaveFailed func(error)

	log hclog.Logger

	mu         sync.Mutex
	err        error     // the last failed write's error; nil once writes succeed again
	since      time.Time // when the writes started failing
	logFailing bool      // err is a log write's
}

// write does f, a write to the store: of the log (log entries, what commits
// need) or not (raft's term and vote). Any write that fails marks the
// store failing. One that succeeds ends that, except that a write of the
// stable store does not end a log write's failure: a few bytes of term or
// vote fit in pages bolt already has where log entries do not (a full
// disk), and a node that cannot store entries would otherwise count as
// writable again at every election (a single node whose disk is full steps
// down and is elected again twice a second).
func (d *diskStore) write(log bool, f func() error) error {
	var err error
	if d.fault != nil {
		err = d.fault()
	}
	if err == nil {
		err = f()
	}
	d.mu.Lock()
	prev, since := d.err, d.since
	switch {
	case err != nil:
		if prev == nil {
			d.since = time.Now()
		}
		d.err, d.logFailing = err, d.logFailing || log
	case log || !d.logFailing:
		d.err, d.logFailing = nil, false
	}
	cleared := prev != nil && d.err == nil
	d.mu.Unlock()
	switch {
	case err != nil && prev == nil:
		d.log.Error("cannot write the raft store (raft.db): this node takes no part in commits until it can; a full disk? (/healthz is 503 meanwhile)", "error", err)
	case cleared:
		d.log.Info("the raft store (raft.db) is writable again", "failed_for", time.Since(since).Round(time.Millisecond))
	}
	return err
}

// failing returns since when writes have been failing and the last
// write's error, or a nil error when the last write succeeded.
func (d *diskStore) failing() (time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.since, d.err
}

func (d *diskStore) StoreLog(l *raft.Log) error {
	return d.write(true, func() error { return d.BoltStore.StoreLog(l) })
}

func (d *diskStore) StoreLogs(ls []*raft.Log) error {
	return d.write(true, func() error { return d.BoltStore.StoreLogs(ls) })
}

// DeleteRange removes log entries: raft compacts the head of the log
// after a snapshot, and a follower drops the tail of its log that
// conflicts with the leader's (entries of a term the leader's log does
// not have). Those can only be entries that were never committed. A
// conflict at or below the index this node has applied (it applied them,
// so its cluster committed them) proves the leader belongs to another
// cluster: the data dir is another cluster's (or the cluster was rebuilt
// under the same node ids). raft would drop the entries but could never
// undo their application (it skips entries at or below the applied
// index): the node would serve, and authenticate tokens of, the other
// cluster's state, and apply the new leader's entries on top of it. The
// truncation is refused and stateConflict called (it stops the node).
func (d *diskStore) DeleteRange(lo, hi uint64) error {
	if r := d.raft.Load(); r != nil {
		if last, err := d.BoltStore.LastIndex(); err == nil && hi >= last && lo > 0 {
			if applied := r.AppliedIndex(); lo <= applied {
				err := fmt.Errorf("%w: the leader's log contradicts entries %d..%d this node has already applied (up to %d): "+
					"its data dir belongs to another cluster, or this cluster was rebuilt under the same node ids; "+
					"not dropping them. To make the node a member of this cluster, start it with an empty data dir and -join",
					ErrStateConflict, lo, hi, applied)
				if d.stateConflict != nil {
					d.stateConflict(err)
				}
				return err
			}
		}
	}
	return d.write(true, func() error { return d.BoltStore.DeleteRange(lo, hi) })
}

func (d *diskStore) Set(k, v []byte) error {
	return d.write(false, func() error { return d.BoltStore.Set(k, v) })
}

// keyCurrentTerm is the stable-store key of raft's current term (raft
// panics when it cannot be saved).
const keyCurrentTerm = "CurrentTerm"

func (d *diskStore) SetUint64(k []byte, v uint64) error {
	err := d.write(false, func() error { return d.BoltStore.SetUint64(k, v) })
	if err != nil && string(k) == keyCurrentTerm && d.termSaveFailed != nil {
		d.termSaveFailed(err)
	}
	return err
}

// StorageError returns since when this node's writes to its raft store
// (raft.db) have been failing and the last one's error, or a nil error when
// the last write succeeded. A node whose writes fail cannot take part in
// commits: as leader it steps down at once, as follower it refuses every
// entry (raft retries) and falls behind.
func (c *Cluster) StorageError() (time.Time, error) { return c.disk.failing() }
