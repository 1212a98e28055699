package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsimple"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	mdns "github.com/miekg/dns"

	"github.com/regentcloud/regent/controller/cluster"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/hcldiag"
)

// EnvClusterToken names the environment variable that holds the cluster
// token when neither -cluster-token nor cluster_token gives it (so that the
// secret need not be on a command line, where ps shows it).
const EnvClusterToken = "REGENT_CLUSTER_TOKEN"

// ExitConfig is the exit status of a node that stops because only the
// operator can fix what stops it (a configuration that cannot work, a
// refused cluster token, a data dir that is damaged or another cluster's):
// 78, EX_CONFIG of sysexits.h. deploy/regent-controller.service does not
// restart on it (RestartPreventExitStatus=78). It is not 2, the status Go's
// runtime exits with on a panic or a fatal error, which systemd must
// restart.
const ExitConfig = 78

// Config is one node's configuration. Every field is a flag of
// `regent-controller server` and an attribute of the HCL config file (the
// flag name with underscores).
type Config struct {
	Dev          bool   `hcl:"dev,optional"`
	NodeID       string `hcl:"node_id,optional"`
	DataDir      string `hcl:"data_dir,optional"`
	HTTPAddr     string `hcl:"http_addr,optional"`
	RaftAddr     string `hcl:"raft_addr,optional"`
	DNSAddr      string `hcl:"dns_addr,optional"`
	Bootstrap    bool   `hcl:"bootstrap,optional"`
	Join         string `hcl:"join,optional"`
	ClusterToken string `hcl:"cluster_token,optional"`
	// AdvertiseHTTP is the base URL peers forward requests to; default
	// http(s)://<http_addr>.
	AdvertiseHTTP string `hcl:"advertise_http,optional"`

	LogLevel string `hcl:"log_level,optional"`
	LogJSON  bool   `hcl:"log_json,optional"`
	// LogOutput receives the node's log (os.Stderr when nil); not a file
	// setting.
	LogOutput io.Writer

	HTTPTLSCert string `hcl:"http_tls_cert,optional"`
	HTTPTLSKey  string `hcl:"http_tls_key,optional"`
	// HTTPTLSCA verifies peers' HTTPS certificates when forwarding; default system roots.
	HTTPTLSCA   string `hcl:"http_tls_ca,optional"`
	RaftTLSCert string `hcl:"raft_tls_cert,optional"`
	RaftTLSKey  string `hcl:"raft_tls_key,optional"`
	RaftTLSCA   string `hcl:"raft_tls_ca,optional"`
	// AuditLog, when set, is the file of the audit trail: a JSON line per
	// request that may change something, written by the node that serves
	// it (api.AuditRecord); reopened by Reload (log rotation).
	AuditLog string `hcl:"audit_log,optional"`

	HeartbeatTimeout   Duration `hcl:"heartbeat_timeout,optional"`
	ElectionTimeout    Duration `hcl:"election_timeout,optional"`
	LeaderLeaseTimeout Duration `hcl:"leader_lease_timeout,optional"`
	// Raft snapshot policy: every RaftSnapshotInterval (default 2m; at
	// least MinRaftSnapshotInterval) raft takes a snapshot when
	// RaftSnapshotThreshold log entries (default 8192) were written since
	// the last one, and keeps RaftTrailingLogs entries (default 10240) in
	// the log after it for followers that lag behind. nil or "": the
	// default; a count below 1 is refused.
	RaftSnapshotThreshold *int     `hcl:"raft_snapshot_threshold,optional"`
	RaftSnapshotInterval  Duration `hcl:"raft_snapshot_interval,optional"`
	RaftTrailingLogs      *int     `hcl:"raft_trailing_logs,optional"`
	// CommitLinger is how long the leader's next raft entry may wait for
	// more writes while 8 or more writers are busy (group commit); 0
	// disables the wait.
	CommitLinger          Duration `hcl:"commit_linger,optional"`
	DeadServerCleanup     Duration `hcl:"dead_server_cleanup,optional"`
	KeepDeallocatedIPsFor Duration `hcl:"keep_deallocated_ips_for,optional"`
	// MelangeDefaultCIDR, when set, is the CIDR of the private block
	// Melange creates for a tenant's unknown network on an interface or
	// ip_allocations request (Melange's default_cidr); unset, an unknown
	// network is 404.
	MelangeDefaultCIDR string `hcl:"melange_default_cidr,optional"`
	// MelangeDNS1 and MelangeDNS2, when set, are the dns1 and dns2 of a
	// Melange block created without them (Melange's configured DNS
	// servers; its sample: 8.8.8.8 and 8.8.4.4); unset, such a block has
	// none.
	MelangeDNS1 string `hcl:"melange_dns1,optional"`
	MelangeDNS2 string `hcl:"melange_dns2,optional"`

	// DNS: the authoritative server on DNSAddr ("" or "off": none).
	// DNSNameservers are the apex NS names of every zone (default
	// "localhost." for a dev node; set them in production).
	DNSNameservers []string `hcl:"dns_nameservers,optional"`
	// DNSHostmaster is the SOA contact, as hostmaster@example.net or
	// hostmaster.example.net (default hostmaster.<zone>).
	DNSHostmaster string `hcl:"dns_hostmaster,optional"`
	// DNSAllowTransfer lists the addresses or CIDRs that may AXFR/IXFR.
	DNSAllowTransfer []string `hcl:"dns_allow_transfer,optional"`
	// DNSNotify lists secondaries (host:port) sent a NOTIFY on each change.
	DNSNotify []string `hcl:"dns_notify,optional"`
	// DNSTSIGKeys maps TSIG key names to base64 secrets; when set, zone
	// transfers must be signed and NOTIFYs are.
	DNSTSIGKeys map[string]string `hcl:"dns_tsig_keys,optional"`
	// DNSUDPSockets is the number of UDP sockets the DNS server binds (0 or
	// 1: one, read by every core; more share the port with SO_REUSEPORT,
	// ~15 % more queries a second on 2 cores, docs/benchmarks.md, but any
	// process of the same user may then bind the port too).
	DNSUDPSockets int `hcl:"dns_udp_sockets,optional"`
	// DNSTCPConns is the most TCP connections the DNS server keeps open at
	// once (0: dns.DefaultTCPConns, 1,000); at the bound it accepts no more
	// until one closes.
	DNSTCPConns int `hcl:"dns_tcp_conns,optional"`

	// AgentHeartbeat is the heartbeat interval agents are told to use
	// (default 10s); an agent silent for AgentDownAfter (default 3
	// intervals) is marked down.
	AgentHeartbeat Duration `hcl:"agent_heartbeat,optional"`
	AgentDownAfter Duration `hcl:"agent_down_after,optional"`

	// Placement overrides factors of the CloudCIX VM placement score
	// (cloudcix-facts §6.1); absent attributes keep CloudCIX's values.
	Placement *PlacementConfig `hcl:"placement,block"`

	// BodyTimeout is how long a client may take to send a request body
	// (default 30s; an authorised snapshot upload only has to keep moving:
	// no more than this between two reads; tests shorten it).
	BodyTimeout time.Duration

	// PurgeInterval is how often the leader looks for released IP addresses
	// past KeepDeallocatedIPsFor (default 1m; tests shorten it).
	PurgeInterval time.Duration
}

// PlacementConfig is the placement block: a server offers new VMs
// ceil((ram − ram_reserve_gb) × ram_factor) GB of RAM,
// ceil((gb − disk_reserve_gb) × disk_factor) GB of disk and
// ceil(cores × cpu_oversubscription × cpu_factor) vCPUs.
type PlacementConfig struct {
	CPUOversubscription *int     `hcl:"cpu_oversubscription,optional"`
	RAMReserveGB        *int     `hcl:"ram_reserve_gb,optional"`
	DiskReserveGB       *int     `hcl:"disk_reserve_gb,optional"`
	RAMFactor           *float64 `hcl:"ram_factor,optional"`
	DiskFactor          *float64 `hcl:"disk_factor,optional"`
	CPUFactor           *float64 `hcl:"cpu_factor,optional"`
}

// Factors returns the placement factors: the defaults with the block's
// attributes applied.
func (c *Config) Factors() wire.PlacementFactors {
	f := wire.DefaultPlacement
	if p := c.Placement; p != nil {
		for _, v := range []struct {
			dst *int
			src *int
		}{{&f.CPUOversubscription, p.CPUOversubscription}, {&f.RAMReserveGB, p.RAMReserveGB}, {&f.DiskReserveGB, p.DiskReserveGB}} {
			if v.src != nil {
				*v.dst = *v.src
			}
		}
		for _, v := range []struct {
			dst *float64
			src *float64
		}{{&f.RAMFactor, p.RAMFactor}, {&f.DiskFactor, p.DiskFactor}, {&f.CPUFactor, p.CPUFactor}} {
			if v.src != nil {
				*v.dst = *v.src
			}
		}
	}
	return f
}

// Duration is a time.Duration written as "500ms" in HCL and on flags.
type Duration string

// D parses the duration; an empty string is 0.
func (d Duration) D() time.Duration {
	v, _ := time.ParseDuration(string(d))
	return v
}

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	if _, err := time.ParseDuration(s); err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 500ms, 5m): %w", s, err)
	}
	*d = Duration(s)
	return nil
}

func (d *Duration) String() string { return string(*d) }

// coalesceLinger is CommitLinger for cluster.Config: "" is the cluster's
// default (0 there), as for the other durations; an explicit 0 turns the
// linger off (negative there).
func (c *Config) coalesceLinger() time.Duration {
	d := c.CommitLinger.D()
	if c.CommitLinger != "" && d <= 0 {
		return -1
	}
	return d
}

// advertiseHTTP is the default advertise_http: scheme://<listen>, where
// listen is the HTTP listener's address. A listener on every address
// (0.0.0.0, :: or no host) has no address peers could dial, so then the
// raft address's host, which must be routable, goes with the HTTP port, and
// derived is true.
func advertiseHTTP(scheme, listen, raftAddr string) (url string, derived bool) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + "://" + listen, false
	}
	if ip, err := netip.ParseAddr(host); host != "" && (err != nil || !ip.IsUnspecified()) {
		return scheme + "://" + listen, false
	}
	raftHost, _, err := net.SplitHostPort(raftAddr)
	if err != nil || raftHost == "" {
		return scheme + "://" + listen, false
	}
	return scheme + "://" + net.JoinHostPort(raftHost, port), true
}

// MinRaftSnapshotInterval is the shortest raft_snapshot_interval: raft
// looks at the snapshot policy that often, and a snapshot writes the whole
// state.
const MinRaftSnapshotInterval = 5 * time.Second

// hclName is the config file attribute of a flag name.
func hclName(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// raftSnapshotPolicy is the snapshot policy for cluster.Config: 0 where
// unset (the cluster's defaults).
func (c *Config) raftSnapshotPolicy() (threshold, trailing uint64, interval time.Duration) {
	count := func(p *int) uint64 {
		if p == nil || *p < 1 {
			return 0
		}
		return uint64(*p)
	}
	return count(c.RaftSnapshotThreshold), count(c.RaftTrailingLogs), c.RaftSnapshotInterval.D()
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		HTTPAddr: "127.0.0.1:8080", RaftAddr: "127.0.0.1:8300", DNSAddr: "127.0.0.1:8053",
		LogLevel: "info", DeadServerCleanup: "5m", KeepDeallocatedIPsFor: "48h",
		// The election timeout and leader lease follow the heartbeat
		// timeout unless set (cluster.Timeouts).
		HeartbeatTimeout: "500ms", CommitLinger: "5ms",
	}
}

// LoadFile reads an HCL config file over cfg: attributes present in the file
// replace cfg's values. A mistake is named by its place in the file
// (path:line,column): every one the HCL decoder finds (an unknown attribute,
// a value of the wrong type), each on a line of its own, and a duration
// attribute whose value does not parse.
func LoadFile(path string, cfg *Config) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fileCfg := *cfg
	if err := hclsimple.Decode(path, src, nil, &fileCfg); err != nil {
		var diags hcl.Diagnostics
		if !errors.As(err, &diags) {
			return err
		}
		f, _ := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
		var body hcl.Body
		if f != nil {
			body = f.Body
		}
		return hcldiag.Error(diags, body)
	}
	if err := fileDurations(path, src, &fileCfg); err != nil {
		return err
	}
	*cfg = fileCfg
	return nil
}

// fileDurations checks the duration attributes the file at path (src) sets
// in c, its decoded values, naming each that does not parse by its place in
// the file. "" is the default, as on the command line.
func fileDurations(path string, src []byte, c *Config) error {
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	body, ok := f.Body.(*hclsyntax.Body)
	if diags.HasErrors() || !ok {
		return nil // decoded already; not HCL native syntax (JSON)
	}
	var errs []error
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		d, ok := v.Field(i).Interface().(Duration)
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("hcl"), ",")
		attr := body.Attributes[name]
		if !ok || attr == nil || d == "" {
			continue
		}
		if _, err := time.ParseDuration(string(d)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %q is not a duration (e.g. 500ms, 5m)", attr.Expr.Range(), name, d))
		}
	}
	return errors.Join(errs...)
}

// MinClusterTokenLen is the fewest bytes a cluster token may have.
const MinClusterTokenLen = 16

// checkClusterToken refuses a cluster token that is short or still the
// placeholder of configs/controller.hcl: the token is the one credential
// that adds a voter, and a voter receives the whole state (VPN keys
// included). "" (no token: the node accepts no join) is allowed.
func checkClusterToken(tok string) error {
	const how = "make one with: head -c32 /dev/urandom | base64"
	switch {
	case tok == "":
		return nil
	case strings.Contains(strings.ToUpper(tok), "REPLACE"):
		return errors.New("cluster_token (-cluster-token, $" + EnvClusterToken + ") is still the example's placeholder; " + how)
	case len(tok) < MinClusterTokenLen:
		return fmt.Errorf("cluster_token (-cluster-token, $%s) has %d bytes, want at least %d random ones; %s", EnvClusterToken, len(tok), MinClusterTokenLen, how)
	}
	return nil
}

// Finish applies -dev and the derived defaults, and validates.
func (c *Config) Finish() error {
	if c.Dev {
		c.Bootstrap = true
		if c.NodeID == "" {
			c.NodeID = "dev"
		}
		if c.DataDir == "" {
			c.DataDir = "./data"
		}
	}
	if c.NodeID == "" {
		if h, err := os.Hostname(); err == nil {
			c.NodeID = h
		}
	}
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("-data-dir is required (or use -dev)"))
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		errs = append(errs, fmt.Errorf("-log-level (log_level) %q: want trace, debug, info, warn or error", c.LogLevel))
	}
	addrs := map[string]string{"-http-addr": c.HTTPAddr, "-raft-addr": c.RaftAddr}
	if c.dnsEnabled() {
		addrs["-dns-addr"] = c.DNSAddr
	}
	for name, addr := range addrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", name, addr, err))
		}
	}
	for name, d := range map[string]Duration{"heartbeat_timeout": c.HeartbeatTimeout, "election_timeout": c.ElectionTimeout,
		"leader_lease_timeout": c.LeaderLeaseTimeout, "commit_linger": c.CommitLinger, "agent_heartbeat": c.AgentHeartbeat, "agent_down_after": c.AgentDownAfter, "dead_server_cleanup": c.DeadServerCleanup, "keep_deallocated_ips_for": c.KeepDeallocatedIPsFor} {
		if d != "" {
			if _, err := time.ParseDuration(string(d)); err != nil {
				errs = append(errs, fmt.Errorf("%s %q is not a duration", name, d))
			}
		}
	}
	if hb, down := c.AgentHeartbeat.D(), c.AgentDownAfter.D(); hb < 0 || down < 0 {
		errs = append(errs, errors.New("agent_heartbeat and agent_down_after must be positive"))
	} else if c.agentDownAfter() < 2*c.agentHeartbeat() {
		// Shorter, each agent is judged down between two heartbeats
		// and up at the next: two raft writes per agent and interval.
		errs = append(errs, fmt.Errorf("agent_down_after %s must be at least twice agent_heartbeat %s (default three times)", c.agentDownAfter(), c.agentHeartbeat()))
	}
	if _, _, _, err := cluster.Timeouts(c.HeartbeatTimeout.D(), c.ElectionTimeout.D(), c.LeaderLeaseTimeout.D()); err != nil {
		errs = append(errs, fmt.Errorf("heartbeat_timeout, election_timeout, leader_lease_timeout: %w", err))
	}
	for _, v := range []struct {
		name string
		n    *int
	}{{"raft-snapshot-threshold", c.RaftSnapshotThreshold}, {"raft-trailing-logs", c.RaftTrailingLogs}} {
		if v.n != nil && *v.n < 1 {
			errs = append(errs, fmt.Errorf("-%s (%s) must be at least 1, got %d", v.name, hclName(v.name), *v.n))
		}
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"dns-tcp-conns", c.DNSTCPConns}, {"dns-udp-sockets", c.DNSUDPSockets}} {
		if v.n < 0 {
			errs = append(errs, fmt.Errorf("-%s (%s) must not be negative, got %d", v.name, hclName(v.name), v.n))
		}
	}
	if c.RaftSnapshotInterval != "" {
		if d, err := time.ParseDuration(string(c.RaftSnapshotInterval)); err != nil {
			errs = append(errs, fmt.Errorf("-raft-snapshot-interval (raft_snapshot_interval) %q is not a duration", c.RaftSnapshotInterval))
		} else if d < MinRaftSnapshotInterval {
			errs = append(errs, fmt.Errorf("-raft-snapshot-interval (raft_snapshot_interval) must be at least %s, got %s", MinRaftSnapshotInterval, c.RaftSnapshotInterval))
		}
	}
	apex := c.apexConfig()
	for _, n := range apex.ns {
		if _, ok := mdns.IsDomainName(n); !ok || n == "." {
			errs = append(errs, fmt.Errorf("dns_nameservers: %q is not a host name", n))
		}
	}
	if apex.hostmaster != "" {
		if _, ok := mdns.IsDomainName(apex.hostmaster); !ok || apex.hostmaster == "." {
			errs = append(errs, fmt.Errorf("dns_hostmaster %q is not a mailbox (hostmaster@example.net)", c.DNSHostmaster))
		}
	}
	if c.MelangeDefaultCIDR != "" {
		if _, err := netip.ParsePrefix(c.MelangeDefaultCIDR); err != nil {
			errs = append(errs, fmt.Errorf("melange_default_cidr %q is not a CIDR", c.MelangeDefaultCIDR))
		}
	}
	for name, v := range map[string]string{"melange_dns1": c.MelangeDNS1, "melange_dns2": c.MelangeDNS2} {
		if v == "" {
			continue
		}
		if _, err := netip.ParseAddr(v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not an IP address", name, v))
		}
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		errs = append(errs, errors.New("http_tls_cert and http_tls_key go together"))
	}
	if (c.RaftTLSCert != "" || c.RaftTLSKey != "" || c.RaftTLSCA != "") && (c.RaftTLSCert == "" || c.RaftTLSKey == "" || c.RaftTLSCA == "") {
		errs = append(errs, errors.New("raft_tls_cert, raft_tls_key and raft_tls_ca go together"))
	}
	if f := c.Factors(); f.CPUOversubscription < 1 || f.RAMReserveGB < 0 || f.DiskReserveGB < 0 ||
		!(f.RAMFactor > 0 && f.RAMFactor <= 1) || !(f.DiskFactor > 0 && f.DiskFactor <= 1) || !(f.CPUFactor > 0 && f.CPUFactor <= 1) {
		errs = append(errs, errors.New("placement: cpu_oversubscription ≥ 1, reserves ≥ 0 and factors in (0, 1]"))
	}
	if c.Join != "" && c.Bootstrap && !c.Dev {
		errs = append(errs, errors.New("-join and -bootstrap exclude each other: bootstrap one node, join the others"))
	}
	if err := checkClusterToken(c.ClusterToken); err != nil {
		errs = append(errs, err)
	}
	// -join without the cluster token is not refused here: a node whose
	// data dir holds raft state ignores -join and restarts as the member it
	// was. New refuses it once it knows the node would join
	// (ErrJoinNeedsClusterToken); Check, where no raft store exists yet.
	return errors.Join(errs...)
}

// ErrJoinNeedsClusterToken is the error of New for a node that would ask
// to join a cluster (-join, and a data dir without raft state, or a raft
// address the cluster no longer knows it by) without the cluster token,
// which every member refuses: it would retry, refused, for ever. Only the
// operator can fix it: exit status ExitConfig.
var ErrJoinNeedsClusterToken = errors.New("-join needs the cluster token (cluster_token, -cluster-token or $" + EnvClusterToken + "), the same secret as the cluster's nodes")

// hasRaftStore says whether dataDir holds a raft store, so that a node
// started on it may hold raft state and then ignore -join. It only looks
// for the file (raft.db is locked while a node runs on the dir): a store
// that holds nothing yet (a start refused, or a join that never succeeded)
// counts too, and New tells those apart.
func hasRaftStore(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "raft", "raft.db"))
	return err == nil
}
