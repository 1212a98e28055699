package cluster

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/regentcloud/regent/pkg/testca"
	"github.com/regentcloud/regent/pkg/tlsfiles"
)

func TestMutualTLSCluster(t *testing.T) {
	ca := testca.New(t, "regent test CA")
	a := startNode(t, "a", true, func(c *Config) { c.TLS = staticTLS(ca.MutualTLS(t, "a", ca.Pool)) })
	waitLeader(t, a)
	b := startNode(t, "b", false, func(c *Config) { c.TLS = staticTLS(ca.MutualTLS(t, "b", ca.Pool)) })
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
	a := startNode(t, "a", true, func(c *Config) { c.TLS = staticTLS(ca.MutualTLS(t, "a", ca.Pool)) })
	waitLeader(t, a)
	b := startNode(t, "b", false, func(c *Config) { c.TLS = staticTLS(ca.MutualTLS(t, "b", ca.Pool)) })
	if err := a.AddVoter("b", b.Addr()); err != nil {
		t.Fatalf("AddVoter(b): %v", err)
	}
	// c trusts the cluster CA but its own certificate is from another CA.
	c := startNode(t, "c", false, func(cfg *Config) { cfg.TLS = staticTLS(rogue.MutualTLS(t, "c", ca.Pool)) })

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

// staticTLS is a Config.TLS that returns the same config every time.
func staticTLS(c *tls.Config) func() *tls.Config { return func() *tls.Config { return c } }

// TestMutualTLSRotation: a cluster moves from one CA to another without a
// restart, the way an operator rotates (docs/operations.md): every node's
// CA file becomes a bundle of both and is reloaded, then every node's
// certificate is replaced by one of the new CA and reloaded, then the old
// CA leaves the bundles. The nodes read the files through pkg/tlsfiles;
// each new connection takes what is current. Afterwards the nodes present
// the new certificates, refuse the old CA's, and a node with only the new
// CA joins and replicates.
func TestMutualTLSRotation(t *testing.T) {
	oldCA, newCA := testca.New(t, "old CA"), testca.New(t, "new CA")
	files := map[string]*tlsfiles.Files{}
	paths := map[string]tlsfiles.Paths{}
	mtls := func(id string, ca *testca.CA) func() *tls.Config {
		dir := t.TempDir()
		cert, key := ca.WriteFiles(t, dir, id)
		p := tlsfiles.Paths{Cert: cert, Key: key, CA: ca.WriteCA(t, filepath.Join(dir, "ca.pem"))}
		f, err := tlsfiles.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		files[id], paths[id] = f, p
		return func() *tls.Config { return f.Config(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert}) }
	}
	reload := func(id string, p tlsfiles.Paths) {
		t.Helper()
		if err := files[id].Reload(p); err != nil {
			t.Fatalf("reload %s: %v", id, err)
		}
		paths[id] = p
	}
	// served is the subject of the certificate node n presents to a client
	// that trusts trust only and presents a certificate of client; an
	// error when either side refuses the other.
	served := func(n *node, trust, client *testca.CA) (string, error) {
		cfg := client.MutualTLS(t, "probe", trust.Pool)
		cfg.ServerName = "127.0.0.1"
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.Addr(), cfg)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		// TLS 1.3: the server checks the client's certificate after the
		// client's handshake returns; a refusal shows on the first read.
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var ne net.Error
		if _, err := conn.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return "", err
		}
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}

	a := startNode(t, "a", true, func(c *Config) { c.TLS = mtls("a", oldCA) })
	waitLeader(t, a)
	b := startNode(t, "b", false, func(c *Config) { c.TLS = mtls("b", oldCA) })
	if err := a.AddVoter("b", b.Addr()); err != nil {
		t.Fatalf("AddVoter(b): %v", err)
	}
	if cn, err := served(a, oldCA, oldCA); err != nil || cn != "a" {
		t.Fatalf("before the rotation a presents %q (%v)", cn, err)
	}
	if _, err := served(a, oldCA, newCA); err == nil {
		t.Fatal("before the rotation, a accepted a client certificate of the new CA")
	}

	// 1. Both CAs in every bundle.
	bundle := append(append([]byte{}, oldCA.PEM...), newCA.PEM...)
	for _, id := range []string{"a", "b"} {
		if err := os.WriteFile(paths[id].CA, bundle, 0o600); err != nil {
			t.Fatal(err)
		}
		reload(id, paths[id])
	}
	// 2. New certificates.
	for _, id := range []string{"a", "b"} {
		p := paths[id]
		p.Cert, p.Key = newCA.WriteFiles(t, t.TempDir(), id+"-new")
		reload(id, p)
	}
	// 3. The old CA leaves.
	for _, id := range []string{"a", "b"} {
		newCA.WriteCA(t, paths[id].CA)
		reload(id, paths[id])
	}

	for _, n := range []*node{a, b} {
		if cn, err := served(n, newCA, newCA); err != nil || cn != n.cfg.NodeID+"-new" {
			t.Errorf("%s presents %q (%v), want its new certificate", n.cfg.NodeID, cn, err)
		}
		if cn, err := served(n, newCA, oldCA); err == nil {
			t.Errorf("%s accepted a client certificate of the old CA (it presented %q)", n.cfg.NodeID, cn)
		}
	}
	c := startNode(t, "c", false, func(cfg *Config) { cfg.TLS = mtls("c", newCA) })
	if err := a.AddVoter("c", c.Addr()); err != nil {
		t.Fatalf("AddVoter(c) after the rotation: %v", err)
	}
	_, idx := set(t, a, "k", "rotated")
	waitFor(t, 30*time.Second, "b and c to apply", func() bool { return b.fsm.applied() >= idx && c.fsm.applied() >= idx })
	// Elections open new connections: b takes over and writes.
	if err := a.Raft().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	waitFor(t, 30*time.Second, "b to lead", b.IsLeader)
	set(t, b, "k", "after")
}
