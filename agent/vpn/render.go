package vpn

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/strongswan/govici/vici"
)

// ESP modes.
const (
	// ModeXFRM: kernel IPsec with XFRM interfaces (production).
	ModeXFRM = "xfrm"
	// ModeLibIPsec: userspace ESP (kernel-libipsec) over a TUN device.
	ModeLibIPsec = "libipsec"
)

// TUNDevice is the device kernel-libipsec creates in the namespace; in
// libipsec mode the router routes the VPNs' remote subnets into it.
const TUNDevice = "ipsec0"

// XFRMDevice is the XFRM interface of a VPN in xfrm mode (if_id = VPN id).
func XFRMDevice(vpnID uint64) string { return "xfrm" + strconv.FormatUint(vpnID, 10) }

// Algorithm keyword maps (cloudcix-facts §7.5). Each list is in order of
// preference (strongest first): proposals are rendered in that order, so
// the rendering does not depend on how the API stored the set.
type alg struct{ api, kw string }

var (
	ikeAuthAlgs = []alg{{"sha-384", "sha384"}, {"sha-256", "sha256"}, {"sha1", "sha1"}}
	ikeEncAlgs  = []alg{{"aes-256-cbc", "aes256"}, {"aes-192-cbc", "aes192"}, {"aes-128-cbc", "aes128"}}
	dhAlgs      = []alg{{"group20", "ecp384"}, {"group19", "ecp256"}, {"group24", "modp2048s256"},
		{"group14", "modp2048"}, {"group5", "modp1536"}, {"group2", "modp1024"}, {"group1", "modp768"}}
	espAuthAlgs = []alg{{"hmac-sha-256-128", "sha256"}, {"hmac-sha1-96", "sha1"}}
	espEncAlgs  = []alg{{"aes-256-gcm", "aes256gcm64"}, {"aes-192-gcm", "aes192gcm64"}, {"aes-128-gcm", "aes128gcm64"},
		{"aes-256-cbc", "aes256"}, {"aes-192-cbc", "aes192"}, {"aes-128-cbc", "aes128"}}
)

// ikeDHAlgs are the IKE groups: group14 is a PFS group only (§5.11).
var ikeDHAlgs = slices.DeleteFunc(slices.Clone(dhAlgs), func(a alg) bool { return a.api == "group14" })

// mapSet maps a comma-separated API value set to keywords in preference
// order, duplicates dropped. An unknown value is an error naming it.
func mapSet(field, set string, table []alg, allowEmpty bool) ([]string, error) {
	have := map[string]bool{}
	for _, v := range strings.Split(set, ",") {
		v = strings.ToLower(strings.TrimSpace(v))
		if v == "" {
			continue
		}
		if !slices.ContainsFunc(table, func(a alg) bool { return a.api == v }) {
			return nil, fmt.Errorf("%s: %q is not one of %s", field, v, apiValues(table))
		}
		have[v] = true
	}
	var out []string
	for _, a := range table {
		if have[a.api] {
			out = append(out, a.kw)
		}
	}
	if len(out) == 0 && !allowEmpty {
		return nil, fmt.Errorf("%s: empty", field)
	}
	return out, nil
}

func apiValues(t []alg) string {
	var s []string
	for _, a := range t {
		s = append(s, a.api)
	}
	return strings.Join(s, ", ")
}

// combine renders one proposal per combination of the keyword sets (an
// empty set is left out), in order: IKEv1 allows one algorithm of each
// kind per proposal, and a comma-joined set is not a keyword (weakness #8).
func combine(sets ...[]string) []string {
	out := []string{""}
	for _, set := range sets {
		if len(set) == 0 {
			continue
		}
		next := make([]string, 0, len(out)*len(set))
		for _, p := range out {
			for _, kw := range set {
				if p == "" {
					next = append(next, kw)
				} else {
					next = append(next, p+"-"+kw)
				}
			}
		}
		out = next
	}
	return out
}

// isAEAD reports whether an ESP encryption keyword carries its own
// integrity (GCM): such proposals have no integrity algorithm.
func isAEAD(kw string) bool { return strings.Contains(kw, "gcm") }

// espProposals renders the ESP proposals: enc-auth[-pfs] per combination,
// enc[-pfs] for AEAD ciphers, duplicates dropped.
func espProposals(enc, auth, pfs []string) []string {
	var out []string
	for _, e := range enc {
		var ps []string
		if isAEAD(e) {
			ps = combine([]string{e}, pfs)
		} else {
			ps = combine([]string{e}, auth, pfs)
		}
		for _, p := range ps {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// conn is one VPN rendered for strongSwan; it holds no secret.
type conn struct {
	VPNID       uint64   `json:"vpn_id"`
	Name        string   `json:"name"`
	Version     int      `json:"version"`
	Aggressive  bool     `json:"aggressive"`
	LocalAddrs  []string `json:"local_addrs"`
	RemoteAddrs []string `json:"remote_addrs"`
	Proposals   []string `json:"proposals"`
	// RekeyTime (IKEv2) or ReauthTime (IKEv1), seconds.
	RekeyTime  int    `json:"rekey_time,omitempty"`
	ReauthTime int    `json:"reauth_time,omitempty"`
	Encap      bool   `json:"encap"`
	LocalID    string `json:"local_id"`
	RemoteID   string `json:"remote_id"`
	IfID       uint64 `json:"if_id,omitempty"`
	// Immediate: initiate after loading (ipsec_establish_time=immediately).
	Immediate bool    `json:"immediate"`
	Children  []child `json:"children"`
}

type child struct {
	Name         string   `json:"name"`
	LocalTS      []string `json:"local_ts"`
	RemoteTS     []string `json:"remote_ts"`
	ESPProposals []string `json:"esp_proposals"`
	RekeyTime    int      `json:"rekey_time"`
	StartAction  string   `json:"start_action"`
}

// rendered is a VPN ready to load: its connection, its secret, the
// digest of both and the digest of the connection alone (connDigest: it
// is kept in the instance's state file, with pskDigest, a keyed HMAC of
// the PSK).
type rendered struct {
	conn       conn
	secretID   string
	owners     []string
	psk        *secret
	digest     string
	connDigest string
}

// secret keeps a PSK out of fmt, logs and JSON. It is held by pointer, so
// formatting a struct that holds one prints an address, never the key.
type secret struct{ v string }

func (*secret) String() string               { return "<redacted>" }
func (*secret) GoString() string             { return "<redacted>" }
func (*secret) MarshalJSON() ([]byte, error) { return []byte(`"<redacted>"`), nil }
func (*secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte("<redacted>")) }
func (s *secret) reveal() string             { return s.v }
func (s *secret) fingerprint() [sha256.Size]byte {
	return sha256.Sum256([]byte("regent-psk:" + s.v))
}

// pskDigest is the PSK's HMAC-SHA256 under key (the run directory's
// pskKeyFile), for the state file: without the key it tells nothing
// about the PSK, not even to a dictionary.
func (r *rendered) pskDigest(key []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(r.psk.reveal()))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// SpecError is a VPN spec that cannot be rendered: retrying will not help.
type SpecError struct {
	VPNID uint64
	Err   error
}

func (e *SpecError) Error() string { return "invalid vpn spec: " + e.Err.Error() }
func (e *SpecError) Unwrap() error { return e.Err }

// ConnName is the strongSwan connection name of a VPN.
func ConnName(namespace string, vpnID uint64) string {
	return namespace + "-" + strconv.FormatUint(vpnID, 10)
}

// render maps one VPNSpec to its strongSwan connection. local is the
// router's public address. Errors never contain the PSK.
func render(namespace string, local netip.Addr, mode string, v api.VPNSpec) (*rendered, error) {
	var errs []error
	bad := func(err error) { errs = append(errs, err) }
	c := conn{VPNID: v.ID, Name: ConnName(namespace, v.ID), LocalAddrs: []string{local.String()},
		Encap: mode == ModeLibIPsec}
	if v.ID == 0 {
		bad(errors.New("id: required"))
	}
	switch v.IKEVersion {
	case "v1-only":
		c.Version, c.Aggressive = 1, true
	case "v2-only", "":
		c.Version = 2
	default:
		bad(fmt.Errorf("ike_version: %q is not v1-only or v2-only", v.IKEVersion))
	}
	enc, err := mapSet("ike_encryption", v.IKEEncryption, ikeEncAlgs, false)
	if err != nil {
		bad(err)
	}
	auth, err := mapSet("ike_authentication", v.IKEAuthentication, ikeAuthAlgs, false)
	if err != nil {
		bad(err)
	}
	dh, err := mapSet("ike_dh_groups", v.IKEDHGroups, ikeDHAlgs, false)
	if err != nil {
		bad(err)
	}
	c.Proposals = combine(enc, auth, dh)
	espEnc, err := mapSet("ipsec_encryption", v.IPSecEncryption, espEncAlgs, false)
	if err != nil {
		bad(err)
	}
	espAuth, err := mapSet("ipsec_authentication", v.IPSecAuthentication, espAuthAlgs, true)
	if err != nil {
		bad(err)
	}
	if len(espAuth) == 0 && slices.ContainsFunc(espEnc, func(kw string) bool { return !isAEAD(kw) }) {
		bad(errors.New("ipsec_authentication: empty, but a CBC cipher needs one"))
	}
	pfs, err := mapSet("ipsec_pfs_groups", v.IPSecPFSGroups, dhAlgs, true)
	if err != nil {
		bad(err)
	}
	esp := espProposals(espEnc, espAuth, pfs)

	ikeLife := v.IKELifetime
	if ikeLife == 0 {
		ikeLife = 28800
	}
	ipsecLife := v.IPSecLifetime
	if ipsecLife == 0 {
		ipsecLife = 3600
	}
	if ikeLife < 180 || ikeLife > 86400 {
		bad(fmt.Errorf("ike_lifetime: %d is outside 180..86400", v.IKELifetime))
	}
	if ipsecLife < 180 || ipsecLife > 86400 {
		bad(fmt.Errorf("ipsec_lifetime: %d is outside 180..86400", v.IPSecLifetime))
	}
	// IKEv1 cannot rekey an IKE SA: it re-authenticates. IKEv2 rekeys at
	// the lifetime (strongSwan adds its default 10% hard margin).
	if c.Version == 1 {
		c.ReauthTime = ikeLife
	} else {
		c.RekeyTime = ikeLife
	}

	gw := strings.TrimSpace(v.IKEGatewayValue)
	switch v.IKEGatewayType {
	case "public_ip", "":
		a, err := netip.ParseAddr(gw)
		if err != nil || !a.Is4() {
			bad(fmt.Errorf("ike_gateway_value: %q is not an IPv4 address", gw))
		}
	case "hostname":
		if gw == "" || len(gw) >= 253 || !strings.Contains(gw, ".") || strings.ContainsAny(gw, " ,\"'") {
			bad(fmt.Errorf("ike_gateway_value: %q is not a host name", gw))
		}
	default:
		bad(fmt.Errorf("ike_gateway_type: %q is not public_ip or hostname", v.IKEGatewayType))
	}
	c.RemoteAddrs = []string{gw}
	c.LocalID = strings.TrimSpace(v.IKELocalIdentifier)
	if c.LocalID == "" {
		c.LocalID = local.String()
	}
	c.RemoteID = strings.TrimSpace(v.IKERemoteIdentifier)
	if c.RemoteID == "" {
		c.RemoteID = gw
	}
	psk := strings.TrimSpace(v.PreSharedKey)
	if psk == "" {
		bad(errors.New("pre_shared_key: empty"))
	}

	start := "none"
	switch v.IPSecEstablishTime {
	case "immediately", "":
		c.Immediate = true
	case "on-traffic":
		start = "trap"
	default:
		bad(fmt.Errorf("ipsec_establish_time: %q is not immediately or on-traffic", v.IPSecEstablishTime))
	}
	if mode == ModeXFRM {
		c.IfID = v.ID
	}

	var locals, remotes []string
	for i, r := range v.Routes {
		l, err1 := netip.ParsePrefix(r.LocalSubnet)
		rm, err2 := netip.ParsePrefix(r.RemoteSubnet)
		if err1 != nil || err2 != nil || !l.Addr().Is4() || !rm.Addr().Is4() {
			bad(fmt.Errorf("routes[%d]: %q → %q is not a pair of IPv4 networks", i, r.LocalSubnet, r.RemoteSubnet))
			continue
		}
		locals, remotes = append(locals, l.Masked().String()), append(remotes, rm.Masked().String())
	}
	if len(v.Routes) == 0 {
		bad(errors.New("routes: empty"))
	}
	rekey := ipsecLife * 9 / 10
	if v.TrafficSelector {
		for i := range locals {
			c.Children = append(c.Children, child{Name: fmt.Sprintf("%s-%d", c.Name, i+1),
				LocalTS: []string{locals[i]}, RemoteTS: []string{remotes[i]},
				ESPProposals: esp, RekeyTime: rekey, StartAction: start})
		}
	} else {
		c.Children = []child{{Name: c.Name + "-1", LocalTS: []string{"0.0.0.0/0"}, RemoteTS: []string{"0.0.0.0/0"},
			ESPProposals: esp, RekeyTime: rekey, StartAction: start}}
	}
	if len(errs) > 0 {
		return nil, &SpecError{VPNID: v.ID, Err: fmt.Errorf("vpn %d: %w", v.ID, errors.Join(errs...))}
	}

	r := &rendered{conn: c, secretID: "ike-" + c.Name, owners: []string{c.LocalID, c.RemoteID}, psk: &secret{v: psk}}
	b, _ := json.Marshal(c)
	cd := sha256.Sum256(b)
	r.connDigest = hex.EncodeToString(cd[:16])
	h := sha256.New()
	h.Write(b)
	fp := r.psk.fingerprint()
	h.Write(fp[:])
	r.digest = hex.EncodeToString(h.Sum(nil)[:16])
	return r, nil
}

// connMessage is the load-conn argument.
func (c *conn) message() (*vici.Message, error) {
	m := vici.NewMessage()
	set := func(k string, v any) {
		if err := m.Set(k, v); err != nil {
			panic(err) // only static value types are used
		}
	}
	set("version", strconv.Itoa(c.Version))
	if c.Version == 1 {
		set("aggressive", yesNo(c.Aggressive))
	}
	set("local_addrs", c.LocalAddrs)
	set("remote_addrs", c.RemoteAddrs)
	set("proposals", c.Proposals)
	if c.RekeyTime > 0 {
		set("rekey_time", secs(c.RekeyTime))
	}
	if c.ReauthTime > 0 {
		set("reauth_time", secs(c.ReauthTime))
	}
	set("encap", yesNo(c.Encap))
	set("dpd_delay", "30s")
	// Both ends may initiate ("immediately" on both sides): keep one.
	set("unique", "replace")
	local := vici.NewMessage()
	_ = local.Set("auth", "psk")
	_ = local.Set("id", c.LocalID)
	remote := vici.NewMessage()
	_ = remote.Set("auth", "psk")
	_ = remote.Set("id", c.RemoteID)
	set("local", local)
	set("remote", remote)
	children := vici.NewMessage()
	for _, ch := range c.Children {
		cm := vici.NewMessage()
		_ = cm.Set("local_ts", ch.LocalTS)
		_ = cm.Set("remote_ts", ch.RemoteTS)
		_ = cm.Set("esp_proposals", ch.ESPProposals)
		_ = cm.Set("rekey_time", secs(ch.RekeyTime))
		_ = cm.Set("start_action", ch.StartAction)
		_ = cm.Set("dpd_action", "restart")
		_ = cm.Set("mode", "tunnel")
		if c.IfID != 0 {
			_ = cm.Set("if_id_in", strconv.FormatUint(c.IfID, 10))
			_ = cm.Set("if_id_out", strconv.FormatUint(c.IfID, 10))
		}
		_ = children.Set(ch.Name, cm)
	}
	set("children", children)
	out := vici.NewMessage()
	if err := out.Set(c.Name, m); err != nil {
		return nil, err
	}
	return out, nil
}

// sharedMessage is the load-shared argument. It carries the PSK: it is
// never logged or formatted.
func (r *rendered) sharedMessage() *vici.Message {
	m := vici.NewMessage()
	_ = m.Set("id", r.secretID)
	_ = m.Set("type", "IKE")
	_ = m.Set("data", r.psk.reveal())
	_ = m.Set("owners", r.owners)
	return m
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func secs(n int) string { return strconv.Itoa(n) + "s" }
