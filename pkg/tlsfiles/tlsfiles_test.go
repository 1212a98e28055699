package tlsfiles_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/testca"
	"github.com/regentcloud/regent/pkg/tlsfiles"
)

// serve accepts TLS connections on a loopback port with cfg and completes
// their handshakes; it returns the address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// peer is the subject of the certificate addr presents to a client that
// trusts pool.
func peer(t *testing.T, addr string, pool *x509.CertPool) (string, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// TestReloadRotatesTheServedCertificate: a listener built once with
// ServerConfig presents the certificate of the last Reload; a Reload from
// files that do not make a pair, or are missing, fails and leaves the
// served certificate as it was.
func TestReloadRotatesTheServedCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "test CA")
	cert, key := ca.WriteFiles(t, dir, "first")
	f, err := tlsfiles.Load(tlsfiles.Paths{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, f.ServerConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	if cn, err := peer(t, addr, ca.Pool); err != nil || cn != "first" {
		t.Fatalf("before the reload: %q, %v", cn, err)
	}
	cert2, key2 := ca.WriteFiles(t, dir, "second")
	if err := f.Reload(tlsfiles.Paths{Cert: cert2, Key: key2}); err != nil {
		t.Fatal(err)
	}
	if cn, err := peer(t, addr, ca.Pool); err != nil || cn != "second" {
		t.Fatalf("after the reload: %q, %v", cn, err)
	}
	if f.Paths().Cert != cert2 {
		t.Errorf("Paths %+v", f.Paths())
	}

	// The first certificate with the second's key: refused, nothing changes.
	for name, p := range map[string]tlsfiles.Paths{
		"mismatched key": {Cert: cert, Key: key2},
		"missing cert":   {Cert: filepath.Join(dir, "none.crt"), Key: key2},
		"no key":         {Cert: cert2},
	} {
		if err := f.Reload(p); err == nil {
			t.Errorf("%s: Reload succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if cn, err := peer(t, addr, ca.Pool); err != nil || cn != "second" {
		t.Fatalf("after the failed reloads: %q, %v", cn, err)
	}
	if f.Paths().Cert != cert2 {
		t.Errorf("Paths after failed reloads %+v", f.Paths())
	}
}

// TestCABundle: a bundle of two CAs verifies certificates of either, its
// earliest expiry is reported, and a file without certificates or with a
// damaged one is refused.
func TestCABundle(t *testing.T) {
	dir := t.TempDir()
	a, b := testca.New(t, "CA a"), testca.New(t, "CA b")
	bundle := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(bundle, append(append([]byte{}, a.PEM...), b.PEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := tlsfiles.Load(tlsfiles.Paths{CA: bundle})
	if err != nil {
		t.Fatal(err)
	}
	m := f.Current()
	first := min(a.Cert.NotAfter.Unix(), b.Cert.NotAfter.Unix())
	if m.CANotAfter.Unix() != first || !m.CertNotAfter.IsZero() || m.Cert != nil {
		t.Errorf("material %+v, want CA expiry %d and no certificate", m, first)
	}
	for _, ca := range []*testca.CA{a, b} {
		der, _ := ca.Issue(t, "node")
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.Pool}); err != nil {
			t.Errorf("a certificate of %s: %v", ca.Cert.Subject.CommonName, err)
		}
	}
	// A client config from the bundle verifies with it.
	if c := f.Config(&tls.Config{ServerName: "x"}); c.RootCAs != m.Pool || c.ServerName != "x" || len(c.Certificates) != 0 {
		t.Errorf("Config %+v", c)
	}

	for name, data := range map[string]string{
		"empty":    "",
		"not pem":  "hello",
		"key only": "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
		"damaged":  "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	} {
		if err := os.WriteFile(bundle, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := f.Reload(tlsfiles.Paths{CA: bundle}); err == nil {
			t.Errorf("%s: Reload succeeded", name)
		}
		if f.Current() != m {
			t.Errorf("%s: the material changed", name)
		}
	}
}

// TestReloadKeepsTheKinds: a reload cannot add or drop a certificate or a
// CA (a listener cannot change between TLS and not without a restart).
func TestReloadKeepsTheKinds(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "test CA")
	cert, key := ca.WriteFiles(t, dir, "n")
	caPath := ca.WriteCA(t, filepath.Join(dir, "ca.pem"))
	f, err := tlsfiles.Load(tlsfiles.Paths{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []tlsfiles.Paths{{}, {Cert: cert, Key: key, CA: caPath}, {CA: caPath}} {
		if err := f.Reload(p); err == nil || !strings.Contains(err.Error(), "restart") {
			t.Errorf("Reload(%+v) = %v, want a restart error", p, err)
		}
	}
	if _, err := tlsfiles.Load(tlsfiles.Paths{Cert: cert}); err == nil {
		t.Error("Load of a certificate without its key succeeded")
	}
}

// TestCertificateOutsideItsBundle: a certificate named with a CA bundle
// that does not vouch for it is refused (its peers, which verify it with
// the same bundle, would refuse it), at Load and at Reload.
func TestCertificateOutsideItsBundle(t *testing.T) {
	dir := t.TempDir()
	a, b := testca.New(t, "CA a"), testca.New(t, "CA b")
	cert, key := a.WriteFiles(t, dir, "n")
	aPath, bPath := a.WriteCA(t, filepath.Join(dir, "a.pem")), b.WriteCA(t, filepath.Join(dir, "b.pem"))
	if _, err := tlsfiles.Load(tlsfiles.Paths{Cert: cert, Key: key, CA: bPath}); err == nil || !strings.Contains(err.Error(), "not signed by a CA of") {
		t.Errorf("Load with another CA's bundle: %v", err)
	}
	f, err := tlsfiles.Load(tlsfiles.Paths{Cert: cert, Key: key, CA: aPath})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(tlsfiles.Paths{Cert: cert, Key: key, CA: bPath}); err == nil {
		t.Error("Reload to another CA's bundle succeeded")
	}
	if f.Paths().CA != aPath {
		t.Errorf("Paths %+v after a failed reload", f.Paths())
	}
}

// TestCertificateWithItsChain: a certificate issued by an intermediate CA,
// its file holding the intermediate after it (the chain TLS sends), is
// accepted with a bundle of the root alone, as its peers accept it.
func TestCertificateWithItsChain(t *testing.T) {
	dir := t.TempDir()
	root := testca.New(t, "root CA")
	inter := root.Intermediate(t, "intermediate CA")
	cert, key := inter.WriteFiles(t, dir, "n")
	chain, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, append(chain, inter.PEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	caPath := root.WriteCA(t, filepath.Join(dir, "root.pem"))
	if _, err := tlsfiles.Load(tlsfiles.Paths{Cert: cert, Key: key, CA: caPath}); err != nil {
		t.Errorf("a certificate with its chain: %v", err)
	}
	// Without the intermediate in the file the root cannot vouch for it.
	if err := os.WriteFile(cert, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsfiles.Load(tlsfiles.Paths{Cert: cert, Key: key, CA: caPath}); err == nil {
		t.Error("a certificate without its intermediate was accepted")
	}
}
