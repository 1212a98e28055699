package netrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// metadataLimits bound what VMs can hold of a router's metadata server.
// cloud-init reads a handful of small documents: a request is read within
// the read timeouts, its answer written within the write timeout, and a
// keep-alive connection waits idle at most idle for its next request
// (without these a VM held idle connections, or one it never read from,
// for ever). At most conns connections are open at once per router and
// perAddr from one VM address; one more is closed as soon as it is
// accepted, so a VM that holds its share does not block the others.
type metadataLimits struct {
	readHeader, read, write, idle time.Duration
	conns, perAddr                int
}

var defaultMetadataLimits = metadataLimits{readHeader: 5 * time.Second, read: 10 * time.Second, write: 10 * time.Second,
	idle: 30 * time.Second, conns: 128, perAddr: 16}

func startMetadataServer(log hclog.Logger, nsPath string, h http.Handler, lim metadataLimits) (*metadataServer, error) {
	var ln net.Listener
	err := withNetnsPath(nsPath, func() error {
		var err error
		ln, err = net.Listen("tcp4", MetadataAddr+":80")
		return err
	})
	if err != nil {
		return nil, err
	}
	ln = &limitListener{Listener: ln, max: lim.conns, perAddr: lim.perAddr, byAddr: map[netip.Addr]int{}}
	s := &metadataServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.readHeader,
			ReadTimeout:       lim.read,
			WriteTimeout:      lim.write,
			IdleTimeout:       lim.idle,
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

// limitListener hands out at most max connections at once, at most
// perAddr of them from one remote address; a connection over either limit
// is closed when accepted. A connection's share is given back when it is
// closed.
type limitListener struct {
	net.Listener
	max, perAddr int

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var a netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			a = ta.AddrPort().Addr().Unmap()
		}
		l.mu.Lock()
		ok := l.open < l.max && l.byAddr[a] < l.perAddr
		if ok {
			l.open++
			l.byAddr[a]++
		}
		l.mu.Unlock()
		if ok {
			return &limitConn{Conn: c, l: l, addr: a}, nil
		}
		_ = c.Close()
	}
}

func (l *limitListener) release(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byAddr[a]--; l.byAddr[a] <= 0 {
		delete(l.byAddr, a)
	}
}

// limitConn gives its share back to its listener once, when closed.
type limitConn struct {
	net.Conn
	l    *limitListener
	addr netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	// The share is given back before the peer can see the close: a VM that
	// connects again once it saw its connection end finds the room.
	c.once.Do(func() { c.l.release(c.addr) })
	return c.Conn.Close()
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

// planMetadata is the part of plan the metadata service answers from: the
// router's namespace, its subnets' gateways and DNS servers, and the
// metadata. It is lenient (a subnet or DNS server that does not parse is
// left out): it serves the copy of an earlier spec, never builds from it.
func planMetadata(spec *api.RouterSpec, n naming) (*desired, error) {
	if spec.ID == 0 || spec.ProjectID == 0 {
		return nil, &SpecError{Err: fmt.Errorf("router %d of project %d: id and project_id are required", spec.ID, spec.ProjectID)}
	}
	d := &desired{routerID: spec.ID, projectID: spec.ProjectID, namespace: n.namespace(spec.ProjectID), metadata: spec.Metadata}
	for _, s := range spec.Subnets {
		gw, err := netip.ParsePrefix(s.AddressRange)
		if err != nil || !gw.Addr().Is4() {
			continue
		}
		sn := subnet{id: s.ID, gateway: gw, network: gw.Masked()}
		for _, v := range s.DNS {
			if a, err := netip.ParseAddr(v); err == nil {
				sn.dns = append(sn.dns, a)
			}
		}
		d.subnets = append(d.subnets, sn)
	}
	return d, nil
}

// ServeMetadata serves the metadata of spec from its router's namespace
// and builds nothing: the agent calls it at start-up with its saved copy
// of the last work, so that VMs get their metadata before the controller
// answers. Only the spec's id, project_id, subnets (address_range, dns)
// and metadata are read. The router must be built and this builder's (its
// namespace tagged as the router's, the metadata address on its loopback):
// otherwise it returns an error and the host stays as it is. A router
// whose metadata an Ensure already serves is left alone. The next Ensure
// of the router takes the server over; ReplaceMetadata ends what no
// Ensure took over.
func (b *Builder) ServeMetadata(ctx context.Context, spec *api.RouterSpec) error {
	d, err := planMetadata(spec, b.names)
	if err != nil {
		return err
	}
	routers, err := b.listNamespaceRouters()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(routers, func(r Router) bool { return r.ID == d.routerID && r.Namespace == d.namespace }) {
		return fmt.Errorf("router %d: namespace %s is not on this host or not the router's: nothing to serve metadata from", d.routerID, d.namespace)
	}
	rs, err := b.state(d.routerID)
	if err != nil {
		return err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	alive := rs.metaSrv != nil && rs.metaSrv.alive()
	if alive && !rs.metaOnly {
		return nil // an Ensure serves the current spec's
	}
	rs.meta.set(d)
	if !alive {
		srv, err := startMetadataServer(b.log.Named("metadata").With("router", d.routerID), nsPath(d.namespace), rs.meta, b.metaLimits)
		if err != nil {
			return fmt.Errorf("router %d: %w", d.routerID, err)
		}
		rs.metaSrv = srv
	}
	rs.metaOnly = true
	return nil
}

// ReplaceMetadata ends what ServeMetadata served, once the agent has the
// controller's work: a router no Ensure took over since gets the metadata
// of its spec in fresh at once (its Ensure follows), and its server stops
// when fresh has no spec of it. It returns how many servers it stopped.
func (b *Builder) ReplaceMetadata(ctx context.Context, fresh []api.RouterSpec) int {
	b.mu.Lock()
	all := make(map[uint64]*running, len(b.routers))
	for id, rs := range b.routers {
		all[id] = rs
	}
	b.mu.Unlock()
	stopped := 0
	for id, rs := range all {
		rs.mu.Lock()
		if rs.metaOnly {
			rs.metaOnly = false
			i := slices.IndexFunc(fresh, func(s api.RouterSpec) bool { return s.ID == id })
			var d *desired
			if i >= 0 {
				d, _ = planMetadata(&fresh[i], b.names)
			}
			if d != nil {
				rs.meta.set(d)
			} else if rs.metaSrv != nil {
				_ = rs.metaSrv.Stop(ctx)
				rs.metaSrv = nil
				rs.meta.set(&desired{})
				stopped++
			}
		}
		rs.mu.Unlock()
	}
	return stopped
}
