package netrouter

import (
	"context"
	"encoding/json"
	"testing"

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
