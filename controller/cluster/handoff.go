package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Leadership hand-off.
//
// raft refuses every Apply while the leader transfers leadership, so a write
// that reaches the leader in that moment would fail and its client would
// have to retry. TransferLeadership avoids that with a gate the API's writes
// pass through (BeginWrite): once a transfer is asked for, new writes wait
// at the gate, the writes already past it finish, and only then is raft
// asked to transfer. When the transfer is over, the waiting writes go on:
// to the new leader (the caller forwards them), or here again if the
// transfer failed.

// handoffDrain bounds the wait for the writes in progress before a
// transfer; a write still running then may fail with
// ErrLeadershipTransferInProgress.
const handoffDrain = 2 * time.Second

// transferAttempts bounds the tries of a leadership transfer that times out.
const transferAttempts = 3

// newLeaderWait is how long a node that handed its leadership over waits
// at least for the new leader's first heartbeat.
const newLeaderWait = 5 * time.Second

// ErrNoOtherVoter is returned by TransferLeadership when there is no voter
// to hand leadership to.
var ErrNoOtherVoter = errors.New("cluster: no other voter to take over leadership")

// ErrUnknownServer is returned by TransferLeadership when the named target
// is not a voter of the cluster.
var ErrUnknownServer = errors.New("cluster: not a voter of the cluster")

// gate counts the writes in progress on this node as leader and holds new
// ones while a hand-off is under way.
type gate struct {
	mu      sync.Mutex
	active  int
	closed  bool
	changed chan struct{} // closed and replaced when active reaches 0 or the gate opens
}

func (g *gate) init() { g.changed = make(chan struct{}) }

func (g *gate) signalLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// BeginWrite is called by a write about to be served on this node as leader.
// It waits while a leadership hand-off is under way (bounded by ctx), then
// counts the write in; the write calls done when it has its outcome.
// Leadership may have moved while it waited: the caller should look again at
// who leads before going on.
func (c *Cluster) BeginWrite(ctx context.Context) (done func(), err error) {
	g := &c.gate
	g.mu.Lock()
	for g.closed {
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.stopCh:
			return nil, ErrShutdown
		}
		g.mu.Lock()
	}
	g.active++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.active--
			if g.active == 0 && g.closed {
				g.signalLocked()
			}
			g.mu.Unlock()
		})
	}, nil
}

// TransferLeadership hands leadership to the voter named to, or to the most
// up-to-date other voter when to is empty, and returns the new leader's ID.
// Leader only (*ErrNotLeader otherwise). Writes arriving meanwhile wait at
// the gate (BeginWrite) instead of failing. Errors: ErrNoOtherVoter,
// ErrUnknownServer (to is not a voter), ErrLeadershipTransferInProgress
// (another transfer is under way), or the transfer's own failure (the
// target did not take over in time; this node then stays leader).
func (c *Cluster) TransferLeadership(ctx context.Context, to string) (string, error) {
	if !c.IsLeader() {
		return "", c.notLeaderErr()
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return "", c.mapRaftErr(err)
	}
	var target *raft.Server
	others := 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage != raft.Voter || string(s.ID) == c.cfg.NodeID {
			continue
		}
		others++
		if string(s.ID) == to {
			target = &s
		}
	}
	switch {
	case to != "" && to == c.cfg.NodeID:
		return to, nil // already leads
	case to != "" && target == nil:
		return "", fmt.Errorf("%w: %q", ErrUnknownServer, to)
	case others == 0:
		return "", ErrNoOtherVoter
	}

	g := &c.gate
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return "", ErrLeadershipTransferInProgress
	}
	g.closed = true
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.closed = false
		g.signalLocked()
		g.mu.Unlock()
	}()

	// Let the writes already admitted finish.
	drain := time.NewTimer(handoffDrain)
	defer drain.Stop()
	for {
		g.mu.Lock()
		active, ch := g.active, g.changed
		g.mu.Unlock()
		if active == 0 {
			break
		}
		select {
		case <-ch:
			continue
		case <-drain.C:
			c.logger.Warn("handing over leadership with writes still in progress", "writes", active)
		case <-ctx.Done():
			return "", ctx.Err()
		}
		break
	}

	// raft gives the target one election timeout to take over; a busy
	// target may miss it (it must first catch up, then win the vote), so a
	// timed-out transfer is tried again while this node still leads. raft
	// clears its own transfer flag only once the TimeoutNow call of the
	// failed attempt returns: until then a retry is refused as "in
	// progress" and waits.
	start := time.Now()
	timeouts := 0
	settle := time.Now().Add(transferAttempts * 2 * c.electionTimeout())
	for {
		var f raft.Future
		if target != nil {
			f = c.raft.LeadershipTransferToServer(target.ID, target.Address)
		} else {
			f = c.raft.LeadershipTransfer()
		}
		err := f.Error()
		// An attempt fails by timing out, or, when raft could not bring
		// the target up to date for it, with "replication failed" (seen
		// under load with a dead target): either is tried again.
		timedOut := err != nil && (err.Error() == "leadership transfer timeout" || err.Error() == "replication failed")
		settling := timeouts > 0 && errors.Is(err, raft.ErrLeadershipTransferInProgress)
		if err == nil || (timedOut || settling) && !c.IsLeader() { // a late take-over is a take-over
			break
		}
		switch {
		case timedOut && timeouts+1 < transferAttempts && ctx.Err() == nil:
			timeouts++
			c.logger.Warn("leadership transfer timed out; trying again", "attempt", timeouts, "error", err)
			continue
		case settling && time.Now().Before(settle):
			select {
			case <-time.After(recheckInterval):
				continue
			case <-ctx.Done():
			}
		}
		// Writes wait at the gate until it opens: first let raft drop the
		// failed transfer, which it refuses writes for until then.
		c.awaitTransferSettled(settle)
		return "", fmt.Errorf("cluster: leadership transfer failed: %w", c.mapRaftErr(err))
	}
	// raft's future completes when this node has stepped down; the new
	// leader is known here with its first heartbeat. That takes about a
	// heartbeat, but a busy target (it has just won its vote) may take
	// longer: the hand-over is done, so waiting a few seconds for it
	// costs the operator less than a 503 for a transfer that worked.
	wait := time.NewTimer(max(2*c.electionTimeout(), newLeaderWait))
	defer wait.Stop()
	for {
		ch := c.changes.wait()
		if _, id := c.raft.LeaderWithID(); id != "" && string(id) != c.cfg.NodeID {
			c.logger.Info("leadership handed over", "leader", id, "took", time.Since(start))
			return string(id), nil
		}
		select {
		case <-ch:
		case <-time.After(recheckInterval):
		case <-wait.C:
			if c.IsLeader() {
				return "", errors.New("cluster: leadership transfer failed: this node still leads")
			}
			return "", errors.New("cluster: leadership handed over, but no new leader is known yet")
		case <-ctx.Done():
			return "", ctx.Err()
		case <-c.stopCh:
			return "", ErrShutdown
		}
	}
}

// awaitTransferSettled waits (until deadline at most) for raft to finish
// with a failed leadership transfer: raft refuses every write while its
// transfer flag is set, and clears it only when the transfer's TimeoutNow
// call returns. A barrier is refused the same way, so it tells.
func (c *Cluster) awaitTransferSettled(deadline time.Time) {
	for time.Now().Before(deadline) {
		err := c.raft.Barrier(time.Until(deadline)).Error()
		if !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-c.stopCh:
			return
		}
	}
}

// electionTimeout is raft's election timeout as it runs: without one in
// the config it follows a longer heartbeat timeout, not the default.
func (c *Cluster) electionTimeout() time.Duration {
	return c.raft.ReloadableConfig().ElectionTimeout
}
