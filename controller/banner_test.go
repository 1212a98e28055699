package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// TestDevBannerShowsTheRootTokenOnce: what a first `server -dev` prints
// names the root token once, in the dev banner (which shows it at every
// start). The node's own bootstrap banner, "Root token (shown once ...)",
// came first and the dev banner repeated the token under it; a node
// bootstrapped without -dev still prints that one.
func TestDevBannerShowsTheRootTokenOnce(t *testing.T) {
	start := func(dev bool) (string, string) {
		t.Helper()
		dir := t.TempDir()
		out := &systemtest.Buffer{}
		s, err := server.New(server.Config{Dev: dev, Bootstrap: !dev, NodeID: "n1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
			DNSAddr: "off", LogLevel: "off", HeartbeatTimeout: "50ms", ElectionTimeout: "50ms", LeaderLeaseTimeout: "50ms"}, out)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if dev {
			printDevBanner(out, s, s.Config())
		} else if !s.WaitReady(ctx) {
			t.Fatal("not ready")
		}
		// Stopped, so that the bootstrap has printed what it prints.
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		tok, err := os.ReadFile(filepath.Join(dir, server.RootTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), strings.TrimSpace(string(tok))
	}

	out, tok := start(true)
	if n := strings.Count(strings.ToLower(out), "root token"); n != 1 || strings.Contains(out, "shown once") ||
		!strings.Contains(out, "  root token: "+tok+" (in ") || !strings.HasPrefix(out, "Regent controller (dev mode) is serving http://127.0.0.1:") {
		t.Fatalf("-dev printed (%d lines naming the root token):\n%s", n, out)
	}
	out, tok = start(false)
	if want := "Root token (shown once, saved in "; !strings.Contains(out, want) || strings.Count(out, tok) != 1 {
		t.Fatalf("bootstrap without -dev printed:\n%s", out)
	}
}
