package netrouter

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// TestRouterInboundDNSNeedsAnAllowRule: DNS is forwarded whatever the
// user's rules only on its way out of the project; a NATed VM's port 53 is
// closed to the internet (inbound default drop) like any other port.
func TestRouterInboundDNSNeedsAnAllowRule(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	e.ensure(e.b, spec)
	vm5, vm6, inet := e.prefix+"vm5", e.prefix+"vm6", e.prefix+"inet"
	seg := e.b.names.vxlanBridge(e.vni)
	e.addHost(vm5, seg, "", e.priv3+".5/24")
	e.addHost(vm6, seg, "", e.priv3+".6/24")
	for _, h := range []string{vm5, vm6} {
		e.sh("ip", "-n", h, "route", "add", "default", "via", e.priv3+".1")
	}
	e.addHost(inet, e.cfg.PublicBridge, "", e.net3+".50/24")

	e.listen(inet, e.net3+".50:53")
	if err := dialFrom(vm6, e.net3+".50:53", 10*time.Second); err != nil {
		t.Errorf("outbound DNS: %v", err)
	}
	e.listen(vm5, "0.0.0.0:53")
	if err := dialFrom(inet, e.net3+".20:53", 500*time.Millisecond); err == nil {
		t.Error("the internet reached port 53 of a NATed VM without an inbound allow rule")
	}
}

// TestRouterDropsSpoofedSources: a VM cannot send packets into the public
// network (or another subnet) with a source address that is not routed to
// its own interface: another VM's public address, or any foreign address.
func TestRouterDropsSpoofedSources(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	e.ensure(e.b, spec)
	vm6, inet := e.prefix+"vm6", e.prefix+"inet"
	e.addHost(vm6, e.b.names.vxlanBridge(e.vni), "", e.priv3+".6/24")
	e.sh("ip", "-n", vm6, "route", "add", "default", "via", e.priv3+".1")
	e.addHost(inet, e.cfg.PublicBridge, "", e.net3+".50/24")

	// The "internet" records the source of every datagram it receives.
	var pc net.PacketConn
	if err := withNetnsPath(nsPath(inet), func() (err error) {
		pc, err = net.ListenPacket("udp4", e.net3+".50:9999")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	srcs := make(chan string, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				close(srcs)
				return
			}
			srcs <- from.(*net.UDPAddr).IP.String()
		}
	}()
	send := func(src string) {
		t.Helper()
		if err := withNetnsPath(nsPath(vm6), func() error {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(e.net3 + ".50"), Port: 9999})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("x"))
			return err
		}); err != nil {
			t.Fatalf("send from %s: %v", src, err)
		}
	}

	send(e.priv3 + ".6")
	select {
	case got := <-srcs:
		if got != e.net3+".10" {
			t.Fatalf("a VM's datagram arrived from %s, want the router address", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a VM's datagram did not arrive")
	}
	for _, spoofed := range []string{e.net3 + ".20", "192.0.2.77"} {
		e.sh("ip", "-n", vm6, "addr", "add", spoofed+"/32", "dev", "eth0")
		send(spoofed)
	}
	select {
	case got := <-srcs:
		t.Errorf("a datagram with a spoofed source left the project as %s", got)
	case <-time.After(time.Second):
	}
}

// TestRouterOneDefaultRouteByDHCP: a VM with a NIC on each of two
// subnets gets a default route by DHCP only through its gateway subnet
// (the subnet of its primary address, as the metadata says), whatever the
// order its NICs get their leases in.
func TestRouterOneDefaultRouteByDHCP(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	second := "10.254." + strings.Split(e.priv3, ".")[2]
	spec.Subnets = append(spec.Subnets, api.RouterSubnetSpec{ID: spec.ProjectID + 3, AddressRange: second + ".1/24", VNI: e.vni + 1,
		DHCP: []api.DHCPHostSpec{{MAC: "02:00:00:ab:00:05", IP: second + ".5", Hostname: "vm5"}}})
	spec.Metadata[0].IPAddresses = append(spec.Metadata[0].IPAddresses,
		api.MetadataAddress{PrivateIP: second + ".5", Subnet: second + ".0/24", MAC: "02:00:00:ab:00:05", Gateway: second + ".1"})
	e.ensure(e.b, spec)

	// vm5: eth0 on the second subnet, eth1 on its gateway subnet.
	vm5 := e.prefix + "vm5"
	e.addHost(vm5, e.b.names.vxlanBridge(e.vni+1), "02:00:00:ab:00:05", "")
	hostSide := e.prefix + "h1b"
	e.sh("ip", "link", "add", hostSide, "type", "veth", "peer", "name", "eth1", "netns", vm5)
	e.sh("ip", "link", "set", hostSide, "master", e.b.names.vxlanBridge(e.vni), "up")
	e.sh("ip", "-n", vm5, "link", "set", "eth1", "address", "02:00:00:aa:00:05")
	e.sh("ip", "-n", vm5, "link", "set", "eth1", "up")

	e.dhcpIf(vm5, "eth0")
	e.dhcpIf(vm5, "eth1")
	for dev, want := range map[string]string{"eth0": second + ".5/24", "eth1": e.priv3 + ".5/24"} {
		if out := e.sh("ip", "-n", vm5, "-4", "-br", "addr", "show", dev); !strings.Contains(out, want) {
			t.Fatalf("%s: want %s by DHCP, have %s", dev, want, out)
		}
	}
	routes := e.sh("ip", "-n", vm5, "-4", "route", "show", "default")
	if strings.Count(routes, "default") != 1 || !strings.Contains(routes, "via "+e.priv3+".1 dev eth1") {
		t.Errorf("default routes by DHCP: want one via the gateway subnet's %s.1 on eth1, have:\n%s", e.priv3, routes)
	}
}

// TestRouterDHCPForFreeTextVMNames: VM names are free text; a binding
// whose name is no host name still builds the router, and dnsmasq leases
// the address under the name made a DNS label.
func TestRouterDHCPForFreeTextVMNames(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	spec.Subnets[0].DHCP[0].Hostname = "Web Server #1"
	spec.Subnets[0].DHCP[1].Hostname = "db_2 (eu)"
	e.ensure(e.b, spec)
	vm5 := e.prefix + "vm5"
	e.addHost(vm5, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:05", "")
	e.dhcp(vm5)
	if out := e.sh("ip", "-n", vm5, "-4", "-br", "addr", "show", "eth0"); !strings.Contains(out, e.priv3+".5/24") {
		t.Fatalf("no DHCP address: %s", out)
	}
	leases, err := os.ReadFile(filepath.Join(e.b.routerDir(spec.ID), dnsmasqLeases))
	if err != nil || !strings.Contains(string(leases), e.priv3+".5 web-server-1 ") {
		t.Errorf("lease without the host name web-server-1: %q %v", leases, err)
	}
}

// TestRouterDHCPDNSPerVM: each VM gets its own DNS servers by DHCP (its
// metadata's, as the metadata service and seed name them), not those of
// the subnet, which are one VM's; a VM without any gets the subnet's. A
// change of one VM's servers reloads dnsmasq without a restart.
func TestRouterDHCPDNSPerVM(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	spec.Subnets[0].DNS = []string{"9.9.9.9"} // the first VM's, CloudCIX-style
	spec.Subnets[0].DHCP = append(spec.Subnets[0].DHCP, api.DHCPHostSpec{MAC: "02:00:00:aa:00:07", IP: e.priv3 + ".7", Hostname: "vm7"})
	spec.Metadata[0].DNS = []string{"9.9.9.9"}
	spec.Metadata = append(spec.Metadata,
		api.MetadataSpec{Address: e.priv3 + ".6", InstanceID: "6", Hostname: "vm6", DNS: []string{"1.1.1.1", "8.8.4.4"},
			IPAddresses: []api.MetadataAddress{{PrivateIP: e.priv3 + ".6", Subnet: e.priv3 + ".0/24", MAC: "02:00:00:aa:00:06"}}},
		api.MetadataSpec{Address: e.priv3 + ".7", InstanceID: "7", Hostname: "vm7",
			IPAddresses: []api.MetadataAddress{{PrivateIP: e.priv3 + ".7", Subnet: e.priv3 + ".0/24", MAC: "02:00:00:aa:00:07"}}})
	e.ensure(e.b, spec)
	conf := filepath.Join(e.b.routerDir(spec.ID), dnsmasqConf)
	if n := dnsmasqStarted(conf); n != 1 {
		t.Fatalf("%d dnsmasq processes", n)
	}
	want := map[string]string{"5": "9.9.9.9;", "6": "1.1.1.1,8.8.4.4;", "7": "9.9.9.9;"}
	for _, n := range []string{"5", "6", "7"} {
		vm := e.prefix + "vm" + n
		e.addHost(vm, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:0"+n, "")
		e.dhcp(vm)
		leases, err := os.ReadFile(e.dhclientFiles(vm, "eth0") + ".dhclient.leases")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(leases), "option domain-name-servers "+want[n]) {
			t.Errorf("vm%s: lease without domain-name-servers %s\n%s", n, want[n], leases)
		}
	}
	// vm6's servers change: dnsmasq serves the new ones (a restart: the
	// options are in its configuration).
	spec.Metadata[1].DNS = []string{"1.0.0.1"}
	e.ensure(e.b, spec)
	data, _ := os.ReadFile(conf)
	if !strings.Contains(string(data), "option:dns-server,1.0.0.1\n") {
		t.Errorf("configuration after the change:\n%s", data)
	}
	eventually(t, "one dnsmasq with the new configuration", 5*time.Second, func() bool { return dnsmasqCount(conf) == 1 })
}

// TestRouterDHCPSubnetDNSWithIPv6: a subnet whose DNS servers (one VM's)
// include an IPv6 address still has DHCP: dnsmasq starts and hands out
// the IPv4 server (with the IPv6 one in option:dns-server it refused to
// start and was restarted for ever).
func TestRouterDHCPSubnetDNSWithIPv6(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	spec.Subnets[0].DNS = []string{"8.8.8.8", "2001:4860:4860::8888"}
	e.ensure(e.b, spec)
	vm5 := e.prefix + "vm5"
	e.addHost(vm5, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:05", "")
	e.dhcp(vm5)
	leases, err := os.ReadFile(e.dhclientFiles(vm5, "eth0") + ".dhclient.leases")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(leases), "option domain-name-servers 8.8.8.8;") {
		t.Errorf("lease without domain-name-servers 8.8.8.8:\n%s", leases)
	}
}

// TestRouterDHCPForKeywordVMNames: a VM named like a dnsmasq keyword
// still gets its lease. Written as the host name of its dhcp-host line,
// "ignore" made dnsmasq never offer it one (and "infinite" or "12h" set a
// lease time instead of a name); such a name is left out of the line.
func TestRouterDHCPForKeywordVMNames(t *testing.T) {
	e := newSysenv(t)
	spec := e.spec(e.projectID())
	spec.Subnets[0].DHCP[0].Hostname = "ignore"
	spec.Subnets[0].DHCP[1].Hostname = "12h"
	e.ensure(e.b, spec)
	vm5 := e.prefix + "vm5"
	e.addHost(vm5, e.b.names.vxlanBridge(e.vni), "02:00:00:aa:00:05", "")
	e.dhcp(vm5)
	if out := e.sh("ip", "-n", vm5, "-4", "-br", "addr", "show", "eth0"); !strings.Contains(out, e.priv3+".5/24") {
		t.Fatalf("the VM named \"ignore\" got no DHCP address: %s", out)
	}
	hosts, err := os.ReadFile(filepath.Join(e.b.routerDir(spec.ID), dnsmasqHosts))
	if err != nil {
		t.Fatal(err)
	}
	if want := "02:00:00:aa:00:05," + e.priv3 + ".5\n02:00:00:aa:00:06," + e.priv3 + ".6\n"; string(hosts) != want {
		t.Errorf("hosts file %q, want %q", hosts, want)
	}
}
