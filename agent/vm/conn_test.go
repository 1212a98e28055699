package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/libvirttest"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/regentcloud/regent/pkg/systemtest"
)

// fakeLibvirtd serves go-libvirt's mock libvirtd on a unix socket, one
// mock per connection, so that a test can drop the connections (libvirtd
// restarting) and take the socket away (libvirtd down).
type fakeLibvirtd struct {
	t    *testing.T
	path string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func newFakeLibvirtd(t *testing.T) *fakeLibvirtd {
	f := &fakeLibvirtd{t: t, path: filepath.Join(t.TempDir(), "libvirt-sock")}
	f.start()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeLibvirtd) start() {
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m := libvirttest.New()
			p, _ := m.Dial()
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go func() { _, _ = io.Copy(p, c); p.Close() }()
			go func() { _, _ = io.Copy(c, p); c.Close() }()
		}
	}()
}

// drop closes every client connection, as a libvirtd restart does.
func (f *fakeLibvirtd) drop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// stop drops the connections and removes the socket, as a stopped
// libvirtd does.
func (f *fakeLibvirtd) stop() {
	f.drop()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close() // removes the socket file
		f.ln = nil
	}
}

// TestConnReconnects: a connection dropped by libvirtd is dialed again on
// the next call, which succeeds; while libvirtd is away a call fails with
// an error the daemon treats as "wait for libvirtd" (ENOENT), and the
// first call after it is back succeeds. Each redial is counted in
// Reconnects and in the builder's regent_agent_libvirt_reconnects_total.
func TestConnReconnects(t *testing.T) {
	f := newFakeLibvirtd(t)
	c := NewConn(f.path)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	list := func() error {
		_, err := c.ListDomains(ctx)
		return err
	}
	if err := list(); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if n := c.Reconnects(); n != 0 {
		t.Fatalf("reconnects after the first dial: %d, want 0", n)
	}

	f.drop()
	if err := list(); err != nil {
		t.Fatalf("call after the connection dropped: %v", err)
	}
	if n := c.Reconnects(); n != 1 {
		t.Errorf("reconnects after a drop: %d, want 1", n)
	}

	f.stop()
	err := list()
	if err == nil {
		t.Fatal("call with libvirtd away succeeded")
	}
	var ne net.Error
	if !errors.Is(err, syscall.ENOENT) && !errors.As(err, &ne) {
		t.Errorf("call with libvirtd away: %v, want ENOENT or a net.Error", err)
	}
	f.start()
	if err := list(); err != nil {
		t.Fatalf("call after libvirtd came back: %v", err)
	}
	if n := c.Reconnects(); n != 2 {
		t.Errorf("reconnects after libvirtd came back: %d, want 2", n)
	}

	b, err := New(Config{DomainType: "qemu"}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Collector())
	want := "# HELP regent_agent_libvirt_reconnects_total Times the agent dialed libvirtd again after losing its connection (libvirtd restarted).\n" +
		"# TYPE regent_agent_libvirt_reconnects_total counter\nregent_agent_libvirt_reconnects_total 2\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "regent_agent_libvirt_reconnects_total"); err != nil {
		t.Error(err)
	}
}

// TestConnectionLost: what the daemon waits for without counting a
// failure, through the builder's error wrapping, and what it counts.
func TestConnectionLost(t *testing.T) {
	for _, c := range []struct {
		err  error
		lost bool
	}{
		{lv(fmt.Errorf("libvirt: connect: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), "state"), true},
		{lv(fmt.Errorf("libvirt: connect: %w", syscall.ENOENT), "state"), true},
		{lv(libvirt.ErrInterrupted, "create volume x"), true}, // cut by a libvirtd restart, twice
		{lv(io.EOF, "define"), true},
		{lv(libvirt.Error{Code: 1, Message: "internal error"}, "define"), false},
		{lv(libvirt.Error{Code: 55, Message: "pool is not active"}, "create volume x"), false},
		{newError(CodeBadSpec, "cpu 0"), false},
	} {
		if got := ConnectionLost(c.err); got != c.lost {
			t.Errorf("ConnectionLost(%v) = %v, want %v", c.err, got, c.lost)
		}
	}
}

// TestCollectorLogsFailureOnce: with libvirtd away every scrape says
// regent_vm_libvirt_up 0, but the failure is logged once, not per scrape.
func TestCollectorLogsFailureOnce(t *testing.T) {
	var logs systemtest.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs})
	c := NewConn(filepath.Join(t.TempDir(), "no-libvirt-sock"))
	defer c.Close()
	b, err := New(Config{DomainType: "qemu"}, c, log)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Collector())
	for range 4 {
		if err := testutil.GatherAndCompare(reg, strings.NewReader("# HELP regent_vm_libvirt_up Whether the last scrape of libvirt succeeded.\n"+
			"# TYPE regent_vm_libvirt_up gauge\nregent_vm_libvirt_up 0\n"), "regent_vm_libvirt_up"); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "domain stats"); n != 1 {
		t.Errorf("%d domain stats warnings after 4 failed scrapes, want 1:\n%s", n, logs.String())
	}
}
