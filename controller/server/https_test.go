package server_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/internal/apitest"
	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/testca"
)

// TestHTTPSRefusesTLS11: the HTTPS listener refuses a client that speaks
// TLS 1.1 at most, whatever the runtime's default minimum for servers is
// (GODEBUG tls10server=1 lowers it to TLS 1.0, as older Go releases had
// it), and serves a TLS 1.2 client.
func TestHTTPSRefusesTLS11(t *testing.T) {
	t.Setenv("GODEBUG", "tls10server=1")
	ca := testca.New(t, "regent test CA")
	dir := t.TempDir()
	cert, key := ca.WriteFiles(t, dir, "node")
	n := apitest.Start(t, apitest.Options{Configure: func(c *server.Config) {
		c.HTTPTLSCert, c.HTTPTLSKey, c.HTTPTLSCA = cert, key, ca.WriteCA(t, filepath.Join(dir, "ca.pem"))
	}})
	host := strings.TrimPrefix(n.URL, "https://")
	if host == n.URL {
		t.Fatalf("the node serves %s, not https", n.URL)
	}

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", host,
		&tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		v := conn.ConnectionState().Version
		conn.Close()
		t.Fatalf("a TLS 1.1 client was served (negotiated version %#x)", v)
	}
	if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 handshake: %v, want a protocol version alert", err)
	}

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(n.URL + "/healthz")
	if err != nil {
		t.Fatalf("TLS 1.2 client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("TLS 1.2 client: GET /healthz %d", resp.StatusCode)
	}
}
