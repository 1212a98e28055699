package vm

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt/libvirttest"
)

// hungLibvirtd serves go-libvirt's mock libvirtd on a unix socket until
// freeze is called; from then on it reads what clients send and answers
// nothing, on the connections it has and on new ones (a libvirtd stopped
// with SIGSTOP, or deadlocked, that still accepts connections).
type hungLibvirtd struct {
	path   string
	frozen atomic.Bool
}

func newHungLibvirtd(t *testing.T) *hungLibvirtd {
	h := &hungLibvirtd{path: filepath.Join(t.TempDir(), "libvirt-sock")}
	ln, err := net.Listen("unix", h.path)
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
			t.Cleanup(func() { c.Close() })
			m := libvirttest.New()
			p, _ := m.Dial()
			go func() { // client → mock, or nowhere once frozen
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						p.Close()
						return
					}
					if !h.frozen.Load() {
						_, _ = p.Write(buf[:n])
					}
				}
			}()
			go func() { _, _ = io.Copy(c, p) }()
		}
	}()
	return h
}

// TestHungLibvirtdCallsEndWithTheirContext: a libvirtd that accepts
// connections but no longer answers (SIGSTOP, a deadlock) fails each call
// when its context ends, on the connection the agent has and on a new
// one, and the call after libvirtd answers again works. Before, the call
// waited for ever (go-libvirt calls take no context), so the heartbeat's
// capacity read (10 s timeout) and every /metrics scrape hung with it: the
// agent stopped heartbeating because libvirtd hung.
func TestHungLibvirtdCallsEndWithTheirContext(t *testing.T) {
	h := newHungLibvirtd(t)
	c := NewConn(h.path)
	defer c.Close()
	call := func(what string) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { _, err := c.ListDomains(ctx); done <- err }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: a call with a 500 ms context still waits after 20 s", what)
			return nil
		}
	}
	if err := call("first call"); err != nil {
		t.Fatalf("first call: %v", err)
	}
	h.frozen.Store(true)
	for _, what := range []string{"call on the open connection", "call on a new connection"} {
		err := call(what)
		if !errors.Is(err, context.DeadlineExceeded) || !ConnectionLost(lv(err, "list")) {
			t.Errorf("%s: %v, want a context deadline the daemon waits out (ConnectionLost)", what, err)
		}
	}
	h.frozen.Store(false)
	if err := call("call after libvirtd answers again"); err != nil {
		t.Errorf("call after libvirtd answers again: %v", err)
	}
}
