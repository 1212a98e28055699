package netrouter

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
)

// TestVPNHalfOpenTerminated: a VPN whose IKE SA is CONNECTING to a peer
// that does not answer loses that SA when the VPN changes (re-loaded) and
// when it is removed (unloaded): terminate by connection name with force
// and timeout -1 destroys it (charon 5.9.8). Without the terminate, the
// SA stays CONNECTING, retransmitting for minutes.
func TestVPNHalfOpenTerminated(t *testing.T) {
	dead := api.VPNSpec{ID: 78, IKEVersion: "v2-only", IKEAuthentication: "sha-256", IKEEncryption: "aes-128-cbc",
		IKEDHGroups: "group2", IKEGatewayType: "public_ip", IKEGatewayValue: "192.0.2.9", PreSharedKey: sysPSK,
		IPSecAuthentication: "hmac-sha-256-128", IPSecEncryption: "aes-256-cbc", IPSecEstablishTime: "on-traffic",
		TrafficSelector: true, Routes: []api.VPNRouteSpec{{LocalSubnet: "10.1.0.0/24", RemoteSubnet: "198.18.9.0/24"}}}
	p := newVPNPair(t, dead)
	conn := vpn.ConnName(p.rA.Namespace, dead.ID)
	uri := "unix://" + filepath.Join(p.runDir, p.rA.Namespace, "charon.vici")
	connecting := func() bool {
		for _, sa := range p.ikeSAs(p.rA) {
			if strings.HasPrefix(sa, conn+":") {
				return true
			}
		}
		return false
	}
	halfOpen := func() {
		t.Helper()
		// swanctl gives up waiting after 1 s; the IKE SA stays CONNECTING.
		out, err := p.e.try("swanctl", "--initiate", "--child", conn+"-1", "--timeout", "1", "--uri", uri)
		if !connecting() {
			t.Fatalf("no IKE SA of %s: %q (swanctl: %v %s)", conn, p.ikeSAs(p.rA), err, out)
		}
	}
	halfOpen()
	p.sa.VPNs[1].PreSharedKey = "RegentSystemTestPSKchanged78"
	if res := p.apply(p.sa, p.rA); !strings.Contains(strings.Join(res.Changes, ";"), conn+" re-loaded") {
		t.Fatalf("changed VPN: %v", res.Changes)
	}
	eventually(t, "the CONNECTING IKE SA of the re-loaded VPN gone", 5*time.Second, func() bool { return !connecting() })

	halfOpen()
	p.sa.VPNs = p.sa.VPNs[:1]
	if res := p.apply(p.sa, p.rA); !strings.Contains(strings.Join(res.Changes, ";"), conn+" unloaded") {
		t.Fatalf("removed VPN: %v", res.Changes)
	}
	eventually(t, "the CONNECTING IKE SA of the removed VPN gone", 5*time.Second, func() bool { return !connecting() })
	if !p.established(p.rA, p.sa.VPNs[0].ID) {
		t.Fatal("the other VPN is not ESTABLISHED")
	}
}
