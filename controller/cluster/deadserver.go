package cluster

import (
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Dead server cleanup, the part of Consul's autopilot this package needs.
//
// While this node is leader, raft's heartbeat goroutine for each peer emits
// FailedHeartbeatObservation on every failed heartbeat and
// ResumedHeartbeatObservation when one succeeds again. peerHealth records,
// per peer, since when it has been failing (the observation's LastContact:
// the last successful contact, or the start of replication to it) and when a
// failure was last seen. The reaper, every tick, removes at most one server
// that
//
//   - is not this node,
//   - has been failing continuously for at least Config.DeadServerCleanup,
//     with a failure observed within the staleness window (a peer that stops
//     producing failures without a Resumed observation is not trusted to be
//     dead), and
//   - if it is a voter: after its removal, the voters that are left still
//     have a healthy majority (healthy = no failure recorded at all). This
//     both guarantees the removal itself can commit and never shrinks the
//     configuration past what quorum math allows: with 3 voters one dead one
//     is removed, two dead ones are not.
//
// Removal uses the configuration index it was computed from, so a
// concurrent membership change makes it fail harmlessly and retry on the next
// tick. Tracking is reset whenever leadership changes (the new leader starts
// from scratch) and whenever raft reports it dropped an observation to us,
// so a lost Resumed observation can only delay a removal, never cause one.

const (
	observerBuffer = 1024
	// staleAfter: a peer counts as still failing only if a failure was
	// observed this recently. Failed heartbeats repeat every HeartbeatTimeout/2
	// at most, but a single heartbeat to a black-holed peer can block for the
	// whole transport timeout.
	staleMargin = 2 * time.Second
)

type failure struct {
	since time.Time // start of the failing streak
	last  time.Time // last failed heartbeat seen
}

// peerHealth is the leader's record of failing peers.
type peerHealth struct {
	mu      sync.Mutex
	failing map[raft.ServerID]failure
}

func newPeerHealth() *peerHealth {
	return &peerHealth{failing: make(map[raft.ServerID]failure)}
}

func (h *peerHealth) failed(id raft.ServerID, lastContact, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.failing[id]
	if !ok {
		f.since = now
		if !lastContact.IsZero() && lastContact.Before(now) {
			f.since = lastContact
		}
	}
	f.last = now
	h.failing[id] = f
}

func (h *peerHealth) resumed(id raft.ServerID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.failing, id)
}

func (h *peerHealth) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.failing)
}

func (h *peerHealth) snapshot() map[raft.ServerID]failure {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[raft.ServerID]failure, len(h.failing))
	for id, f := range h.failing {
		out[id] = f
	}
	return out
}

// pickDeadServer applies the removal rule above to a configuration and
// returns the server to remove, if any. It is a pure function so the quorum
// rule can be tested on its own.
func pickDeadServer(servers []raft.Server, self raft.ServerID, failing map[raft.ServerID]failure,
	now time.Time, after, stale time.Duration) (raft.Server, bool) {
	voters, healthyVoters := 0, 0
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if _, bad := failing[s.ID]; !bad {
			healthyVoters++
		}
	}
	// Oldest failure first; ties by ID so the choice is deterministic.
	var candidates []raft.Server
	for _, s := range servers {
		f, bad := failing[s.ID]
		if s.ID == self || !bad || now.Sub(f.since) < after || now.Sub(f.last) > stale {
			continue
		}
		candidates = append(candidates, s)
	}
	slices.SortFunc(candidates, func(a, b raft.Server) int {
		if c := failing[a.ID].since.Compare(failing[b.ID].since); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	for _, s := range candidates {
		if s.Suffrage != raft.Voter {
			return s, true // non-voters do not count toward quorum
		}
		left := voters - 1
		if left >= 1 && healthyVoters >= left/2+1 {
			return s, true
		}
	}
	return raft.Server{}, false
}

// startObserver registers the raft observer and starts its consumer and,
// when enabled, the dead server reaper. Both goroutines stop at Shutdown.
func (c *Cluster) startObserver() {
	c.obsCh = make(chan raft.Observation, observerBuffer)
	c.observer = raft.NewObserver(c.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState,
			raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation,
			raft.PeerObservation:
			return true
		}
		return false
	})
	c.raft.RegisterObserver(c.observer)

	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.observe()
	}()
	if c.cfg.DeadServerCleanup > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.reap()
		}()
	}
}

// observe consumes raft observations: leadership changes wake waiters and
// reset peer tracking; heartbeat and peer observations feed peerHealth.
func (c *Cluster) observe() {
	for {
		select {
		case <-c.stopCh:
			return
		case o := <-c.obsCh:
			switch d := o.Data.(type) {
			case raft.LeaderObservation, raft.RaftState:
				c.health.reset()
				c.changes.notify()
			case raft.FailedHeartbeatObservation:
				c.health.failed(d.PeerID, d.LastContact, time.Now())
			case raft.ResumedHeartbeatObservation:
				c.health.resumed(d.PeerID)
			case raft.PeerObservation:
				c.health.resumed(d.Peer.ID) // added or removed: start afresh
			}
		}
	}
}

// staleAfter is how recent a peer's last failed heartbeat must be for the
// peer to count as still failing.
func (c *Cluster) staleAfter() time.Duration {
	return transportTimeout + 2*c.raft.ReloadableConfig().HeartbeatTimeout + staleMargin
}

// peerFailing reports whether this node, as leader, sees id failing its
// heartbeats right now: a failing streak is recorded and a failure was seen
// within the staleness window (the rule dead server cleanup uses). It also
// returns since when. A peer the leader has no failure for is taken to be
// alive, which is the safe side for callers that would remove it.
func (c *Cluster) peerFailing(id raft.ServerID, now time.Time) (time.Time, bool) {
	f, bad := c.health.snapshot()[id]
	if !bad || now.Sub(f.last) > c.staleAfter() {
		return time.Time{}, false
	}
	return f.since, true
}

// reap runs the dead server rule on the leader every tick.
func (c *Cluster) reap() {
	interval := min(max(c.cfg.DeadServerCleanup/4, 50*time.Millisecond), time.Second)
	stale := c.staleAfter()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var dropped uint64
	for {
		select {
		case <-c.stopCh:
			return
		case <-ticker.C:
		}
		if n := c.observer.GetNumDropped(); n != dropped {
			// A Resumed observation may be among the lost ones: forget what
			// we know rather than act on it.
			dropped = n
			c.health.reset()
			c.logger.Warn("raft observations were dropped; restarting dead server tracking")
			continue
		}
		if !c.IsLeader() {
			continue
		}
		cf := c.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			continue
		}
		now := time.Now()
		failing := c.health.snapshot()
		s, ok := pickDeadServer(cf.Configuration().Servers, raft.ServerID(c.cfg.NodeID), failing, now, c.cfg.DeadServerCleanup, stale)
		if !ok {
			continue
		}
		down := now.Sub(failing[s.ID].since).Round(time.Millisecond)
		c.logger.Info("removing dead server", "id", s.ID, "addr", s.Address, "suffrage", s.Suffrage, "failing_for", down)
		if err := c.raft.RemoveServer(s.ID, cf.Index(), 0).Error(); err != nil {
			c.logger.Info("dead server removal failed; will retry", "id", s.ID, "error", err)
			continue
		}
		c.health.resumed(s.ID)
		c.removed.Add(1)
		c.logger.Info("removed dead server", "id", s.ID, "addr", s.Address)
	}
}
