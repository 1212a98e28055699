package server_test

import (
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestNestedFieldErrors: the errors of array items come back as CloudCIX
// returns them (cloudcix-facts §4.6), a list aligned with the input, null
// for a good item, an error object for an item wrong as a whole and a field
// map for an item whose fields are wrong; the bodies are compared byte for
// byte. The test client still finds them by path.
func TestNestedFieldErrors(t *testing.T) {
	_, f, x := computeSetup(t)
	c, admin := f.c.For(t), f.r.Token(apitest.MemberAdmin)
	for _, tc := range []struct {
		name   string
		path   string
		body   func() map[string]any
		want   string
		fields map[string]string // path → error_code, through FieldCode
	}{
		{
			name: "cloud: second VM and second firewall rule bad",
			path: "/iaas/cloud/",
			body: func() map[string]any {
				b := cloudBody(f.n.Unique("nested"), f.reg, x, 3)
				vm := b["vms"].([]any)[1].(map[string]any)
				vm["image_id"] = 999999
				vm["ip_addresses"] = []any{vm["ip_addresses"].([]any)[0], map[string]any{"nat": false}}
				b["firewall_rules"].([]any)[1].(map[string]any)["port"] = "22"
				return b
			},
			want: `{"detail":"Bad request.","errors":{` +
				`"firewall_rules":[null,{"port":{"detail":"port is only allowed for tcp and udp.","error_code":"iaas_cloud_create_127"}}],` +
				`"vms":[null,{"image_id":{"detail":"Image 999999 does not exist.","error_code":"iaas_vm_create_107"},` +
				`"ip_addresses":[null,{"detail":"address is required.","error_code":"iaas_vm_create_141"}]}]}}`,
			fields: map[string]string{"vms[1].image_id": "iaas_vm_create_107", "vms[1].ip_addresses[1]": "iaas_vm_create_141",
				"firewall_rules[1].port": "iaas_cloud_create_127", "vms[0].image_id": "", "vms[2].image_id": ""},
		},
		{
			name: "vpn: first route bad as a whole",
			path: "/iaas/vpn/",
			body: func() map[string]any {
				b := vpnBody(f)
				good := b["routes"].([]any)[0].(map[string]any)
				b["routes"] = []any{map[string]any{"local_subnet_id": good["local_subnet_id"], "remote_subnet": "not-a-cidr"}, good}
				return b
			},
			want: `{"detail":"Bad request.","errors":{` +
				`"routes":[{"detail":"A route is {local_subnet_id, remote_subnet} with remote_subnet a CIDR.","error_code":"iaas_vpn_create_124"}]}}`,
			fields: map[string]string{"routes[0]": "iaas_vpn_create_124", "routes[1]": "", "routes": ""},
		},
		{
			name: "vpn: second route overlaps the project (a state check)",
			path: "/iaas/vpn/",
			body: func() map[string]any {
				b := vpnBody(f)
				good := b["routes"].([]any)[0].(map[string]any)
				b["routes"] = []any{good, map[string]any{"local_subnet_id": good["local_subnet_id"], "remote_subnet": "10.0.0.0/24"}}
				return b
			},
			want: `{"detail":"Bad request.","errors":{` +
				`"routes":[null,{"remote_subnet":{"detail":"10.0.0.0/24 overlaps the project subnet 10.0.0.0/24.","error_code":"iaas_vpn_create_126"}}]}}`,
			fields: map[string]string{"routes[1].remote_subnet": "iaas_vpn_create_126"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.For(t).Do("POST", tc.path, tc.body(), admin).Expect(400)
			if got := string(resp.Body); got != tc.want+"\n" {
				t.Errorf("body\n%s\nwant\n%s", got, tc.want)
			}
			for field, code := range tc.fields {
				if got := resp.FieldCode(field); got != code {
					t.Errorf("FieldCode(%q) = %q, want %q", field, got, code)
				}
			}
		})
	}
	t.Run("an array field's own error is an object", func(t *testing.T) {
		b := vpnBody(f)
		b["routes"] = []any{}
		resp := c.For(t).Do("POST", "/iaas/vpn/", b, admin).Expect(400)
		if got, ok := resp.FieldErrors()["routes"].(map[string]any); !ok || got["error_code"] != "iaas_vpn_create_123" {
			t.Errorf("errors.routes = %v, want the error object of 123\n%s", resp.FieldErrors()["routes"], resp)
		}
	})
	t.Run("a field without items is an object", func(t *testing.T) {
		resp := c.For(t).Do("POST", "/membership/member/", map[string]any{"name": 5}, f.root).Expect(400)
		if got, ok := resp.FieldErrors()["name"].(map[string]any); !ok || got["error_code"] != "regent_request_004" {
			t.Errorf("errors.name = %v, want the error object of regent_request_004\n%s", resp.FieldErrors()["name"], resp)
		}
	})
}
