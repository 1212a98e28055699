package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/state"
)

// Result is what Apply returns for every command: the stored object (or nil)
// and a typed error that the HTTP layer turns into a 4xx.
type Result struct {
	Value any
	Err   error
}

type handler func(t *state.Txn, c *Command) (any, error)

// FSM applies commands to a state store.
type FSM struct {
	store    *state.Store
	log      hclog.Logger
	handlers map[MessageType]handler
	applyDur *prometheus.HistogramVec
}

// New builds the FSM over store. reg may be nil.
func New(store *state.Store, log hclog.Logger, reg prometheus.Registerer) *FSM {
	f := &FSM{store: store, log: log.Named("fsm"), handlers: handlers()}
	f.applyDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "regent_fsm_apply_duration_seconds",
		Help:    "Time to apply one replicated command to the state store, by command type.",
		Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05},
	}, []string{"type"})
	if reg != nil {
		reg.MustRegister(f.applyDur)
	}
	return f
}

// Store returns the state store the FSM writes to.
func (f *FSM) Store() *state.Store { return f.store }

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: the commands raft hands over
// together share one memdb transaction, which is what makes writes cheap
// under load. Results are exactly those of applying the commands one by one:
// when a command fails, the shared transaction is dropped and the commands
// are applied again without it (its result is its error).
//
// So a batch is always exactly one commit. Two commits at one raft index
// (the commands before a failure, then those after it, of one coalesced
// entry) would look alike to everything that tells states apart by index:
// a blocking query woken by the first would not wake for the second, and a
// zone's serial (the index of its last change) would name two versions of
// the zone. Applying again costs the successful commands before each
// failure once more: nothing when no command fails, and at most
// MaxCoalesce²/4 applications for a batch in which every other command
// fails (BenchmarkApplyBatchFailures).
//
// A coalesced entry (BatchType) holds several commands; they are applied in
// order like separate entries at the same index, and the entry's result is
// a []any with one result per command.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var units []unit
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if len(l.Data) > 0 && MessageType(l.Data[0]) == BatchType {
			cmds, err := DecodeBatch(l.Data)
			if err != nil {
				panic(fmt.Sprintf("fsm: refusing to apply undecodable entry at index %d: %v", l.Index, err))
			}
			res := make([]any, len(cmds))
			out[i] = res
			entry := state.NewEntry()
			for k, data := range cmds {
				units = append(units, unit{index: l.Index, data: data, out: &res[k], entry: entry, sub: k})
			}
			continue
		}
		units = append(units, unit{index: l.Index, data: l.Data, out: &out[i]})
	}
	for f.applyRun(units) {
	}
	return out
}

// unit is one command to apply: a whole raft entry, or one command of a
// coalesced entry (entry set, sub its position).
type unit struct {
	index  uint64
	data   []byte
	out    *any
	entry  *state.Entry
	sub    int
	cmd    *Command // decoded on first use
	failed bool     // it failed: left out of the transaction
}

// applyRun applies the units that have not failed in one transaction and
// commits it. When one fails, it drops the transaction, marks that unit
// failed with its error as its result, and returns true: run again.
func (f *FSM) applyRun(units []unit) bool {
	var txn *state.Txn
	for k := range units {
		u := &units[k]
		if u.failed {
			continue
		}
		*u.out = nil
		start := time.Now()
		if u.cmd == nil {
			c, err := Decode(u.data)
			if err != nil {
				// A payload this node cannot parse would make it diverge.
				panic(fmt.Sprintf("fsm: refusing to apply undecodable entry at index %d: %v", u.index, err))
			}
			u.cmd = c
		}
		c := u.cmd
		h, ok := f.handlers[c.Type]
		if !ok {
			if c.Type&Ignorable == 0 {
				panic(fmt.Sprintf("fsm: unknown command type %d at index %d: upgrade this node", c.Type, u.index))
			}
			f.log.Warn("skipping unknown ignorable command", "type", c.Type, "index", u.index)
			*u.out = Result{}
			continue
		}
		if txn == nil {
			txn = f.store.Write(u.index, c.Time)
		}
		txn.Index, txn.Now, txn.Entry, txn.Sub, txn.UserID, txn.Rules = u.index, c.Time.UTC(), u.entry, u.sub, c.Actor.UserID, c.Rules
		v, err := h(txn, c)
		f.applyDur.WithLabelValues(typeName(c.Type)).Observe(time.Since(start).Seconds())
		if err != nil {
			txn.Abort()
			// The marks of the aborted commands go; they are set again
			// when they are applied again.
			for _, a := range units[:k+1] {
				if a.entry != nil && !a.failed {
					a.entry.Forget(a.sub)
				}
			}
			u.failed = true
			*u.out = Result{Err: err}
			return true
		}
		*u.out = Result{Value: v}
	}
	if txn != nil {
		txn.Commit()
	}
	return false
}

// Snapshot implements raft.FSM: a memdb read transaction is an immutable view,
// so writes go on while it is persisted.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{txn: f.store.Read()}, nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.store.Restore(rc)
}

type snapshot struct{ txn *state.ReadTxn }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.txn.Persist(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// decode reads a command's payload. A payload that decodes to a nil
// pointer (JSON null where a handler takes a pointer) is an error: the
// handlers dereference it, and a panic in Apply stops every node at the
// same entry, again at every restart.
func decode[T any](c *Command) (T, error) {
	var v T
	if err := json.Unmarshal(c.Payload, &v); err != nil {
		return v, err
	}
	if rv := reflect.ValueOf(&v).Elem(); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return v, fmt.Errorf("fsm: command type %d: the payload is null", c.Type)
	}
	return v, nil
}

// create, update and del adapt the state's typed operations to handlers.
func create[T any](op func(*state.Txn, T) (T, error)) handler {
	return func(t *state.Txn, c *Command) (any, error) {
		v, err := decode[T](c)
		if err != nil {
			return nil, err
		}
		return op(t, v)
	}
}

func update[T any](op func(*state.Txn, T, uint64) (T, error)) handler {
	return func(t *state.Txn, c *Command) (any, error) {
		v, err := decode[T](c)
		if err != nil {
			return nil, err
		}
		return op(t, v, c.Expect)
	}
}

func del(op func(*state.Txn, uint64) error) handler {
	return func(t *state.Txn, c *Command) (any, error) {
		p, err := decode[IDPayload](c)
		if err != nil {
			return nil, err
		}
		return nil, op(t, p.ID)
	}
}
