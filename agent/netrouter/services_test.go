package netrouter

import (
	"encoding/json"
	"github.com/regentcloud/regent/pkg/api"
	"net/http/httptest"
	"net/netip"
	"strconv"
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
		"dhcp-option=tag:sub3,tag:!nogw,option:router,10.0.0.1\n",
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

// TestDnsmasqSubnetDNSIPv4Only: the subnet's DNS servers are one VM's
// free text and may hold IPv6 addresses, which dnsmasq refuses in
// option:dns-server (it does not start): only the IPv4 ones are written,
// and with none the option is left out, as with no servers at all.
func TestDnsmasqSubnetDNSIPv4Only(t *testing.T) {
	for _, c := range []struct {
		dns  []string
		want string // the subnet's dns-server option, "" for none
	}{
		{[]string{"8.8.8.8", "2001:4860:4860::8888"}, "dhcp-option=tag:sub3,option:dns-server,8.8.8.8\n"},
		{[]string{"2001:4860:4860::8888", "2001:4860:4860::8844"}, ""},
	} {
		s := sampleSpec()
		s.Subnets[0].DNS = c.dns
		d, err := plan(s, testNames, ModeVXLAN)
		if err != nil {
			t.Fatal(err)
		}
		conf, _ := renderDnsmasq(d, "/r")
		var got string
		for _, l := range strings.SplitAfter(string(conf), "\n") {
			if strings.Contains(l, "option:dns-server") {
				got += l
			}
		}
		if got != c.want {
			t.Errorf("dns %v: dns-server options %q, want %q", c.dns, got, c.want)
		}
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

// TestOneDefaultRoutePerVM: a VM with NICs on two subnets gets its default
// route (and DNS servers) only on the NIC of its primary address, the one
// on its gateway subnet, by DHCP and by the metadata's network config.
func TestOneDefaultRoutePerVM(t *testing.T) {
	s := sampleSpec()
	s.Subnets = append(s.Subnets, api.RouterSubnetSpec{ID: 4, AddressRange: "10.1.0.1/24", VNI: 5004, VLAN: 104,
		DNS:  []string{"9.9.9.10"},
		DHCP: []api.DHCPHostSpec{{MAC: "02:00:00:00:01:05", IP: "10.1.0.5", Hostname: "vm5"}}})
	// VM 5: the address on its second subnet comes first; the primary
	// (gateway subnet) is 10.0.0.5.
	s.Metadata[0].IPAddresses = []apiAddr{
		{PrivateIP: "10.1.0.5", Subnet: "10.1.0.0/24", MAC: "02:00:00:00:01:05", Gateway: "10.1.0.1"},
		{PrivateIP: "10.0.0.5", Subnet: "10.0.0.0/24", MAC: "02:00:00:00:00:05", Gateway: "10.0.0.1"},
	}
	d, err := plan(s, testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	conf, hosts := renderDnsmasq(d, "/r")
	for _, want := range []string{
		"dhcp-option=tag:sub3,tag:!nogw,option:router,10.0.0.1\n",
		"dhcp-option=tag:sub4,tag:!nogw,option:router,10.1.0.1\n",
		"dhcp-option=tag:nogw,option:router\n",
	} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("conf lacks %q:\n%s", want, conf)
		}
	}
	for _, want := range []string{"02:00:00:00:00:05,10.0.0.5\n", "02:00:00:00:01:05,set:nogw,10.1.0.5,vm5\n", "02:00:00:00:00:06,10.0.0.6,vm6\n"} {
		if !strings.Contains(string(hosts), want) {
			t.Errorf("hosts lack %q:\n%s", want, hosts)
		}
	}

	m := newMetadata()
	m.set(d)
	r := httptest.NewRequest("GET", "/v1/metadata", nil)
	r.RemoteAddr = "10.0.0.5:40000"
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	var doc struct {
		Network struct {
			Ethernets map[string]struct {
				Match       map[string]string   `json:"match"`
				Routes      []map[string]string `json:"routes"`
				Nameservers *struct {
					Addresses []string `json:"addresses"`
				} `json:"nameservers"`
			} `json:"ethernets"`
		} `json:"network"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	second, primary := doc.Network.Ethernets["eth0"], doc.Network.Ethernets["eth1"]
	if len(second.Routes) != 0 || second.Nameservers != nil {
		t.Errorf("the second subnet's NIC got a default route or DNS: %s", w.Body)
	}
	if primary.Match["macaddress"] != "02:00:00:00:00:05" || len(primary.Routes) != 1 || primary.Routes[0]["via"] != "10.0.0.1" ||
		primary.Nameservers == nil || primary.Nameservers.Addresses[0] != "9.9.9.9" {
		t.Errorf("the primary NIC lacks its default route or DNS: %s", w.Body)
	}
}

// TestDHCPHostnameFromVMName: a VM's name is free text (up to 128
// characters); its DHCP binding carries it as a DNS label, and a name that
// is no label never makes the router spec invalid.
func TestDHCPHostnameFromVMName(t *testing.T) {
	for name, want := range map[string]string{
		"vm6":                          "vm6",
		"Web Server #1":                "web-server-1",
		"db_primary, eu-west":          "db-primary-eu-west",
		"  --Ünïcode--  ":              "n-code",
		"日本":                           "",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + " b": strings.Repeat("a", 62),
		// dnsmasq reads these as keywords or lease times, not names.
		"ignore":     "",
		"IGNORE":     "",
		" infinite ": "",
		"42":         "",
		"5":          "",
		"30m":        "",
		"12H":        "",
		"7d":         "",
		"2w":         "",
		"10s":        "",
		"12.5h":      "12-5h",
		"ignore me":  "ignore-me",
		"m":          "m",
		"1x":         "1x",
		"set:web":    "set-web",
		"tag:a,id:b": "tag-a-id-b",
	} {
		if got := dhcpHostname(name); got != want {
			t.Errorf("dhcpHostname(%q) = %q, want %q", name, got, want)
		}
	}
	s := sampleSpec()
	s.Subnets[0].DHCP[0].Hostname = "Web Server #1"
	s.Subnets[0].DHCP[1].Hostname = "日本"
	d, err := plan(s, testNames, ModeVXLAN)
	if err != nil {
		t.Fatalf("a VM name refused the router: %v", err)
	}
	_, hosts := renderDnsmasq(d, "/r")
	if got, want := string(hosts), "02:00:00:00:00:05,10.0.0.5\n02:00:00:00:00:06,10.0.0.6,web-server-1\n"; got != want {
		t.Errorf("hosts file %q, want %q", got, want)
	}
}

// TestMetadataNameServersAreTheVMsOwn: /v1/metadata names the VM's own DNS
// servers (its dns field) on its gateway NIC, not those of its subnet,
// which are the first VM's of the subnet (what DHCP hands out); a VM
// whose spec has none gets the subnet's.
func TestMetadataNameServersAreTheVMsOwn(t *testing.T) {
	s := sampleSpec()
	s.Metadata = []api.MetadataSpec{
		{Address: "10.0.0.5", InstanceID: "42_5", Hostname: "vm5", DNS: []string{"1.1.1.1", "8.8.8.8"},
			IPAddresses: []apiAddr{{PrivateIP: "10.0.0.5", Subnet: "10.0.0.1/24", MAC: "02:00:00:00:00:05", Gateway: "10.0.0.1"}}},
		{Address: "10.0.0.6", InstanceID: "42_6", Hostname: "vm6",
			IPAddresses: []apiAddr{{PrivateIP: "10.0.0.6", Subnet: "10.0.0.1/24", MAC: "02:00:00:00:00:06", Gateway: "10.0.0.1"}}},
	}
	d, err := plan(s, testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetadata()
	m.set(d)
	for from, want := range map[string]string{"10.0.0.5:40000": "1.1.1.1,8.8.8.8", "10.0.0.6:40000": "9.9.9.9"} {
		r := httptest.NewRequest("GET", "/v1/metadata", nil)
		r.RemoteAddr = from
		w := httptest.NewRecorder()
		m.ServeHTTP(w, r)
		var doc struct {
			Network struct {
				Ethernets map[string]struct {
					Nameservers struct {
						Addresses []string `json:"addresses"`
					} `json:"nameservers"`
				} `json:"ethernets"`
			} `json:"network"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("%s: %v (%s)", from, err, w.Body)
		}
		if got := strings.Join(doc.Network.Ethernets["eth0"].Nameservers.Addresses, ","); got != want {
			t.Errorf("metadata for %s: nameservers %q, want %q", from, got, want)
		}
	}
}

// TestDnsmasqDNSPerVM: a binding whose VM has DNS servers of its own gets
// a tag of its own with its servers; one without keeps the subnet's.
func TestDnsmasqDNSPerVM(t *testing.T) {
	s := sampleSpec()
	s.Metadata = []api.MetadataSpec{
		{Address: "10.0.0.5", DNS: []string{"1.1.1.1", "8.8.8.8"}, IPAddresses: []apiAddr{{PrivateIP: "10.0.0.5"}}},
		{Address: "10.0.0.6", IPAddresses: []apiAddr{{PrivateIP: "10.0.0.6"}}},
	}
	d, err := plan(s, testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	conf, hosts := renderDnsmasq(d, "/r")
	for _, want := range []string{"dhcp-option=tag:sub3,option:dns-server,9.9.9.9\n", "dhcp-option=tag:dns-10-0-0-5,option:dns-server,1.1.1.1,8.8.8.8\n"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("conf lacks %q:\n%s", want, conf)
		}
	}
	if got, want := string(hosts), "02:00:00:00:00:05,set:dns-10-0-0-5,10.0.0.5\n02:00:00:00:00:06,10.0.0.6,vm6\n"; got != want {
		t.Errorf("hosts file %q, want %q", got, want)
	}
}

// TestPlanMetadataAnswersAsPlan: the metadata served from the part of a
// spec the agent saves (id, project, subnets' address_range and dns,
// metadata) is the metadata served from the whole spec.
func TestPlanMetadataAnswersAsPlan(t *testing.T) {
	s := sampleSpec()
	s.Metadata[0].Userdata = "#cloud-config\n"
	s.Metadata[0].PublicKeys = []string{"ssh-ed25519 AAAA k"}
	s.Metadata[0].IPAddresses = []apiAddr{{PrivateIP: "10.0.0.5", Subnet: "10.0.0.0/24", MAC: "02:00:00:00:00:05"}}
	full, err := plan(s, testNames, ModeVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	saved := &api.RouterSpec{ID: s.ID, ProjectID: s.ProjectID, Metadata: s.Metadata}
	for _, sn := range s.Subnets {
		saved.Subnets = append(saved.Subnets, api.RouterSubnetSpec{ID: sn.ID, AddressRange: sn.AddressRange, DNS: sn.DNS})
	}
	part, err := planMetadata(saved, testNames)
	if err != nil {
		t.Fatal(err)
	}
	if part.namespace != full.namespace {
		t.Errorf("namespace %q, want %q", part.namespace, full.namespace)
	}
	answer := func(d *desired, from, path string) string {
		m := newMetadata()
		m.set(d)
		r := httptest.NewRequest("GET", path, nil)
		r.RemoteAddr = from
		w := httptest.NewRecorder()
		m.ServeHTTP(w, r)
		return strconv.Itoa(w.Code) + " " + w.Body.String()
	}
	for _, from := range []string{"10.0.0.5:40000", "10.0.0.6:40000"} {
		for _, path := range []string{"/v1/metadata", "/v1/userdata"} {
			if got, want := answer(part, from, path), answer(full, from, path); got != want {
				t.Errorf("%s from %s: %s, want %s", path, from, got, want)
			}
		}
	}
	if _, err := planMetadata(&api.RouterSpec{ID: 7}, testNames); err == nil {
		t.Error("a saved spec without a project: no error")
	}
}
