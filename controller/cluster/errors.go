package cluster

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// ErrNotLeader is returned when an operation that must run on the leader is
// called on a follower while another node is known to be the leader. The
// caller can forward the request to LeaderAddr (the leader's raft address;
// map it to the leader's HTTP address through its own member table).
//
//	var nl *cluster.ErrNotLeader
//	if errors.As(err, &nl) { forward(nl.LeaderID) }
type ErrNotLeader struct {
	LeaderID   string
	LeaderAddr string
}

func (e *ErrNotLeader) Error() string {
	return fmt.Sprintf("cluster: not the leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

var (
	// ErrNoLeader is returned when no leader was known within the wait
	// (Config.ApplyTimeout for writes): an election is going on or there is
	// no quorum.
	ErrNoLeader = errors.New("cluster: no leader")

	// ErrLeadershipLost is returned when this node lost leadership after a
	// command was appended to its log but before it was committed. The
	// command may or may not be committed by the next leader: the outcome is
	// unknown and the caller must not assume either.
	ErrLeadershipLost = errors.New("cluster: leadership lost while committing; outcome unknown")

	// ErrCommitTimeout is returned when a command was put into the leader's
	// log but did not commit within Config.CommitWait: the leader still
	// reaches its followers, but a majority cannot store the entry (a full
	// or failing disk). It may still commit later: the outcome is unknown.
	ErrCommitTimeout = errors.New("cluster: the write was not committed in time (a majority of the nodes cannot store it?); outcome unknown")

	// ErrNotSubmitted is returned when a command waited Config.CommitWait
	// for the entries ahead of it to commit and was dropped unsent: nothing
	// was written. Retry later.
	ErrNotSubmitted = errors.New("cluster: the leader is not committing writes (a majority of the nodes cannot store them?); the write was not submitted")

	// ErrStateConflict is what Config.StateConflict receives: the leader's
	// log contradicts entries this node has applied, so its data dir holds
	// another cluster's state.
	ErrStateConflict = errors.New("cluster: this node's raft state conflicts with the leader's")

	// ErrLeadershipTransferInProgress is returned when the leader is handing
	// leadership to another node; the command was not appended. Retry shortly.
	ErrLeadershipTransferInProgress = errors.New("cluster: leadership transfer in progress")

	// ErrShutdown is returned after Shutdown.
	ErrShutdown = errors.New("cluster: shut down")

	// ErrInvalidSnapshot is returned by SnapshotRestore when the validator
	// refuses the snapshot. Nothing was changed.
	ErrInvalidSnapshot = errors.New("cluster: invalid snapshot")

	// ErrUnreachable is returned by AddVoter when the new node does not
	// answer on its raft address. The configuration is unchanged.
	ErrUnreachable = errors.New("cluster: the node does not answer on its raft address")

	// ErrMembershipConflict is returned by AddVoter and RemoveServer when
	// the change conflicts with the configuration: the address belongs to
	// another server, this node's own address would change, or the last
	// voter would go. The configuration is unchanged.
	ErrMembershipConflict = errors.New("cluster: membership change refused")
)

// mapRaftErr translates raft's errors into this package's errors. raft's
// ErrNotLeader becomes *ErrNotLeader naming the current leader, or
// ErrNoLeader when no leader is known.
func (c *Cluster) mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return c.notLeaderErr()
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrLeadershipTransferInProgress
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return err
}

// notLeaderErr describes the current leader for a caller that needed this
// node to be the leader.
func (c *Cluster) notLeaderErr() error {
	addr, id := c.raft.LeaderWithID()
	if id == "" || id == raft.ServerID(c.cfg.NodeID) {
		return ErrNoLeader
	}
	return &ErrNotLeader{LeaderID: string(id), LeaderAddr: string(addr)}
}
