package vpn

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/strongswan/govici/vici"
)

const testPSK = "Sup3rSecretKeyNeverLogged"

func baseSpec() api.VPNSpec {
	return api.VPNSpec{ID: 7, IKEVersion: "v2-only", IKEAuthentication: "sha-256", IKEEncryption: "aes-256-cbc",
		IKEDHGroups: "group14x", IKELifetime: 28800, IKEGatewayType: "public_ip", IKEGatewayValue: "203.0.113.9",
		PreSharedKey: testPSK, IPSecAuthentication: "hmac-sha-256-128", IPSecEncryption: "aes-256-cbc",
		IPSecPFSGroups: "group14", IPSecEstablishTime: "immediately", IPSecLifetime: 3600,
		Routes: []api.VPNRouteSpec{{LocalSubnet: "10.1.0.0/24", RemoteSubnet: "192.168.5.0/24"}}}
}

func TestRender(t *testing.T) {
	local := netip.MustParseAddr("198.51.100.10")
	tests := []struct {
		name string
		mod  func(*api.VPNSpec)
		mode string
		want func(t *testing.T, c conn)
		err  string
	}{
		{name: "v2 defaults", mod: func(v *api.VPNSpec) { v.IKEDHGroups = "group19" }, want: func(t *testing.T, c conn) {
			eq(t, c.Name, "P4-7")
			eq(t, c.Version, 2)
			eq(t, c.Aggressive, false)
			eq(t, fmt.Sprint(c.Proposals), "[aes256-sha256-ecp256]")
			eq(t, c.RekeyTime, 28800)
			eq(t, c.ReauthTime, 0)
			eq(t, c.LocalID, "198.51.100.10")
			eq(t, c.RemoteID, "203.0.113.9")
			eq(t, fmt.Sprint(c.RemoteAddrs), "[203.0.113.9]")
			eq(t, c.Immediate, true)
			eq(t, len(c.Children), 1)
			ch := c.Children[0]
			eq(t, ch.Name, "P4-7-1")
			eq(t, fmt.Sprint(ch.LocalTS, ch.RemoteTS), "[0.0.0.0/0] [0.0.0.0/0]")
			eq(t, fmt.Sprint(ch.ESPProposals), "[aes256-sha256-modp2048]")
			eq(t, ch.RekeyTime, 3240) // 90% of 3600
			eq(t, ch.StartAction, "none")
			eq(t, c.IfID, uint64(0))
			eq(t, c.Encap, true)
		}},
		{name: "v1 aggressive reauth", mod: func(v *api.VPNSpec) {
			v.IKEVersion, v.IKEDHGroups, v.IKELifetime = "v1-only", "group2", 3600
		}, want: func(t *testing.T, c conn) {
			eq(t, c.Version, 1)
			eq(t, c.Aggressive, true)
			eq(t, c.ReauthTime, 3600)
			eq(t, c.RekeyTime, 0)
			eq(t, fmt.Sprint(c.Proposals), "[aes256-sha256-modp1024]")
		}},
		{name: "every combination, preference order, duplicates dropped", mod: func(v *api.VPNSpec) {
			v.IKEEncryption = "aes-128-cbc,aes-256-cbc,aes-128-cbc"
			v.IKEAuthentication = "sha1, sha-384"
			v.IKEDHGroups = "group5,group20"
		}, want: func(t *testing.T, c conn) {
			eq(t, strings.Join(c.Proposals, ","), "aes256-sha384-ecp384,aes256-sha384-modp1536,aes256-sha1-ecp384,aes256-sha1-modp1536,"+
				"aes128-sha384-ecp384,aes128-sha384-modp1536,aes128-sha1-ecp384,aes128-sha1-modp1536")
		}},
		{name: "esp gcm has no integrity, no pfs", mod: func(v *api.VPNSpec) {
			v.IKEDHGroups = "group24"
			v.IPSecEncryption = "aes-128-gcm,aes-256-cbc"
			v.IPSecAuthentication = "hmac-sha1-96,hmac-sha-256-128"
			v.IPSecPFSGroups = ""
		}, want: func(t *testing.T, c conn) {
			eq(t, fmt.Sprint(c.Proposals), "[aes256-sha256-modp2048s256]")
			eq(t, strings.Join(c.Children[0].ESPProposals, ","), "aes128gcm64,aes256-sha256,aes256-sha1")
		}},
		{name: "traffic selectors: a child per route", mod: func(v *api.VPNSpec) {
			v.IKEDHGroups = "group2"
			v.TrafficSelector = true
			v.IPSecEstablishTime = "on-traffic"
			v.IPSecLifetime = 1000
			v.Routes = append(v.Routes, api.VPNRouteSpec{LocalSubnet: "10.1.1.1/24", RemoteSubnet: "172.16.0.0/16"})
		}, want: func(t *testing.T, c conn) {
			eq(t, len(c.Children), 2)
			eq(t, c.Children[0].Name, "P4-7-1")
			eq(t, fmt.Sprint(c.Children[0].LocalTS, c.Children[0].RemoteTS), "[10.1.0.0/24] [192.168.5.0/24]")
			eq(t, c.Children[1].Name, "P4-7-2")
			eq(t, fmt.Sprint(c.Children[1].LocalTS, c.Children[1].RemoteTS), "[10.1.1.0/24] [172.16.0.0/16]")
			eq(t, c.Children[1].StartAction, "trap")
			eq(t, c.Children[1].RekeyTime, 900)
			eq(t, c.Immediate, false)
		}},
		{name: "identifiers and xfrm if_id", mode: ModeXFRM, mod: func(v *api.VPNSpec) {
			v.IKEDHGroups = "group2"
			v.IKELocalIdentifier, v.IKERemoteIdentifier = "left.example", "right.example"
		}, want: func(t *testing.T, c conn) {
			eq(t, c.LocalID, "left.example")
			eq(t, c.RemoteID, "right.example")
			eq(t, c.IfID, uint64(7))
			eq(t, c.Encap, false)
		}},
		{name: "hostname gateway", mod: func(v *api.VPNSpec) {
			v.IKEDHGroups = "group2"
			v.IKEGatewayType, v.IKEGatewayValue = "hostname", "vpn.example.com"
		}, want: func(t *testing.T, c conn) {
			eq(t, fmt.Sprint(c.RemoteAddrs), "[vpn.example.com]")
			eq(t, c.RemoteID, "vpn.example.com")
		}},
		{name: "group14 is not an IKE group", err: `ike_dh_groups: "group14x"`},
		{name: "legacy md5 refused", mod: func(v *api.VPNSpec) { v.IKEDHGroups = "group2"; v.IKEAuthentication = "md5" }, err: `"md5"`},
		{name: "no routes", mod: func(v *api.VPNSpec) { v.IKEDHGroups = "group2"; v.Routes = nil }, err: "routes: empty"},
		{name: "bad gateway", mod: func(v *api.VPNSpec) { v.IKEDHGroups = "group2"; v.IKEGatewayValue = "nope" }, err: "ike_gateway_value"},
		{name: "lifetime range", mod: func(v *api.VPNSpec) { v.IKEDHGroups = "group2"; v.IPSecLifetime = 100 }, err: "ipsec_lifetime"},
		{name: "cbc needs auth", mod: func(v *api.VPNSpec) { v.IKEDHGroups = "group2"; v.IPSecAuthentication = "" }, err: "ipsec_authentication"},
		{name: "empty psk", mod: func(v *api.VPNSpec) { v.IKEDHGroups = "group2"; v.PreSharedKey = "  " }, err: "pre_shared_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := baseSpec()
			if tc.mod != nil {
				tc.mod(&v)
			}
			mode := tc.mode
			if mode == "" {
				mode = ModeLibIPsec
			}
			r, err := render("P4", local, mode, v)
			if tc.err != "" {
				var se *SpecError
				if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want a SpecError containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), testPSK) {
					t.Fatal("the error contains the PSK")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, r.conn)
		})
	}
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestRenderDigest: the digest changes with any rendered field and with
// the PSK, and not otherwise; the PSK never shows in fmt output.
func TestRenderDigest(t *testing.T) {
	local := netip.MustParseAddr("198.51.100.10")
	v := baseSpec()
	v.IKEDHGroups = "group2"
	a, err := render("P4", local, ModeLibIPsec, v)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := render("P4", local, ModeLibIPsec, v)
	eq(t, a.digest, b.digest)
	v2 := v
	v2.PreSharedKey = "another"
	c, _ := render("P4", local, ModeLibIPsec, v2)
	if c.digest == a.digest {
		t.Error("a PSK change does not change the digest")
	}
	v3 := v
	v3.IPSecLifetime = 7200
	d, _ := render("P4", local, ModeLibIPsec, v3)
	if d.digest == a.digest {
		t.Error("a lifetime change does not change the digest")
	}
	v4 := v
	v4.IKEEncryption = "aes-256-cbc,aes-256-cbc" // same set
	e, _ := render("P4", local, ModeLibIPsec, v4)
	eq(t, e.digest, a.digest)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", *a), fmt.Sprintf("%#v", *a), fmt.Sprintf("%s %v %q", a.psk, a.psk, a.psk)} {
		if strings.Contains(s, testPSK) {
			t.Fatalf("formatted output contains the PSK: %s", s)
		}
	}
}

// TestConnMessage: the load-conn message has the swanctl layout.
func TestConnMessage(t *testing.T) {
	v := baseSpec()
	v.IKEDHGroups = "group2"
	r, err := render("P4", netip.MustParseAddr("198.51.100.10"), ModeXFRM, v)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.conn.message()
	if err != nil {
		t.Fatal(err)
	}
	c := m.Get("P4-7").(*vici.Message)
	eq(t, c.Get("version").(string), "2")
	eq(t, fmt.Sprint(c.Get("proposals")), "[aes256-sha256-modp1024]")
	eq(t, c.Get("rekey_time").(string), "28800s")
	eq(t, c.Get("local").(*vici.Message).Get("auth").(string), "psk")
	eq(t, c.Get("remote").(*vici.Message).Get("id").(string), "203.0.113.9")
	ch := c.Get("children").(*vici.Message).Get("P4-7-1").(*vici.Message)
	eq(t, ch.Get("rekey_time").(string), "3240s")
	eq(t, ch.Get("if_id_in").(string), "7")
	eq(t, ch.Get("start_action").(string), "none")
	if strings.Contains(m.String(), testPSK) {
		t.Fatal("the connection carries the PSK")
	}
	sh := r.sharedMessage()
	eq(t, sh.Get("type").(string), "IKE")
	eq(t, sh.Get("id").(string), "ike-P4-7")
	eq(t, fmt.Sprint(sh.Get("owners")), "[198.51.100.10 203.0.113.9]")
}

// FuzzCombine: one proposal per combination, each with one keyword of
// every non-empty set, all distinct, in set order.
func FuzzCombine(f *testing.F) {
	f.Add(uint8(3), uint8(2), uint8(2))
	f.Add(uint8(0), uint8(1), uint8(7))
	f.Fuzz(func(t *testing.T, a, b, c uint8) {
		pick := func(tab []alg, mask uint8) []string {
			var s []string
			for i, x := range tab {
				if mask&(1<<i) != 0 {
					s = append(s, x.kw)
				}
			}
			return s
		}
		e, h, g := pick(ikeEncAlgs, a), pick(ikeAuthAlgs, b), pick(dhAlgs, c)
		ps := combine(e, h, g)
		n := 1
		for _, s := range [][]string{e, h, g} {
			if len(s) > 0 {
				n *= len(s)
			}
		}
		if len(ps) != n {
			t.Fatalf("%d proposals, want %d", len(ps), n)
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if seen[p] {
				t.Fatalf("duplicate %s", p)
			}
			seen[p] = true
			parts := strings.Split(p, "-")
			k := 0
			for _, s := range [][]string{e, h, g} {
				if len(s) == 0 {
					continue
				}
				if k >= len(parts) || !slices.Contains(s, parts[k]) {
					t.Fatalf("proposal %s lacks a keyword of %v", p, s)
				}
				k++
			}
			if k != len(parts) && !(k == 0 && p == "") {
				t.Fatalf("proposal %s has extra parts", p)
			}
		}
	})
}
