package dns

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by New to zero Config fields. The SOA timers are the
// lowest values Zonemaster accepts without a notice (refresh 4 h, retry
// 1 h): secondaries learn of changes by NOTIFY, so the refresh timer is
// only a fallback, and they keep serving for two weeks without contact.
// The negative-caching TTL (MINIMUM, RFC 2308) is short because tenants
// create names through an API and expect them to resolve soon after.
const (
	DefaultTTL     = 3600
	DefaultRefresh = 14400
	DefaultRetry   = 3600
	DefaultExpire  = 1209600
	DefaultMinimum = 300
	// DefaultUDPSize is the EDNS0 UDP payload size we advertise and the cap
	// on what we send over UDP (DNS flag day 2020).
	DefaultUDPSize = 1232
	// DefaultTCPIdleTimeout closes idle TCP connections.
	DefaultTCPIdleTimeout = 10 * time.Second
	// DefaultTCPConns bounds the TCP connections open at once.
	DefaultTCPConns = 1000
	// DefaultTSIGAlgorithm signs outgoing NOTIFY messages.
	DefaultTSIGAlgorithm = mdns.HmacSHA256
	// DefaultCacheEntries bounds the UDP packed-response cache.
	DefaultCacheEntries = 65536
)

// Config configures a Server. The controller maps its HCL configuration onto
// it. Zero fields take the defaults documented on each field.
type Config struct {
	// Addr is the host:port to serve UDP and TCP on, e.g. "0.0.0.0:53".
	// Port 0 picks a free port (see Server.Addr). Required.
	Addr string

	// NS are the names of the apex NS records of every zone (fully
	// qualified; a missing trailing dot is added). At least one is required.
	NS []string

	// MName is the SOA primary name server. Default: NS[0].
	MName string
	// RName is the SOA responsible mailbox as a domain name
	// ("hostmaster.example.net."). Default: "hostmaster.<zone>" per zone.
	RName string
	// Refresh, Retry, Expire and Minimum are the SOA timers in seconds.
	// Defaults: DefaultRefresh, DefaultRetry, DefaultExpire, DefaultMinimum.
	Refresh, Retry, Expire, Minimum uint32
	// TTL is the TTL of the apex SOA and of the configured NS records.
	// Default DefaultTTL.
	TTL uint32

	// AllowTransfer lists the networks that may AXFR/IXFR. Empty: nobody.
	AllowTransfer []netip.Prefix
	// Notify lists the secondaries (host:port; port 53 when omitted) that
	// get a NOTIFY whenever a zone's serial changes.
	Notify []string

	// TSIGKeys maps key names to base64 secrets. When non-empty, zone
	// transfers require a valid signature by one of these keys, and NOTIFY
	// messages are signed with NotifyKey.
	TSIGKeys map[string]string
	// TSIGAlgorithm is the algorithm used to sign NOTIFY messages
	// (incoming requests are verified with the algorithm they name).
	// Default hmac-sha256.
	TSIGAlgorithm string
	// NotifyKey names the TSIG key that signs NOTIFY messages. Default: the
	// first key name in sorted order.
	NotifyKey string

	// UDPSize is the EDNS0 payload size we advertise and the largest UDP
	// response we send. Default DefaultUDPSize (1232); 512..65535.
	UDPSize int
	// TCPIdleTimeout closes TCP connections idle that long. Default 10s.
	TCPIdleTimeout time.Duration
	// TCPConns is the most TCP connections open at once. At the bound the
	// server accepts no more until one closes (new ones wait in the
	// kernel's listen backlog), so clients of the DNS port cannot use up
	// the process's file descriptors. Default DefaultTCPConns.
	TCPConns int
	// UDPSockets is the number of UDP sockets bound to Addr. Default 1:
	// GOMAXPROCS read loops share it. More than one uses SO_REUSEPORT
	// (Linux only), which lets any other process running as the same user
	// bind the port too: a client such as dig may then be given the port
	// as its source port and read its own query back as the answer, and a
	// server could take a share of the queries. Use it only when the
	// controller runs as a user of its own.
	UDPSockets int
	// CacheEntries bounds the packed-response cache of the UDP fast path.
	// Default DefaultCacheEntries; negative disables the cache.
	CacheEntries int

	// Logger receives the server's logs. Default: discard.
	Logger hclog.Logger
	// Registerer registers the server's metrics. Nil: no metrics.
	Registerer prometheus.Registerer

	// notifyBackoff is the first retry delay of NOTIFY (tests shorten it).
	notifyBackoff time.Duration
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	mnameGiven  bool              // Config.MName was set (a Zone's NS does not replace it)
	tsigSecrets map[string]string // canonical key name → base64 secret
	notifyAddrs []string
}

func (c Config) validate() (*settings, error) {
	var errs []error
	s := &settings{Config: c}
	if s.Addr == "" {
		errs = append(errs, errors.New("dns: Addr is required"))
	} else if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		errs = append(errs, fmt.Errorf("dns: Addr %q: %w", s.Addr, err))
	}
	if len(s.NS) == 0 {
		errs = append(errs, errors.New("dns: at least one NS name is required"))
	}
	ns := make([]string, 0, len(s.NS))
	for _, n := range s.NS {
		n = strings.ToLower(mdns.Fqdn(strings.TrimSpace(n)))
		if _, ok := mdns.IsDomainName(n); !ok || n == "." {
			errs = append(errs, fmt.Errorf("dns: NS %q is not a host name", n))
			continue
		}
		ns = append(ns, n)
	}
	s.NS = ns
	s.mnameGiven = s.MName != ""
	if s.MName == "" && len(ns) > 0 {
		s.MName = ns[0]
	}
	if s.MName != "" {
		s.MName = mdns.Fqdn(s.MName)
		if _, ok := mdns.IsDomainName(s.MName); !ok {
			errs = append(errs, fmt.Errorf("dns: MName %q is not a domain name", s.MName))
		}
	}
	if s.RName != "" {
		if strings.Contains(s.RName, "@") {
			errs = append(errs, fmt.Errorf("dns: RName %q must be a mailbox name (hostmaster.example.net.), not an e-mail address", s.RName))
		}
		s.RName = mdns.Fqdn(s.RName)
		if _, ok := mdns.IsDomainName(s.RName); !ok {
			errs = append(errs, fmt.Errorf("dns: RName %q is not a domain name", s.RName))
		}
	}
	def := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.TTL, DefaultTTL)
	def(&s.Refresh, DefaultRefresh)
	def(&s.Retry, DefaultRetry)
	def(&s.Expire, DefaultExpire)
	def(&s.Minimum, DefaultMinimum)
	if s.Retry >= s.Refresh {
		errs = append(errs, fmt.Errorf("dns: SOA retry %d must be less than refresh %d", s.Retry, s.Refresh))
	}
	if s.Expire <= s.Refresh+s.Retry {
		errs = append(errs, fmt.Errorf("dns: SOA expire %d must exceed refresh+retry %d", s.Expire, s.Refresh+s.Retry))
	}
	for _, v := range []uint32{s.TTL, s.Refresh, s.Retry, s.Expire, s.Minimum} {
		if v > 1<<31-1 {
			errs = append(errs, fmt.Errorf("dns: SOA timer %d exceeds 2^31-1", v))
		}
	}
	for _, p := range s.AllowTransfer {
		if !p.IsValid() {
			errs = append(errs, errors.New("dns: AllowTransfer holds an invalid prefix"))
		}
	}
	for _, t := range s.Notify {
		host, port, err := net.SplitHostPort(t)
		if err != nil {
			host, port = t, "53"
		}
		if host == "" || port == "" {
			errs = append(errs, fmt.Errorf("dns: Notify target %q must be host:port", t))
			continue
		}
		s.notifyAddrs = append(s.notifyAddrs, net.JoinHostPort(host, port))
	}
	if len(s.TSIGKeys) > 0 {
		s.tsigSecrets = make(map[string]string, len(s.TSIGKeys))
		names := make([]string, 0, len(s.TSIGKeys))
		for name, secret := range s.TSIGKeys {
			cn := mdns.CanonicalName(name)
			if _, ok := mdns.IsDomainName(cn); !ok {
				errs = append(errs, fmt.Errorf("dns: TSIG key name %q is not a domain name", name))
				continue
			}
			if b, err := base64.StdEncoding.DecodeString(secret); err != nil || len(b) == 0 {
				errs = append(errs, fmt.Errorf("dns: TSIG key %q: secret is not base64", name))
				continue
			}
			s.tsigSecrets[cn] = secret
			names = append(names, cn)
		}
		sort.Strings(names)
		if s.NotifyKey == "" && len(names) > 0 {
			s.NotifyKey = names[0]
		}
		if s.NotifyKey != "" {
			s.NotifyKey = mdns.CanonicalName(s.NotifyKey)
			if _, ok := s.tsigSecrets[s.NotifyKey]; !ok && len(names) > 0 {
				errs = append(errs, fmt.Errorf("dns: NotifyKey %q is not among TSIGKeys", s.NotifyKey))
			}
		}
		if s.TSIGAlgorithm == "" {
			s.TSIGAlgorithm = DefaultTSIGAlgorithm
		}
		s.TSIGAlgorithm = mdns.CanonicalName(s.TSIGAlgorithm)
		switch s.TSIGAlgorithm {
		case mdns.HmacSHA1, mdns.HmacSHA224, mdns.HmacSHA256, mdns.HmacSHA384, mdns.HmacSHA512:
		default:
			errs = append(errs, fmt.Errorf("dns: unsupported TSIG algorithm %q", s.TSIGAlgorithm))
		}
	} else if s.NotifyKey != "" {
		errs = append(errs, errors.New("dns: NotifyKey set without TSIGKeys"))
	}
	if s.UDPSize == 0 {
		s.UDPSize = DefaultUDPSize
	}
	if s.UDPSize < 512 || s.UDPSize > 65535 {
		errs = append(errs, fmt.Errorf("dns: UDPSize %d out of range 512..65535", s.UDPSize))
	}
	if s.TCPIdleTimeout <= 0 {
		s.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if s.TCPConns < 0 {
		errs = append(errs, errors.New("dns: TCPConns must not be negative"))
	} else if s.TCPConns == 0 {
		s.TCPConns = DefaultTCPConns
	}
	if s.UDPSockets < 0 {
		errs = append(errs, errors.New("dns: UDPSockets must not be negative"))
	}
	if s.CacheEntries == 0 {
		s.CacheEntries = DefaultCacheEntries
	}
	if s.Logger == nil {
		s.Logger = hclog.NewNullLogger()
	}
	if s.notifyBackoff <= 0 {
		s.notifyBackoff = time.Second
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}
