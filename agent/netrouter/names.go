package netrouter

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// maxIfName is IFNAMSIZ-1: the longest Linux interface name.
const maxIfName = 15

// Names inside a router's namespace; the namespace isolates them.
const (
	nsPublicIf = "pub0"
	nsSubnetIf = "sub" // + subnet id
	tableName  = "regent"
	metaChain  = "regent_meta"
)

// naming derives every host-visible name and ownership tag from the
// builder's prefix, so two builders with different prefixes never see each
// other's objects.
type naming struct {
	prefix   string // link name prefix, e.g. "rg"
	nsPrefix string // namespace prefix, "P" by default
}

// ifname builds prefix+kind+id, falling back to a hash when the decimal form
// exceeds IFNAMSIZ.
func (n naming) ifname(kind string, id uint64) string {
	name := n.prefix + kind + strconv.FormatUint(id, 10)
	if len(name) <= maxIfName {
		return name
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", kind, id)
	return n.prefix + kind + "h" + strconv.FormatUint(uint64(h.Sum32()), 36)
}

func (n naming) namespace(projectID uint64) string {
	return n.nsPrefix + strconv.FormatUint(projectID, 10)
}

func (n naming) publicVeth(projectID uint64) string { return n.ifname("p", projectID) }
func (n naming) subnetVeth(subnetID uint64) string  { return n.ifname("s", subnetID) }
func (n naming) vxlanBridge(vni uint32) string      { return n.ifname("b", uint64(vni)) }
func (n naming) vxlanDev(vni uint32) string         { return n.ifname("x", uint64(vni)) }
func (n naming) vlanBridge(vlan uint32) string      { return n.ifname("l", uint64(vlan)) }
func (n naming) vlanDev(vlan uint32) string         { return n.ifname("v", uint64(vlan)) }

func nsSubnetName(subnetID uint64) string {
	name := nsSubnetIf + strconv.FormatUint(subnetID, 10)
	if len(name) <= maxIfName {
		return name
	}
	return nsSubnetIf + "h" + strconv.FormatUint(subnetID%(1<<40), 36)
}

// Ownership tags. They are written to ifalias (links), the namespace's
// loopback alias and the nft table comment.
//
//	regent:<prefix>:router:<router_id>:<project_id>   per-router objects
//	regent:<prefix>:segment:<mode>:<id>               shared segment bridges and devices
//	regent:<prefix>:public                            the public bridge, when created by us
func (n naming) routerTag(routerID, projectID uint64) string {
	return fmt.Sprintf("regent:%s:router:%d:%d", n.prefix, routerID, projectID)
}

func (n naming) segmentTag(mode string, id uint32) string {
	return fmt.Sprintf("regent:%s:segment:%s:%d", n.prefix, mode, id)
}

func (n naming) publicTag() string { return fmt.Sprintf("regent:%s:public", n.prefix) }

// parseRouterTag returns the router and project ids of a router tag of this
// prefix.
func (n naming) parseRouterTag(tag string) (routerID, projectID uint64, ok bool) {
	rest, found := strings.CutPrefix(tag, fmt.Sprintf("regent:%s:router:", n.prefix))
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, ":")
	if !found {
		return 0, 0, false
	}
	r, err1 := strconv.ParseUint(a, 10, 64)
	p, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return r, p, true
}

func (n naming) isSegmentTag(tag string) bool {
	return strings.HasPrefix(tag, fmt.Sprintf("regent:%s:segment:", n.prefix))
}

// SegmentBridge is the name of the host bridge the builder with link prefix
// prefix ("" is the default "rg") creates for a tenant segment: id is the
// VNI in ModeVXLAN and the VLAN in ModeVLAN. agent/vm puts VM taps on it.
func SegmentBridge(prefix, mode string, id uint32) string {
	if prefix == "" {
		prefix = "rg"
	}
	n := naming{prefix: prefix}
	if mode == ModeVLAN {
		return n.vlanBridge(id)
	}
	return n.vxlanBridge(id)
}
