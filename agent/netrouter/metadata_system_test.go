package netrouter

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// TestServeMetadataBuildsNothing: a new Builder (an agent restarted) serves
// a built router's metadata from the part of its spec the metadata service
// reads (what the agent saves) to a VM over HTTP, without changing the
// host; a router that is not built gets an error and no namespace; an
// Ensure takes the server over, and ReplaceMetadata stops the servers no
// Ensure took over.
func TestServeMetadataBuildsNothing(t *testing.T) {
	e := newSysenv(t)
	ctx := context.Background()
	p := e.projectID()
	spec := e.spec(p)
	e.ensure(e.b, spec)
	vm := e.prefix + "vm5"
	e.addHost(vm, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:05", e.priv3+".5/24")
	e.sh("ip", "-n", vm, "route", "add", "default", "via", e.priv3+".1")
	const url = "http://169.254.169.254/v1/metadata"
	wantServed := func(what string) {
		t.Helper()
		code, body, err := httpGetFrom(vm, url)
		var doc map[string]any
		if err != nil || code != 200 || json.Unmarshal([]byte(body), &doc) != nil || doc["instance-id"] != spec.Metadata[0].InstanceID {
			t.Fatalf("%s: metadata from the VM: %d %v %s", what, code, err, body)
		}
	}
	wantServed("built")

	// The agent restarts: its servers stop, the router stays.
	if err := e.b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.b = e.newBuilder()
	if _, _, err := httpGetFrom(vm, url); err == nil {
		t.Fatal("metadata served after Close")
	}
	before := e.snapshot(spec)
	saved := &api.RouterSpec{ID: spec.ID, ProjectID: spec.ProjectID, Metadata: spec.Metadata}
	for _, s := range spec.Subnets {
		saved.Subnets = append(saved.Subnets, api.RouterSubnetSpec{ID: s.ID, AddressRange: s.AddressRange, DNS: s.DNS})
	}
	if err := e.b.ServeMetadata(ctx, saved); err != nil {
		t.Fatal(err)
	}
	wantServed("from the saved spec")
	if after := e.snapshot(spec); after != before {
		t.Errorf("ServeMetadata changed the host:\n--- before\n%s--- after\n%s", before, after)
	}

	// A router that is not built: nothing to serve from, nothing made.
	other := e.projectID()
	if err := e.b.ServeMetadata(ctx, &api.RouterSpec{ID: other + 1, ProjectID: other, Metadata: spec.Metadata}); err == nil {
		t.Error("ServeMetadata of a router that is not built: no error")
	}
	if isNamespace(nsPath(e.b.Namespace(other))) {
		t.Error("ServeMetadata created a namespace")
	}

	// The fetched work does not have the router: its server stops.
	if n := e.b.ReplaceMetadata(ctx, nil); n != 1 {
		t.Errorf("ReplaceMetadata stopped %d servers, want 1", n)
	}
	if _, _, err := httpGetFrom(vm, url); err == nil {
		t.Fatal("metadata served after ReplaceMetadata without the router")
	}

	// Served again, then ensured: the Ensure's server stays.
	if err := e.b.ServeMetadata(ctx, saved); err != nil {
		t.Fatal(err)
	}
	e.ensure(e.b, spec)
	if n := e.b.ReplaceMetadata(ctx, nil); n != 0 {
		t.Errorf("ReplaceMetadata stopped %d servers an Ensure took over", n)
	}
	wantServed("ensured")
}

// TestMetadataServerLimits: a VM cannot hold the metadata server's
// connections (and with them the agent's file descriptors): a keep-alive
// connection left idle is closed after the idle timeout, and connections
// over the per-VM or per-router limit are closed when accepted while the
// ones within serve. The limits are made small for the test.
func TestMetadataServerLimits(t *testing.T) {
	e := newSysenv(t)
	lim := &e.b.metaLimits
	lim.idle = 300 * time.Millisecond
	lim.readHeader, lim.read = 20*time.Second, 20*time.Second
	lim.conns, lim.perAddr = 3, 2
	spec := e.spec(e.projectID())
	e.ensure(e.b, spec)
	vm5, vm6 := e.prefix+"vm5", e.prefix+"vm6"
	e.addHost(vm5, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:05", e.priv3+".5/24")
	e.addHost(vm6, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:06", e.priv3+".6/24")
	for _, vm := range []string{vm5, vm6} {
		e.sh("ip", "-n", vm, "route", "add", "default", "via", e.priv3+".1")
	}

	dial := func(host string) net.Conn {
		t.Helper()
		var c net.Conn
		err := withNetnsPath(nsPath(host), func() (err error) {
			c, err = net.DialTimeout("tcp4", MetadataAddr+":80", 5*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("dial from %s: %v", host, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// get sends a request on c and reads the answer's status.
	get := func(c net.Conn) (int, error) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /v1/metadata HTTP/1.1\r\nHost: "+MetadataAddr+"\r\n\r\n"); err != nil {
			return 0, err
		}
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode, nil
	}
	// closedByServer: c is closed by the server within d (EOF or reset),
	// not still open.
	closedByServer := func(c net.Conn, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}

	// An idle keep-alive connection is closed.
	c := dial(vm5)
	if code, err := get(c); err != nil || code != 200 {
		t.Fatalf("metadata: %d %v", code, err)
	}
	if !closedByServer(c, 5*time.Second) {
		t.Error("an idle keep-alive connection is still open 5 s after its answer")
	}

	// vm5 holds its two; its third is closed, vm6 is still served.
	held := []net.Conn{dial(vm5), dial(vm5)}
	if !closedByServer(dial(vm5), 5*time.Second) {
		t.Error("a VM's connection over the per-VM limit stays open")
	}
	c6 := dial(vm6)
	// Three open (the router's limit): vm6's second is closed.
	if !closedByServer(dial(vm6), 5*time.Second) {
		t.Error("a connection over the router's limit stays open")
	}
	if code, err := get(c6); err != nil || code != 404 {
		t.Errorf("vm6 within the limits: %d %v, want 404 (no metadata for it)", code, err)
	}
	// A connection given back makes room again, once the server has seen
	// it end (it reads the close, then closes its side).
	held[0].Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, err := get(dial(vm5))
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm5 after one of its connections closed: %d %v", code, err)
		}
	}
	if code, err := get(held[1]); err != nil || code != 200 {
		t.Errorf("a held connection within the limits: %d %v", code, err)
	}
}
