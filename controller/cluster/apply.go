package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// recheckInterval is the safety net of the leadership waits: they are woken
// by raft's observations, and re-check on this timer in case one was dropped.
const recheckInterval = 100 * time.Millisecond

// Apply commits cmd through raft and returns the FSM's response to it and
// the raft index it was committed at.
//
// On the leader the command is applied directly. Otherwise:
//   - if another node is the known leader, Apply returns *ErrNotLeader at
//     once, naming it, so the caller can forward;
//   - if there is no leader, Apply waits (woken by leadership changes) up to
//     Config.ApplyTimeout for this node to become leader, or for another
//     leader to appear (then *ErrNotLeader), and then returns ErrNoLeader.
//
// raft's own failures map to ErrLeadershipLost (outcome unknown),
// ErrLeadershipTransferInProgress (not applied, retry) and ErrShutdown. ctx
// bounds the wait for a leader and the enqueueing; once the command is in
// the leader's log Apply waits for the commit. raft bounds that wait only
// when the leader cannot reach a quorum (it steps down within its lease);
// when the followers answer but cannot store the entry (full disks) it
// would wait for ever, so Apply gives up after Config.CommitWait with
// ErrCommitTimeout (outcome unknown), or ErrNotSubmitted for a command
// that was still queued behind such an entry (nothing written).
func (c *Cluster) Apply(ctx context.Context, cmd []byte) (resp any, index uint64, err error) {
	deadline := time.Now().Add(c.cfg.ApplyTimeout)
	for {
		if err := c.awaitLeadership(ctx, deadline); err != nil {
			return nil, 0, err
		}
		resp, index, err := c.applyLeader(ctx, cmd)
		switch {
		case err == nil:
			return resp, index, nil
		case errors.Is(err, raft.ErrNotLeader) && time.Now().Before(deadline):
			// Lost leadership before the command was appended: nothing was
			// written, so wait again (within the same deadline).
			continue
		case errors.Is(err, raft.ErrEnqueueTimeout) && ctx.Err() != nil:
			return nil, 0, ctx.Err()
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrShutdown):
			return nil, 0, err
		}
		return nil, 0, c.mapRaftErr(err)
	}
}

// applyLeader is Apply's step on the leader: through the batcher when
// coalescing is on, else straight into raft.
func (c *Cluster) applyLeader(ctx context.Context, cmd []byte) (any, uint64, error) {
	if c.batch != nil {
		return c.batch.apply(ctx, cmd)
	}
	f := c.raft.Apply(cmd, enqueueTimeout(ctx))
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // ends when raft settles f (at the latest at Shutdown)
	timer := time.NewTimer(c.cfg.CommitWait)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return nil, 0, err
		}
		return f.Response(), f.Index(), nil
	case <-timer.C:
		return nil, 0, ErrCommitTimeout
	}
}

// awaitLeadership returns nil once this node is the leader, *ErrNotLeader as
// soon as another node is, ErrNoLeader at deadline, or ctx's error.
func (c *Cluster) awaitLeadership(ctx context.Context, deadline time.Time) error {
	self := raft.ServerID(c.cfg.NodeID)
	var timer *time.Timer
	var recheck *time.Ticker
	expired := false
	for {
		// Take the notification channel before looking, so a change between
		// the look and the wait is not missed.
		ch := c.changes.wait()
		if c.raft.State() == raft.Leader {
			return nil
		}
		if addr, id := c.raft.LeaderWithID(); id != "" && id != self {
			return &ErrNotLeader{LeaderID: string(id), LeaderAddr: string(addr)}
		}
		if expired {
			return ErrNoLeader
		}
		select {
		case <-c.stopCh:
			return ErrShutdown
		default:
		}
		if timer == nil {
			wait := time.Until(deadline)
			if wait <= 0 {
				return ErrNoLeader
			}
			timer = time.NewTimer(wait)
			defer timer.Stop()
			recheck = time.NewTicker(recheckInterval)
			defer recheck.Stop()
		}
		select {
		case <-ch:
		case <-recheck.C:
		case <-timer.C:
			expired = true // look once more, then give up
		case <-ctx.Done():
			return ctx.Err()
		case <-c.stopCh:
			return ErrShutdown
		}
	}
}
