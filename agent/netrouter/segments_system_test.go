package netrouter

import (
	"context"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestSegmentsSharedWithRouter: a hypervisor's Segments and a router
// builder on one host. Each side's garbage collection keeps what the
// other uses; Ensure is idempotent; a segment nobody wants goes.
func TestSegmentsSharedWithRouter(t *testing.T) {
	e := newSysenv(t)
	ctx := context.Background()
	seg, err := NewSegments(SegmentsConfig{VTEPAddr: e.cfg.VTEPAddr, UnderlayDevice: e.cfg.PublicBridge, Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Segments = seg
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = e.b.Close(ctx)
	e.b = b // cleanup scrubs with it

	exists := func(name string) bool { _, err := netlink.LinkByName(name); return err == nil }
	fdbOf := func(dev string) []string {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := netlink.NewHandle()
		defer h.Close()
		v, err := fdbVTEPs(h, l)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range v {
			out = append(out, a.String())
		}
		return out
	}

	vmVNI := e.vni + 1
	vmBridge, vmDev := e.b.names.vxlanBridge(vmVNI), e.b.names.vxlanDev(vmVNI)
	if got := seg.BridgeName(Segment{VNI: vmVNI}); got != vmBridge {
		t.Fatalf("BridgeName %s, the router names it %s", got, vmBridge)
	}
	want := []Segment{
		{VNI: vmVNI, VTEPs: []string{"192.0.2.7", e.cfg.VTEPAddr}},
		{VNI: vmVNI, VTEPs: []string{"192.0.2.8"}},
	}
	res, err := seg.Ensure(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first Ensure: %d changes in %v", len(res.Changes), res.Duration)
	if !exists(vmBridge) || !slices.Equal(fdbOf(vmDev), []string{"192.0.2.7", "192.0.2.8"}) {
		t.Fatalf("hypervisor segment: bridge %v, fdb %v", exists(vmBridge), fdbOf(vmDev))
	}
	if res, err := seg.Ensure(ctx, want); err != nil || len(res.Changes) != 0 {
		t.Fatalf("second Ensure changed %q (%v)", res.Changes, err)
	}

	// A router on another VNI: its garbage collection keeps the VMs'
	// segment although no port but its VXLAN device is in it.
	spec := e.spec(e.projectID())
	e.ensure(b, spec)
	if !exists(vmBridge) {
		t.Fatal("the router's garbage collection removed the hypervisor's segment")
	}
	list, err := seg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].VNI != e.vni || list[1].VNI != vmVNI {
		t.Fatalf("List: %+v", list)
	}

	// The VMs move to the router's segment: the old one goes, the
	// router's stays (and keeps its own FDB: the same set).
	routerBridge := e.b.names.vxlanBridge(e.vni)
	if _, err := seg.Ensure(ctx, []Segment{{VNI: e.vni, VTEPs: spec.Subnets[0].VTEPs}}); err != nil {
		t.Fatal(err)
	}
	if exists(vmBridge) || exists(vmDev) {
		t.Fatal("a segment no VM uses any more is still there")
	}
	if r := e.ensure(b, spec); len(r.Changes) != 0 {
		t.Fatalf("the router and the hypervisor disagree on the shared segment: %q", r.Changes)
	}
	// No VM left: the router's veth keeps the shared segment.
	if _, err := seg.Ensure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !exists(routerBridge) {
		t.Fatal("the hypervisor removed a segment the router uses")
	}
	// Invalid input is reported, the valid rest applied.
	if _, err := seg.Ensure(ctx, []Segment{{VNI: 0}, {VNI: vmVNI}}); err == nil {
		t.Fatal("VNI 0 accepted")
	}
	if !exists(vmBridge) {
		t.Fatal("the valid segment next to an invalid one was not made")
	}
	if _, err := seg.Ensure(ctx, nil); err != nil {
		t.Fatal(err)
	}
}
