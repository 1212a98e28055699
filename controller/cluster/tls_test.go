package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func nextSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	return n
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// nodeTLS issues a node certificate (valid for 127.0.0.1, server and client
// use) and returns an mTLS config trusting trust.
func (ca *testCA) nodeTLS(t *testing.T, name string, trust *x509.CertPool) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      trust,
		ClientCAs:    trust,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

func TestMutualTLSCluster(t *testing.T) {
	ca := newCA(t, "regent test CA")
	a := startNode(t, "a", true, func(c *Config) { c.TLS = ca.nodeTLS(t, "a", ca.pool) })
	waitLeader(t, a)
	b := startNode(t, "b", false, func(c *Config) { c.TLS = ca.nodeTLS(t, "b", ca.pool) })
	if err := a.AddVoter("b", b.Addr()); err != nil {
		t.Fatalf("AddVoter over mTLS: %v", err)
	}
	_, idx := set(t, a, "k", "v")
	waitFor(t, 10*time.Second, "b to replicate over mTLS", func() bool { return b.fsm.applied() >= idx })
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
	waitFor(t, 10*time.Second, "b to lead", b.IsLeader)
	set(t, b, "k", "w")
}

func TestMutualTLSRejectsForeignCA(t *testing.T) {
	ca := newCA(t, "regent cluster CA")
	rogue := newCA(t, "rogue CA")
	a := startNode(t, "a", true, func(c *Config) { c.TLS = ca.nodeTLS(t, "a", ca.pool) })
	waitLeader(t, a)
	b := startNode(t, "b", false, func(c *Config) { c.TLS = ca.nodeTLS(t, "b", ca.pool) })
	if err := a.AddVoter("b", b.Addr()); err != nil {
		t.Fatalf("AddVoter(b): %v", err)
	}
	// c trusts the cluster CA but its own certificate is from another CA.
	c := startNode(t, "c", false, func(cfg *Config) { cfg.TLS = rogue.nodeTLS(t, "c", ca.pool) })

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
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
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
	waitFor(t, 5*time.Second, "b to apply", func() bool { return b.fsm.applied() >= idx })
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
