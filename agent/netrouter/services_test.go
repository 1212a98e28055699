package netrouter

import (
	"encoding/json"
	"github.com/regentcloud/regent/pkg/api"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestDnsmasqConfig(t *testing.T) {
	d, err := plan(sampleSpec(), testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	conf, hosts := renderDnsmasq(d, "/var/lib/regent/router-7")
	for _, want := range []string{
		"port=0\n",
		"interface=sub3\n",
		"dhcp-range=set:sub3,10.0.0.0,static,255.255.255.0,12h\n",
		"dhcp-option=tag:sub3,option:router,10.0.0.1\n",
		"dhcp-option=tag:sub3,option:dns-server,9.9.9.9\n",
		"dhcp-hostsfile=/var/lib/regent/router-7/dhcp-hosts\n",
	} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("conf lacks %q:\n%s", want, conf)
		}
	}
	if got, want := string(hosts), "02:00:00:00:00:05,10.0.0.5\n02:00:00:00:00:06,10.0.0.6,vm6\n"; got != want {
		t.Errorf("hosts file %q, want %q", got, want)
	}
}

func TestMetadataByRequester(t *testing.T) {
	s := sampleSpec()
	s.Metadata[0].Userdata = "#cloud-config\n"
	s.Metadata[0].IPAddresses = []apiAddr{{PrivateIP: "10.0.0.5", PublicIP: "198.51.100.20", Subnet: "10.0.0.0/24", MAC: "02:00:00:00:00:05"}}
	d, err := plan(s, testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetadata()
	m.set(d)
	get := func(from, path string) (int, string) {
		r := httptest.NewRequest("GET", path, nil)
		r.RemoteAddr = from
		w := httptest.NewRecorder()
		m.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	code, body := get("10.0.0.5:40000", "/v1/metadata")
	if code != 200 {
		t.Fatalf("metadata: %d %s", code, body)
	}
	var doc struct {
		InstanceID  string `json:"instance-id"`
		IPAddresses []struct {
			PrivateIP string `json:"private_ip"`
			PublicIP  string `json:"public_ip"`
		} `json:"ip_addresses"`
		Network struct {
			Version   int `json:"version"`
			Ethernets map[string]struct {
				Addresses []string            `json:"addresses"`
				Routes    []map[string]string `json:"routes"`
			} `json:"ethernets"`
		} `json:"network"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	eth := doc.Network.Ethernets["eth0"]
	if doc.InstanceID != "42_5" || doc.IPAddresses[0].PublicIP != "198.51.100.20" || doc.Network.Version != 2 ||
		eth.Addresses[0] != "10.0.0.5/24" || eth.Routes[0]["via"] != "10.0.0.1" {
		t.Fatalf("document: %s", body)
	}
	if code, body := get("10.0.0.5:40000", "/v1/userdata"); code != 200 || body != "#cloud-config\n" {
		t.Fatalf("userdata: %d %q", code, body)
	}
	if code, _ := get("10.0.0.6:40000", "/v1/metadata"); code != 404 {
		t.Fatalf("a VM without metadata got %d", code)
	}
	// The upstream CloudCIX datasource waits for the root to answer 200
	// with a body (cloud-init's wait_for_url) before it reads v1/metadata.
	for path, want := range map[string]string{"/": "v1\n", "/v1/": "metadata\nuserdata\n"} {
		if code, body := get("10.0.0.5:40000", path); code != 200 || body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
	}
}

type apiAddr = api.MetadataAddress
