package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	mdns "github.com/miekg/dns"
)

// Server is the authoritative DNS server. Build it with New, run it with
// Start (or ListenAndServe) and stop it with Shutdown.
type Server struct {
	cfg     *settings
	src     Source
	log     hclog.Logger
	metrics *metrics

	snap     atomic.Pointer[zoneSet]
	reloadMu sync.Mutex // serialises reloads

	notifier *notifier
	// refusedLog bounds the "zone transfer refused" lines.
	refusedLog logLimit

	mu       sync.Mutex
	started  bool
	cancel   context.CancelFunc
	stopOnce sync.Once
	udp      []*net.UDPConn
	tcp      *mdns.Server
	addr     netip.AddrPort
	wg       sync.WaitGroup
}

// New validates cfg and returns a server reading zones from src. It neither
// binds sockets nor reads src: Start does.
func New(cfg Config, src Source) (*Server, error) {
	if src == nil {
		return nil, errors.New("dns: nil Source")
	}
	st, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(st.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dns: registering metrics: %w", err)
	}
	s := &Server{cfg: st, src: src, log: st.Logger.Named("dns"), metrics: m}
	s.snap.Store(&zoneSet{zones: map[string]*zone{}})
	return s, nil
}

// Addr returns the bound address (host:port) once Start has returned, so
// that a Config.Addr with port 0 can be discovered.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.addr.IsValid() {
		return ""
	}
	return s.addr.String()
}

// Start loads the zones, binds UDP and TCP on Config.Addr and serves in
// goroutines owned by the server. Bind errors are returned synchronously.
// The server runs until Shutdown is called or ctx ends.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("dns: server already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	udp, ln, err := s.bind(ctx)
	if err != nil {
		cancel()
		return err
	}
	s.started, s.cancel, s.udp = true, cancel, udp
	s.addr = udp[0].LocalAddr().(*net.UDPAddr).AddrPort()
	s.notifier = newNotifier(ctx, s)
	idx := s.reload()

	started := make(chan struct{})
	s.tcp = &mdns.Server{
		Listener:          newLimitListener(ln, s.cfg.TCPConns, s),
		Net:               "tcp",
		Handler:           tcpHandler{s},
		MaxTCPQueries:     -1,
		IdleTimeout:       func() time.Duration { return s.cfg.TCPIdleTimeout },
		ReadTimeout:       s.cfg.TCPIdleTimeout,
		WriteTimeout:      s.cfg.TCPIdleTimeout,
		TsigSecret:        s.cfg.tsigSecrets,
		DecorateWriter:    func(w mdns.Writer) mdns.Writer { return clearRAWriter{w} },
		MsgAcceptFunc:     acceptMsg,
		NotifyStartedFunc: func() { close(started) },
	}
	tcpDone := make(chan error, 1)
	s.wg.Go(func() {
		if err := s.tcp.ActivateAndServe(); err != nil {
			tcpDone <- err
			s.log.Error("tcp server stopped", "error", err)
		}
	})
	select {
	case <-started:
	case err := <-tcpDone:
		cancel()
		s.stop()
		return fmt.Errorf("dns: serving tcp: %w", err)
	}
	// Several read loops per socket: they take turns in recvmmsg and
	// sendmmsg (the socket's read and write locks) and answer their
	// batches in parallel.
	readers := max(1, (runtime.GOMAXPROCS(0)+len(udp)-1)/len(udp))
	for _, c := range udp {
		for range readers {
			s.wg.Go(func() { s.serveUDPBatch(c) })
		}
	}
	s.wg.Go(func() { s.follow(ctx, idx) })
	s.wg.Go(func() {
		<-ctx.Done()
		s.stop()
	})
	s.log.Info("serving", "addr", s.addr.String(), "udp_sockets", len(udp), "zones", len(s.snap.Load().zones))
	return nil
}

// ListenAndServe is Start followed by waiting for ctx to end, then a
// Shutdown bounded by five seconds.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// Shutdown stops serving, closes the sockets and waits for every goroutine
// of the server (including NOTIFY senders) or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	s.stop()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop closes the sockets; idempotent.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		for _, c := range s.udp {
			_ = c.Close()
		}
		if s.tcp != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = s.tcp.ShutdownContext(ctx)
		}
	})
}

// bind opens the UDP socket (several with SO_REUSEPORT when
// Config.UDPSockets asks for them) and a TCP listener on the same port.
//
// One socket is the default because SO_REUSEPORT makes the port shareable
// by any process of the same user: the kernel may then give the port to a
// client as its ephemeral port (dig sets SO_REUSEPORT on its sockets), and
// that client, connected to our address, receives its own query back
// instead of our answer (QR=0, its own cookie "echoed"). Other such
// processes could also bind the port and take a share of our queries.
func (s *Server) bind(ctx context.Context) ([]*net.UDPConn, net.Listener, error) {
	n := max(1, s.cfg.UDPSockets)
	if !reusePortSupported {
		n = 1
	}
	_, port, _ := net.SplitHostPort(s.cfg.Addr)
	attempts := 1
	if port == "0" {
		attempts = 5 // the free UDP port may be taken for TCP
	}
	var lastErr error
	for range attempts {
		udp, err := listenUDP(ctx, s.cfg.Addr, n)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listening on udp %s: %w", s.cfg.Addr, err)
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", udp[0].LocalAddr().String())
		if err == nil {
			return udp, ln, nil
		}
		for _, c := range udp {
			_ = c.Close()
		}
		lastErr = fmt.Errorf("dns: listening on tcp %s: %w", udp[0].LocalAddr(), err)
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, lastErr
}

func listenUDP(ctx context.Context, addr string, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = reusePort
	}
	var conns []*net.UDPConn
	for i := range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, err
		}
		c := pc.(*net.UDPConn)
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		conns = append(conns, c)
		if i == 0 {
			addr = c.LocalAddr().String()
		}
	}
	return conns, nil
}

// follow reloads the zones whenever the Source moves past idx.
func (s *Server) follow(ctx context.Context, idx uint64) {
	for {
		next := s.src.Wait(ctx, idx)
		if ctx.Err() != nil {
			return
		}
		if next <= idx {
			// No progress: do not spin on a misbehaving Source.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		start := time.Now()
		idx = max(next, s.reload())
		// Pace rebuilds under a stream of changes: wait as long as the
		// rebuild took (at most 250 ms), so rebuilding a large zone after
		// every write cannot take more than half a core, and the writes
		// that arrive meanwhile are picked up by one rebuild.
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Since(start), 250*time.Millisecond)):
		}
	}
}

// reload reads the serials, rebuilds changed zones and swaps in a new
// snapshot when anything changed. It returns the Source index it read.
func (s *Server) reload() uint64 {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	idx, serials := s.src.Serials()
	old := s.snap.Load()
	zones := make(map[string]*zone, len(serials))
	var changed []*zone
	for name, serial := range serials {
		lname := strings.ToLower(mdns.Fqdn(name))
		if z := old.zones[lname]; z != nil && z.serial == serial {
			zones[lname] = z
			continue
		}
		src, ok := s.src.Zone(name)
		if !ok || src == nil {
			continue
		}
		z := buildZone(src, s.cfg, s.log)
		z.journal = nextJournal(old.zones[z.name], z)
		zones[z.name] = z
		changed = append(changed, z)
	}
	removed := 0
	for name := range old.zones {
		if zones[name] == nil {
			removed++
		}
	}
	if len(changed) == 0 && removed == 0 {
		return idx
	}
	s.snap.Store(&zoneSet{zones: zones, cache: newPacketCache(s.cfg.CacheEntries)})
	s.metrics.setZones(len(zones))
	s.log.Debug("zones reloaded", "index", idx, "zones", len(zones), "changed", len(changed), "removed", removed)
	if s.notifier != nil {
		for _, z := range changed {
			s.notifier.enqueue(z)
		}
	}
	return idx
}

// tcpHandler serves TCP requests through miekg/dns's server.
type tcpHandler struct{ s *Server }

func (h tcpHandler) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	s := h.s
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic answering tcp request", "panic", p)
		}
	}()
	var start time.Time
	if s.metrics != nil {
		start = time.Now()
		defer func() { s.metrics.observe(protoTCP, time.Since(start).Seconds()) }()
	}
	zs := s.snap.Load()
	remote := addrOf(w.RemoteAddr())
	if !r.Response && r.Opcode == mdns.OpcodeQuery && len(r.Question) == 1 && optPlacement(r) {
		if t := r.Question[0].Qtype; t == mdns.TypeAXFR || t == mdns.TypeIXFR {
			if opt := r.IsEdns0(); opt == nil || opt.Version() == 0 {
				s.metrics.query(t, s.transfer(w, r, zs, remote))
				return
			}
		}
	}
	m := s.respond(zs, r, reqInfo{tcp: true, remote: remote, tsigStatus: w.TsigStatus()})
	if m == nil {
		return
	}
	var qtype uint16
	if len(r.Question) > 0 {
		qtype = r.Question[0].Qtype
	}
	s.metrics.query(qtype, m.Rcode)
	fitTCP(m)
	echoOwners(m) // compression makes them pointers to the question
	m.Compress = true
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("tcp write", "remote", remote, "error", err)
	}
}

// fitTCP cuts a response that does not fit in a TCP message (65,535
// octets; an RRset that large can be built through the API) to what fits
// and sets TC, as BIND does. Whole, it could not be packed: nothing was
// sent and the client waited for its timeout, and asked again. A TSIG
// record is set aside for the cut (miekg/dns does not truncate a message
// that has one), with room kept for the MAC the writer adds.
func fitTCP(m *mdns.Msg) {
	size := mdns.MaxMsgSize
	var sig mdns.RR
	if n := len(m.Extra); n > 0 && m.Extra[n-1].Header().Rrtype == mdns.TypeTSIG {
		sig = m.Extra[n-1]
		m.Extra = m.Extra[:n-1]
		size -= mdns.Len(sig) + 64 // an HMAC-SHA512 MAC
	}
	truncate(m, size)
	if sig != nil {
		m.Extra = append(m.Extra, sig)
	}
}

// acceptMsg decides from the header alone, before parsing, as miekg/dns's
// DefaultMsgAcceptFunc does: a response is dropped, and more than one
// answer or authority record or more than two additional records is FORMERR
// (a bare header). Unlike DefaultMsgAcceptFunc it lets respond answer what
// it can parse, with an OPT record when the request has one (RFC 6891 §7):
// an opcode other than QUERY and NOTIFY (NOTIMP) and a question count other
// than one (FORMERR). UDP applies it too.
func acceptMsg(dh mdns.Header) mdns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 { // QR
		return mdns.MsgIgnore
	}
	if op := int(dh.Bits>>11) & 0xf; op != mdns.OpcodeQuery && op != mdns.OpcodeNotify {
		return mdns.MsgAccept
	}
	if dh.Ancount > 1 || dh.Nscount > 1 || dh.Arcount > 2 {
		return mdns.MsgReject
	}
	return mdns.MsgAccept
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return v.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// clearRAWriter clears RA and AD in the header of every TCP message written.
// Our own replies never set them; miekg/dns's server builds the reply to a
// rejected or unparsable request (NOTIMP, FORMERR) from the request itself,
// and so echoed the client's RA and AD bits (dns-facts §4.20: RA=0). A
// message with neither bit set, which includes every TSIG-signed one, is
// written untouched.
type clearRAWriter struct{ mdns.Writer }

func (w clearRAWriter) Write(b []byte) (int, error) {
	if len(b) >= 4 && b[3]&0xa0 != 0 {
		// A copy: a Writer must not change its caller's buffer. Only the
		// rare rejected request gets here.
		c := append([]byte(nil), b...)
		c[3] &^= 0xa0
		return w.Writer.Write(c)
	}
	return w.Writer.Write(b)
}
