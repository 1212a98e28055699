package netrouter

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/pkg/api"
)

// MetadataAddr is where VMs find the metadata service.
const MetadataAddr = "169.254.169.254"

// metadata answers the upstream cloud-init CloudCIX datasource: GET
// /v1/metadata (JSON) and /v1/userdata, chosen by the requesting VM's
// address.
type metadata struct {
	mu     sync.RWMutex
	byAddr map[netip.Addr]api.MetadataSpec
	gw     map[netip.Addr]netip.Prefix // VM address → its subnet's gateway prefix
	dns    map[netip.Addr][]netip.Addr
}

func newMetadata() *metadata { return &metadata{} }

func (m *metadata) set(d *desired) {
	by := make(map[netip.Addr]api.MetadataSpec, len(d.metadata))
	for _, s := range d.metadata {
		if a, err := netip.ParseAddr(s.Address); err == nil {
			by[a] = s
		}
	}
	gw := map[netip.Addr]netip.Prefix{}
	dns := map[netip.Addr][]netip.Addr{}
	for a := range by {
		for _, s := range d.subnets {
			if s.network.Contains(a) {
				gw[a] = s.gateway
				dns[a] = s.dns
			}
		}
	}
	m.mu.Lock()
	m.byAddr, m.gw, m.dns = by, gw, dns
	m.mu.Unlock()
}

func (m *metadata) lookup(r *http.Request) (api.MetadataSpec, netip.Prefix, []netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return api.MetadataSpec{}, netip.Prefix{}, nil, false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.byAddr[ap.Addr().Unmap()]
	return s, m.gw[ap.Addr().Unmap()], m.dns[ap.Addr().Unmap()], ok
}

func (m *metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	spec, gw, dns, ok := m.lookup(r)
	if !ok {
		http.Error(w, "no metadata for this address", http.StatusNotFound)
		return
	}
	switch r.URL.Path {
	case "/":
		// The CloudCIX datasource first waits for the service's root to
		// answer 200 with a body, then looks for v1/metadata.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("v1\n"))
	case "/v1", "/v1/":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("metadata\nuserdata\n"))
	case "/v1/metadata", "/v1/metadata/":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(metadataDocument(spec, gw, dns))
	case "/v1/userdata", "/v1/userdata/":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(spec.Userdata))
	default:
		http.NotFound(w, r)
	}
}

// metadataDocument is the JSON of /v1/metadata: the datasource reads
// instance-id, and its "network" key as a version 2 network config.
func metadataDocument(s api.MetadataSpec, gw netip.Prefix, dns []netip.Addr) map[string]any {
	type addr struct {
		PrivateIP string `json:"private_ip"`
		PublicIP  string `json:"public_ip,omitempty"`
		Subnet    string `json:"subnet"`
		MAC       string `json:"mac,omitempty"`
		Gateway   string `json:"gateway,omitempty"`
	}
	addrs := []addr{}
	ethernets := map[string]any{}
	// The NIC of the VM's primary address (on its gateway subnet; the
	// first when none matches) gets the one default route and the DNS
	// servers of that subnet.
	primary := max(0, slices.IndexFunc(s.IPAddresses, func(a api.MetadataAddress) bool { return a.PrivateIP == s.Address }))
	for i, a := range s.IPAddresses {
		addrs = append(addrs, addr(a))
		eth := map[string]any{}
		if a.MAC != "" {
			eth["match"] = map[string]string{"macaddress": a.MAC}
		}
		if p, err := netip.ParsePrefix(a.Subnet); err == nil {
			if ip, err := netip.ParseAddr(a.PrivateIP); err == nil {
				eth["addresses"] = []string{netip.PrefixFrom(ip, p.Bits()).String()}
			}
		}
		if i == primary {
			g := a.Gateway
			if g == "" && gw.IsValid() {
				g = gw.Addr().String()
			}
			if g != "" {
				eth["routes"] = []map[string]string{{"to": "default", "via": g}}
			}
		}
		// The VM's own DNS servers; the subnet's (what its DHCP hands
		// out) for a spec without them.
		if ns := vmDNS(s.DNS, dns); i == primary && len(ns) > 0 {
			eth["nameservers"] = map[string]any{"addresses": ns}
		}
		ethernets["eth"+strconv.Itoa(i)] = eth
	}
	keys := s.PublicKeys
	if keys == nil {
		keys = []string{}
	}
	return map[string]any{
		"instance-id":    s.InstanceID,
		"local-hostname": s.Hostname,
		"hostname":       s.Hostname,
		"public-keys":    keys,
		"ip_addresses":   addrs,
		"network":        map[string]any{"version": 2, "ethernets": ethernets},
	}
}

// metadataServer is the HTTP server of one router; its listening socket
// lives in the router's namespace.
type metadataServer struct {
	srv  *http.Server
	done chan struct{}
}

func startMetadataServer(log hclog.Logger, nsPath string, h http.Handler) (*metadataServer, error) {
	var ln net.Listener
	err := withNetnsPath(nsPath, func() error {
		var err error
		ln, err = net.Listen("tcp4", MetadataAddr+":80")
		return err
	})
	if err != nil {
		return nil, err
	}
	s := &metadataServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metadata server stopped", "error", err)
		}
	}()
	return s, nil
}

func (s *metadataServer) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *metadataServer) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}

// vmDNS are the DNS servers a VM's metadata names: its own (valid
// addresses of them), else its subnet's.
func vmDNS(own []string, subnet []netip.Addr) []string {
	var ns []string
	for _, d := range own {
		if a, err := netip.ParseAddr(d); err == nil {
			ns = append(ns, a.String())
		}
	}
	if len(ns) > 0 {
		return ns
	}
	for _, d := range subnet {
		ns = append(ns, d.String())
	}
	return ns
}
