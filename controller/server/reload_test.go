package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/systemtest"
	"github.com/regentcloud/regent/pkg/testca"
)

// servedCN is the common name of the certificate the HTTPS listener at url
// presents to a new connection.
func servedCN(t *testing.T, url string, pool *x509.CertPool) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", strings.TrimPrefix(url, "https://"),
		&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", url, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestReloadRotatesCertificatesAndLogLevel: Server.Reload (SIGHUP) reads
// the TLS files again, so a certificate replaced in place is what the next
// connection gets, with its expiry on /metrics, and it applies a new log
// level. A reload from files that do not make a pair fails and changes
// nothing (the old certificate is still served; the failure shows on
// /metrics and in the log), and a changed setting that only a restart can
// apply is named in a warning.
func TestReloadRotatesCertificatesAndLogLevel(t *testing.T) {
	ca := testca.New(t, "regent test CA")
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	// install writes a new certificate named cn over the node's files.
	install := func(cn string) *x509.Certificate {
		t.Helper()
		c, k := ca.WriteFiles(t, t.TempDir(), cn)
		for src, dst := range map[string]string{c: certPath, k: keyPath} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := pem.Decode(mustRead(t, certPath))
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	install("first")
	var log systemtest.Buffer
	var given server.Config
	n := apitest.Start(t, apitest.Options{LogLevel: "warn", LogOutput: &log, Configure: func(c *server.Config) {
		c.HTTPTLSCert, c.HTTPTLSKey, c.HTTPTLSCA = certPath, keyPath, ca.WriteCA(t, filepath.Join(dir, "ca.pem"))
		given = *c
	}})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	defer hc.CloseIdleConnections()
	metric := func(name string) float64 { return metricValueVia(t, hc, n.URL, name) }
	expiry := `regent_tls_not_after_timestamp_seconds{setting="http_tls_cert"}`
	reload := func(cfg server.Config) error {
		return n.Server.Reload(func() (server.Config, error) { return cfg, nil })
	}

	if cn := servedCN(t, n.URL, ca.Pool); cn != "first" {
		t.Fatalf("served %q before the reload", cn)
	}
	startedAt := metric("regent_config_last_reload_success_timestamp_seconds")

	// 1. Rotated in place, and a more verbose log level.
	second := install("second")
	cfg := given
	cfg.LogLevel = "info"
	if err := reload(cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if cn := servedCN(t, n.URL, ca.Pool); cn != "second" {
		t.Fatalf("served %q after the reload, want the new certificate", cn)
	}
	if got := metric(expiry); got != float64(second.NotAfter.Unix()) {
		t.Errorf("%s = %v, want %d", expiry, got, second.NotAfter.Unix())
	}
	if got := metric("regent_config_last_reload_successful"); got != 1 {
		t.Errorf("last reload successful = %v", got)
	}
	if got := metric("regent_config_last_reload_success_timestamp_seconds"); got < startedAt {
		t.Errorf("last success at %v, before the start (%v)", got, startedAt)
	}
	if !strings.Contains(log.String(), "configuration reloaded") || !strings.Contains(log.String(), "http_tls_cert=reloaded") {
		t.Errorf("no info line for the reload at log level info:\n%s", log.String())
	}
	if strings.Contains(log.String(), "take effect only when") {
		t.Errorf("a reload that changed only reloadable settings warned of a restart:\n%s", log.String())
	}

	// 2. A certificate with another key: refused, nothing changes.
	before := metric("regent_config_last_reload_success_timestamp_seconds")
	_, otherKey := ca.WriteFiles(t, t.TempDir(), "other")
	cfg.HTTPTLSKey = otherKey
	err := reload(cfg)
	if err == nil || !strings.Contains(err.Error(), "http_tls_cert") {
		t.Fatalf("reload with a mismatched key: %v, want an error naming http_tls_cert", err)
	}
	if cn := servedCN(t, n.URL, ca.Pool); cn != "second" {
		t.Fatalf("served %q after a failed reload", cn)
	}
	if got := metric("regent_config_last_reload_successful"); got != 0 {
		t.Errorf("last reload successful = %v after a failure", got)
	}
	if got := metric("regent_config_last_reload_success_timestamp_seconds"); got != before {
		t.Errorf("last success moved from %v to %v on a failure", before, got)
	}
	if !strings.Contains(log.String(), "configuration reload failed") {
		t.Errorf("no error line for the failed reload:\n%s", log.String())
	}

	// 3. Settings that need a restart are named, and the rest applies.
	cfg = given
	cfg.LogLevel = "warn"
	cfg.KeepDeallocatedIPsFor = "72h"
	cfg.DNSNotify = []string{"192.0.2.1:53"}
	if err := reload(cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got := metric("regent_config_last_reload_successful"); got != 1 {
		t.Errorf("last reload successful = %v", got)
	}
	want := "settings=\"keep_deallocated_ips_for, dns_notify\""
	if !strings.Contains(log.String(), want) {
		t.Errorf("the restart warning does not name the changed settings (%s):\n%s", want, log.String())
	}

	// 4. Turning HTTPS off waits for a restart, and the rest applies.
	cfg = given
	cfg.HTTPTLSCert, cfg.HTTPTLSKey = "", ""
	cfg.LogLevel = "info"
	if err := reload(cfg); err != nil {
		t.Fatalf("reload that turns HTTPS off: %v", err)
	}
	if cn := servedCN(t, n.URL, ca.Pool); cn != "second" {
		t.Fatalf("served %q", cn)
	}
	if want := "settings=\"http_tls_cert (turning TLS on or off)\""; !strings.Contains(log.String(), want) {
		t.Errorf("the restart warning does not name HTTPS (%s):\n%s", want, log.String())
	}
	if got := metric("regent_config_last_reload_successful"); got != 1 {
		t.Errorf("last reload successful = %v", got)
	}
	if !strings.Contains(log.String(), "log level changed: from=warn to=info") {
		t.Errorf("the log level was not applied with the TLS change:\n%s", log.String())
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReloadClusterToken: a reload with another cluster_token makes joins
// present the new one: the old one is refused (403), the new one is
// accepted (the join then fails on its empty body, 400).
func TestReloadClusterToken(t *testing.T) {
	var given server.Config
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) { given = *c }})
	c := n.Client(t)
	join := func(tok string) int {
		h := http.Header{}
		h.Set("X-Regent-Cluster-Token", tok)
		return c.Unchecked().DoHeader("POST", "/v1/operator/join", map[string]any{}, h).Status
	}
	if got := join(n.ClusterToken); got != http.StatusBadRequest {
		t.Fatalf("join with the start token: %d, want 400 (accepted, empty body)", got)
	}
	cfg := given
	cfg.ClusterToken = "rotated-cluster-token"
	if err := n.Server.Reload(func() (server.Config, error) { return cfg, nil }); err != nil {
		t.Fatal(err)
	}
	if got := join(n.ClusterToken); got != http.StatusForbidden {
		t.Errorf("join with the old token after the reload: %d, want 403", got)
	}
	if got := join("rotated-cluster-token"); got != http.StatusBadRequest {
		t.Errorf("join with the new token: %d, want 400 (accepted, empty body)", got)
	}
}

// TestJoinPresentsReloadedClusterToken: a node still retrying its join when
// the cluster token is rotated (a reload on every node) presents the new
// token at its next attempt. It used to present the one it started with,
// be refused (403) and stop for good.
func TestJoinPresentsReloadedClusterToken(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	// The join goes to an address nothing listens on yet: the node retries.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	cfg := server.Defaults()
	cfg.NodeID, cfg.DataDir = "joiner", t.TempDir()
	cfg.HTTPAddr, cfg.RaftAddr, cfg.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Join, cfg.ClusterToken, cfg.LogLevel = target, "the-old-cluster-token", "error"
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = "200ms", "200ms", "100ms"
	joiner, err := server.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		joiner.Shutdown(ctx)
	})
	// The rotation: the cluster and the joiner take the new token.
	given := n.Server.Config()
	given.ClusterToken = "the-new-cluster-token"
	if err := n.Server.Reload(func() (server.Config, error) { return given, nil }); err != nil {
		t.Fatal(err)
	}
	rotated := cfg
	rotated.ClusterToken = "the-new-cluster-token"
	if err := joiner.Reload(func() (server.Config, error) { return rotated, nil }); err != nil {
		t.Fatal(err)
	}
	// Now the address answers: a relay to the cluster's node.
	ln, err = net.Listen("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-joiner.Fatal():
			t.Fatalf("the join was refused: %v", err)
		default:
		}
		if servers, err := n.Server.Cluster().Servers(); err == nil && len(servers) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the joiner never became a member")
		}
	}
}
