package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// transportTimeout bounds raft's dials and RPC I/O (NetworkTransport
	// scales it up for snapshot installs).
	transportTimeout = 10 * time.Second
	// transportMaxPool is the number of idle outbound connections kept per peer.
	transportMaxPool = 3
	// handshakeTimeout bounds the TLS handshake of an inbound connection.
	handshakeTimeout = 10 * time.Second
)

// advertiseAddr is the address this node gives its peers. It keeps the
// configured form, so a DNS name stays a name.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// listen binds raftAddr and works out the advertised address: raftAddr
// itself, with the real port substituted when the port is 0 (tests). An
// empty or unspecified host (0.0.0.0, ::) is refused because peers could not
// dial it.
func listen(raftAddr string) (net.Listener, advertiseAddr, error) {
	host, port, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return nil, "", fmt.Errorf("cluster: raft address %q: %w", raftAddr, err)
	}
	if host == "" {
		return nil, "", fmt.Errorf("cluster: raft address %q has no host: it is also the address peers dial, so name this node's reachable IP or DNS name", raftAddr)
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return nil, "", fmt.Errorf("cluster: raft address %q is unspecified (%s): it is also the address peers dial, so name this node's reachable IP or DNS name", raftAddr, host)
	}
	ln, err := net.Listen("tcp", raftAddr)
	if err != nil {
		return nil, "", fmt.Errorf("cluster: listen on raft address %q: %w", raftAddr, err)
	}
	if port == "0" {
		tcp, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			_ = ln.Close()
			return nil, "", fmt.Errorf("cluster: raft listener on %q is not TCP", raftAddr)
		}
		port = strconv.Itoa(tcp.Port)
	}
	return ln, advertiseAddr(net.JoinHostPort(host, port)), nil
}

// streamLayer is the raft.StreamLayer under the NetworkTransport: plain TCP,
// or mutual TLS when tlsConfig is set (called for each connection, so that
// rotated certificates apply to the next one).
type streamLayer struct {
	net.Listener // the raw TCP listener
	advertise    advertiseAddr
	tlsConfig    func() (*tls.Config, error) // nil: plain TCP
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// prepareTLS checks a caller's mTLS config and returns the copy the stream
// layer uses: client certificates are always required and verified, against
// ClientCAs or else RootCAs, and TLS 1.3 is the floor unless set.
func prepareTLS(in *tls.Config) (*tls.Config, error) {
	if in == nil {
		return nil, nil
	}
	cfg := in.Clone()
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		return nil, errors.New("cluster: TLS config has no certificate for this node")
	}
	if cfg.RootCAs == nil && cfg.ClientCAs == nil {
		return nil, errors.New("cluster: TLS config has neither RootCAs nor ClientCAs: peers could not be verified")
	}
	if cfg.RootCAs == nil {
		cfg.RootCAs = cfg.ClientCAs
	}
	if cfg.ClientCAs == nil {
		cfg.ClientCAs = cfg.RootCAs
	}
	switch cfg.ClientAuth {
	case tls.NoClientCert:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case tls.RequireAndVerifyClientCert:
	default:
		return nil, fmt.Errorf("cluster: TLS ClientAuth must be RequireAndVerifyClientCert for raft traffic, got %v", cfg.ClientAuth)
	}
	if cfg.InsecureSkipVerify {
		return nil, errors.New("cluster: TLS InsecureSkipVerify is not allowed for raft traffic")
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS13
	}
	return cfg, nil
}

// Addr is the advertised address (what peers dial), not the bound one.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Accept returns the next inbound connection. A TLS connection completes its
// handshake (bounded by handshakeTimeout) on first use, in raft's per-
// connection goroutine, so a slow or hostile client cannot stall the accept
// loop.
func (s *streamLayer) Accept() (net.Conn, error) {
	conn, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if s.tlsConfig == nil {
		return conn, nil
	}
	cfg, err := s.tlsConfig()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &serverTLSConn{Conn: tls.Server(conn, cfg)}, nil
}

// Dial opens an outbound raft connection; with TLS the handshake (including
// verification of the peer's certificate) is done before it returns.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.dialContext(ctx, string(address))
}

func (s *streamLayer) dialContext(ctx context.Context, address string) (net.Conn, error) {
	nd := &net.Dialer{}
	if s.tlsConfig == nil {
		return nd.DialContext(ctx, "tcp", address)
	}
	cfg, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	d := &tls.Dialer{NetDialer: nd, Config: cfg}
	return d.DialContext(ctx, "tcp", address)
}

// serverTLSConn runs the server handshake once, with a deadline, before the
// first Read or Write.
type serverTLSConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *serverTLSConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			c.err = fmt.Errorf("tls handshake with %s: %w", c.RemoteAddr(), err)
		}
	})
	return c.err
}

func (c *serverTLSConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *serverTLSConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
