package netrouter

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestPlanSegmentsMergesAndNames(t *testing.T) {
	own := netip.MustParseAddr("192.0.2.9")
	segs := []Segment{
		{VNI: 5003, VTEPs: []string{"192.0.2.2", "192.0.2.9"}},
		{VNI: 70, VTEPs: []string{}},
		{VNI: 5003, VTEPs: []string{"192.0.2.1", "192.0.2.2"}},
	}
	got, err := planSegments(segs, testNames, ModeVXLAN, own)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].vni != 70 || got[1].vni != 5003 {
		t.Fatalf("segments not merged by VNI and ordered: %+v", got)
	}
	s := got[1]
	if s.bridge != "rgb5003" || s.segDev != "rgx5003" || s.segTag != "regent:rg:segment:vxlan:5003" {
		t.Fatalf("names: %+v", s)
	}
	// The same names as a router's segment of that VNI.
	d, _ := plan(sampleSpec(), testNames, ModeVXLAN)
	if d.subnets[0].bridge != s.bridge || d.subnets[0].segDev != s.segDev || d.subnets[0].segTag != s.segTag {
		t.Fatalf("router and hypervisor name the segment differently: %+v vs %+v", d.subnets[0].segment, s)
	}
	if len(s.vteps) != 2 || s.vteps[0].String() != "192.0.2.1" || s.vteps[1].String() != "192.0.2.2" {
		t.Fatalf("vteps: union, sorted, unique, without the host's own: %v", s.vteps)
	}
	if len(got[0].vteps) != 0 {
		t.Fatalf("vteps of a lone segment: %v", got[0].vteps)
	}
}

func TestPlanSegmentsVLAN(t *testing.T) {
	got, err := planSegments([]Segment{{VLAN: 103, VNI: 9, VTEPs: []string{"192.0.2.1"}}}, testNames, ModeVLAN, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].bridge != "rgl103" || got[0].segDev != "rgv103" || len(got[0].vteps) != 0 {
		t.Fatalf("vlan segment: %+v", got)
	}
}

func TestPlanSegmentsInvalid(t *testing.T) {
	got, err := planSegments([]Segment{
		{VNI: 0},
		{VNI: 1 << 24},
		{VNI: 12, VTEPs: []string{"nope", "192.0.2.3"}},
	}, testNames, ModeVXLAN, netip.Addr{})
	var ie *InvalidSegmentsError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v is not an InvalidSegmentsError", err)
	}
	for _, want := range []string{"vni 0", "vni 16777216", `vtep "nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	// The valid ones are kept: a bad VTEP does not take its segment away.
	if len(got) != 1 || got[0].vni != 12 || len(got[0].vteps) != 1 {
		t.Fatalf("valid segments: %+v", got)
	}
}

func TestSegmentBridgeName(t *testing.T) {
	s, err := NewSegments(SegmentsConfig{Prefix: "rg"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.BridgeName(Segment{VNI: 5003}); got != "rgb5003" {
		t.Fatalf("vxlan bridge %s", got)
	}
	if got := s.BridgeName(Segment{VNI: 4_000_000_000 % (1 << 24)}); len(got) > maxIfName {
		t.Fatalf("bridge name %s too long", got)
	}
	v, err := NewSegments(SegmentsConfig{Prefix: "rg", SegmentMode: ModeVLAN, UnderlayDevice: "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.BridgeName(Segment{VLAN: 7}); got != "rgl7" {
		t.Fatalf("vlan bridge %s", got)
	}
	if _, err := NewSegments(SegmentsConfig{SegmentMode: ModeVLAN}); err == nil {
		t.Fatal("vlan mode without an underlay accepted")
	}
}

func TestParseSegmentTag(t *testing.T) {
	n := testNames
	mode, id, ok := n.parseSegmentTag(n.segmentTag(ModeVXLAN, 5003))
	if !ok || mode != ModeVXLAN || id != 5003 {
		t.Fatalf("parse: %s %d %v", mode, id, ok)
	}
	for _, bad := range []string{"regent:zz:segment:vxlan:1", "regent:rg:segment:gre:1", "regent:rg:segment:vxlan:x", "regent:rg:router:1:2"} {
		if _, _, ok := n.parseSegmentTag(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
