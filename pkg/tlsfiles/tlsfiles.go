// Package tlsfiles keeps TLS material read from PEM files — a certificate
// with its key, a CA bundle — and reads the files again on Reload, so that a
// running server takes rotated certificates without a restart. Connections
// made after a Reload use the new material; established ones keep what they
// negotiated. A Reload that fails (a missing file, a key that does not match
// its certificate, a bundle without certificates, a certificate the bundle
// named with it does not vouch for) changes nothing.
package tlsfiles

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// Paths names the files. Cert and Key go together; CA may stand alone (a
// client that only verifies its peers) or be empty (a server without
// client certificates).
type Paths struct {
	Cert, Key, CA string
}

// Empty says whether no file is named.
func (p Paths) Empty() bool { return p == Paths{} }

// Material is one reading of the files.
type Material struct {
	Paths Paths            // the files read
	Cert  *tls.Certificate // nil without Paths.Cert
	Pool  *x509.CertPool   // nil without Paths.CA
	// CertNotAfter is when the certificate expires; CANotAfter when the
	// first of the bundle's CAs to expire does. Zero when there is none.
	CertNotAfter, CANotAfter time.Time
	// Loaded is when the files were read.
	Loaded time.Time
}

// Files holds the material of one set of Paths.
type Files struct {
	cur atomic.Pointer[Material]
}

// Load reads the files named by p.
func Load(p Paths) (*Files, error) {
	m, err := read(p)
	if err != nil {
		return nil, err
	}
	f := &Files{}
	f.cur.Store(m)
	return f, nil
}

// Current is the material of the last successful Load or Reload.
func (f *Files) Current() *Material { return f.cur.Load() }

// Paths are the paths the current material was read from.
func (f *Files) Paths() Paths { return f.Current().Paths }

// ErrKindChanged is the error of a Reload or Stage whose paths add or drop
// a certificate or a CA: a running listener cannot change so.
var ErrKindChanged = errors.New("tls: a certificate or CA cannot be added or removed without a restart, only replaced")

// Reload reads the files named by p (the paths may have changed) and
// makes them current. On error the material stays what it was. p must name
// the same kinds of file as before: a certificate cannot be added to or
// taken from a running listener.
func (f *Files) Reload(p Paths) error {
	commit, err := f.Stage(p)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Stage is Reload in two steps, for a caller that reloads several Files
// all or none: it reads and checks the files named by p, and returns the
// function that makes them current.
func (f *Files) Stage(p Paths) (commit func(), err error) {
	old := f.Paths()
	if (old.Cert == "") != (p.Cert == "") || (old.CA == "") != (p.CA == "") {
		return nil, ErrKindChanged
	}
	m, err := read(p)
	if err != nil {
		return nil, err
	}
	return func() { f.cur.Store(m) }, nil
}

func read(p Paths) (*Material, error) {
	if (p.Cert == "") != (p.Key == "") {
		return nil, errors.New("tls: a certificate and its key go together")
	}
	m := &Material{Paths: p, Loaded: time.Now()}
	if p.Cert != "" {
		cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: %s, %s: %w", p.Cert, p.Key, err)
		}
		if cert.Leaf == nil {
			if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tls: %s: %w", p.Cert, err)
			}
		}
		m.Cert, m.CertNotAfter = &cert, cert.Leaf.NotAfter
	}
	if p.CA != "" {
		pool, first, err := readPool(p.CA)
		if err != nil {
			return nil, err
		}
		m.Pool, m.CANotAfter = pool, first
	}
	if m.Cert != nil && m.Pool != nil {
		// Peers verify this certificate with the same bundle (raft's
		// mutual TLS): one it does not vouch for would cut the node off.
		// The rest of the certificate file is the chain TLS sends with it.
		inter := x509.NewCertPool()
		for _, der := range m.Cert.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				inter.AddCert(c)
			}
		}
		opts := x509.VerifyOptions{Roots: m.Pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		if _, err := m.Cert.Leaf.Verify(opts); err != nil {
			return nil, fmt.Errorf("tls: %s is not signed by a CA of %s: %w", p.Cert, p.CA, err)
		}
	}
	return m, nil
}

// readPool reads a PEM bundle of CA certificates; first is the earliest
// expiry among them.
func readPool(path string) (*x509.CertPool, time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	var first time.Time
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("tls: %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		if n == 0 || c.NotAfter.Before(first) {
			first = c.NotAfter
		}
		n++
	}
	if n == 0 {
		return nil, time.Time{}, fmt.Errorf("tls: %s holds no PEM certificates", path)
	}
	return pool, first, nil
}

// Config is a config for one new connection, server or client side, on
// the current material: the certificate (if any) to present, and the CA
// bundle (if any) as RootCAs and ClientCAs. base sets the rest
// (MinVersion, ClientAuth, ServerName).
func (f *Files) Config(base *tls.Config) *tls.Config {
	m := f.Current()
	c := base.Clone()
	if m.Cert != nil {
		c.Certificates = []tls.Certificate{*m.Cert}
	}
	if m.Pool != nil {
		c.RootCAs, c.ClientCAs = m.Pool, m.Pool
	}
	return c
}

// ServerConfig is a config for a long-lived listener that does not ask
// for client certificates (the HTTPS API): every handshake presents the
// certificate current at that moment (GetCertificate), and the listener
// keeps the rest of base (ALPN, which http.Server adds, included).
func (f *Files) ServerConfig(base *tls.Config) *tls.Config {
	out := base.Clone()
	out.Certificates = nil
	out.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return f.Current().Cert, nil }
	return out
}

// DialTLS is an http.Transport's DialTLSContext whose connections use the
// config get returns at each dial (Files.Config: the material current
// then). ServerName defaults to the host dialled.
func DialTLS(d *net.Dialer, get func() *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cfg := get()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg = cfg.Clone()
				cfg.ServerName = host
			}
		}
		return (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, network, addr)
	}
}
