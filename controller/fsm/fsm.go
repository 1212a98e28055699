package fsm

import (
	"encoding/json"
	"fmt"
	"io"
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
	out := []any{nil}
	f.applyRun([]*raft.Log{l}, out)
	return out[0]
}

// ApplyBatch implements raft.BatchingFSM: the commands raft hands over
// together share one memdb transaction, which is what makes writes cheap
// under load. Results are exactly those of applying the commands one by one:
// when a command fails, the shared transaction is dropped, the commands
// before it are applied again together, and the failing one alone.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i := 0; i < len(logs); {
		n := f.applyRun(logs[i:], out[i:])
		if n == len(logs)-i {
			break
		}
		// logs[i+n] failed: commit what came before it, then it alone.
		if n > 0 {
			f.applyRun(logs[i:i+n], out[i:i+n])
		}
		f.applyRun(logs[i+n:i+n+1], out[i+n:i+n+1])
		i += n + 1
	}
	return out
}

// applyRun applies logs in one transaction. If a command of a run longer than
// one fails, it aborts and returns that command's position; otherwise it
// commits and returns len(logs).
func (f *FSM) applyRun(logs []*raft.Log, out []any) int {
	var txn *state.Txn
	for k, l := range logs {
		out[k] = nil
		if l.Type != raft.LogCommand {
			continue
		}
		start := time.Now()
		c, err := Decode(l.Data)
		if err != nil {
			// A payload this node cannot parse would make it diverge.
			panic(fmt.Sprintf("fsm: refusing to apply undecodable entry at index %d: %v", l.Index, err))
		}
		h, ok := f.handlers[c.Type]
		if !ok {
			if c.Type&Ignorable == 0 {
				panic(fmt.Sprintf("fsm: unknown command type %d at index %d: upgrade this node", c.Type, l.Index))
			}
			f.log.Warn("skipping unknown ignorable command", "type", c.Type, "index", l.Index)
			out[k] = Result{}
			continue
		}
		if txn == nil {
			txn = f.store.Write(l.Index, c.Time)
		}
		txn.Index, txn.Now = l.Index, c.Time.UTC()
		v, err := h(txn, c)
		f.applyDur.WithLabelValues(typeName(c.Type)).Observe(time.Since(start).Seconds())
		if err != nil {
			txn.Abort()
			if len(logs) > 1 {
				return k
			}
			out[k] = Result{Err: err}
			return len(logs)
		}
		out[k] = Result{Value: v}
	}
	if txn != nil {
		txn.Commit()
	}
	return len(logs)
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

func decode[T any](c *Command) (T, error) {
	var v T
	err := json.Unmarshal(c.Payload, &v)
	return v, err
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
