package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// probeTimeout bounds AddVoter's reachability check of a new server.
const probeTimeout = 3 * time.Second

// Server is one entry of the raft configuration.
type Server struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"` // "voter", "nonvoter" or "staging"
	Leader   bool   `json:"leader"`
}

// Servers returns the latest raft configuration as this node knows it
// (including uncommitted changes on the leader), in configuration order.
func (c *Cluster) Servers() ([]Server, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, c.mapRaftErr(err)
	}
	_, leader := c.raft.LeaderWithID()
	cfg := f.Configuration()
	out := make([]Server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, Server{
			ID:       string(s.ID),
			Address:  string(s.Address),
			Suffrage: strings.ToLower(s.Suffrage.String()),
			Leader:   s.ID == leader,
		})
	}
	return out, nil
}

// AddVoter adds a voting server; leader only (*ErrNotLeader otherwise).
//
// It is idempotent: a server already present with the same ID and address is
// left alone (a non-voter is promoted). A server with the same ID but another
// address is replaced by the new address only when the leader sees the old
// one failing its heartbeats (the node came back with a new address); while
// the old one is alive the change is refused with ErrMembershipConflict, so
// a second node started with an ID already in use cannot evict a healthy
// member. An address already used by a server with another ID is refused.
//
// Before changing the configuration AddVoter dials addr over the raft stream
// layer (TCP connect, plus the full TLS handshake with mTLS), so a wrong
// address, a node that is not running or a certificate this cluster does not
// trust is refused up front: adding an unreachable voter to a one-node
// cluster would otherwise cost it its quorum.
func (c *Cluster) AddVoter(id, addr string) error {
	plan, err := c.planAddVoter(id, addr)
	if err != nil || plan.noop {
		return err
	}
	// Probe before touching the configuration, so a failed probe leaves it as
	// it was.
	if err := c.probe(addr); err != nil {
		return fmt.Errorf("%w: not adding %s: cannot reach %s: %v", ErrUnreachable, id, addr, err)
	}
	prev := plan.index
	if r := plan.replace; r != nil {
		c.logger.Info("server changed address; replacing it", "id", id, "old", r.Address, "new", addr,
			"old_failing_for", time.Since(plan.failingSince).Round(time.Millisecond))
		f := c.raft.RemoveServer(r.ID, prev, 0)
		if err := f.Error(); err != nil {
			return c.mapRaftErr(err)
		}
		prev = f.Index()
	}
	c.logger.Info("adding voter", "id", id, "addr", addr)
	if err := c.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), prev, 0).Error(); err != nil {
		return c.mapRaftErr(err)
	}
	return nil
}

// CheckAddVoter applies AddVoter's membership rules to id and addr without
// changing anything or probing addr: it returns the ErrMembershipConflict
// (or *ErrNotLeader / ErrNoLeader) AddVoter would return, or nil. A join
// handler calls it before it records anything about the node.
func (c *Cluster) CheckAddVoter(id, addr string) error {
	_, err := c.planAddVoter(id, addr)
	return err
}

// addPlan is what AddVoter has to do, as planAddVoter found it.
type addPlan struct {
	index        uint64       // configuration index the plan was made from
	noop         bool         // already a voter at addr
	replace      *raft.Server // same ID at another address, failing
	failingSince time.Time    // since when replace has been failing
}

func (c *Cluster) planAddVoter(id, addr string) (addPlan, error) {
	if id == "" || addr == "" {
		return addPlan{}, errors.New("cluster: AddVoter needs an id and an address")
	}
	if !c.IsLeader() {
		return addPlan{}, c.notLeaderErr()
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return addPlan{}, c.mapRaftErr(err)
	}
	plan := addPlan{index: cf.Index()}
	for _, s := range cf.Configuration().Servers {
		switch {
		case string(s.ID) == id && string(s.Address) == addr:
			// A non-voter is promoted by AddVoter.
			plan.noop = s.Suffrage == raft.Voter
		case string(s.ID) == id:
			if id == c.cfg.NodeID {
				return addPlan{}, fmt.Errorf("%w: cannot change this node's own address (%s -> %s)", ErrMembershipConflict, s.Address, addr)
			}
			since, failing := c.peerFailing(s.ID, time.Now())
			if !failing {
				return addPlan{}, fmt.Errorf("%w: node id %q is already in use by a healthy server at %s (the leader hears from it); "+
					"the node at %s cannot join under that id: give it another node id, or, to move %q to %s, "+
					"stop the server at %s first (the join is accepted once the leader sees it fail)",
					ErrMembershipConflict, id, s.Address, addr, id, addr, s.Address)
			}
			plan.replace, plan.failingSince = &s, since
		case string(s.Address) == addr:
			return addPlan{}, fmt.Errorf("%w: address %s is already used by server %q; remove it first", ErrMembershipConflict, addr, s.ID)
		}
	}
	return plan, nil
}

// probe checks that addr accepts a raft stream connection from this node.
func (c *Cluster) probe(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	conn, err := c.stream.dialContext(ctx, addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// RemoveServer removes a server from the configuration; leader only. An ID
// that is not present is not an error. Removing the leader itself makes it
// step down once the change commits (see Leave).
func (c *Cluster) RemoveServer(id string) error {
	if id == "" {
		return errors.New("cluster: RemoveServer needs an id")
	}
	if !c.IsLeader() {
		return c.notLeaderErr()
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return c.mapRaftErr(err)
	}
	found, voters, isVoter := false, 0, false
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if string(s.ID) == id {
			found, isVoter = true, s.Suffrage == raft.Voter
		}
	}
	if !found {
		return nil
	}
	if isVoter && voters == 1 {
		return fmt.Errorf("%w: %s is the last voter; a cluster cannot remove its last voter", ErrMembershipConflict, id)
	}
	c.logger.Info("removing server", "id", id)
	return c.mapRaftErr(c.raft.RemoveServer(raft.ServerID(id), cf.Index(), 0).Error())
}

// Leave takes this node out of the cluster gracefully.
//
// On the leader with other voters, the leader removes itself: raft commits
// the new configuration with the remaining voters' quorum and then the leader
// steps down; the others elect a new leader after an election timeout. (The
// removal has to be committed by a leader; handing leadership over first
// would leave this node a follower that cannot remove itself.) The last voter
// cannot leave.
//
// On a follower Leave returns an error wrapping *ErrNotLeader (or
// ErrNoLeader): a follower is removed by the leader, so the caller forwards
// the removal (DELETE of this member) to the leader.
func (c *Cluster) Leave() error {
	if !c.IsLeader() {
		return fmt.Errorf("cluster: leave: a follower must be removed by the leader: %w", c.notLeaderErr())
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return c.mapRaftErr(err)
	}
	self := raft.ServerID(c.cfg.NodeID)
	others := 0
	for _, s := range cf.Configuration().Servers {
		if s.ID != self && s.Suffrage == raft.Voter {
			others++
		}
	}
	if others == 0 {
		return errors.New("cluster: leave: this node is the only voter; a cluster cannot leave itself")
	}
	c.logger.Info("leaving the cluster: removing self as leader", "id", self)
	return c.mapRaftErr(c.raft.RemoveServer(self, cf.Index(), 0).Error())
}
