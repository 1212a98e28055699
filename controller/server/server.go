// Package server wires one controller node together: state store, FSM,
// raft cluster, HTTP API with its services, metrics, and the lifecycle
// (bootstrap of a new cluster, joining an existing one, shutdown).
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/agent"
	"github.com/regentcloud/regent/controller/api/iaas"
	"github.com/regentcloud/regent/controller/api/melange"
	"github.com/regentcloud/regent/controller/api/membership"
	"github.com/regentcloud/regent/controller/cluster"
	"github.com/regentcloud/regent/controller/dns"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/robot"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/atomicfile"
	"github.com/regentcloud/regent/pkg/auditlog"
	"github.com/regentcloud/regent/pkg/logx"
	"github.com/regentcloud/regent/pkg/tlsfiles"
)

// RootTokenFile is the file, in the data dir, that holds the root token
// written at bootstrap (mode 0600).
const RootTokenFile = "root.token"

// Server is one running controller node.
type Server struct {
	cfg      Config
	given    Config // cfg as given, for Reload to compare (cfg has derived values)
	tls      *nodeTLS
	reload   *reloader
	audit    *auditlog.Writer // nil: no audit trail
	log      hclog.Logger
	out      io.Writer
	store    *state.Store
	cluster  *cluster.Cluster
	api      *api.API
	registry *prometheus.Registry
	httpLn   net.Listener
	http     *http.Server
	dns      *dns.Server

	heartbeats *robot.Heartbeats
	httpURL    string
	// fatal receives an error the node cannot recover from while running
	// (the cluster refused the join for a wrong cluster token).
	fatal chan error

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a node: raft, the HTTP listener, and the background loops that
// bootstrap or join. out receives the one-time banner (root token).
func New(cfg Config, out io.Writer) (*Server, error) {
	if err := cfg.Finish(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	logOut := cfg.LogOutput
	if logOut == nil {
		logOut = os.Stderr
	}
	log := logx.Durations(hclog.New(&hclog.LoggerOptions{Name: "regent", Level: hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON, Output: logOut, IncludeLocation: false}))
	s := &Server{cfg: cfg, given: cfg, log: log, out: out, registry: prometheus.NewRegistry(), fatal: make(chan error, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo())
	if err := cluster.InstallMetrics(s.registry); err != nil {
		log.Warn("raft metrics unavailable", "error", err)
	}

	var err error
	s.tls, err = loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	s.registry.MustRegister(s.tls)
	s.reload = newReloader(s.registry, cfg)

	s.store = state.New()
	machine := fsm.New(s.store, log, s.registry)
	snapThreshold, trailingLogs, snapInterval := cfg.raftSnapshotPolicy()
	s.cluster, err = cluster.New(cluster.Config{
		NodeID: cfg.NodeID, DataDir: cfg.DataDir, RaftAddr: cfg.RaftAddr, Bootstrap: cfg.Bootstrap, TLS: s.tls.raftConfig(),
		HeartbeatTimeout: cfg.HeartbeatTimeout.D(), ElectionTimeout: cfg.ElectionTimeout.D(),
		LeaderLeaseTimeout: cfg.LeaderLeaseTimeout.D(), DeadServerCleanup: cfg.DeadServerCleanup.D(), Logger: log,
		SnapshotThreshold: snapThreshold, SnapshotInterval: snapInterval, TrailingLogs: trailingLogs,
		Coalesce: fsm.Coalescer{}, CoalesceLinger: cfg.coalesceLinger(), Registerer: s.registry,
		TermSaveFailed: func(err error) {
			// raft would panic (a stack trace and Go's exit status 2): stop
			// with a message and status 1, so the node comes back by itself
			// (systemd restarts it) once its disk can be written.
			log.Error("cannot save the raft term to the raft store (a full or unwritable data dir?): stopping. "+
				"The data dir is intact: make room or fix it, then start the node again (systemd restarts it)", "error", err)
			os.Exit(1)
		},
		StateConflict: func(err error) {
			// The data dir is another cluster's: the node stops before it
			// serves that state as this cluster's, with exit status
			// ExitConfig (only the operator can fix it; systemd does not
			// restart).
			log.Error("stopping: the raft state in the data dir does not belong to this cluster", "error", err)
			os.Exit(ExitConfig)
		},
	}, machine)
	if err != nil {
		return nil, err
	}
	// After cluster.New: this node holds the data dir's raft store. A
	// second controller started on it (the same service twice) is told so
	// above, not that its HTTP port is in use.
	tightenRootToken(cfg.DataDir, log)
	// -join is used only by a node with no raft state, or one the cluster
	// knows at an old raft address (it asks to be taken at the new one);
	// a restart on the data dir ignores it. Only a node that joins needs
	// the cluster token for it: the cluster refuses a join without it.
	oldAddr := s.knownRaftAddr()
	joins := cfg.Join != "" && (s.cluster.LastIndex() == 0 || oldAddr != "")
	if joins && cfg.ClusterToken == "" {
		s.cluster.Shutdown()
		why := fmt.Sprintf("data_dir %s holds no raft state, so this node joins the cluster at %s", cfg.DataDir, cfg.Join)
		if oldAddr != "" {
			why = fmt.Sprintf("the cluster knows this node at raft address %s, so it asks the cluster at %s to take its new one, %s", oldAddr, cfg.Join, s.cluster.Addr())
		}
		return nil, fmt.Errorf("%w: %s", ErrJoinNeedsClusterToken, why)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		s.cluster.Shutdown()
		return nil, fmt.Errorf("http listen: %w", err)
	}
	s.httpLn = ln
	scheme := "http"
	if cfg.HTTPTLSCert != "" {
		scheme = "https"
	}
	s.httpURL = fmt.Sprintf("%s://%s", scheme, ln.Addr().String())
	if cfg.AdvertiseHTTP == "" {
		adv, derived := advertiseHTTP(scheme, ln.Addr().String(), s.cluster.Addr())
		if derived {
			log.Info("http_addr listens on every address; advertising the raft address's host with the HTTP port to peers (set advertise_http to choose)",
				"http_addr", cfg.HTTPAddr, "advertise_http", adv)
		}
		cfg.AdvertiseHTTP = adv
		s.cfg.AdvertiseHTTP = adv
	}
	s.registerGauges()
	s.registry.MustRegister(newWorkQueueCollector(s.store))
	// Series that name tenants' networks: /metrics shows them to global
	// users and robots only (api.Config.TenantMetrics).
	tenantMetrics := prometheus.NewRegistry()
	tenantMetrics.MustRegister(newIPAMCollector(s.store))

	openapiJSON, err := OpenAPIJSON()
	if err != nil {
		s.cluster.Shutdown()
		ln.Close()
		return nil, err
	}
	if cfg.AuditLog != "" {
		if s.audit, err = auditlog.Open(cfg.AuditLog); err != nil {
			s.cluster.Shutdown()
			ln.Close()
			return nil, fmt.Errorf("audit_log: %w", err)
		}
		audit := s.audit
		audit.OnChange = func(err error) {
			if err != nil {
				log.Error("cannot write the audit trail: its lines are being lost (regent_audit_lines_total{result=\"failed\"})", "audit_log", audit.Path(), "error", err)
			} else {
				log.Info("the audit trail is written again", "audit_log", audit.Path())
			}
		}
	}
	factors := cfg.Factors()
	s.api = api.New(api.Config{ClusterToken: cfg.ClusterToken, OpenAPI: openapiJSON, ForwardTLS: s.tls.peersConfig(), Audit: s.audit, Placement: &factors,
		BodyTimeout: cfg.BodyTimeout, TenantMetrics: tenantMetrics, Health: s.nodeHealth},
		s.cluster, s.store, log, s.registry)
	s.heartbeats = robot.NewHeartbeats(cfg.agentDownAfter(), s.cluster.Term, s.cluster.IsLeader)
	s.heartbeats.Restores = s.store.Restores // a restore replaces what its memory is about
	s.registry.MustRegister(newAgentHealthCollector(s.store, s.heartbeats))
	membership.Register(s.api)
	iaas.Register(s.api, iaas.Options{AgentHealth: s.heartbeats, AgentHolders: s.heartbeats})
	melange.Register(s.api, melange.Options{DefaultCIDR: cfg.MelangeDefaultCIDR, DNS1: cfg.MelangeDNS1, DNS2: cfg.MelangeDNS2})
	agent.Register(s.api, agent.Config{Heartbeats: s.heartbeats, HeartbeatInterval: cfg.agentHeartbeat(), Logger: log})

	if cfg.dnsEnabled() {
		dcfg, err := cfg.dnsConfig(log)
		if err == nil {
			dcfg.Registerer = s.registry
			s.dns, err = dns.New(dcfg, newDNSSource(s.store, cfg.apexConfig(), log))
		}
		if err == nil {
			err = s.dns.Start(s.ctx)
		}
		if err != nil {
			// The dns package's errors say "dns: ..." and dnsConfig's
			// name their dns_* setting: no prefix of our own.
			s.cluster.Shutdown()
			ln.Close()
			s.closeAudit()
			return nil, err
		}
	}

	s.http = &http.Server{Handler: s.api.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		// TLS 1.2 at least, said here rather than left to the runtime's
		// default (which GODEBUG tls10server=1 lowers to TLS 1.0).
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if s.tls.http != nil {
		// Each handshake presents the certificate of the last Reload.
		s.http.TLSConfig = s.tls.http.ServerConfig(s.http.TLSConfig)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		var err error
		if s.tls.http != nil {
			err = s.http.ServeTLS(ln, "", "")
		} else {
			err = s.http.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.leaderLoop()
	}()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.purgeLoop()
	}()
	go func() {
		defer s.wg.Done()
		s.heartbeatLoop()
	}()
	switch {
	case joins:
		if oldAddr != "" {
			// The cluster still knows this node at its old address, so no
			// leader will ever reach it there: ask it to take the new
			// one (it is accepted once the leader sees the old one fail).
			log.Warn("this node's raft address changed; asking the cluster to update it",
				"old", oldAddr, "new", s.cluster.Addr(), "join", cfg.Join)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.joinLoop()
		}()
	case oldAddr != "":
		log.Error("this node's raft address changed, but the cluster knows it at the old one and no leader will reach it: "+
			"restart it with -join <any member's HTTP address>, or run `regent-controller join` for it",
			"old", oldAddr, "new", s.cluster.Addr())
	case cfg.Join != "":
		log.Warn("existing raft state found; not joining: -join is only used by a node with an empty data dir, "+
			"this one restarts as the member it was. If it was removed from the cluster, add it back with "+
			"`regent-controller join`; to make it a new node, stop it and empty its data dir",
			"join", cfg.Join, "data_dir", cfg.DataDir)
	}
	if cfg.ClusterToken == "" {
		servers, err := s.cluster.Servers()
		if cfg.Join != "" || (err == nil && len(servers) > 1) {
			// A member of a cluster of several runs without the token, but
			// the others depend on it: joins go to the leader, which
			// checks them against its own token, and forwarded requests
			// carry a proof keyed by it for the audit trail.
			log.Warn("no cluster_token: while this node leads, the cluster refuses every join (a new or replaced node, " +
				"`regent-controller join`), and the audit trail drops the client address of requests forwarded to or by it. " +
				"Set cluster_token (-cluster-token or $" + EnvClusterToken + ") to the cluster's token, the same on every node")
		}
	}
	log.Info("controller started", "version", wire.Version, "revision", wire.Revision(), "node_id", cfg.NodeID, "http", s.httpURL, "raft", s.cluster.Addr(), "dns", s.DNSAddr(), "data_dir", cfg.DataDir)
	return s, nil
}

// Fatal delivers at most one error after which running on is pointless
// because only a configuration change can fix it: the cluster refused this
// node's join with 403 (wrong or missing cluster token). The node keeps
// running until Shutdown; the caller stops it and exits with status
// ExitConfig.
func (s *Server) Fatal() <-chan error { return s.fatal }

// Logger is the node's logger (go-hclog, JSON with log_json).
func (s *Server) Logger() hclog.Logger { return s.log }

// Config is the node's effective configuration.
func (s *Server) Config() Config { return s.cfg }

// URL is the base URL of the node's HTTP API.
func (s *Server) URL() string { return s.httpURL }

// DNSAddr is the address the DNS server is bound to ("" when off).
func (s *Server) DNSAddr() string {
	if s.dns == nil {
		return ""
	}
	return s.dns.Addr()
}

// Cluster exposes the raft layer (tests, operator tooling).
func (s *Server) Cluster() *cluster.Cluster { return s.cluster }

// Store exposes the state store (tests).
func (s *Server) Store() *state.Store { return s.store }

// API exposes the HTTP API (tests: the permission table).
func (s *Server) API() *api.API { return s.api }

// Shutdown stops the node: HTTP first (in-flight requests finish), then raft.
func (s *Server) Shutdown(ctx context.Context) error {
	s.handOver(ctx)
	s.cancel()
	s.api.Drain() // long polls answer now: the HTTP server drains at once
	err := s.http.Shutdown(ctx)
	if s.dns != nil {
		err = errors.Join(err, s.dns.Shutdown(ctx))
	}
	s.wg.Wait()
	err = errors.Join(err, s.closeAudit())
	return errors.Join(err, s.cluster.Shutdown())
}

// auditCloseTimeout is how long a stopping node waits for the audit trail's
// last lines, on its own (shutdown's time may be spent): a write that
// hangs (a stuck network file system) must not stop the node stopping.
const auditCloseTimeout = 5 * time.Second

func (s *Server) closeAudit() error {
	if s.audit == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
	defer cancel()
	return s.audit.Close(ctx)
}

// handOver hands leadership to another voter before a leader stops, so the
// cluster has a new leader at once instead of after an election timeout,
// and the writes arriving meanwhile wait and go to it instead of failing.
// A single node, a follower, or a failed transfer just go on stopping.
func (s *Server) handOver(ctx context.Context) {
	if !s.cluster.IsLeader() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	id, err := s.cluster.TransferLeadership(ctx, "")
	switch {
	case errors.Is(err, cluster.ErrNoOtherVoter):
	case err != nil:
		s.log.Warn("could not hand over leadership before stopping; the others will elect a leader", "error", err)
	default:
		s.log.Info("handed over leadership before stopping", "leader", id, "took", time.Since(start).Round(time.Millisecond))
	}
}

// commitStallUnhealthy is how long a leader's commit index may stand still
// behind its log before its /healthz says so: half the commit wait, after
// which the writes waiting in those entries get 503.
const commitStallUnhealthy = cluster.DefaultCommitWait / 2

// nodeHealth is /healthz's condition beyond leader and membership:
//   - a node that cannot write its raft store takes no part in commits
//     and falls behind, so it is not ready (a leader steps down at its
//     first failed write);
//   - a leader whose followers answer but cannot store its entries (full
//     disks on a majority) neither commits nor steps down: it is not
//     ready once its commit index has stood still behind its log for
//     commitStallUnhealthy;
//   - a node whose raft address is not the one the cluster knows it by
//     hears from no leader.
func (s *Server) nodeHealth() error {
	if since, err := s.cluster.StorageError(); err != nil {
		return fmt.Errorf("cannot write the raft store for %s (a full or unwritable data dir?): %v",
			time.Since(since).Round(time.Second), err)
	}
	if d, commit := s.cluster.CommitStalled(); d >= commitStallUnhealthy {
		return fmt.Errorf("this leader has committed nothing for %s: the entries after index %d wait for a majority of the voters "+
			"to store them (are the followers' data dirs full or unwritable? see their /healthz)", d.Round(time.Second), commit)
	}
	if old := s.knownRaftAddr(); old != "" && !s.cluster.IsLeader() {
		return fmt.Errorf("the cluster knows this node at raft address %s, not %s: join it again (-join, or regent-controller join) to update it",
			old, s.cluster.Addr())
	}
	return nil
}

// knownRaftAddr returns the address the raft configuration, as this node
// knows it, has for this node when that is not the address it listens
// on (it was restarted with another -raft-addr); "" otherwise, and for the
// only server of a configuration, which elects itself whatever its
// address.
func (s *Server) knownRaftAddr() string {
	servers, err := s.cluster.Servers()
	if err != nil || len(servers) < 2 {
		return ""
	}
	for _, sv := range servers {
		if sv.ID == s.cfg.NodeID && sv.Address != s.cluster.Addr() {
			return sv.Address
		}
	}
	return ""
}

func (s *Server) registerGauges() {
	s.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "regent_raft_leader", Help: "1 if this node is the raft leader."},
			func() float64 {
				if s.cluster.IsLeader() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "regent_raft_applied_index", Help: "Last raft index applied to the state store."},
			func() float64 { return float64(s.cluster.AppliedIndex()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "regent_raft_last_contact_seconds", Help: "Time since this follower last heard from the leader (0 on the leader)."},
			func() float64 { return s.cluster.LastContact().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "regent_raft_store_failing_seconds",
			Help: "How long this node's writes to its raft store (raft.db) have been failing (a full or unwritable data dir); 0 while they succeed."},
			func() float64 {
				if since, err := s.cluster.StorageError(); err != nil {
					return time.Since(since).Seconds()
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "regent_raft_commit_stalled_seconds",
			Help: "On the leader, how long entries have waited for a majority of the voters to store them while the commit index stood still; 0 while it commits and on followers."},
			func() float64 {
				d, _ := s.cluster.CommitStalled()
				return d.Seconds()
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "regent_cluster_dead_servers_removed_total",
			Help: "Servers this node removed from the raft configuration by dead server cleanup while it led."},
			func() float64 { return float64(s.cluster.DeadServersRemoved()) }),
	)
}

// leaderLoop runs the leader's duties each time this node gains leadership:
// record its own HTTP address for forwarding, and bootstrap a new cluster.
func (s *Server) leaderLoop() {
	for {
		changed := s.cluster.LeaderChangeCh()
		if s.cluster.IsLeader() {
			if err := s.establishLeadership(); err != nil && s.ctx.Err() == nil {
				s.log.Warn("leader duties failed; retrying", "error", err)
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(500 * time.Millisecond):
				}
				continue
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-changed:
		}
	}
}

func (s *Server) establishLeadership() error {
	// The Barrier makes this node ready for reads (Cluster.ReadyForReads).
	// It waits as long as it takes (a stall of commits, or this node
	// stopping or losing leadership, ends it): one Barrier per term, not
	// one per retry of the duties after it.
	if !s.cluster.ReadyForReads() {
		if err := s.cluster.Barrier(s.ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	rt := s.store.Read()
	self := &state.Node{ID: s.cfg.NodeID, RaftAddr: s.cluster.Addr(), HTTPAddr: s.cfg.AdvertiseHTTP}
	if n, ok := rt.Node(self.ID); !ok || *n != *self {
		if _, err := s.apply(ctx, fsm.NodeUpsertType, self); err != nil {
			return err
		}
	}
	if err := s.writeDNSApex(ctx, rt); err != nil {
		return err
	}
	if _, ok := rt.Member(wire.GlobalMemberID); !ok && s.cfg.Bootstrap {
		return s.bootstrap(ctx)
	}
	return nil
}

// writeDNSApex makes the zone apex settings this node configures (the
// dns_nameservers and dns_hostmaster it was given) the cluster's, when they
// differ: every node serves the replicated settings, so that all serve the
// same zone content at a serial, and the change raises every zone's serial
// so secondaries transfer it.
func (s *Server) writeDNSApex(ctx context.Context, rt *state.ReadTxn) error {
	apex := s.cfg.apexConfig()
	if !apex.given() {
		return nil
	}
	cur, _ := rt.DNSSettings()
	ns, hm := apex.merge(cur)
	if cur.SameApex(ns, hm) {
		return nil
	}
	if _, err := s.apply(ctx, fsm.DNSSettingsType, &state.DNSSettings{NS: ns, Hostmaster: hm, SetBy: s.cfg.NodeID}); err != nil {
		return fmt.Errorf("dns apex settings: %w", err)
	}
	s.log.Info("dns: zone apex settings set from this node's configuration", "nameservers", strings.Join(ns, ","), "hostmaster", hm)
	return nil
}

// purgeLoop makes the leader purge released IP addresses once they have
// been kept for keep_deallocated_ips_for, and the VPNs that virtual routers
// closed before state.Rules1 kept. The cutoff is computed here, on the
// leader, and travels in the command: Apply never reads the clock.
func (s *Server) purgeLoop() {
	every := s.cfg.PurgeInterval
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if !s.cluster.IsLeader() {
			continue
		}
		if s.store.Read().ClosedVPNsDue() {
			// Routers closed before state.Rules1 kept their VPNs
			// (pre-shared keys included): they go now.
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			res, err := s.apply(ctx, fsm.ClosedVPNsPurgeType, struct{}{})
			cancel()
			if err != nil {
				s.log.Warn("purge of the VPNs of closed virtual routers failed", "error", err)
			} else if r, ok := res.(*fsm.ClosedVPNsPurged); ok {
				s.log.Info("deleted the VPNs of closed virtual routers", "count", r.VPNs)
			}
		}
		cutoff := time.Now().Add(-s.cfg.KeepDeallocatedIPsFor.D())
		if !s.store.Read().IPPurgeDue(cutoff) {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		res, err := s.apply(ctx, fsm.IPAddressPurgeType, fsm.IPPurgePayload{Cutoff: cutoff.UTC()})
		cancel()
		if err != nil {
			s.log.Warn("purge of released IP addresses failed", "error", err)
			continue
		}
		if r, ok := res.(*wire.IPPurgeResult); ok {
			s.log.Info("purged released IP addresses", "count", r.Purged, "released_before", cutoff.UTC().Format(time.RFC3339))
		}
	}
}

func (s *Server) apply(ctx context.Context, t fsm.MessageType, payload any) (any, error) {
	cmd, err := fsm.NewCommand(t, time.Now(), fsm.Actor{}, payload)
	if err != nil {
		return nil, err
	}
	data, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	resp, _, err := s.cluster.Apply(ctx, data)
	if err != nil {
		return nil, err
	}
	r := resp.(fsm.Result)
	return r.Value, r.Err
}

// tightenRootToken makes root.token owner-only when it is readable by
// group or others (copied, or written by hand; the node writes it 0600),
// and says so.
func tightenRootToken(dataDir string, log hclog.Logger) {
	path := filepath.Join(dataDir, RootTokenFile)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	if err := os.Chmod(path, fi.Mode().Perm()&^0o077); err != nil {
		log.Warn("the root token file is readable by group or others and cannot be made owner-only: fix it by hand", "path", path, "error", err)
		return
	}
	log.Warn("the root token file was readable by group or others: made it owner-only", "path", path, "was", fi.Mode().Perm().String())
}

// bootstrap creates the global member, the root user and the root token,
// writes the token to the data dir and prints it once.
func (s *Server) bootstrap(ctx context.Context) error {
	rec, secret, err := membership.NewTokenRecord(wire.Token{Name: "root", Kind: wire.TokenKindUser})
	if err != nil {
		return err
	}
	// The token is on disk (synced) before the cluster knows it: once the
	// bootstrap commits, its secret cannot be lost, as it was when the
	// write after it failed (a full disk) or the process died in between,
	// leaving a cluster whose root token nobody had. If the bootstrap does
	// not commit, the next attempt writes its own token over this one.
	path := filepath.Join(s.cfg.DataDir, RootTokenFile)
	if err := atomicfile.Write(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("write root token: %w", err)
	}
	if _, err := s.apply(ctx, fsm.BootstrapType, fsm.BootstrapPayload{MemberName: "CIX", Username: "root", Token: rec}); err != nil {
		return err
	}
	s.log.Info("cluster bootstrapped; root token written", "path", path)
	if s.cfg.Dev {
		// A dev node's banner (regent-controller server -dev) shows the
		// token at every start, this one included: printed here too, it
		// came twice, the first time as "shown once".
		return nil
	}
	fmt.Fprintf(s.out, "\nRegent controller bootstrapped. Root token (shown once, saved in %s):\n\n    %s\n\n", path, secret)
	return nil
}

// Join retry backoff: the first retry after joinRetryMin, doubling up to
// joinRetryMax.
const (
	joinRetryMin = time.Second
	joinRetryMax = 15 * time.Second
)

// joinLoop asks an existing member to add this node, until it succeeds.
// Transient failures (no leader yet, member unreachable, a 409 while the
// leader still hears from an old server with this id) are retried with a
// backoff. A 403 (the cluster token is wrong or missing) cannot succeed
// until the configuration changes: it is logged and sent to Fatal.
func (s *Server) joinLoop() {
	body, _ := json.Marshal(wire.JoinRequest{NodeID: s.cfg.NodeID, RaftAddr: s.cluster.Addr(), HTTPAddr: s.cfg.AdvertiseHTTP})
	target := s.cfg.Join
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	client := &http.Client{Timeout: 15 * time.Second}
	if peers := s.tls.peersConfig(); peers != nil {
		client.Transport = &http.Transport{DialTLSContext: tlsfiles.DialTLS(&net.Dialer{Timeout: 10 * time.Second}, peers)}
	}
	wait := joinRetryMin
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequestWithContext(s.ctx, http.MethodPost, strings.TrimSuffix(target, "/")+"/v1/operator/join", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		// The token of the last reload: a rotation while this node still
		// retries must not get it refused.
		req.Header.Set("X-Regent-Cluster-Token", s.api.ClusterToken())
		resp, err := client.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.log.Info("joined cluster", "via", target)
				return
			}
			err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
			switch resp.StatusCode {
			case http.StatusForbidden:
				var e struct {
					ErrorCode string `json:"error_code"`
				}
				if json.Unmarshal(msg, &e) == nil && e.ErrorCode == "regent_operator_join_203" {
					s.log.Error("join refused: the member asked has no cluster token; not retrying", "via", target, "error", err)
					s.fatal <- fmt.Errorf("join refused by %s (%v): the cluster's nodes run without a cluster token; set the same cluster_token on them and on this node", target, err)
					return
				}
				s.log.Error("join refused: the cluster token is wrong or missing; not retrying", "via", target, "error", err)
				s.fatal <- fmt.Errorf("join refused by %s (%v): set cluster_token (-cluster-token or $%s) to the cluster's token", target, err, EnvClusterToken)
				return
			case http.StatusBadRequest:
				s.log.Error("join refused; fix the configuration", "via", target, "error", err)
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("join failed; retrying", "via", target, "attempt", attempt, "in", wait, "error", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, joinRetryMax)
	}
}

// OpenAPIJSON loads pkg/api/openapi.yaml, validates it and renders it as
// JSON, once per process (the document is compiled in; a test binary starts
// hundreds of nodes, and each load took 0.6 s under the race detector).
// Callers must not modify the result.
var OpenAPIJSON = sync.OnceValues(func() ([]byte, error) {
	doc, err := openapi3.NewLoader().LoadFromData(wire.OpenAPIYAML)
	if err == nil {
		err = doc.Validate(context.Background())
	}
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return json.Marshal(doc)
})

// WaitReady waits until the node has a leader and, on a bootstrapping node,
// the global member exists; it returns false if ctx ends first.
func (s *Server) WaitReady(ctx context.Context) bool {
	for {
		if id, _ := s.cluster.Leader(); id != "" {
			if !s.cfg.Bootstrap {
				return true
			}
			// A bootstrapping node is ready once the root token is on disk.
			_, err := os.Stat(filepath.Join(s.cfg.DataDir, RootTokenFile))
			if _, ok := s.store.Read().Member(wire.GlobalMemberID); ok && err == nil {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// heartbeatLoop is the leader's judge of agents: those that beat come up,
// those silent past the deadline go down (one raft write per change, none
// per heartbeat). A node that becomes leader forgets what it knew and
// gives every agent a full deadline first (robot.Heartbeats keys its
// memory on the raft term and the state's restores), and so does the
// leader after a snapshot restore.
func (s *Server) heartbeatLoop() {
	every := min(s.cfg.agentHeartbeat(), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if !s.cluster.IsLeader() {
			continue
		}
		change := s.heartbeats.Changes(s.store.Read(), time.Now())
		if change == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		_, err := s.apply(ctx, fsm.AgentStatusType, change)
		cancel()
		if err != nil {
			s.log.Warn("agent status update failed", "error", err)
			continue
		}
		s.log.Info("agent status changed", "servers", change.Servers, "routers", change.Routers)
	}
}

func (c *Config) agentHeartbeat() time.Duration {
	if d := c.AgentHeartbeat.D(); d > 0 {
		return d
	}
	return 10 * time.Second
}

func (c *Config) agentDownAfter() time.Duration {
	if d := c.AgentDownAfter.D(); d > 0 {
		return d
	}
	return 3 * c.agentHeartbeat()
}

// buildInfo is regent_build_info: 1, labelled with the release, revision
// and Go version of this binary, so that a rolling upgrade shows which
// node runs what (count by (version) (regent_build_info)).
func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "regent_build_info",
		Help: "Always 1; its labels are the controller's release, VCS revision and Go version."}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(wire.Version, wire.Revision(), runtime.Version()).Set(1)
	return g
}
