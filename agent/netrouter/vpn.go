package netrouter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/vishvananda/netlink"
)

// rtprotRegent marks the routes the builder owns in a router namespace
// (the VPNs' remote subnets), so it can tell them from the kernel's and
// charon's and remove the ones no VPN wants.
const rtprotRegent = netlink.RouteProtocol(152)

// vpnRoute is one route of a VPN: traffic between local (a project
// subnet) and remote goes through the tunnel, unfiltered and not NATed.
type vpnRoute struct {
	vpnID         uint64
	local, remote netip.Prefix
}

// parseVPNs validates the routes of spec's VPNs against the router's
// subnets and returns them ordered. A VPN with a bad route fails alone:
// its error (a *vpn.SpecError, for the VPN manager to report in its
// status) is in failed, and only its valid routes are returned, so their
// traffic is held as that of any VPN that does not run: routed into the
// tunnel device where it exists (no SA: dropped there), and kept from
// every other interface by the ruleset's vpn_egress chain where it does
// not (renderVPNEgress), never out unencrypted. Only a VPN without an id,
// which cannot be reported alone, is an error of the spec (bad).
func parseVPNs(spec *api.RouterSpec, subnets []subnet, bad func(string, ...any)) (out []vpnRoute, failed []error) {
	for i, v := range spec.VPNs {
		if v.ID == 0 {
			bad("vpns[%d].id: required", i)
			continue
		}
		var errs []error
		for j, r := range v.Routes {
			l, err1 := netip.ParsePrefix(r.LocalSubnet)
			rm, err2 := netip.ParsePrefix(r.RemoteSubnet)
			if err1 != nil || err2 != nil || !l.Addr().Is4() || !rm.Addr().Is4() {
				errs = append(errs, fmt.Errorf("routes[%d]: %q → %q is not a pair of IPv4 networks", j, r.LocalSubnet, r.RemoteSubnet))
				continue
			}
			l, rm = l.Masked(), rm.Masked()
			ok := true
			if !insideSubnets(l, subnets) {
				errs = append(errs, fmt.Errorf("routes[%d].local_subnet: %s is not in a subnet of the router", j, l))
				ok = false
			}
			for _, s := range subnets {
				if s.network.Overlaps(rm) {
					errs = append(errs, fmt.Errorf("routes[%d].remote_subnet: %s overlaps subnet %s", j, rm, s.network))
					ok = false
				}
			}
			if ok {
				out = append(out, vpnRoute{vpnID: v.ID, local: l, remote: rm})
			}
		}
		if len(errs) > 0 {
			failed = append(failed, &vpn.SpecError{VPNID: v.ID, Err: fmt.Errorf("vpn %d: %w", v.ID, errors.Join(errs...))})
		}
	}
	slices.SortFunc(out, func(a, b vpnRoute) int {
		if c := cmpU64(a.vpnID, b.vpnID); c != 0 {
			return c
		}
		if c := a.local.Addr().Compare(b.local.Addr()); c != 0 {
			return c
		}
		return a.remote.Addr().Compare(b.remote.Addr())
	})
	return out, failed
}

// vpnLink is a link a VPN needs in the namespace (xfrm mode).
type vpnLink struct {
	name string
	ifID uint32
}

// routeWant is one route the namespace needs for its VPNs.
type routeWant struct {
	dst netip.Prefix
	dev string
}

// vpnPlan returns the links and routes the router's VPNs need: in xfrm
// mode an XFRM interface per VPN (if_id = VPN id) and each remote subnet
// routed into its VPN's interface; in libipsec mode every remote subnet
// routed into charon's TUN device. A remote subnet two VPNs share goes to
// the VPN with the lower id.
func vpnPlan(d *desired, mode string) ([]vpnLink, []routeWant) {
	var links []vpnLink
	var routes []routeWant
	seen := map[netip.Prefix]bool{}
	for _, r := range d.vpnRoutes {
		dev := vpnDevice(mode, r.vpnID)
		if mode == vpn.ModeXFRM {
			if !slices.ContainsFunc(links, func(l vpnLink) bool { return l.name == dev }) {
				links = append(links, vpnLink{name: dev, ifID: uint32(r.vpnID)})
			}
		}
		if !seen[r.remote] {
			seen[r.remote] = true
			routes = append(routes, routeWant{dst: r.remote, dev: dev})
		}
	}
	return links, routes
}

// vpnDevice is the namespace device a VPN's traffic passes: its XFRM
// interface in xfrm mode, charon's TUN device in libipsec mode.
func vpnDevice(mode string, vpnID uint64) string {
	if mode == vpn.ModeXFRM {
		return vpn.XFRMDevice(vpnID)
	}
	return vpn.TUNDevice
}

// keepVPNLinks adds the namespace links of the VPNs to keep: charon's TUN
// device (charon owns it) and the XFRM interfaces of the wanted VPNs.
func keepVPNLinks(d *desired, mode string, keep map[string]bool) {
	keep[vpn.TUNDevice] = true
	links, _ := vpnPlan(d, mode)
	for _, l := range links {
		keep[l.name] = true
	}
}

// EnsureVPNRoutes makes the routes of spec's VPNs match the spec; the
// agent calls it after charon is up, since in libipsec mode the routes go
// into charon's TUN device (Ensure skips them while it is missing; the
// ruleset drops the remote subnets' traffic meanwhile).
func (b *Builder) EnsureVPNRoutes(ctx context.Context, spec *api.RouterSpec) (Result, error) {
	return b.locked(spec, func(d *desired, _ *running, c *changes) error { return b.ensureVPN(ctx, d, c) })
}

// RestoreVPNRoutes puts the VPN routes of router id back as its latest
// Ensure or EnsureVPNRoutes planned them. The agent calls it when charon
// was restarted: in libipsec mode the kernel dropped the routes with the
// dead charon's TUN device, and without them the remote subnets' traffic
// is dropped by the ruleset (vpn_egress: it never takes the default
// route out unencrypted) until the next apply. A router this builder has
// not applied (or has quiesced) is left alone.
func (b *Builder) RestoreVPNRoutes(ctx context.Context, id uint64) (Result, error) {
	start := time.Now()
	b.mu.Lock()
	rs := b.routers[id]
	closed := b.closed
	b.mu.Unlock()
	if rs == nil || closed {
		return Result{}, nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.last == nil {
		return Result{}, nil
	}
	c := &changes{}
	err := b.ensureVPN(ctx, rs.last, c)
	if err != nil {
		err = fmt.Errorf("router %d: restore vpn routes: %w", id, err)
	}
	return Result{Changes: c.list, Duration: time.Since(start)}, err
}

// ensureVPN makes the VPN links (xfrm mode) and routes of the namespace
// match d: missing ones are added, ones no VPN wants removed.
func (b *Builder) ensureVPN(_ context.Context, d *desired, c *changes) error {
	root, ns, nsh, err := openNS(d.namespace)
	if err != nil {
		return err
	}
	defer root.Close()
	defer ns.Close()
	defer nsh.Close()
	links, routes := vpnPlan(d, b.cfg.VPNMode)
	for _, l := range links {
		if err := ensureXFRM(ns, d.namespace, l, d.tag, c); err != nil {
			return err
		}
	}
	have, err := ns.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: rtprotRegent}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return err
	}
	want := map[netip.Prefix]int{} // dst → link index
	missingDev := ""
	for _, r := range routes {
		l, err := ns.LinkByName(r.dev)
		if isNotFound(err) {
			// libipsec: charon is not up yet (or died, or its only VPN
			// does not run); EnsureVPNRoutes or RestoreVPNRoutes comes
			// later. Meanwhile the ruleset's vpn_egress chain drops the
			// traffic that would take the default route instead.
			missingDev = r.dev
			continue
		}
		if err != nil {
			return err
		}
		if err := ensureUp(ns, l, c); err != nil {
			return err
		}
		want[r.dst] = l.Attrs().Index
	}
	if missingDev != "" {
		b.log.Debug("vpn routes wait for their device", "namespace", d.namespace, "device", missingDev)
	}
	ok := map[netip.Prefix]bool{}
	for _, r := range have {
		dst, valid := ipnetPrefix(r.Dst)
		idx, wanted := want[dst]
		if valid && wanted && r.LinkIndex == idx && !ok[dst] {
			ok[dst] = true
			continue
		}
		if err := ns.RouteDel(&r); err != nil {
			return fmt.Errorf("remove vpn route %v: %w", r.Dst, err)
		}
		c.add("removed vpn route %v", r.Dst)
	}
	for dst, idx := range want {
		if ok[dst] {
			continue
		}
		rt := &netlink.Route{LinkIndex: idx, Dst: prefixIPNet(dst), Protocol: rtprotRegent, Scope: netlink.SCOPE_LINK}
		if err := ns.RouteReplace(rt); err != nil {
			return fmt.Errorf("vpn route %s: %w", dst, err)
		}
		c.add("vpn route %s", dst)
	}
	return nil
}

// ensureXFRM makes an XFRM interface with the VPN's if_id in the
// namespace (production's route-based VPNs). Not available on every
// kernel: unit-tested through vpnPlan only where XFRM is missing. A new
// interface and one found alike are settled (settleXFRM): an agent that
// died between making it and its sysctl left one without disable_policy.
func ensureXFRM(ns linkOps, nsName string, want vpnLink, tag string, c *changes) error {
	l, err := ns.LinkByName(want.name)
	if err != nil && !isNotFound(err) {
		return err
	}
	if err == nil {
		if x, ok := l.(*netlink.Xfrmi); ok && x.Ifid == want.ifID {
			return settleXFRM(ns, nsName, l, tag, c)
		}
		if err := ns.LinkDel(l); err != nil && !isNotFound(err) {
			return err
		}
	}
	if err := ns.LinkAdd(&netlink.Xfrmi{LinkAttrs: netlink.LinkAttrs{Name: want.name}, Ifid: want.ifID}); err != nil {
		return fmt.Errorf("xfrm interface %s (if_id %d): %w", want.name, want.ifID, err)
	}
	c.add("xfrm interface %s", want.name)
	if l, err = ns.LinkByName(want.name); err != nil {
		return err
	}
	return settleXFRM(ns, nsName, l, tag, c)
}

// settleXFRM gives a VPN's interface in namespace nsName what it needs
// besides its if_id, each only where missing: no policy check on it
// (disable_policy=1: the interface carries the policy), the router's tag,
// up.
func settleXFRM(ns linkOps, nsName string, l netlink.Link, tag string, c *changes) error {
	name := l.Attrs().Name
	if err := withNetnsPath(nsPath(nsName), func() error {
		changed, err := setSysctl("net/ipv4/conf/"+name+"/disable_policy", "1")
		if changed && err == nil {
			c.add("disable_policy on %s", name)
		}
		return err
	}); err != nil {
		return err
	}
	if err := ensureAlias(ns, l, tag, c); err != nil {
		return err
	}
	return ensureUp(ns, l, c)
}
