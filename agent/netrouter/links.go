package netrouter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkOps are the netlink calls on one namespace.
type linkOps = *netlink.Handle

// dumpRetry repeats a netlink dump the kernel interrupted because the
// dumped set changed meanwhile (NLM_F_DUMP_INTR: other links come and go on
// a busy host); its partial result is never used.
func dumpRetry[T any](dump func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 9 {
			return v, err
		}
	}
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf)
}

// openNS returns netlink handles for the root namespace and the router's.
func openNS(name string) (root, ns *netlink.Handle, nsh netns.NsHandle, err error) {
	root, err = netlink.NewHandle()
	if err != nil {
		return nil, nil, 0, err
	}
	nsh, err = netns.GetFromPath(nsPath(name))
	if err != nil {
		root.Close()
		return nil, nil, 0, err
	}
	ns, err = netlink.NewHandleAt(nsh)
	if err != nil {
		root.Close()
		nsh.Close()
		return nil, nil, 0, err
	}
	return root, ns, nsh, nil
}

// kernelFallbackLinks are the fallback devices a tunnel module makes in
// every new namespace while it is loaded (net.core.
// fb_tunnels_only_for_init_net=0, the default), by name and by kind as
// netlink reports it. The kernel keeps them: a delete succeeds and leaves
// the device, so removing them as leftovers reported a change at every
// Ensure.
var kernelFallbackLinks = map[string]string{
	"tunl0":      "ipip",
	"sit0":       "sit",
	"ip6tnl0":    "ip6tnl",
	"gre0":       "gre",
	"gretap0":    "gretap",
	"erspan0":    "erspan",
	"ip6gre0":    "ip6gre",
	"ip6gretap0": "ip6gretap",
	"ip6erspan0": "ip6erspan",
	"ip_vti0":    "vti",
	"ip6_vti0":   "vti6",
}

// kernelFallback reports whether l is a kernel's fallback tunnel device
// (its name and kind both those the kernel gives it).
func kernelFallback(l netlink.Link) bool {
	kind, ok := kernelFallbackLinks[l.Attrs().Name]
	return ok && l.Type() == kind
}

// ensureLinks makes the router's links; publicUp false keeps the host half
// of the public veth down (a quiesced router).
func (b *Builder) ensureLinks(_ context.Context, d *desired, c *changes, publicUp bool) error {
	root, ns, nsh, err := openNS(d.namespace)
	if err != nil {
		return err
	}
	defer root.Close()
	defer ns.Close()
	defer nsh.Close()

	// Loopback: up, carries the router's tag and the metadata address.
	lo, err := ns.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := ensureAlias(ns, lo, d.tag, c); err != nil {
		return err
	}
	if err := ensureUp(ns, lo, c); err != nil {
		return err
	}
	if err := ensureAddrs(ns, lo, []netip.Prefix{netip.MustParsePrefix(MetadataAddr + "/32")}, true, c); err != nil {
		return err
	}

	// Public side.
	pubBr, err := b.ensurePublicBridge(root, c)
	if err != nil {
		return err
	}
	if err := b.step("public-veth"); err != nil {
		return err
	}
	nv := len(c.list)
	pub, err := ensureVeth(root, ns, int(nsh), d.publicVeth, nsPublicIf, d.tag, pubBr, publicUp, c)
	if err != nil {
		return fmt.Errorf("public veth: %w", err)
	}
	vethChanged := len(c.list) > nv // made, moved or brought up
	want := []netip.Prefix{d.publicAddr}
	for _, n := range d.nat {
		want = append(want, netip.PrefixFrom(n.public, n.bits))
	}
	before, err := ns.AddrList(pub, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	if err := ensurePrimary(ns, pub, d.publicAddr, c); err != nil {
		return err
	}
	if err := ensureAddrs(ns, pub, want, false, c); err != nil {
		return err
	}
	if err := ensureDefaultRoute(ns, pub, d.publicGW, c); err != nil {
		return err
	}
	if publicUp {
		// Announce the addresses that are new on pub0 (all of them when
		// the public veth was made or came up again): neighbours upstream
		// would keep the old MAC for up to ~30 s.
		var announceAddrs []netip.Addr
		for _, p := range want {
			had := slices.ContainsFunc(before, func(a netlink.Addr) bool { q, ok := ipnetPrefix(a.IPNet); return ok && q == p })
			if vethChanged || !had {
				announceAddrs = append(announceAddrs, p.Addr())
			}
		}
		if err := announce(d.namespace, nsPublicIf, announceAddrs); err != nil {
			b.log.Warn("gratuitous arp failed", "router", d.routerID, "error", err)
		} else if len(announceAddrs) > 0 {
			c.add("gratuitous arp for %v", announceAddrs)
		}
	}

	// Private side, one segment per subnet.
	if err := b.step("segments"); err != nil {
		return err
	}
	b.seg.mu.Lock()
	defer b.seg.mu.Unlock()
	for i := range d.subnets {
		s := &d.subnets[i]
		br, dev, err := b.seg.ensureLocked(root, s.segment, c)
		if err != nil {
			return fmt.Errorf("segment of subnet %d: %w", s.id, err)
		}
		in, err := ensureVeth(root, ns, int(nsh), s.hostVeth, s.nsVeth, d.tag, br, true, c)
		if err != nil {
			return fmt.Errorf("subnet %d veth: %w", s.id, err)
		}
		// The segment's MTU (VXLAN: underlay minus 50) on both veth ends;
		// DHCP hands it to the VMs.
		s.mtu = dev.Attrs().MTU
		if err := ensureMTU(ns, in, s.mtu, c); err != nil {
			return err
		}
		if hl, err := root.LinkByName(s.hostVeth); err != nil {
			return err
		} else if err := ensureMTU(root, hl, s.mtu, c); err != nil {
			return err
		}
		if err := ensureAddrs(ns, in, []netip.Prefix{s.gateway}, false, c); err != nil {
			return err
		}
	}

	// Leftovers: links of this router that the spec no longer has.
	keepNS := map[string]bool{"lo": true, nsPublicIf: true}
	keepRoot := map[string]bool{d.publicVeth: true}
	keepVPNLinks(d, b.cfg.VPNMode, keepNS)
	for _, s := range d.subnets {
		keepNS[s.nsVeth] = true
		keepRoot[s.hostVeth] = true
	}
	nsLinks, err := dumpRetry(ns.LinkList)
	if err != nil {
		return err
	}
	for _, l := range nsLinks {
		if !keepNS[l.Attrs().Name] && !kernelFallback(l) {
			if err := ns.LinkDel(l); err != nil && !isNotFound(err) {
				return err
			}
			c.add("removed namespace link %s", l.Attrs().Name)
		}
	}
	rootLinks, err := dumpRetry(root.LinkList)
	if err != nil {
		return err
	}
	for _, l := range rootLinks {
		if l.Attrs().Alias == d.tag && !keepRoot[l.Attrs().Name] {
			if err := root.LinkDel(l); err != nil && !isNotFound(err) {
				return err
			}
			c.add("removed link %s", l.Attrs().Name)
		}
	}
	keepSeg := map[string]bool{}
	for _, s := range d.subnets {
		keepSeg[s.bridge] = true
	}
	return b.seg.gcLocked(root, keepSeg, c)
}

func (b *Builder) ensurePublicBridge(root linkOps, c *changes) (netlink.Link, error) {
	br, err := root.LinkByName(b.cfg.PublicBridge)
	if isNotFound(err) {
		nb := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.cfg.PublicBridge}}
		if err := root.LinkAdd(nb); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create public bridge: %w", err)
		}
		c.add("public bridge %s", b.cfg.PublicBridge)
		if br, err = root.LinkByName(b.cfg.PublicBridge); err != nil {
			return nil, err
		}
		if err := root.LinkSetAlias(br, b.names.publicTag()); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if err := ensureUp(root, br, c); err != nil {
		return nil, err
	}
	if b.cfg.PublicBridgeAddr != "" {
		p := netip.MustParsePrefix(b.cfg.PublicBridgeAddr)
		if err := ensureAddrs(root, br, []netip.Prefix{p}, true, c); err != nil {
			return nil, err
		}
	}
	return br, nil
}

func ensureMTU(h linkOps, l netlink.Link, mtu int, c *changes) error {
	if mtu <= 0 || l.Attrs().MTU == mtu {
		return nil
	}
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("mtu %d on %s: %w", mtu, l.Attrs().Name, err)
	}
	c.add("mtu %d on %s", mtu, l.Attrs().Name)
	return nil
}

func isZeroMAC(m net.HardwareAddr) bool {
	return len(m) == 6 && m[0]|m[1]|m[2]|m[3]|m[4]|m[5] == 0
}

// ensureFDB makes the VXLAN device's default (all-zero MAC) forwarding
// entries point at exactly the wanted VTEPs (head-end replication).
func ensureFDB(h linkOps, dev netlink.Link, vteps []netip.Addr, c *changes) error {
	have, err := fdbVTEPs(h, dev)
	if err != nil {
		return err
	}
	entry := func(a netip.Addr) *netlink.Neigh {
		return &netlink.Neigh{
			LinkIndex:    dev.Attrs().Index,
			Family:       unix.AF_BRIDGE,
			State:        netlink.NUD_PERMANENT | netlink.NUD_NOARP,
			Flags:        netlink.NTF_SELF,
			IP:           net.IP(a.AsSlice()),
			HardwareAddr: net.HardwareAddr{0, 0, 0, 0, 0, 0},
		}
	}
	for _, a := range vteps {
		if !slices.Contains(have, a) {
			if err := h.NeighAppend(entry(a)); err != nil {
				return fmt.Errorf("fdb %s → %s: %w", dev.Attrs().Name, a, err)
			}
			c.add("fdb %s → %s", dev.Attrs().Name, a)
		}
	}
	for _, a := range have {
		if !slices.Contains(vteps, a) {
			if err := h.NeighDel(entry(a)); err != nil {
				return fmt.Errorf("remove fdb %s → %s: %w", dev.Attrs().Name, a, err)
			}
			c.add("removed fdb %s → %s", dev.Attrs().Name, a)
		}
	}
	return nil
}

// fdbVTEPs lists the VTEPs of a VXLAN device's all-zero FDB entries.
func fdbVTEPs(h linkOps, dev netlink.Link) ([]netip.Addr, error) {
	neighs, err := dumpRetry(func() ([]netlink.Neigh, error) { return h.NeighList(dev.Attrs().Index, unix.AF_BRIDGE) })
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, n := range neighs {
		if n.LinkIndex != dev.Attrs().Index || n.IP == nil || !isZeroMAC(n.HardwareAddr) {
			continue
		}
		if a, ok := netip.AddrFromSlice(n.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// ensureVeth makes the veth pair host (root namespace, in master) ↔ peer
// (router namespace) exist, tagged and up, and returns the peer. A half of
// a pair whose partner is missing or elsewhere is deleted and recreated.
// hostUp false keeps the host half down instead (no carrier on the pair).
func ensureVeth(root, ns linkOps, nsFd int, host, peer, tag string, master netlink.Link, hostUp bool, c *changes) (netlink.Link, error) {
	hl, herr := root.LinkByName(host)
	pl, perr := ns.LinkByName(peer)
	if herr != nil && !isNotFound(herr) {
		return nil, herr
	}
	if perr != nil && !isNotFound(perr) {
		return nil, perr
	}
	paired := herr == nil && perr == nil && hl.Type() == "veth" && pl.Type() == "veth" && hl.Attrs().ParentIndex == pl.Attrs().Index
	if !paired {
		if herr == nil {
			if err := root.LinkDel(hl); err != nil && !isNotFound(err) {
				return nil, err
			}
			c.add("removed unpaired %s", host)
		}
		if perr == nil {
			// Deleting the host half may already have taken it.
			if l, err := ns.LinkByName(peer); err == nil {
				if err := ns.LinkDel(l); err != nil && !isNotFound(err) {
					return nil, err
				}
			}
		}
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: host},
			PeerName:      peer,
			PeerNamespace: netlink.NsFd(nsFd),
		}
		if err := root.LinkAdd(v); err != nil {
			return nil, fmt.Errorf("create veth %s/%s: %w", host, peer, err)
		}
		c.add("veth %s ↔ %s", host, peer)
		var err error
		if hl, err = root.LinkByName(host); err != nil {
			return nil, err
		}
		if pl, err = ns.LinkByName(peer); err != nil {
			return nil, err
		}
	}
	if err := ensureAlias(root, hl, tag, c); err != nil {
		return nil, err
	}
	if err := ensureAlias(ns, pl, tag, c); err != nil {
		return nil, err
	}
	if hl.Attrs().MasterIndex != master.Attrs().Index {
		if err := root.LinkSetMaster(hl, master); err != nil {
			return nil, err
		}
		c.add("%s into %s", host, master.Attrs().Name)
	}
	if !hostUp {
		if err := ensureDown(root, hl, c); err != nil {
			return nil, err
		}
	} else if err := ensureUp(root, hl, c); err != nil {
		return nil, err
	}
	if err := ensureUp(ns, pl, c); err != nil {
		return nil, err
	}
	return pl, nil
}

func ensureAlias(h linkOps, l netlink.Link, alias string, c *changes) error {
	if l.Attrs().Alias == alias {
		return nil
	}
	if err := h.LinkSetAlias(l, alias); err != nil {
		return fmt.Errorf("alias %s: %w", l.Attrs().Name, err)
	}
	c.add("alias %s", l.Attrs().Name)
	return nil
}

func ensureUp(h linkOps, l netlink.Link, c *changes) error {
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("up %s: %w", l.Attrs().Name, err)
	}
	c.add("up %s", l.Attrs().Name)
	return nil
}

func ensureDown(h linkOps, l netlink.Link, c *changes) error {
	if l.Attrs().Flags&net.FlagUp == 0 {
		return nil
	}
	if err := h.LinkSetDown(l); err != nil {
		return fmt.Errorf("down %s: %w", l.Attrs().Name, err)
	}
	c.add("down %s", l.Attrs().Name)
	return nil
}

// ensureAddrs makes the IPv4 addresses of l exactly want (in order, so the
// first is primary); with keepOthers it only adds.
func ensureAddrs(h linkOps, l netlink.Link, want []netip.Prefix, keepOthers bool, c *changes) error {
	have, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	haveSet := map[netip.Prefix]bool{}
	for _, a := range have {
		if p, ok := ipnetPrefix(a.IPNet); ok {
			haveSet[p] = true
		}
	}
	for _, p := range want {
		if haveSet[p] {
			continue
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: prefixIPNet(p)}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("address %s on %s: %w", p, l.Attrs().Name, err)
		}
		c.add("address %s on %s", p, l.Attrs().Name)
	}
	if keepOthers {
		return nil
	}
	for _, a := range have {
		p, ok := ipnetPrefix(a.IPNet)
		if !ok || slices.Contains(want, p) {
			continue
		}
		if err := h.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s from %s: %w", p, l.Attrs().Name, err)
		}
		c.add("removed address %s from %s", p, l.Attrs().Name)
	}
	return nil
}

// ensurePrimary makes primary the primary address of its subnet on l: the
// router's public address is its own source address (and the connected
// route's), never a 1:1 NAT address of the same subnet. Adding it while an
// address of the subnet is on l would make it a secondary one, and the
// namespace promotes secondaries (promote_secondaries=1, so removing one
// NAT address keeps the others): when the router's address changes, the
// old one goes and the first NAT address would be promoted. So if the
// primary of the subnet is another address, every address of the subnet
// is removed (secondaries first, so none is promoted meanwhile) and
// primary added first; ensureAddrs puts the others back after it.
func ensurePrimary(h linkOps, l netlink.Link, primary netip.Prefix, c *changes) error {
	have, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	var same []netlink.Addr // of primary's subnet, same length: secondaries of one primary
	current := netip.Prefix{}
	for _, a := range have {
		p, ok := ipnetPrefix(a.IPNet)
		if !ok || p.Bits() != primary.Bits() || p.Masked() != primary.Masked() {
			continue
		}
		same = append(same, a)
		if a.Flags&unix.IFA_F_SECONDARY == 0 {
			current = p
		}
	}
	if current == primary || len(same) == 0 {
		return nil // already primary, or the subnet is empty: added first below
	}
	slices.SortStableFunc(same, func(a, b netlink.Addr) int {
		return (a.Flags & unix.IFA_F_SECONDARY) - (b.Flags & unix.IFA_F_SECONDARY)
	})
	for i := len(same) - 1; i >= 0; i-- { // secondaries first, the primary last
		if err := h.AddrDel(l, &same[i]); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s from %s: %w", same[i].IPNet, l.Attrs().Name, err)
		}
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: prefixIPNet(primary)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("address %s on %s: %w", primary, l.Attrs().Name, err)
	}
	c.add("primary address %s on %s (was %s)", primary, l.Attrs().Name, current)
	return nil
}

func ensureDefaultRoute(h linkOps, l netlink.Link, gw netip.Addr, c *changes) error {
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, r := range routes {
		isDefault := r.Dst == nil || (r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask))
		if isDefault && r.LinkIndex == l.Attrs().Index && r.Gw != nil && r.Gw.Equal(net.IP(gw.AsSlice())) {
			return nil
		}
	}
	if err := h.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(gw.AsSlice())}); err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	c.add("default route via %s", gw)
	return nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

func ipnetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// setPublicDown takes the router off the public network (quiesce).
func (b *Builder) setPublicDown(d *desired, c *changes) error {
	l, err := netlink.LinkByName(d.publicVeth)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	return ensureDown(h, l, c)
}

// removeRouterLinks deletes the host links tagged with r's tag (deleting a
// veth half deletes its partner in the namespace).
func (b *Builder) removeRouterLinks(r Router) error {
	links, err := dumpRetry(netlink.LinkList)
	if err != nil {
		return err
	}
	tag := b.names.routerTag(r.ID, r.ProjectID)
	var errs []error
	for _, l := range links {
		if rid, _, ok := b.names.parseRouterTag(l.Attrs().Alias); ok && rid == r.ID || l.Attrs().Alias == tag {
			if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	// Veth halves in the namespace without a tag yet (interrupted build).
	if r.Namespace != "" && isNamespace(nsPath(r.Namespace)) {
		if root, ns, nsh, err := openNS(r.Namespace); err == nil {
			if ls, err := ns.LinkList(); err == nil {
				for _, l := range ls {
					if l.Type() == "veth" {
						_ = ns.LinkDel(l)
					}
				}
			}
			root.Close()
			ns.Close()
			nsh.Close()
		}
	}
	return errors.Join(errs...)
}

func (b *Builder) listNamespaceRouters() ([]Router, error) {
	names, err := listNamespaces(b.names.nsPrefix)
	if err != nil {
		return nil, err
	}
	var out []Router
	for _, name := range names {
		if !isNamespace(nsPath(name)) {
			continue
		}
		nsh, err := netns.GetFromPath(nsPath(name))
		if err != nil {
			continue
		}
		h, err := netlink.NewHandleAt(nsh)
		nsh.Close()
		if err != nil {
			continue
		}
		lo, err := h.LinkByName("lo")
		h.Close()
		if err != nil {
			continue
		}
		if id, proj, ok := b.names.parseRouterTag(lo.Attrs().Alias); ok {
			out = append(out, Router{ID: id, ProjectID: proj, Namespace: name})
		}
	}
	return out, nil
}

func (b *Builder) listLinkRouters() ([]Router, error) {
	links, err := dumpRetry(netlink.LinkList)
	if err != nil {
		return nil, err
	}
	var out []Router
	for _, l := range links {
		if id, proj, ok := b.names.parseRouterTag(l.Attrs().Alias); ok {
			out = append(out, Router{ID: id, ProjectID: proj, Namespace: b.names.namespace(proj)})
		}
	}
	return out, nil
}
