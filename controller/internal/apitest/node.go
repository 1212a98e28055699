// Package apitest runs a real, in-process, single-node Regent controller for
// tests and talks to it through a Client that checks every response against
// the OpenAPI document in pkg/api/openapi.yaml. A response the document does
// not describe (an undocumented status, a missing X-Regent-Index, a field too
// many or too few) fails the test that made the request.
package apitest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/server"
)

// Options tune the node Start runs. The zero value is fine.
type Options struct {
	// NodeID defaults to "test".
	NodeID string
	// ClusterToken authorises POST /v1/operator/join; default ClusterToken.
	ClusterToken string
	// LogLevel of the node's logger (on stderr); default "error".
	LogLevel string
	// LogOutput, when set, receives the node's log instead of stderr.
	LogOutput io.Writer
	// Configure, when set, adjusts the node's configuration before it starts.
	Configure func(*server.Config)
}

// ClusterToken is the cluster token of a node started with default Options.
const ClusterToken = "apitest-cluster-token"

// Node is a running single-node controller.
type Node struct {
	Server *server.Server
	// URL is the base URL of the HTTP API, without a trailing slash.
	URL string
	// RootToken is the token of the bootstrap root user (a global user).
	RootToken string
	// ClusterToken is the node's cluster token.
	ClusterToken string

	seq atomic.Int64
	hc  *http.Client
}

// Start runs a bootstrapped single-node controller in a temporary data dir,
// waits until it is the leader and the root token exists, and shuts it down
// when the test ends.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	if opts.NodeID == "" {
		opts.NodeID = "test"
	}
	if opts.ClusterToken == "" {
		opts.ClusterToken = ClusterToken
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	cfg := server.Defaults()
	cfg.NodeID = opts.NodeID
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.DNSAddr = "127.0.0.1:0"
	cfg.Bootstrap = true
	cfg.ClusterToken = opts.ClusterToken
	cfg.LogLevel = opts.LogLevel
	cfg.LogOutput = opts.LogOutput
	// A single node elects itself after one heartbeat timeout.
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = "200ms", "200ms", "100ms"
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}

	srv, err := server.New(cfg, io.Discard)
	if err != nil {
		t.Fatalf("apitest: start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("apitest: shutdown: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !srv.WaitReady(ctx) {
		t.Fatalf("apitest: node not ready after 30s")
	}
	n := &Node{Server: srv, URL: strings.TrimSuffix(srv.URL(), "/"), ClusterToken: opts.ClusterToken,
		hc: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16},
			// Redirects are answers to check, not to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	t.Cleanup(n.hc.CloseIdleConnections)
	// The root token file is written just after the bootstrap command is
	// applied, which is what WaitReady waits for.
	path := filepath.Join(cfg.DataDir, server.RootTokenFile)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			n.RootToken = strings.TrimSpace(string(b))
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("apitest: no root token in %s: %v", path, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return n
}

// Client returns a validating client whose failures are reported on t.
func (n *Node) Client(t testing.TB) *Client {
	return &Client{t: t, n: n}
}

// Unique returns prefix followed by a number never returned before by this
// node, for names that must be unique (members, usernames, regions).
func (n *Node) Unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, n.seq.Add(1))
}
