package cluster

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/regentcloud/regent/controller/internal/testca"
)

func TestMutualTLSCluster(t *testing.T) {
	ca := testca.New(t, "regent test CA")
	a := startNode(t, "a", true, func(c *Config) { c.TLS = ca.MutualTLS(t, "a", ca.Pool) })
	waitLeader(t, a)
	b := startNode(t, "b", false, func(c *Config) { c.TLS = ca.MutualTLS(t, "b", ca.Pool) })
	if err := a.AddVoter("b", b.Addr()); err != nil {
		t.Fatalf("AddVoter over mTLS: %v", err)
	}
	_, idx := set(t, a, "k", "v")
	waitFor(t, 30*time.Second, "b to replicate over mTLS", func() bool { return b.fsm.applied() >= idx })
	if v, _ := b.fsm.get("k"); v != "v" {
		t.Fatalf("b: k=%q", v)
	}
	var nl *ErrNotLeader
	if _, _, err := b.Apply(ctxT(t, 5*time.Second), cmd("k", "w")); !errors.As(err, &nl) || nl.LeaderID != "a" {
		t.Fatalf("Apply on b: %v", err)
	}
	// Elections run over mTLS too: a hands leadership to b.
	if err := a.Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	waitFor(t, 30*time.Second, "b to lead", b.IsLeader)
	set(t, b, "k", "w")
}

func TestMutualTLSRejectsForeignCA(t *testing.T) {
	ca := testca.New(t, "regent cluster CA")
	rogue := testca.New(t, "rogue CA")
	a := startNode(t, "a", true, func(c *Config) { c.TLS = ca.MutualTLS(t, "a", ca.Pool) })
	waitLeader(t, a)
	b := startNode(t, "b", false, func(c *Config) { c.TLS = ca.MutualTLS(t, "b", ca.Pool) })
	if err := a.AddVoter("b", b.Addr()); err != nil {
		t.Fatalf("AddVoter(b): %v", err)
	}
	// c trusts the cluster CA but its own certificate is from another CA.
	c := startNode(t, "c", false, func(cfg *Config) { cfg.TLS = rogue.MutualTLS(t, "c", ca.Pool) })

	// 1. The leader refuses to add it: its probe cannot verify c.
	err := a.AddVoter("c", c.Addr())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("AddVoter(c) = %v, want a certificate error", err)
	}
	t.Logf("AddVoter(c): %v", err)
	if ids := serverIDs(t, a); len(ids) != 2 {
		t.Fatalf("servers %v", ids)
	}

	// 2. c's own connections to the cluster are refused by the servers.
	conn, err := c.stream.Dial(raft.ServerAddress(a.Addr()), 2*time.Second)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second)) // a refusal ends it at once
		_, werr := conn.Write([]byte{0})
		_, rerr := conn.Read(make([]byte, 1))
		_ = conn.Close()
		var ne net.Error
		if werr == nil && (rerr == nil || (errors.As(rerr, &ne) && ne.Timeout())) {
			t.Fatalf("a accepted a connection from c's certificate (write %v, read %v)", werr, rerr)
		}
		t.Logf("c -> a: write %v, read %v", werr, rerr)
	} else {
		t.Logf("c -> a dial: %v", err)
	}

	// 3. Even forced into the configuration (bypassing AddVoter's probe),
	// c never receives anything: every raft connection between them fails.
	if err := a.Raft().AddNonvoter("c", raft.ServerAddress(c.Addr()), 0, 0).Error(); err != nil {
		t.Fatalf("raw AddNonvoter: %v", err)
	}
	_, idx := set(t, a, "k", "v")
	waitFor(t, 30*time.Second, "b to apply", func() bool { return b.fsm.applied() >= idx })
	time.Sleep(2 * time.Second)
	if c.LastIndex() != 0 || c.AppliedIndex() != 0 {
		t.Fatalf("c received raft data: last %d applied %d", c.LastIndex(), c.AppliedIndex())
	}
	if id, _ := c.Leader(); id != "" {
		t.Fatalf("c knows leader %q", id)
	}
	if _, ok := c.fsm.get("k"); ok {
		t.Fatal("c has data")
	}
}
