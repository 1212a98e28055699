package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/controller/ipam"
	"github.com/regentcloud/regent/pkg/api"
)

// Store holds the memdb database. Restore swaps the whole database at once;
// readers that hold an older transaction keep a consistent view of it.
type Store struct {
	mu      sync.RWMutex
	db      *memdb.MemDB
	abandon chan struct{} // closed when db is replaced by a restore
	// restores counts the restores (Restore) since the store was made
	restores uint64
}

// Restores is how many times Restore has replaced the state since the
// store was made: a snapshot restore, a snapshot a follower installs from
// the leader, and the snapshot a node loads when it starts. What a node
// keeps beside the state about its records (the leader's agent memory,
// keyed by their ids) belongs to one such state.
func (s *Store) Restores() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.restores
}

// New returns an empty store.
func New() *Store {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(fmt.Sprintf("state: invalid schema: %v", err)) // programming error
	}
	return &Store{db: db, abandon: make(chan struct{})}
}

func (s *Store) current() (*memdb.MemDB, chan struct{}) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db, s.abandon
}

// Read opens a read transaction: a consistent snapshot of the whole state.
func (s *Store) Read() *ReadTxn {
	db, abandon := s.current()
	return &ReadTxn{txn: memTxn{Txn: db.Txn(false)}, abandon: abandon}
}

// Write opens the write transaction for the raft entry at index, stamped with
// the command's time. Only the FSM calls it.
func (s *Store) Write(index uint64, now time.Time) *Txn {
	db, _ := s.current()
	return &Txn{ReadTxn: ReadTxn{txn: memTxn{Txn: db.Txn(true)}, engines: map[uint64]*ipam.Block{}}, Index: index, Now: now.UTC(), Rules: RulesCurrent}
}

// ReadTxn is a read-only view of the state.
type ReadTxn struct {
	txn memTxn
	// abandon is closed when a restore replaces the state read.
	abandon <-chan struct{}
	// engines, in a write transaction, are the IPAM engines of the blocks
	// it changed, by block id: the block records in memdb get them at
	// Commit, once per block rather than once per address (see setEngine).
	engines map[uint64]*ipam.Block
}

// Txn is the write transaction of one command.
type Txn struct {
	ReadTxn
	Index uint64
	Now   time.Time
	// Entry and Sub are set while the commands of one coalesced raft entry
	// are applied: they share Index, so an object written by one of them
	// must not be changed by a later one (see ErrDeferred).
	Entry *Entry
	Sub   int
	// UserID is the user of the command being applied (0: none). The write
	// helpers stamp it as modified_by on the objects that record their
	// last writer (api.ModifiedByer).
	UserID uint64
	// Rules is the version of Apply's rules the command was made under
	// (rules.go); Write sets RulesCurrent, the FSM the command's.
	Rules uint32

	bumps map[string]*IndexEntry // table index entries, written at Commit
}

// ErrDeferred is the result of a command of a coalesced raft entry that
// would change an object that an earlier command of the same entry created
// or changed. Both versions would carry the same modified_index, and a
// compare-and-swap against the first would then overwrite the second
// unnoticed. Nothing of the command is applied; the leader submits it again
// in a later entry.
var ErrDeferred = errors.New("state: object already changed in this raft entry; apply again in a later entry")

// Entry records which command of a coalesced raft entry wrote each object.
type Entry struct {
	writers map[entryKey]int
}

type entryKey struct {
	table string
	id    uint64
}

// NewEntry returns the record of one coalesced entry.
func NewEntry() *Entry { return &Entry{writers: map[entryKey]int{}} }

// Forget drops the marks of command sub, whose changes were aborted.
func (e *Entry) Forget(sub int) {
	for k, w := range e.writers {
		if w == sub {
			delete(e.writers, k)
		}
	}
}

// claim marks the object as written by the current command, or returns
// ErrDeferred when an earlier command of the entry wrote it.
func (t *Txn) claim(table string, id uint64) error {
	if t.Entry == nil {
		return nil
	}
	k := entryKey{table, id}
	if w, ok := t.Entry.writers[k]; ok && w != t.Sub {
		return ErrDeferred
	}
	t.Entry.writers[k] = t.Sub
	return nil
}

// Commit makes the transaction's changes visible.
func (t *Txn) Commit() {
	keys := make([]string, 0, len(t.bumps))
	for k := range t.bumps {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same order on every node
	for _, k := range keys {
		if err := t.txn.Insert(tableIndex, t.bumps[k]); err != nil {
			panic(fmt.Sprintf("state: update index of %s: %v", k, err)) // schema error
		}
	}
	if err := t.flushEngines(); err != nil {
		panic(fmt.Sprintf("state: store IPAM engines: %v", err)) // schema error
	}
	t.txn.Commit()
}

// Abort discards the transaction's changes.
func (t *Txn) Abort() { t.txn.Abort() }

func (t *Txn) stamp() string { return t.Now.Format(time.RFC3339Nano) }

// TableIndex is the raft index that last modified table, 0 if never.
func (r *ReadTxn) TableIndex(table string) uint64 {
	raw, err := r.txn.Txn.First(tableIndex, "id", table) // never watched: see Watching
	if err != nil || raw == nil {
		return 0
	}
	return raw.(*IndexEntry).Index
}

// MaxIndex is the highest TableIndex over tables.
func (r *ReadTxn) MaxIndex(tables ...string) uint64 {
	var max uint64
	for _, t := range tables {
		if i := r.TableIndex(t); i > max {
			max = i
		}
	}
	return max
}

// Wait blocks until one of tables has been modified past minIndex, ctx ends,
// or the store is restored. It returns the current max index of the tables.
// This is the engine of blocking queries (?index=N&wait=D).
func (s *Store) Wait(ctx context.Context, minIndex uint64, tables ...string) uint64 {
	for {
		db, abandon := s.current()
		txn := db.Txn(false)
		ws := memdb.NewWatchSet()
		var max uint64
		for _, t := range tables {
			ch, raw, err := txn.FirstWatch(tableIndex, "id", t)
			if err != nil {
				continue
			}
			ws.Add(ch)
			if raw != nil && raw.(*IndexEntry).Index > max {
				max = raw.(*IndexEntry).Index
			}
		}
		if max > minIndex {
			return max
		}
		ws.Add(abandon)
		if err := ws.WatchCtx(ctx); err != nil {
			return max
		}
		select {
		case <-abandon:
			// The state was replaced by a restore: its indexes may be lower
			// than minIndex, so report them rather than wait for them.
			return s.Read().MaxIndex(tables...)
		default:
		}
	}
}

// bump records that table changed at the transaction's index and returns
// the next id for the table when alloc is set. The table's index entry is
// read once per transaction and written back at Commit: a transaction that
// applies a batch of commands to one table updates its entry once, not once
// per command.
func (t *Txn) bump(table string, alloc bool) (uint64, error) {
	e := t.bumps[table]
	if e == nil {
		raw, err := t.txn.First(tableIndex, "id", table)
		if err != nil {
			return 0, err
		}
		e = &IndexEntry{Key: table}
		if raw != nil {
			e.LastID = raw.(*IndexEntry).LastID
		}
		if t.bumps == nil {
			t.bumps = map[string]*IndexEntry{}
		}
		t.bumps[table] = e
	}
	e.Index = t.Index
	if alloc {
		e.LastID++
	}
	return e.LastID, nil
}

// stampWriter records the command's user as the last writer of obj, when
// obj keeps one (modified_by). Every write that moves modified_index goes
// through here, so the two always change together.
func (t *Txn) stampWriter(obj any) {
	if w, ok := obj.(api.ModifiedByer); ok {
		w.SetModifiedBy(t.UserID)
	}
}

// insertNew stores a new object: assigns the next id of its table and stamps
// its timestamps and indexes.
func insertNew[T api.Object](t *Txn, table string, obj T) error {
	id, err := t.bump(table, true)
	if err != nil {
		return err
	}
	m := obj.GetMeta()
	m.ID = id
	m.Created, m.Updated = t.stamp(), t.stamp()
	m.CreatedIndex, m.ModifiedIndex = t.Index, t.Index
	t.stampWriter(obj)
	if err := t.claim(table, id); err != nil {
		return err
	}
	return t.txn.Insert(table, obj)
}

// replace stores a new version of an existing object. expect, when not zero,
// must equal the stored object's modified_index (compare-and-swap).
func replace[T api.Object](t *Txn, table string, obj T, expect uint64, code string) error {
	m := obj.GetMeta()
	raw, err := t.txn.First(table, "id", m.ID)
	if err != nil {
		return err
	}
	if raw == nil {
		return api.NotFound(code + "_001")
	}
	old := raw.(api.Object).GetMeta()
	if expect != 0 && old.ModifiedIndex != expect {
		return api.Errorf(409, code+"_002", "The object was modified by another request (modified_index %d, expected %d).", old.ModifiedIndex, expect)
	}
	if err := t.claim(table, m.ID); err != nil {
		return err
	}
	m.Created, m.CreatedIndex = old.Created, old.CreatedIndex
	m.Updated, m.ModifiedIndex = t.stamp(), t.Index
	t.stampWriter(obj)
	if _, err := t.bump(table, false); err != nil {
		return err
	}
	return t.txn.Insert(table, obj)
}

// remove deletes the object with id from table.
func remove(t *Txn, table string, id uint64, code string) error {
	raw, err := t.txn.First(table, "id", id)
	if err != nil {
		return err
	}
	if raw == nil {
		return api.NotFound(code + "_001")
	}
	if _, err := t.bump(table, false); err != nil {
		return err
	}
	return t.txn.Delete(table, raw)
}

// get returns the object with id in table.
func get[T any](r *ReadTxn, table string, id uint64) (T, bool) {
	var zero T
	raw, err := r.txn.First(table, "id", id)
	if err != nil || raw == nil {
		return zero, false
	}
	return raw.(T), true
}

// all returns every object of table ordered by id.
func all[T any](r *ReadTxn, table, index string, args ...any) []T {
	it, err := r.txn.Get(table, index, args...)
	if err != nil {
		return nil
	}
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out
}
