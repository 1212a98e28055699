package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
)

// Defaults for zero Config fields. The timeouts are tuned for a LAN (raft's
// own defaults are for WANs and double them).
const (
	DefaultHeartbeatTimeout   = 500 * time.Millisecond
	DefaultElectionTimeout    = 500 * time.Millisecond
	DefaultLeaderLeaseTimeout = 250 * time.Millisecond
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 2 * time.Minute
	DefaultTrailingLogs       = 10240 // raft's own default
	DefaultApplyTimeout       = 5 * time.Second
	DefaultCommitWait         = 10 * time.Second

	logCacheSize     = 512
	snapshotsRetain  = 2
	maxAppendEntries = 512
	boltOpenTimeout  = time.Second
)

// Config configures one node. NodeID, DataDir and RaftAddr are required.
type Config struct {
	// NodeID is this node's raft server ID; it must be stable across restarts
	// and unique in the cluster.
	NodeID string
	// DataDir holds raft/raft.db and raft/snapshots/.
	DataDir string
	// RaftAddr is the host:port raft binds and advertises to peers. The host
	// must be reachable by peers (0.0.0.0 and :: are refused). Port 0 picks a
	// free port (tests); Addr reports the result.
	RaftAddr string
	// Bootstrap makes this node a new single-voter cluster if it has no raft
	// state yet. It is ignored when state exists, so it is safe to leave set.
	Bootstrap bool
	// TLS, when set, makes raft traffic mutual TLS. It is called for every
	// connection this node accepts or dials, so what it returns may change
	// (rotated certificates, pkg/tlsfiles); connections already open keep
	// theirs. The config needs this node's certificate (used as server and
	// as client certificate) and the CA pool that signs its peers'
	// certificates (RootCAs and/or ClientCAs; either fills in for the
	// other). ClientAuth must be RequireAndVerifyClientCert (zero is taken
	// to mean it); MinVersion defaults to TLS 1.3. Peers' certificates must
	// be valid for the host part of their RaftAddr unless ServerName is set,
	// in which case every node's certificate must carry that name.
	TLS func() *tls.Config

	// Raft timing; zero means the LAN defaults above (CommitTimeout: raft's).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// Snapshot policy; zero means DefaultSnapshotThreshold /
	// DefaultSnapshotInterval / DefaultTrailingLogs. raft checks every
	// SnapshotInterval (plus up to as much again, at random) whether
	// SnapshotThreshold entries were written since the last snapshot and
	// if so takes one; TrailingLogs entries stay in the log after it, so
	// a follower that lags by fewer catches up from the log rather than
	// by a full snapshot.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// DeadServerCleanup, when positive, makes the leader remove a server that
	// has failed every heartbeat for this long, as long as a healthy majority
	// of the remaining configuration is left. 0 disables it.
	DeadServerCleanup time.Duration

	// ApplyTimeout is how long Apply (and the other leader-only writes) wait
	// for this node to become leader when there is no leader. 0 means
	// DefaultApplyTimeout.
	ApplyTimeout time.Duration

	// CommitWait bounds how long Apply waits for a command the leader has
	// put into its log to commit (and for a queued command to be put into
	// the log). raft itself waits for ever while the followers answer but
	// cannot store the entry (a full disk on a majority of them); then
	// Apply returns ErrCommitTimeout (or ErrNotSubmitted). 0 means
	// DefaultCommitWait.
	CommitWait time.Duration

	// Coalesce, when set, makes the leader put commands that arrive while
	// earlier entries are in flight into one raft entry (group commit).
	// MaxCoalesce bounds the commands per entry and CoalesceInflight the
	// entries in flight; zero means DefaultMaxCoalesce and
	// DefaultCoalesceInflight. CoalesceLinger is the longest the next entry
	// waits for more commands under load (see batcher); zero means
	// DefaultCoalesceLinger, negative never.
	Coalesce         Coalescer
	MaxCoalesce      int
	CoalesceInflight int
	CoalesceLinger   time.Duration

	// Registerer, when set, receives the cluster's own metrics (the group
	// commit's commands per entry and deferred commands).
	Registerer prometheus.Registerer

	// Logger receives every log line; raft logs under Named("raft"). Nil
	// means hclog.Default().
	Logger hclog.Logger

	// TermSaveFailed, when set, is called instead of returning when this
	// node cannot save raft's current term to its raft store (a full or
	// unwritable data dir): raft panics on that error (it cannot go on
	// without a durable term), which would kill the process with a stack
	// trace and Go's exit status 2. The function must not return: it stops
	// the process. The data dir is intact (bolt writes are transactions).
	TermSaveFailed func(err error)

	// StateConflict, when set, is called instead of returning when the
	// leader's log contradicts entries this node has already applied
	// (ErrStateConflict: its data dir holds another cluster's state, see
	// diskStore.DeleteRange). The log is left as it was. It should stop
	// the process; when it returns, the truncation fails and raft retries.
	StateConflict func(err error)

	// storeFault, when set (tests), is called before every write to the
	// raft store; an error it returns fails the write.
	storeFault func() error
}

// Cluster is one node's raft layer. Build it with New and stop it with
// Shutdown. All methods are safe for concurrent use.
type Cluster struct {
	cfg       Config
	logger    hclog.Logger
	fsm       raft.FSM
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	disk      *diskStore // store, with a record of failed writes
	snaps     *snapshotStore
	stream    *streamLayer
	transport *raft.NetworkTransport
	advertise string
	dir       string // <DataDir>/raft

	observer *raft.Observer
	obsCh    chan raft.Observation
	changes  notifier
	// readyTerm is the term of the last Barrier this node completed as
	// leader (ReadyForReads).
	readyTerm atomic.Uint64
	health    *peerHealth
	removed   atomic.Uint64
	commits   commitWatch

	batch *batcher // nil: coalescing off
	gate  gate     // writes served as leader; closed during a hand-off

	stopCh       chan struct{}
	wg           sync.WaitGroup
	shutdownOnce sync.Once
	shutdownErr  error
}

// New opens (or creates) the node's raft state under cfg.DataDir, starts raft
// with fsm, and bootstraps a single-voter cluster when cfg.Bootstrap is set
// and there is no state yet. It does not wait for a leader: use
// WaitForLeader.
func New(cfg Config, fsm raft.FSM) (*Cluster, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("cluster: NodeID is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("cluster: DataDir is required")
	}
	if cfg.RaftAddr == "" {
		return nil, errors.New("cluster: RaftAddr is required")
	}
	if fsm == nil {
		return nil, errors.New("cluster: FSM is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.Default()
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = DefaultApplyTimeout
	}
	if cfg.CommitWait <= 0 {
		cfg.CommitWait = DefaultCommitWait
	}
	var tlsConfig func() (*tls.Config, error)
	if cfg.TLS != nil {
		tlsConfig = func() (*tls.Config, error) {
			c := cfg.TLS()
			if c == nil {
				return nil, errors.New("cluster: the TLS config function returned no config")
			}
			return prepareTLS(c)
		}
		if _, err := tlsConfig(); err != nil {
			return nil, err
		}
	}
	rc, err := raftConfig(cfg)
	if err != nil {
		return nil, err
	}

	c := &Cluster{
		cfg:    cfg,
		logger: cfg.Logger.Named("cluster"),
		fsm:    fsm,
		dir:    filepath.Join(cfg.DataDir, "raft"),
		stopCh: make(chan struct{}),
		health: newPeerHealth(),
	}
	c.changes.init()
	c.gate.init()

	// Everything opened below is closed again if a later step fails.
	ok := false
	var closers []func()
	defer func() {
		if !ok {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	// The data dir is owner-only; raft would create its snapshot
	// directory 0755, so it is made here first.
	snapDir := filepath.Join(c.dir, "snapshots")
	if err := os.MkdirAll(snapDir, dirMode); err != nil {
		return nil, fmt.Errorf("cluster: create raft dir: %w", err)
	}
	dbPath := filepath.Join(c.dir, "raft.db")
	if err := checkBoltFile(dbPath); err != nil {
		return nil, err
	}
	c.store, err = raftboltdb.New(raftboltdb.Options{
		Path: dbPath,
		// bbolt's freelist is not written on every commit but rebuilt by
		// a scan when the file is opened (as Consul and Nomad allow): a
		// log-store commit writes fewer pages, ~7 % less CPU per write
		// under load (docs/benchmarks.md). The data's durability is the
		// same; only opening a large raft.db takes longer.
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, lockedError(dbPath, err)
		}
		if errors.Is(err, bbolt.ErrInvalid) || errors.Is(err, bbolt.ErrVersionMismatch) || errors.Is(err, bbolt.ErrChecksum) {
			return nil, fmt.Errorf("%w: %s is not a raft store bbolt can read (%v): %s", ErrStateDamaged, dbPath, err, damagedHint)
		}
		return nil, fmt.Errorf("cluster: open %s: %w", dbPath, err)
	}
	closers = append(closers, func() { _ = c.store.Close() })
	// Only now that this node holds raft.db's lock: a node refused because
	// another one runs on the dir leaves it alone.
	tightenRaftDir(c.dir, c.logger)
	removeInterrupted(c.dir, snapDir, c.logger)
	c.disk = &diskStore{BoltStore: c.store, fault: cfg.storeFault, termSaveFailed: cfg.TermSaveFailed, log: c.logger}

	logs, err := raft.NewLogCache(logCacheSize, c.disk)
	if err != nil {
		return nil, fmt.Errorf("cluster: log cache: %w", err)
	}
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(c.dir, snapshotsRetain, rc.Logger)
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	c.snaps = &snapshotStore{FileSnapshotStore: fileSnaps, dir: snapDir}

	ln, adv, err := listen(cfg.RaftAddr)
	if err != nil {
		return nil, err
	}
	c.advertise = string(adv)
	c.stream = &streamLayer{Listener: ln, advertise: adv, tlsConfig: tlsConfig}
	c.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  c.stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  rc.Logger.Named("net"),
	})
	closers = append(closers, func() { _ = c.transport.Close() })
	c.disk.stateConflict = cfg.StateConflict

	hasState, err := raft.HasExistingState(logs, c.disk, c.snaps)
	if err != nil {
		return nil, fmt.Errorf("cluster: inspect raft state: %w", err)
	}

	c.raft, err = raft.NewRaft(rc, fsm, logs, c.disk, c.snaps, c.transport)
	if err == nil {
		c.disk.raft.Store(c.raft)
	}
	if err != nil {
		if strings.Contains(err.Error(), "failed to load any existing snapshots") {
			// Every snapshot in raft/snapshots failed its checksum (raft
			// logged each): the node cannot rebuild its state.
			return nil, fmt.Errorf("%w: no snapshot in %s can be read (truncated or corrupt; the log above names each): %s",
				ErrStateDamaged, filepath.Join(c.dir, "snapshots"), damagedHint)
		}
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	closers = append(closers, func() { _ = c.raft.Shutdown().Error() })

	switch {
	case cfg.Bootstrap && hasState:
		c.logger.Info("existing raft state found; not bootstrapping", "dir", c.dir)
	case cfg.Bootstrap:
		c.logger.Info("bootstrapping a new single-voter cluster", "id", cfg.NodeID, "addr", c.advertise)
		f := c.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(cfg.NodeID),
			Address:  raft.ServerAddress(c.advertise),
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
	case !hasState:
		c.logger.Info("no raft state; waiting to be added to a cluster", "id", cfg.NodeID, "addr", c.advertise)
	}

	c.startObserver()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.watchCommits()
	}()
	if cfg.Coalesce != nil {
		c.batch = newBatcher(c, cfg.Coalesce, cfg.MaxCoalesce, cfg.CoalesceInflight, cfg.CoalesceLinger, cfg.Registerer)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.batch.run(c.stopCh)
		}()
	}
	ok = true
	c.logger.Info("raft started", "id", cfg.NodeID, "addr", c.advertise, "tls", tlsConfig != nil)
	return c, nil
}

// raftConfig applies the package defaults and throughput tuning.
func raftConfig(cfg Config) (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = quietRepeats(cfg.Logger.Named("raft"))

	var err error
	if rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout, err = Timeouts(cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout); err != nil {
		return nil, err
	}
	rc.CommitTimeout = orDefault(cfg.CommitTimeout, rc.CommitTimeout)
	rc.SnapshotInterval = orDefault(cfg.SnapshotInterval, DefaultSnapshotInterval)
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	if rc.SnapshotThreshold == 0 {
		rc.SnapshotThreshold = DefaultSnapshotThreshold
	}

	rc.MaxAppendEntries = maxAppendEntries
	rc.BatchApplyCh = true
	rc.TrailingLogs = cfg.TrailingLogs
	if rc.TrailingLogs == 0 {
		rc.TrailingLogs = DefaultTrailingLogs
	}
	// A removed node stays up as a follower outside the configuration, so an
	// operator can add it back without a restart.
	rc.ShutdownOnRemove = false
	// Per-peer metrics as labels only, not also as name suffixes.
	rc.NoLegacyTelemetry = true

	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("cluster: raft config: %w", err)
	}
	return rc, nil
}

// Timeouts are the raft timeouts a node runs with, given its configured
// ones (0: not set): the heartbeat timeout, or DefaultHeartbeatTimeout; the
// election timeout, or the larger of DefaultElectionTimeout and the
// heartbeat timeout; the leader lease, or the smaller of
// DefaultLeaderLeaseTimeout and the heartbeat timeout. Set ones that raft
// would refuse together are an error naming them.
func Timeouts(heartbeat, election, lease time.Duration) (h, e, l time.Duration, err error) {
	h = orDefault(heartbeat, DefaultHeartbeatTimeout)
	e = orDefault(election, max(DefaultElectionTimeout, h))
	l = orDefault(lease, min(DefaultLeaderLeaseTimeout, h))
	const least = 5 * time.Millisecond
	switch {
	case h < least || e < least || l < least:
		err = fmt.Errorf("the raft timeouts must be at least %s (heartbeat %s, election %s, leader lease %s)", least, h, e, l)
	case e < h:
		err = fmt.Errorf("the election timeout %s is shorter than the heartbeat timeout %s", e, h)
	case l > h:
		err = fmt.Errorf("the leader lease timeout %s is longer than the heartbeat timeout %s", l, h)
	}
	return h, e, l, err
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Shutdown stops the node: the package's goroutines, raft (which closes the
// transport) and the bolt file. It does not leave the cluster (see Leave).
// It is safe to call more than once; later calls return the first result.
func (c *Cluster) Shutdown() error {
	c.shutdownOnce.Do(func() {
		close(c.stopCh)
		c.changes.notify() // wake waiters promptly
		// raft first: it settles the futures the group commit still
		// waits on (a leader whose entries stopped committing would
		// otherwise hold this for good), then our goroutines end.
		var errs []error
		if err := c.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		c.wg.Wait()
		c.raft.DeregisterObserver(c.observer)
		// raft closes the transport when it shuts down; closing again is a
		// no-op, but makes sure the listener is gone even on odd paths.
		if err := c.transport.Close(); err != nil {
			errs = append(errs, fmt.Errorf("transport close: %w", err))
		}
		if err := c.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft store close: %w", err))
		}
		c.shutdownErr = errors.Join(errs...)
		c.logger.Info("raft stopped", "id", c.cfg.NodeID)
	})
	return c.shutdownErr
}

// NodeID returns this node's raft server ID.
func (c *Cluster) NodeID() string { return c.cfg.NodeID }

// Addr returns the raft address this node advertises to its peers.
func (c *Cluster) Addr() string { return c.advertise }

// Raft returns the underlying raft instance. It is an escape hatch for tests
// and diagnostics; production code should use Cluster's methods.
func (c *Cluster) Raft() *raft.Raft { return c.raft }

// IsLeader reports whether this node is the leader right now. A leader that
// has just been partitioned away still reports true until its lease expires;
// use VerifyLeader for a linearizable check.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the ID and raft address of the leader as this node knows it,
// or empty strings when there is none.
func (c *Cluster) Leader() (id, raftAddr string) {
	addr, sid := c.raft.LeaderWithID()
	return string(sid), string(addr)
}

// LeaderChangeCh returns a channel that is closed at the next change of the
// known leader or of this node's raft state (and at Shutdown). It fires once:
// call LeaderChangeCh again, then look at IsLeader/Leader. Any number of
// goroutines may wait on it. Notifications are best effort (raft may drop an
// observation under extreme load), so long-lived waiters should also re-check
// on a slow timer.
func (c *Cluster) LeaderChangeCh() <-chan struct{} { return c.changes.wait() }

// WaitForLeader blocks until some node (possibly this one) is known to be the
// leader and returns its ID, or returns ctx's error.
func (c *Cluster) WaitForLeader(ctx context.Context) (string, error) {
	recheck := time.NewTicker(recheckInterval)
	defer recheck.Stop()
	for {
		ch := c.changes.wait()
		if _, id := c.raft.LeaderWithID(); id != "" {
			return string(id), nil
		}
		select {
		case <-ch:
		case <-recheck.C:
		case <-ctx.Done():
			return "", ctx.Err()
		case <-c.stopCh:
			return "", ErrShutdown
		}
	}
}

// VerifyLeader confirms with a quorum that this node is still the leader, for
// linearizable reads. It returns *ErrNotLeader or ErrNoLeader when it is not.
// ctx is checked before the round trip, which itself is bounded by raft
// (the leader steps down when it cannot reach a quorum within its lease).
func (c *Cluster) VerifyLeader(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.IsLeader() {
		return c.notLeaderErr()
	}
	return c.mapRaftErr(c.raft.VerifyLeader().Error())
}

// Barrier waits until every entry committed before the call has been applied
// to the FSM on the leader. A new leader should call it before serving reads
// of its FSM. Leader only.
func (c *Cluster) Barrier(ctx context.Context) error {
	if !c.IsLeader() {
		return c.notLeaderErr()
	}
	term := c.raft.CurrentTerm()
	if err := c.await(ctx, c.raft.Barrier(enqueueTimeout(ctx))); err != nil {
		return err
	}
	if c.IsLeader() && c.raft.CurrentTerm() == term && c.readyTerm.Swap(term) != term {
		c.changes.notify()
	}
	return nil
}

// await waits for f, or until ctx ends or the node stops: a barrier (or any
// entry) waits for a commit that a leader whose followers cannot store
// entries never gets, and it does not step down either.
func (c *Cluster) await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // ends at the latest when raft shuts down
	select {
	case err := <-done:
		return c.mapRaftErr(err)
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopCh:
		return ErrShutdown
	}
}

// ReadyForReads reports whether this node leads and its FSM holds every
// write committed before its term began (a Barrier of this term has
// returned: the server runs one on each gain of leadership). A node that
// has just won an election may not have applied the last writes its
// predecessor acknowledged until then; reads served before would miss them.
func (c *Cluster) ReadyForReads() bool {
	return c.IsLeader() && c.readyTerm.Load() == c.raft.CurrentTerm()
}

// AwaitReadyForReads waits until ReadyForReads, or this node no longer
// leads (*ErrNotLeader or ErrNoLeader), or ctx ends.
func (c *Cluster) AwaitReadyForReads(ctx context.Context) error {
	for {
		ch := c.changes.wait()
		if c.ReadyForReads() {
			return nil
		}
		if !c.IsLeader() {
			return c.notLeaderErr()
		}
		select {
		case <-ch:
		case <-time.After(recheckInterval):
		case <-ctx.Done():
			return ctx.Err()
		case <-c.stopCh:
			return ErrShutdown
		}
	}
}

// LastContact returns how long ago this node last heard from the leader: 0 on
// the leader, and math.MaxInt64 (effectively infinite) when it never has, so
// that staleness checks fail safe.
func (c *Cluster) LastContact() time.Duration {
	if c.IsLeader() {
		return 0
	}
	last := c.raft.LastContact()
	if last.IsZero() {
		return math.MaxInt64
	}
	return time.Since(last)
}

// Term is the current raft term.
func (c *Cluster) Term() uint64 { return c.raft.CurrentTerm() }

// AppliedIndex returns raft's applied index: the last entry raft has handed
// to the FSM. The FSM may still be applying it, and it may trail Apply's
// return by a moment; a response header that must match FSM contents should
// use an index the FSM records itself.
func (c *Cluster) AppliedIndex() uint64 { return c.raft.AppliedIndex() }

// LastIndex returns the index of the last entry in this node's log (or of
// its latest snapshot).
func (c *Cluster) LastIndex() uint64 { return c.raft.LastIndex() }

// State returns raft's state: "Follower", "Candidate", "Leader" or "Shutdown".
func (c *Cluster) State() string { return c.raft.State().String() }

// Stats returns raft's stats map plus "dead_servers_removed".
func (c *Cluster) Stats() map[string]string {
	st := c.raft.Stats()
	st["dead_servers_removed"] = fmt.Sprint(c.removed.Load())
	return st
}

// DeadServersRemoved returns how many servers this node removed through dead
// server cleanup while it was leader.
func (c *Cluster) DeadServersRemoved() uint64 { return c.removed.Load() }

// enqueueTimeout turns ctx's deadline into raft's enqueue timeout (0 = none).
func enqueueTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Nanosecond
	}
	return 0
}

// notifier is a broadcast: wait returns a channel that notify closes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) init() { n.ch = make(chan struct{}) }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}
