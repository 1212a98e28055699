package iaas

// vpn and vpn_history. A VPN's pre-shared key is write-only: it is
// accepted on create and update and never sent back (the stored record
// keeps it beside the VPN, see state.VPNRecord), nor echoed in an error.

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// algoSet parses a comma-separated set against the allowed values: it is
// stored sorted and without duplicates; empty is refused unless mayBeEmpty.
func algoSet(fe wire.FieldErrors, q *api.Request, field string, v *string, dst *string, allowed []string, mayBeEmpty bool, n int) {
	if v == nil {
		return
	}
	seen := map[string]bool{}
	var out []string
	for _, item := range strings.Split(*v, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			continue
		}
		if !slices.Contains(allowed, item) {
			fe.Add(field, q.Code(n), "%q is not one of %s.", item, strings.Join(allowed, ", "))
			return
		}
		if !seen[item] {
			seen[item] = true
			out = append(out, item)
		}
	}
	if len(out) == 0 && !mayBeEmpty {
		fe.Add(field, q.Code(n), "At least one of %s is required.", strings.Join(allowed, ", "))
		return
	}
	sort.Strings(out)
	*dst = strings.Join(out, ",")
}

func oneOf(fe wire.FieldErrors, q *api.Request, field string, v *string, dst *string, allowed []string, n int) {
	if v == nil {
		return
	}
	s := strings.ToLower(strings.TrimSpace(*v))
	if !slices.Contains(allowed, s) {
		fe.Add(field, q.Code(n), "%s must be one of %s.", field, strings.Join(allowed, ", "))
		return
	}
	*dst = s
}

func lifetime(fe wire.FieldErrors, q *api.Request, field string, v *int, dst *int, n int) {
	if v == nil {
		return
	}
	if *v < wire.VPNLifetimeMin || *v > wire.VPNLifetimeMax {
		fe.Add(field, q.Code(n), "%s must be between %d and %d seconds.", field, wire.VPNLifetimeMin, wire.VPNLifetimeMax)
		return
	}
	*dst = *v
}

// checkPSK validates a pre-shared key without ever echoing it: trimmed,
// 1–255 characters, none of " ' @ + - / \ | =.
func checkPSK(fe wire.FieldErrors, q *api.Request, v string) string {
	k := strings.TrimSpace(v)
	switch {
	case k == "":
		fe.Add("ike_pre_shared_key", q.Code(115), "ike_pre_shared_key is required.")
	case utf8.RuneCountInString(k) > wire.PSKMax:
		fe.Add("ike_pre_shared_key", q.Code(116), "ike_pre_shared_key is at most %d characters.", wire.PSKMax)
	case strings.ContainsAny(k, wire.PSKForbidden):
		fe.Add("ike_pre_shared_key", q.Code(117), "ike_pre_shared_key may not contain any of %s.", wire.PSKForbidden)
	default:
		return k
	}
	return ""
}

// vpnFields validates in into v (create: defaults first; update PUT: the
// same; PATCH: missing fields keep their value). Codes: 103 vpn_type, 104
// dynamic secure connect is not offered, 105 description, 106 dns, 107
// ike_version, 108–110 the IKE sets, 111 ike_lifetime, 112
// ike_gateway_type, 113 ike_gateway_value, 114 identifiers, 115–117 the
// key, 118–120 the IPsec sets, 121 ipsec_establish_time, 122
// ipsec_lifetime, 123 routes missing or empty, 124 a malformed route, or
// more than wire.MaxVPNRoutes.
func vpnFields(fe wire.FieldErrors, q *api.Request, v *wire.VPN, in *wire.VPNInput, partial bool) {
	if !partial {
		d := wire.VPNDefaults
		d.Meta, d.VirtualRouterID, d.ProjectID, d.MemberID, d.RegionID, d.STIFNumber =
			v.Meta, v.VirtualRouterID, v.ProjectID, v.MemberID, v.RegionID, v.STIFNumber
		*v = d
	}
	oneOf(fe, q, "vpn_type", in.VPNType, &v.VPNType, []string{wire.VPNSiteToSite, wire.VPNDynamic}, 103)
	if v.VPNType == wire.VPNDynamic {
		fe.Add("vpn_type", q.Code(104), "Dynamic secure connect VPNs are not offered; use site_to_site.")
	}
	if in.Description != nil {
		if msg := api.TextFault(*in.Description, 255); msg != "" {
			fe.Add("description", q.Code(105), "%s", msg)
		}
		v.Description = *in.Description
	}
	if in.DNS != nil {
		if *in.DNS == "" {
			v.DNS = ""
		} else if a, err := netip.ParseAddr(strings.TrimSpace(*in.DNS)); err != nil {
			fe.Add("dns", q.Code(106), "dns must be an IP address.")
		} else {
			v.DNS = a.String()
		}
	}
	api.Set(&v.SendEmail, in.SendEmail)
	api.Set(&v.TrafficSelector, in.TrafficSelector)
	oneOf(fe, q, "ike_version", in.IKEVersion, &v.IKEVersion, wire.IKEVersions, 107)
	algoSet(fe, q, "ike_authentication", in.IKEAuthentication, &v.IKEAuthentication, wire.IKEAuthentications, false, 108)
	algoSet(fe, q, "ike_encryption", in.IKEEncryption, &v.IKEEncryption, wire.IKEEncryptions, false, 109)
	algoSet(fe, q, "ike_dh_groups", in.IKEDHGroups, &v.IKEDHGroups, wire.IKEDHGroups, false, 110)
	lifetime(fe, q, "ike_lifetime", in.IKELifetime, &v.IKELifetime, 111)
	oneOf(fe, q, "ike_gateway_type", in.IKEGatewayType, &v.IKEGatewayType, wire.IKEGatewayTypes, 112)
	if in.IKEGatewayValue != nil {
		v.IKEGatewayValue = strings.TrimSpace(*in.IKEGatewayValue)
	}
	switch gw := v.IKEGatewayValue; {
	case gw == "":
		fe.Add("ike_gateway_value", q.Code(113), "ike_gateway_value is required.")
	case v.IKEGatewayType == "public_ip":
		if a, err := netip.ParseAddr(gw); err != nil || !a.Is4() || a.IsPrivate() || a.IsLoopback() || a.IsUnspecified() {
			fe.Add("ike_gateway_value", q.Code(113), "ike_gateway_value must be a public IPv4 address.")
		}
	default:
		labels := strings.Split(strings.TrimSuffix(gw, "."), ".")
		if len(gw) >= 253 || len(labels) < 2 || slices.Contains(labels, "") {
			fe.Add("ike_gateway_value", q.Code(113), "ike_gateway_value must be a host name of at least two labels, shorter than 253 characters.")
		}
	}
	text(fe, q, "ike_local_identifier", in.IKELocalIdentifier, 253, 114)
	text(fe, q, "ike_remote_identifier", in.IKERemoteIdentifier, 253, 114)
	api.Set(&v.IKELocalIdentifier, in.IKELocalIdentifier)
	api.Set(&v.IKERemoteIdentifier, in.IKERemoteIdentifier)
	algoSet(fe, q, "ipsec_authentication", in.IPSecAuthentication, &v.IPSecAuthentication, wire.IPSecAuthentications, false, 118)
	algoSet(fe, q, "ipsec_encryption", in.IPSecEncryption, &v.IPSecEncryption, wire.IPSecEncryptions, false, 119)
	algoSet(fe, q, "ipsec_pfs_groups", in.IPSecPFSGroups, &v.IPSecPFSGroups, wire.IPSecPFSGroups, true, 120)
	oneOf(fe, q, "ipsec_establish_time", in.IPSecEstablishTime, &v.IPSecEstablishTime, wire.IPSecEstablishTimes, 121)
	lifetime(fe, q, "ipsec_lifetime", in.IPSecLifetime, &v.IPSecLifetime, 122)
	if in.Routes != nil && len(*in.Routes) > wire.MaxVPNRoutes {
		fe.Add("routes", q.Code(124), "A VPN has at most %d routes; %d were sent.", wire.MaxVPNRoutes, len(*in.Routes))
		return
	}
	if in.Routes != nil {
		v.Routes = []wire.VPNRoute{}
		for i, r := range *in.Routes {
			p, err := netip.Prefix{}, error(nil)
			if r.RemoteSubnet != nil {
				p, err = netx.ParsePrefix(strings.TrimSpace(*r.RemoteSubnet))
			}
			if r.LocalSubnetID == nil || r.RemoteSubnet == nil || err != nil {
				fe.Add(fmt.Sprintf("routes[%d]", i), q.Code(124), "A route is {local_subnet_id, remote_subnet} with remote_subnet a CIDR.")
				continue
			}
			if why := remoteSubnetFault(p.Masked()); why != "" {
				fe.Add(fmt.Sprintf("routes[%d].remote_subnet", i), q.Code(124), "%s", why)
				continue
			}
			v.Routes = append(v.Routes, wire.VPNRoute{LocalSubnetID: *r.LocalSubnetID, RemoteSubnet: p.Masked().String()})
		}
	}
	if len(v.Routes) == 0 {
		_, bad := fe["routes[0]"]
		if _, remote := fe["routes[0].remote_subnet"]; !bad && !remote {
			fe.Add("routes", q.Code(123), "At least one route is required.")
		}
	}
}

// notRemote are the IPv4 networks a VPN's remote network may not overlap:
// the agent routes remote networks into the tunnel from the router's
// namespace, where these are its own ("this network", loopback,
// link-local with the metadata address 169.254.169.254) or are never
// routed (multicast, the limited broadcast).
var notRemote = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "0.0.0.0/8 (\"this network\", RFC 1122)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "127.0.0.0/8 (loopback)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "169.254.0.0/16 (link-local, where the router serves metadata)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "224.0.0.0/4 (multicast)"},
	{netip.MustParsePrefix("255.255.255.255/32"), "255.255.255.255 (the limited broadcast)"},
}

// remoteSubnetFault says why a VPN route's remote network (masked) is
// refused, or "": the agents' routers and strongSwan carry IPv4 networks
// only, and none of notRemote.
func remoteSubnetFault(p netip.Prefix) string {
	if !p.Addr().Is4() {
		return fmt.Sprintf("remote_subnet %s is not IPv4: a VPN carries IPv4 networks only.", p)
	}
	for _, n := range notRemote {
		if p.Overlaps(n.p) {
			return fmt.Sprintf("remote_subnet %s overlaps %s, which cannot be a remote network.", p, n.why)
		}
	}
	return ""
}

func registerVPN(a *api.API) {
	api.Register(a, api.Service[*wire.VPN]{
		App: App, Name: "vpn", Tables: []string{state.VPNs},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"virtual_router_id": query.Number, "project_id": query.Number,
			"member_id": query.Number, "region_id": query.Number, "vpn_type": query.String, "stif_number": query.Number,
			"ike_gateway_value": query.String, "description": query.String}),
			Ordering: []string{"id", "virtual_router_id", "stif_number", "created", "updated"}},
		All:     (*state.ReadTxn).VPNList,
		Get:     (*state.ReadTxn).VPN,
		Visible: func(q *api.Request, v *wire.VPN) bool { return seesTenant(q, v.MemberID, v.RegionID) },
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.VPNInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			v := &wire.VPN{}
			if required(fe, q, "virtual_router_id", in.VirtualRouterID != nil, 101) {
				if vr, ok := q.Txn.VirtualRouter(*in.VirtualRouterID); !ok || !seesTenant(q, vr.MemberID, vr.RegionID) {
					fe.Add("virtual_router_id", q.Code(102), "Virtual router %d does not exist.", *in.VirtualRouterID)
				} else {
					v.VirtualRouterID = vr.ID
				}
			}
			vpnFields(fe, q, v, &in, false)
			psk := ""
			if in.IKEPreSharedKey == nil {
				fe.Add("ike_pre_shared_key", q.Code(115), "ike_pre_shared_key is required.")
			} else {
				psk = checkPSK(fe, q, *in.IKEPreSharedKey)
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.VPNCreateType, &state.VPNPayload{VPN: *v, PreSharedKey: psk})
		},
		Update: func(q *api.Request, cur *wire.VPN, partial bool) (*fsm.Command, error) {
			var in wire.VPNInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.VirtualRouterID != nil && *in.VirtualRouterID != cur.VirtualRouterID {
				fe.Add("virtual_router_id", q.Code(102), "A VPN cannot move to another virtual router.")
			}
			v := *cur
			vpnFields(fe, q, &v, &in, partial)
			psk := ""
			if in.IKEPreSharedKey != nil {
				psk = checkPSK(fe, q, *in.IKEPreSharedKey)
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.VPNUpdateType, &state.VPNPayload{VPN: v, PreSharedKey: psk})
		},
		Delete: func(q *api.Request, cur *wire.VPN) (*fsm.Command, error) {
			return q.Command(fsm.VPNDeleteType, &state.VPNDeletePayload{ID: cur.ID})
		},
	})
	api.Register(a, api.Service[*wire.VPNHistory]{
		App: App, Name: "vpn_history", NoRead: true, Tables: []string{state.VPNHistories},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"vpn_id": query.Number, "project_id": query.Number,
			"member_id": query.Number, "action": query.String, "user_id": query.Number}),
			Ordering: []string{"id", "vpn_id", "created"}},
		All: (*state.ReadTxn).VPNHistoryList,
		Get: (*state.ReadTxn).VPNHistory,
		Visible: func(q *api.Request, h *wire.VPNHistory) bool {
			p, ok := q.Txn.Project(h.ProjectID)
			return ok && seesTenant(q, h.MemberID, p.RegionID)
		},
	})
}
