package cluster

import (
	"sync"
	"time"
)

// commitWatchEvery is how often the leader samples its commit index.
const commitWatchEvery = 250 * time.Millisecond

// commitWatch records since when the leader's log has held entries beyond
// its commit index while that index stood still. A leader whose followers
// answer its heartbeats but cannot store entries (full or unwritable disks
// on a majority) neither commits nor steps down: without this record it
// looks healthy while every write times out.
type commitWatch struct {
	mu     sync.Mutex
	commit uint64    // the commit index at the last sample
	since  time.Time // when commit last moved with entries waiting; zero: none wait
}

// observe takes one sample: leader is this node's role, commit and last
// its commit index and last log index.
func (w *commitWatch) observe(leader bool, commit, last uint64, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !leader || last <= commit:
		w.since = time.Time{}
	case w.since.IsZero() || commit != w.commit:
		w.since = now
	}
	w.commit = commit
}

// stalled returns how long entries after index commit have waited with the
// commit index standing still (0 when nothing waits or it moves).
func (w *commitWatch) stalled(now time.Time) (time.Duration, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since.IsZero() {
		return 0, w.commit
	}
	return now.Sub(w.since), w.commit
}

// watchCommits samples the commit index every commitWatchEvery until
// Shutdown.
func (c *Cluster) watchCommits() {
	ticker := time.NewTicker(commitWatchEvery)
	defer ticker.Stop()
	for {
		select {
		case <-c.stopCh:
			return
		case now := <-ticker.C:
			c.commits.observe(c.IsLeader(), c.raft.CommitIndex(), c.raft.LastIndex(), now)
		}
	}
}

// CommitStalled reports, on the leader, how long entries in its log have
// waited for a majority of the voters to store them while its commit index
// stood still, and that index; 0 while it commits (entries waiting a moment
// under load included: the index moves) and on other nodes. It is sampled
// every 250 ms.
func (c *Cluster) CommitStalled() (time.Duration, uint64) {
	if !c.IsLeader() {
		return 0, 0
	}
	return c.commits.stalled(time.Now())
}
