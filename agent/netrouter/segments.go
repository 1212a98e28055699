package netrouter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SegmentsConfig configures Segments: the segment settings of a Builder
// (same meaning, same defaults).
type SegmentsConfig struct {
	SegmentMode    string // ModeVXLAN (default) or ModeVLAN
	VTEPAddr       string // local VXLAN tunnel endpoint
	UnderlayDevice string // link of the VTEP (vxlan), parent of the sub-interfaces (vlan)
	VXLANPort      int    // 4789
	Prefix         string // link names and ownership tags ("rg")
	Logger         hclog.Logger
}

// Segments keeps the tenant segments of a host: per segment a bridge
// (<pfx>b<vni>, or <pfx>l<vlan> in vlan mode) and the device that carries
// it off the host (VXLAN <pfx>x<vni> whose FDB points at the other hosts'
// VTEPs, or the 802.1Q sub-interface <pfx>v<vlan>), tagged
// regent:<pfx>:segment:<mode>:<id>. The hypervisor role ensures the
// segments of its VMs with Ensure, so a VM's tap has its bridge to join
// (BridgeName); a Builder uses the same code and the same lock for its
// routers' segments. On a host with both roles, give the Builder the
// hypervisor's Segments (Config.Segments) so that neither garbage-collects
// a segment the other wants.
type Segments struct {
	cfg   SegmentsConfig
	names naming
	vtep  netip.Addr
	log   hclog.Logger

	// mu serialises creating and attaching to segment bridges against
	// their garbage collection, for every user of this Segments.
	mu sync.Mutex
	// wanted are the bridges of the last Ensure: every garbage
	// collection (a router's included) keeps them.
	wanted map[string]bool
}

// Segment is one tenant segment as a hypervisor's VMs use it.
type Segment struct {
	// VNI identifies the segment in vxlan mode, VLAN in vlan mode.
	VNI  uint32
	VLAN uint32
	// VTEPs are the tunnel endpoints of the other hosts on the segment
	// (vxlan): the segment device's FDB points at exactly these. The
	// host's own VTEP is ignored.
	VTEPs []string
}

// InvalidSegmentsError lists the segments Ensure skipped because they are
// invalid (a VNI or VLAN out of range, a VTEP that is no address):
// retrying will not help until the input changes.
type InvalidSegmentsError struct{ Err error }

func (e *InvalidSegmentsError) Error() string { return "invalid segments: " + e.Err.Error() }
func (e *InvalidSegmentsError) Unwrap() error { return e.Err }

// segment is a validated segment with its host names.
type segment struct {
	vni, vlan uint32
	vteps     []netip.Addr // sorted, unique
	bridge    string       // segment bridge
	segDev    string       // vxlan device or vlan sub-interface
	segTag    string
}

// NewSegments validates cfg; it does not touch the host.
func NewSegments(cfg SegmentsConfig) (*Segments, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.SegmentMode == "" {
		cfg.SegmentMode = ModeVXLAN
	}
	if cfg.SegmentMode != ModeVXLAN && cfg.SegmentMode != ModeVLAN {
		return nil, fmt.Errorf("netrouter: segment mode %q is not %s or %s", cfg.SegmentMode, ModeVXLAN, ModeVLAN)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "rg"
	}
	if len(cfg.Prefix) > 4 {
		return nil, fmt.Errorf("netrouter: prefix %q is longer than 4 characters", cfg.Prefix)
	}
	if cfg.VXLANPort == 0 {
		cfg.VXLANPort = 4789
	}
	if cfg.SegmentMode == ModeVLAN && cfg.UnderlayDevice == "" {
		return nil, errors.New("netrouter: vlan mode needs an underlay device")
	}
	s := &Segments{cfg: cfg, names: naming{prefix: cfg.Prefix}, log: cfg.Logger.Named("segments")}
	if cfg.VTEPAddr != "" {
		a, err := netip.ParseAddr(cfg.VTEPAddr)
		if err != nil {
			return nil, fmt.Errorf("netrouter: VTEP address: %w", err)
		}
		s.vtep = a
	}
	return s, nil
}

// BridgeName is the host bridge of seg: where a VM's tap on that segment
// goes. It is the bridge a router on the same host uses for the segment.
func (s *Segments) BridgeName(seg Segment) string {
	if s.cfg.SegmentMode == ModeVLAN {
		return s.names.vlanBridge(seg.VLAN)
	}
	return s.names.vxlanBridge(seg.VNI)
}

// planSegments validates segs, merges those with the same VNI (VLAN) and
// resolves their names; own is dropped from the VTEPs. Invalid segments
// are left out and reported in the error.
func planSegments(segs []Segment, n naming, mode string, own netip.Addr) ([]segment, error) {
	var errs []error
	byID := map[uint32]*segment{}
	var ids []uint32
	for i, sg := range segs {
		var id uint32
		var out segment
		switch mode {
		case ModeVLAN:
			if sg.VLAN == 0 || sg.VLAN > 4094 {
				errs = append(errs, fmt.Errorf("segment %d: vlan %d is outside 1..4094", i, sg.VLAN))
				continue
			}
			id = sg.VLAN
			out = segment{vlan: id, bridge: n.vlanBridge(id), segDev: n.vlanDev(id), segTag: n.segmentTag(ModeVLAN, id)}
		default:
			if sg.VNI == 0 || sg.VNI > 1<<24-1 {
				errs = append(errs, fmt.Errorf("segment %d: vni %d is outside 1..16777215", i, sg.VNI))
				continue
			}
			id = sg.VNI
			out = segment{vni: id, bridge: n.vxlanBridge(id), segDev: n.vxlanDev(id), segTag: n.segmentTag(ModeVXLAN, id)}
		}
		// A bad VTEP is reported; the segment is still kept with the others.
		var vteps []netip.Addr
		for _, v := range sg.VTEPs {
			a, err := netip.ParseAddr(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("segment %d: vtep %q is not an address", i, v))
				continue
			}
			if a = a.Unmap(); a != own {
				vteps = append(vteps, a)
			}
		}
		if mode == ModeVLAN {
			vteps = nil
		}
		have := byID[id]
		if have == nil {
			have = &out
			byID[id] = have
			ids = append(ids, id)
		}
		have.vteps = append(have.vteps, vteps...)
	}
	slices.Sort(ids)
	out := make([]segment, 0, len(ids))
	for _, id := range ids {
		sg := byID[id]
		slices.SortFunc(sg.vteps, netip.Addr.Compare)
		sg.vteps = slices.Compact(sg.vteps)
		out = append(out, *sg)
	}
	if len(errs) > 0 {
		return out, &InvalidSegmentsError{Err: errors.Join(errs...)}
	}
	return out, nil
}

// Ensure makes segs the segments this host's VMs use, changing only what
// differs: for each a tagged bridge, up, with its segment device in it
// (VXLAN: the FDB points at exactly the segment's VTEPs). Segments with
// the same VNI (VLAN) are merged: their VTEPs add up. Then segment
// bridges of this prefix that are not in segs and that nothing uses any
// more (no port but their own segment device: no router veth, no VM tap)
// are removed, so call it with the complete set only. An invalid segment
// is skipped and reported as an *InvalidSegmentsError after the others
// are ensured.
func (s *Segments) Ensure(ctx context.Context, segs []Segment) (Result, error) {
	start := time.Now()
	want, invalid := planSegments(segs, s.names, s.cfg.SegmentMode, s.vtep)
	root, err := netlink.NewHandle()
	if err != nil {
		return Result{}, err
	}
	defer root.Close()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.wanted = map[string]bool{}
	for _, sg := range want {
		s.wanted[sg.bridge] = true
	}
	c := &changes{}
	var errs []error
	for _, sg := range want {
		if err := ctx.Err(); err != nil {
			return Result{Changes: c.list, Duration: time.Since(start)}, err
		}
		if _, _, err := s.ensureLocked(root, sg, c); err != nil {
			errs = append(errs, fmt.Errorf("segment %s: %w", sg.bridge, err))
		}
	}
	if err := s.gcLocked(root, nil, c); err != nil {
		errs = append(errs, err)
	}
	if invalid != nil {
		errs = append(errs, invalid)
	}
	res := Result{Changes: c.list, Duration: time.Since(start)}
	if len(c.list) > 0 {
		s.log.Info("segments reconciled", "segments", len(want), "changes", strings.Join(c.list, "; "), "duration", res.Duration)
	}
	return res, errors.Join(errs...)
}

// List returns the segments of this prefix on the host (a router's too:
// the tag does not say who uses a segment), with the VTEPs of their FDB,
// ordered by VNI (VLAN).
func (s *Segments) List(ctx context.Context) ([]Segment, error) {
	root, err := netlink.NewHandle()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	links, err := dumpRetry(root.LinkList)
	if err != nil {
		return nil, err
	}
	var out []Segment
	for _, br := range links {
		if _, ok := br.(*netlink.Bridge); !ok {
			continue
		}
		mode, id, ok := s.names.parseSegmentTag(br.Attrs().Alias)
		if !ok {
			continue
		}
		sg := Segment{VTEPs: []string{}}
		if mode == ModeVLAN {
			sg.VLAN = id
		} else {
			sg.VNI = id
			for _, l := range links {
				if l.Attrs().MasterIndex != br.Attrs().Index || l.Attrs().Alias != br.Attrs().Alias || l.Type() != "vxlan" {
					continue
				}
				vteps, err := fdbVTEPs(root, l)
				if err != nil {
					return nil, err
				}
				for _, v := range vteps {
					sg.VTEPs = append(sg.VTEPs, v.String())
				}
			}
		}
		out = append(out, sg)
	}
	slices.SortFunc(out, func(a, b Segment) int {
		return cmpU64(uint64(a.VNI)<<16|uint64(a.VLAN), uint64(b.VNI)<<16|uint64(b.VLAN))
	})
	return out, ctx.Err()
}

// segmentLink is the link that carries a segment off the host: a VXLAN
// device (VNI, local VTEP, underlay, no learning: the FDB is managed) or an
// 802.1Q sub-interface of the underlay.
func segmentLink(mode string, s segment, underlayIndex int, vtep netip.Addr, port int) netlink.Link {
	if mode == ModeVLAN {
		return &netlink.Vlan{
			LinkAttrs: netlink.LinkAttrs{Name: s.segDev, ParentIndex: underlayIndex},
			VlanId:    int(s.vlan),
		}
	}
	v := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: s.segDev},
		VxlanId:      int(s.vni),
		VtepDevIndex: underlayIndex,
		Port:         port,
		Learning:     false,
	}
	if vtep.IsValid() {
		v.SrcAddr = net.IP(vtep.AsSlice())
	}
	return v
}

// segmentMatches reports whether an existing segment link has the wanted
// identity (a different VNI or VLAN means delete and recreate).
func segmentMatches(have, want netlink.Link) bool {
	switch w := want.(type) {
	case *netlink.Vxlan:
		h, ok := have.(*netlink.Vxlan)
		return ok && h.VxlanId == w.VxlanId && h.Port == w.Port && h.SrcAddr.Equal(w.SrcAddr) && h.VtepDevIndex == w.VtepDevIndex
	case *netlink.Vlan:
		h, ok := have.(*netlink.Vlan)
		return ok && h.VlanId == w.VlanId && h.ParentIndex == w.ParentIndex
	}
	return false
}

// ensureLocked makes one segment's bridge and device exist, tagged and
// up; s.mu is held.
func (s *Segments) ensureLocked(root linkOps, sg segment, c *changes) (br, dev netlink.Link, err error) {
	br, err = s.ensureBridge(root, sg, c)
	if err != nil {
		return nil, nil, err
	}
	dev, err = s.ensureDevice(root, sg, br, c)
	return br, dev, err
}

func (s *Segments) ensureBridge(root linkOps, sg segment, c *changes) (netlink.Link, error) {
	br, err := root.LinkByName(sg.bridge)
	if isNotFound(err) {
		if err := root.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: sg.bridge}}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", sg.bridge, err)
		}
		c.add("segment bridge %s", sg.bridge)
		if br, err = root.LinkByName(sg.bridge); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("%s exists and is a %s, not a bridge", sg.bridge, br.Type())
	}
	if err := ensureAlias(root, br, sg.segTag, c); err != nil {
		return nil, err
	}
	if err := ensureUp(root, br, c); err != nil {
		return nil, err
	}
	return br, nil
}

func (s *Segments) ensureDevice(root linkOps, sg segment, br netlink.Link, c *changes) (netlink.Link, error) {
	underlay := 0
	if s.cfg.UnderlayDevice != "" {
		u, err := root.LinkByName(s.cfg.UnderlayDevice)
		if err != nil {
			return nil, fmt.Errorf("underlay %s: %w", s.cfg.UnderlayDevice, err)
		}
		underlay = u.Attrs().Index
	}
	want := segmentLink(s.cfg.SegmentMode, sg, underlay, s.vtep, s.cfg.VXLANPort)
	dev, err := root.LinkByName(sg.segDev)
	if err == nil && !segmentMatches(dev, want) {
		if err := root.LinkDel(dev); err != nil {
			return nil, err
		}
		c.add("replaced segment device %s", sg.segDev)
		dev, err = nil, netlink.LinkNotFoundError{}
	}
	if dev == nil || isNotFound(err) {
		if err := root.LinkAdd(want); err != nil {
			return nil, fmt.Errorf("create %s: %w", sg.segDev, err)
		}
		c.add("segment device %s", sg.segDev)
		if dev, err = root.LinkByName(sg.segDev); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if err := ensureAlias(root, dev, sg.segTag, c); err != nil {
		return nil, err
	}
	if dev.Attrs().MasterIndex != br.Attrs().Index {
		if err := root.LinkSetMaster(dev, br); err != nil {
			return nil, err
		}
		c.add("%s into %s", sg.segDev, sg.bridge)
	}
	if err := ensureUp(root, dev, c); err != nil {
		return nil, err
	}
	if s.cfg.SegmentMode == ModeVXLAN {
		if err := ensureFDB(root, dev, sg.vteps, c); err != nil {
			return nil, err
		}
	}
	return dev, nil
}

// gc removes segment bridges of this prefix that nothing uses any more
// (no ports besides their own segment device), except keep and the
// segments of the last Ensure.
func (s *Segments) gc(keep map[string]bool) error {
	root, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer root.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gcLocked(root, keep, &changes{})
}

func (s *Segments) gcLocked(root linkOps, keep map[string]bool, c *changes) error {
	links, err := dumpRetry(root.LinkList)
	if err != nil {
		return err
	}
	for _, br := range links {
		name := br.Attrs().Name
		if _, ok := br.(*netlink.Bridge); !ok || !s.names.isSegmentTag(br.Attrs().Alias) || keep[name] || s.wanted[name] {
			continue
		}
		var ports []netlink.Link
		used := false
		for _, l := range links {
			if l.Attrs().MasterIndex != br.Attrs().Index {
				continue
			}
			if l.Attrs().Alias == br.Attrs().Alias {
				ports = append(ports, l)
			} else {
				used = true
			}
		}
		if used {
			continue
		}
		for _, p := range ports {
			if err := root.LinkDel(p); err != nil && !isNotFound(err) {
				return err
			}
			c.add("removed segment device %s", p.Attrs().Name)
		}
		if err := root.LinkDel(br); err != nil && !isNotFound(err) {
			return err
		}
		c.add("removed segment bridge %s", name)
	}
	return nil
}

// parseSegmentTag returns the mode and VNI (VLAN) of a segment tag of this
// prefix.
func (n naming) parseSegmentTag(tag string) (mode string, id uint32, ok bool) {
	rest, found := strings.CutPrefix(tag, fmt.Sprintf("regent:%s:segment:", n.prefix))
	if !found {
		return "", 0, false
	}
	mode, num, found := strings.Cut(rest, ":")
	if !found || (mode != ModeVXLAN && mode != ModeVLAN) {
		return "", 0, false
	}
	v, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return "", 0, false
	}
	return mode, uint32(v), true
}
