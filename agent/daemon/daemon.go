// Package daemon is regent-agent's main loop: it registers the host with
// the controller, heartbeats its capacity, long-polls its work and hands
// the virtual routers (network role) and the VMs (hypervisor role) to
// reconcile loops whose handlers drive each one through the ROBOT state
// machine with agent/netrouter and agent/vm. Everything hangs
// off a Daemon; Run owns every goroutine and stops them when its context
// ends.
package daemon

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/regentcloud/regent/agent/hostinfo"
	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/agent/reconcile"
	"github.com/regentcloud/regent/agent/vm"
	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
	"github.com/regentcloud/regent/pkg/tlsfiles"
)

// Version is reported at registration.
const Version = api.Version

// Daemon is one regent-agent.
type Daemon struct {
	cfg Config
	log hclog.Logger
	ctl *controllers
	// ca is ca_file's CAs in use (nil without one); caMu serialises
	// reloadCAFile.
	caMu    sync.Mutex
	ca      *tlsfiles.Files
	metrics *Metrics
	// host reads the capacity where libvirt does not answer.
	host hostinfo.Reader

	registered atomic.Bool
	regMu      sync.Mutex
	reg        api.AgentRegistered
	// regs counts the registrations taken (regMu): dropPolicyLogSeq
	// changes only the answer it was asked about.
	regs uint64
	// regErr is why the agent is not registered yet (the last attempt's
	// error, for /healthz), "" before the first attempt.
	regErr atomic.Value

	// set at Run for the hypervisor role: the segments of its VMs, and
	// the latest wanted set (capacity 1, the latest wins)
	segments *netrouter.Segments
	segWant  chan []netrouter.Segment

	// set at Run for the network role
	builder *netrouter.Builder
	// policyLogs is where the heartbeats' policy log entries come from:
	// builder (nil without the network role; tests set their own).
	policyLogs policyLogSource
	// failing is the router builder's Failing, for health: /healthz is
	// served before Run sets builder.
	failing   atomic.Pointer[func() []string]
	policyLog policyLogCursor
	vpn       *vpn.Manager
	routers   *reconcile.Loop[api.RouterSpec]
	// metaServing serves the routers' metadata from the saved copy of the
	// last work until the first fetch (metadatacache.go); metaFromCache
	// is true while it does, metaSaved is what was last saved and
	// metaSaveFailing whether the last save failed (Run's goroutine only).
	metaServing     metadataServing
	metaFromCache   bool
	metaSaved       []byte
	metaSaveFailing bool
	// set at Run for the hypervisor role (vm.go)
	vmBuilder *vm.Builder
	vms       *reconcile.Loop[api.VMSpec]
	// lastPrune is when image volumes were last pruned (fetch loop only).
	lastPrune time.Time
	// epoch is part of every object's version: bumping it makes the loop
	// apply everything again (drift repair every resync interval).
	epoch atomic.Uint64
	// versionKey keys the spec digests (specVersion).
	versionKey []byte
	// beatNow asks the heartbeat loop for early heartbeats (beatSoon).
	beatNow chan struct{}
	// fetchNow ends the work loop's wait after a failed fetch (wakeFetch):
	// a heartbeat delivered again, or a hold begun or ended, need not
	// wait out a backoff grown to max_retry.
	fetchNow chan struct{}

	// libvirtErr and fetchErr are what makes the agent "degraded" in its
	// heartbeats (health): the last libvirt capacity read's and the last
	// work fetch's error, "" when they worked. conflictErr is the last
	// refusal of a heartbeat or state report for another agent holding
	// this server or router (agent_conflict_001), "heartbeat: <error>" or
	// "state report: <error>", "" once a heartbeat or registration is
	// taken.
	libvirtErr, fetchErr, conflictErr atomic.Value
	// fetchCancel ends the work query under way (nil between queries): a
	// refusal for another agent holding the server ends it, so that the
	// work loop registers again at once rather than after the query's
	// wait.
	fetchCancel atomic.Pointer[context.CancelFunc]
	// vpnLeftOut is how many VPN statuses the last heartbeat left out
	// (fitVPNStatus), so the warning is logged when it changes.
	vpnLeftOut atomic.Int64
	// conflicts counts the refusals for another agent holding this
	// server or router that began (conflictErr set from ""), and the
	// silences past the controller's agent_down_after that began (silent
	// set), and synced the value it had when the last work answer acted
	// on was asked for: while synced is behind, the reconcile workers
	// still hold objects fetched before another agent held (or may have
	// held) the server, and take no step (acting).
	conflicts, synced atomic.Uint64
	// beatTaken is when the last heartbeat or registration a controller
	// took was sent, since born (monotonic: a step of the wall clock
	// moves neither): the controller heard this agent no earlier.
	// silent is set while none has been taken for the
	// controller's agent_down_after (silence): the controller judges the
	// agent down by then, and another agent instance may have registered
	// and taken the server and router over. heardMu guards both, so that
	// a silence is begun (and counted in conflicts) only against the
	// beatTaken it was judged by: a worker that read beatTaken just before
	// a heartbeat was taken once set silent again after heartbeatTaken had
	// ended it, counting a silence that was over (the workers held until
	// the next heartbeat and work fetch).
	heardMu   sync.Mutex
	beatTaken time.Duration
	silent    bool
	born      time.Time
	// silenceJudged, when set (tests), is called by silence with heardMu
	// held, once it has judged the deadline passed and before it sets
	// silent.
	silenceJudged func()

	// agentID is this agent's instance id (<data_dir>/agent-id), sent on
	// every call; set at Run.
	agentID string

	// timing knobs (tests shorten them)
	minRetry, maxRetry time.Duration
	pruneEvery         time.Duration
}

// New checks cfg (already Finish-ed) and builds a Daemon; it does not
// touch the host or the network.
func New(cfg Config, log hclog.Logger) (*Daemon, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	var ca *tlsfiles.Files
	if cfg.CAFile != "" {
		var err error
		if ca, err = tlsfiles.Load(tlsfiles.Paths{CA: cfg.CAFile}); err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
	}
	d := &Daemon{ca: ca, cfg: cfg, log: log, metrics: NewMetrics(), minRetry: time.Second, maxRetry: 30 * time.Second,
		pruneEvery: imagePruneEvery, versionKey: make([]byte, 32), beatNow: make(chan struct{}, 1),
		fetchNow: make(chan struct{}, 1), born: time.Now()}
	if _, err := rand.Read(d.versionKey); err != nil {
		return nil, fmt.Errorf("version key: %w", err)
	}
	d.ctl = newControllers(cfg.Controllers, cfg.Token, log.Named("controller"), client.WithUserAgent("regent-agent/"+Version))
	if ca != nil {
		d.ctl.setTLS(ca.Config(controllerTLS))
	}
	return d, nil
}

// Metrics returns the daemon's metrics.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

// Run runs the agent until ctx ends. It returns an error only when it
// cannot start (metrics listener, router builder); controller trouble is
// retried forever.
func (d *Daemon) Run(ctx context.Context) error {
	// One agent per data_dir, known to the controllers by its instance
	// id: two agents acting as one server would build the same VMs. The
	// lock is released last, once every goroutine of this one returned.
	unlock, err := lockDataDir(d.cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	replaced := ""
	if d.agentID, replaced, err = loadAgentID(d.cfg.DataDir, machineID()); err != nil {
		return err
	}
	if replaced != "" {
		d.log.Warn("the agent id in data_dir was made on another host (a host cloned from an image with a data_dir?): this host gets its own",
			"previous_agent_id", replaced, "agent_id", d.agentID, "machine_id", machineID())
	}
	d.ctl.setAgentID(d.agentID)
	d.log.Info("agent instance", "agent_id", d.agentID, "data_dir", d.cfg.DataDir)

	if d.cfg.MetricsAddr != "" && d.cfg.MetricsAddr != "off" {
		ln, err := net.Listen("tcp", d.cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics_addr: %w", err)
		}
		srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
		d.log.Info("metrics listening", "addr", ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("metrics server", "error", err)
			}
		}()
		defer func() {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			_ = srv.Shutdown(sctx)
		}()
	}

	if d.cfg.HasRole(api.RoleHypervisor) {
		// The segments the VMs' taps join: bridge and VXLAN device per
		// VNI, FDB to the NICs' VTEPs.
		s, err := netrouter.NewSegments(netrouter.SegmentsConfig{SegmentMode: d.cfg.SegmentMode, VTEPAddr: d.cfg.VTEPAddr,
			UnderlayDevice: d.cfg.UnderlayDevice, Prefix: d.cfg.LinkPrefix, Logger: d.log.Named("netrouter")})
		if err != nil {
			return err
		}
		d.segments, d.segWant = s, make(chan []netrouter.Segment, 1)
	}
	if d.cfg.HasRole(api.RoleNetwork) {
		rcfg, vcfg := d.networkConfigs()
		b, err := netrouter.New(rcfg)
		if err != nil {
			return err
		}
		d.builder, d.policyLogs = b, b
		failing := b.Failing
		d.failing.Store(&failing)
		restarts := b.Restarts
		d.metrics.routerRestarts.Store(&restarts)
		defer func() {
			cctx, c := context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
			_ = b.Close(cctx)
		}()
		// VPNs: one charon per router namespace. They outlive the agent
		// (its own session, no parent-death signal; Close leaves them
		// running), so a stop, upgrade or crash keeps the tunnels up; the
		// next agent adopts each charon at its router's first apply and
		// re-applies the VPNs without touching the SAs that are up.
		// A charon its supervisor restarted has a new TUN device (libipsec):
		// its router's VPN routes go back at once, not at the next apply.
		vcfg.Restarted = func(ctx context.Context, r vpn.Router) { d.restoreVPNRoutes(ctx, b, r) }
		vpns, err := vpn.New(vcfg)
		if err != nil {
			return err
		}
		d.vpn = vpns
		d.log.Info("vpn", "mode", vpns.Mode(), "charon", d.cfg.CharonPath)
		defer func() {
			cctx, c := context.WithTimeout(context.Background(), 20*time.Second)
			defer c()
			_ = vpns.Close(cctx)
		}()
		h := newRouterHandler(d.cfg.VTEPAddr, b, vpns, d.ctl, d.metrics, d.log.Named("router"))
		h.vpnChanged = d.beatSoon
		h.m.held, h.m.refused = d.acting, d.reportConflict
		d.routers = reconcile.New(ctx, reconcile.Config[api.RouterSpec]{
			Key: routerKey, Handler: h,
			Version: func(s api.RouterSpec) string {
				// any change (DHCP, NAT, firewall, metadata, VPNs)
				// reaches a RUNNING router
				return specVersion(d.versionKey, s) + "/" + strconv.FormatUint(d.epoch.Load(), 10)
			},
			MinBackoff: d.minRetry, MaxBackoff: time.Minute, Logger: d.log.Named("reconcile"),
		})
		defer d.routers.Stop()
		d.metaServing = b
	}
	if d.cfg.HasRole(api.RoleHypervisor) {
		stop, err := d.startVMs(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}

	// VMs get their metadata also while no controller answers (an agent
	// restarted during an outage); the first work fetch replaces it.
	d.serveSavedMetadata(ctx)
	if !d.register(ctx) {
		return nil
	}
	d.checkRouterRecord(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.heartbeatLoop(ctx)
	}()
	if d.segments != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.segmentLoop(ctx, d.segments)
		}()
	}
	d.workLoop(ctx)
	return nil
}

// Handler serves /metrics and /healthz.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{Registry: d.metrics.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.registered.Load() {
			msg := "not registered with a controller yet"
			if e, _ := d.regErr.Load().(string); e != "" {
				msg += ": " + e
			}
			if h, detail := d.health(); h != "ok" {
				msg += "; " + h + ": " + detail
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		if h, detail := d.health(); h != "ok" {
			// Registered and serving: 200, with what is wrong.
			_, _ = w.Write([]byte(h + ": " + detail + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// health is "ok", or "degraded" with why: libvirtd does not answer (VMs
// cannot be built or changed; capacity falls back to the host's figures),
// or the work cannot be fetched (nothing new is built). It goes into each
// heartbeat, /healthz and regent_agent_degraded.
func (d *Daemon) health() (string, string) {
	var why []string
	if e, _ := d.libvirtErr.Load().(string); e != "" {
		why = append(why, "libvirt: "+e)
	}
	if e, _ := d.fetchErr.Load().(string); e != "" {
		why = append(why, "work fetch: "+e)
	}
	if e, _ := d.conflictErr.Load().(string); e != "" {
		why = append(why, e)
	}
	if s := d.silence(); s != "" {
		why = append(why, "heartbeat: "+s)
	}
	if f := d.failing.Load(); f != nil {
		// A crash loop of a router's dnsmasq: restarted each time, it
		// shows nowhere else.
		why = append(why, (*f)()...)
	}
	if len(why) == 0 {
		d.metrics.degraded.Set(0)
		return "ok", ""
	}
	d.metrics.degraded.Set(1)
	return "degraded", strings.Join(why, "; ")
}

func (d *Daemon) capacity() api.Capacity {
	c, ok := d.vmCapacity()
	if !ok {
		var err error
		if c, err = d.host.Capacity(d.cfg.Storage); err != nil {
			d.log.Warn("reading capacity", "error", err)
		}
	}
	d.metrics.setCapacity(c)
	return c
}

// interfaces lists the host's own interfaces for a registration: not the
// VM taps, veths and links the agent made, which a busy host has hundreds
// of, and at most as many as the controller takes (it refuses the whole
// registration for more).
func (d *Daemon) interfaces() []api.AgentInterface {
	ifs, left, err := hostinfo.Interfaces(d.cfg.LinkPrefix)
	if err != nil {
		d.log.Warn("listing interfaces", "error", err)
	}
	if left > 0 {
		d.log.Warn(fmt.Sprintf("the host has more interfaces than a registration may report (%d); %d left out", hostinfo.MaxInterfaces, left),
			"reported", len(ifs), "left_out", left)
	}
	if ifs == nil {
		ifs = []api.AgentInterface{}
	}
	return ifs
}

// register registers until it succeeds or ctx ends (false).
func (d *Daemon) register(ctx context.Context) bool {
	bo := backoff{min: d.minRetry, max: d.maxRetry}
	for {
		reg := api.AgentRegistration{Hostname: d.cfg.Hostname, Roles: d.cfg.Roles, VTEP: d.cfg.VTEPAddr,
			Version: Version, Interfaces: d.interfaces(), Capacity: d.capacity()}
		var out *api.AgentRegistered
		sent := time.Now()
		err := d.ctl.do(ctx, func(ctx context.Context, c *client.Client) (err error) {
			out, err = c.Agent().Register(ctx, reg)
			return err
		})
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			// The controller heard this agent: its down-after deadline
			// starts again (a silence it ended began before).
			d.heartbeatTaken(sent)
			d.regMu.Lock()
			d.reg = *out
			d.regs++
			d.regMu.Unlock()
			if d.vmBuilder != nil {
				// Domains are tagged with the server id, and garbage
				// collection takes only this server's.
				d.vmBuilder.SetServerID(out.ServerID)
			}
			d.registered.Store(true)
			d.metrics.registered.Set(1)
			// The controller takes a registration from the agent instance
			// that holds the server and router, and records this one as
			// their holder: a heartbeat's refusal for another holder is
			// over (heartbeats failing for another reason must not keep
			// it, and with it every work answer discarded).
			if old, _ := d.conflictErr.Swap("").(string); old != "" {
				d.log.Info("registration taken: this agent holds its server and router again")
			}
			d.log.Info("registered", "hostname", d.cfg.Hostname, "roles", d.cfg.Roles,
				"server_id", out.ServerID, "router_id", out.RouterID, "heartbeat_interval", d.heartbeatInterval(), "agent_down_after", d.downAfter())
			return true
		}
		wait := bo.next()
		what, hint, level := "registration refused", refusalHint(err), hclog.Error
		if unavailable(err) {
			what, hint, level = "controller unreachable", tlsHint(err), hclog.Warn
		}
		why, args := what+": "+err.Error(), []any{"error", err}
		if hint != "" {
			why += " (" + hint + ")"
			args = append(args, "hint", hint)
		}
		d.regErr.Store(why)
		d.log.Log(level, fmt.Sprintf("%s, retrying in %s", what, wait), args...)
		if (!unavailable(err) && d.reloadToken()) || d.reloadCA(err) {
			bo = backoff{min: d.minRetry, max: d.maxRetry}
			continue
		}
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// checkRouterRecord warns when the router this (network role) agent
// registered for takes no virtual routers: disabled, or a capacity of 0.
// That is what a registration creates when no router record of the
// token's region has this host's hostname or asset_tag (a typo in
// hostname, a token of another region), and the agent would otherwise
// look healthy while no work ever came. A read that fails is left: the
// agent goes on either way.
func (d *Daemon) checkRouterRecord(ctx context.Context) {
	id := d.registration().RouterID
	if !d.cfg.HasRole(api.RoleNetwork) || id == 0 {
		return
	}
	var r api.Router
	err := d.ctl.doIn(ctx, 10*time.Second, func(ctx context.Context, c *client.Client) (err error) {
		r, _, err = client.Get[api.Router](ctx, c, fmt.Sprintf("/iaas/router/%d/", id), nil)
		return err
	})
	if err != nil {
		d.log.Debug("reading this host's router record", "router_id", id, "error", err)
		return
	}
	if r.Enabled && (r.Capacity == nil || *r.Capacity > 0) {
		return
	}
	capacity := "unlimited"
	if r.Capacity != nil {
		capacity = fmt.Sprint(*r.Capacity)
	}
	d.log.Warn(fmt.Sprintf("router %d, which this host registered as, takes no virtual routers (enabled %t, capacity %s): "+
		"a registration creates it so when no router of the token's region has hostname or asset_tag %q; "+
		"check hostname and the token's region, or set the record's enabled and capacity (docs/operations.md, Agents)",
		id, r.Enabled, capacity, d.cfg.Hostname), "router_id", id, "region_id", r.RegionID)
}

// refusalHint says what to do about a refused registration, where the
// controller's answer does not.
func refusalHint(err error) string {
	switch client.StatusCode(err) {
	case http.StatusUnauthorized:
		return "the token is not known to the controllers: put a current robot token in token_file (read again before each retry)"
	case http.StatusForbidden:
		var e *api.Error
		if errors.As(err, &e) && strings.HasSuffix(e.ErrorCode, "_204") {
			// A robot token of the region, but bound to a server, for
			// the network role: the generic hint below would say the
			// token is of the wrong kind.
			return "the network role needs a robot token of the region that is bound to no server: " +
				"put one in token_file (read again before each retry), or drop the network role"
		}
		return "the token must be a robot token bound to this server's region, not the root or a user token: " +
			"put one in token_file (read again before each retry)"
	}
	return ""
}

// tlsHint says what to do when a controller's certificate is not trusted:
// the error alone reads like an unreachable controller.
func tlsHint(err error) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	switch {
	case errors.As(err, &ua):
		return "the controllers' certificate is signed by a CA this host does not trust: set ca_file to that CA"
	case errors.As(err, &he):
		return "the controller's certificate does not name the host in its URL: use the name the certificate has in controllers"
	}
	return ""
}

// controllerTLS is the base of the client TLS config for the
// controllers; ca_file's CAs are its RootCAs.
var controllerTLS = &tls.Config{MinVersion: tls.VersionTLS12}

// reloadCA reads ca_file again after a controller's certificate was not
// trusted, and reports whether it now holds other CAs, which later
// connections then trust: an operator moving the controllers to a new CA
// puts it into ca_file (a bundle of both during the move) and the agent
// goes on without a restart.
func (d *Daemon) reloadCA(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua) && d.reloadCAFile()
}

// ReloadFiles reads token_file and ca_file again (SIGHUP) and uses what
// changed: after a CA rotation's last step the agent stops trusting the
// old CA without waiting for a certificate it does not trust.
func (d *Daemon) ReloadFiles() {
	token, ca := d.reloadToken(), d.reloadCAFile()
	if !token && !ca {
		d.log.Info("token_file and ca_file unchanged")
	}
}

// reloadCAFile reads ca_file again and reports whether it holds other
// CAs than those in use, which later connections then trust.
func (d *Daemon) reloadCAFile() bool {
	if d.cfg.CAFile == "" {
		return false
	}
	d.caMu.Lock()
	defer d.caMu.Unlock()
	old := d.ca.Current().Pool
	if d.ca.Reload(d.ca.Paths()) != nil || d.ca.Current().Pool.Equal(old) {
		return false
	}
	d.ctl.setTLS(d.ca.Config(controllerTLS))
	d.log.Info("ca_file changed; trusting its CAs", "ca_file", d.cfg.CAFile)
	return true
}

// reloadToken reads token_file again after a refused registration or a
// work fetch refused with 401, and reports whether it now holds another,
// well-formed token, which later calls then use: an operator fixes the
// file, or rotates the robot token (the new one into token_file, then the
// old one revoked), and the agent goes on without a restart.
func (d *Daemon) reloadToken() bool {
	if d.cfg.TokenFile == "" {
		return false
	}
	b, err := os.ReadFile(d.cfg.TokenFile)
	if err != nil {
		return false
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || !validToken(tok) || tok == d.ctl.currentToken() {
		return false
	}
	d.ctl.setToken(tok)
	d.log.Info("token_file changed; using the new token", "token_file", d.cfg.TokenFile)
	return true
}

// registration returns what the last registration answered.
func (d *Daemon) registration() api.AgentRegistered {
	reg, _ := d.registrationN()
	return reg
}

// registrationN returns what the last registration answered, and how
// many registrations were taken.
func (d *Daemon) registrationN() (api.AgentRegistered, uint64) {
	d.regMu.Lock()
	defer d.regMu.Unlock()
	return d.reg, d.regs
}

// dropPolicyLogSeq stops the numbering of the policy log entries
// (policy_log_seq) that registration n's answer asked for, until the
// next registration, and reports whether it did (false: it was off, or
// another registration was taken since). A controller refused a
// heartbeat carrying numbered entries as a bad request: one that does not
// know the fields (a rollback, or leadership moved to a node not yet
// upgraded since the registration) refuses every such heartbeat, so the
// entries were never delivered, the router was judged down and the
// agent's own silence held every step; and with work fetches taken it
// never registers again to learn otherwise.
func (d *Daemon) dropPolicyLogSeq(n uint64) bool {
	d.regMu.Lock()
	defer d.regMu.Unlock()
	if d.regs != n || !d.reg.PolicyLogSeq {
		return false
	}
	d.reg.PolicyLogSeq = false
	return true
}

func (d *Daemon) heartbeatInterval() time.Duration {
	r := d.registration()
	if r.HeartbeatIntervalMS > 0 {
		return time.Duration(r.HeartbeatIntervalMS) * time.Millisecond
	}
	if r.HeartbeatInterval > 0 {
		return time.Duration(r.HeartbeatInterval) * time.Second
	}
	return 10 * time.Second
}

// beatSoon asks for an early heartbeat (a VPN changed: its status should
// not wait for the next one). Calls while early beats are pending are
// merged into them.
func (d *Daemon) beatSoon() {
	select {
	case d.beatNow <- struct{}{}:
	default:
	}
}

// earlyBeats are the delays of the heartbeats that follow a beatSoon: one
// at once (the change: loaded, connecting) and one a little later (the
// tunnel usually established by then).
var earlyBeats = []time.Duration{200 * time.Millisecond, 2 * time.Second}

func (d *Daemon) heartbeatLoop(ctx context.Context) {
	every := d.heartbeatInterval()
	failing := "" // what the heartbeats failing since the last delivered one met
	// due is the regular heartbeat's time, an interval after the last
	// one; early are the times of the pending early beats of a beatSoon.
	// A beatSoon while early beats are pending adds none and moves none
	// (they report its change too), and no early beat delays the regular
	// one: calls closer than the first early delay (many VPNs flapping)
	// once kept restarting it, and no heartbeat went out at all.
	due := time.Now().Add(every)
	var early []time.Time
	for {
		at := due
		if len(early) > 0 && early[0].Before(at) {
			at = early[0]
		}
		t := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.beatNow:
			t.Stop()
			if len(early) == 0 {
				now := time.Now()
				for _, e := range earlyBeats {
					early = append(early, now.Add(e))
				}
			}
			continue
		case <-t.C:
		}
		now := time.Now()
		for len(early) > 0 && !early[0].After(now) {
			early = early[1:]
		}
		due = now.Add(every)
		reg, regN := d.registrationN()
		capacity := d.capacity()
		health, detail := d.health()
		hb, delivered := d.policyLog.withPolicyLog(ctx, api.Heartbeat{ServerID: reg.ServerID, RouterID: reg.RouterID,
			Capacity: capacity, Health: health, Detail: detail, VPNStatus: d.vpnStatus(ctx)}, d.policyLogs, reg.PolicyLogSeq)
		sent := time.Now()
		err := d.ctl.doIn(ctx, heartbeatCallTime(every, d.ctl.timeout), func(ctx context.Context, c *client.Client) error { return c.Agent().Heartbeat(ctx, hb) })
		if err == nil {
			delivered()
			d.heartbeatTaken(sent)
		}
		d.heartbeatConflict(err)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if failing != "" {
				failing = ""
				d.log.Info("heartbeat delivered again")
				// The controller is back: the work fetch need not wait
				// out its backoff (up to max_retry) to learn it.
				d.wakeFetch()
			}
			continue
		}
		if isAgentConflict(err) {
			failing = "conflict" // logged by heartbeatConflict
			continue
		}
		if client.StatusCode(err) == http.StatusUnauthorized && d.reloadToken() {
			// The token was revoked, and token_file holds its
			// successor (a rotation): beat again at once with it.
			due = time.Now()
			continue
		}
		if hb.PolicyLogEpoch != "" && numberingRefused(err) && d.dropPolicyLogSeq(regN) {
			// Numbered entries refused: the controller answering now
			// does not know the fields. Beat again at once without
			// them (entries kept until delivered, unchecked for
			// resends), until the next registration says otherwise.
			// Any other bad request (a bound on the VPN statuses, the
			// capacity) has nothing to do with the numbering.
			d.log.Warn("heartbeat with numbered policy log entries refused, the numbering's fields unknown to the controller: sending them unnumbered until the next registration "+
				"(a controller rolled back, or leadership moved to one not yet upgraded?)", "error", err)
			due = time.Now()
			continue
		}
		// Like a registration's: a refusal (the heartbeat or the token
		// is wrong) is no unreachable controller.
		what, hint, level := "heartbeat refused", refusalHint(err), hclog.Error
		if unavailable(err) {
			what, hint, level = "heartbeat failed (controller unreachable)", tlsHint(err), hclog.Warn
		}
		if what != failing {
			failing = what
			args := []any{"error", err}
			if hint != "" {
				args = append(args, "hint", hint)
			}
			d.log.Log(level, fmt.Sprintf("%s, retrying in %s", what, every), args...)
		}
	}
}

// numberingRefused reports whether err is a controller's refusal of the
// policy log numbering's fields as unknown: 400 with regent_request_003
// (api.CodeUnknownField) on policy_log_epoch or an entry's seq, what a
// controller older than the numbering answers (it decodes strictly, and
// names a list item's field "policy_log[0].seq"; one older still named
// the bare key, "seq").
func numberingRefused(err error) bool {
	var e *api.Error
	if client.StatusCode(err) != http.StatusBadRequest || !errors.As(err, &e) {
		return false
	}
	for field, fe := range e.Errors {
		if fe.ErrorCode != api.CodeUnknownField {
			continue
		}
		if field == "policy_log_epoch" || field == "seq" || strings.HasPrefix(field, "policy_log[") && strings.HasSuffix(field, "].seq") {
			return true
		}
	}
	return false
}

// minHeartbeatCallTime is the least time a controller has to take a
// heartbeat: a round trip through a real network and the leader's
// handling need milliseconds, and a sub-second heartbeat interval is
// allowed (the controller's heartbeat_interval_ms).
const minHeartbeatCallTime = time.Second

// heartbeatCallTime is the time each controller has to take a heartbeat:
// half the interval, so that a hung one is failed over well before the
// agent is overdue, but at least minHeartbeatCallTime (with an interval
// of 10 ms, 5 ms failed every heartbeat and the server was reported
// down while the controller was well), and at most the call timeout.
func heartbeatCallTime(every, timeout time.Duration) time.Duration {
	return min(timeout, max(every/2, minHeartbeatCallTime))
}

// heartbeatConflict keeps a heartbeat's refusal for another agent
// instance holding this server or router (the agent is degraded with it,
// logged when it starts), and forgets it once a heartbeat is taken (or a
// registration: register).
func (d *Daemon) heartbeatConflict(err error) {
	switch {
	case isAgentConflict(err):
		d.refusedElsewhere("heartbeat", err)
	case err == nil:
		if old, _ := d.conflictErr.Swap("").(string); old != "" {
			d.log.Info("heartbeat taken again: this agent holds its server and router")
			d.holdOver()
		}
	}
}

// refusedElsewhere keeps a refusal of what (a "heartbeat" or "state
// report") for another agent instance holding this server or router
// (agent_conflict_001): the state machines take no step from now on
// (acting), and, as for a heartbeat's, only on work fetched after it once
// a heartbeat or registration is taken. A state report's (machine.run)
// holds the other workers at once, not from the next heartbeat.
func (d *Daemon) refusedElsewhere(what string, err error) {
	if old, _ := d.conflictErr.Swap(what + ": " + err.Error()).(string); old == "" {
		d.conflicts.Add(1)
		d.log.Error(what+" refused: another agent acts for this server or router", "agent_id", d.agentID, "error", err)
		// A blocking work query under way would hold the registration
		// that ends this (the work loop's) for up to its wait: end it.
		d.endFetch()
	}
}

// reportConflict is refusedElsewhere for a state report (machine.refused).
func (d *Daemon) reportConflict(err error) { d.refusedElsewhere("state report", err) }

// conflict is the last refusal of a heartbeat or state report for
// another agent instance holding this server or router, "" while
// heartbeats are taken. The state machines take no step while it is set
// (machine.held).
func (d *Daemon) conflict() string {
	c, _ := d.conflictErr.Load().(string)
	return c
}

// acting says why the state machines may take no step now (machine.held),
// "" when they may: another agent instance holds this server or router
// (the last heartbeat was refused), or may hold it (no heartbeat taken
// for the controller's agent_down_after: silence), or did or may have
// since the work the reconcile workers hold was fetched. Their objects
// are then acted on only once a work answer asked for after that has
// been synced, which retries them.
func (d *Daemon) acting() string {
	if c := d.conflict(); c != "" {
		return "refused for another agent instance: " + c
	}
	if s := d.silence(); s != "" {
		return s
	}
	if d.synced.Load() < d.conflicts.Load() {
		return "another agent instance held it, or may have, since this work was fetched; waiting for the next work fetch"
	}
	return ""
}

// downAfter is the controller's agent_down_after from the registration
// answer, 0 when it sent none (an older controller).
func (d *Daemon) downAfter() time.Duration {
	return time.Duration(d.registration().AgentDownAfterMS) * time.Millisecond
}

// silence is why this agent holds its work for want of heartbeats taken,
// "" when it need not: none has been taken (nor a registration) for the
// controller's agent_down_after. The controller judges the agent down by
// then, and another agent instance (a clone with this hostname) may
// register and take the server over; this agent hears of that only at
// its next heartbeat the controller answers (a refusal), and a worker
// retrying before then (a partition heals) would act on the host once.
// The hold that begins is counted in conflicts (logged once): work
// fetched before it is not acted on after it. Without a deadline (an
// older controller) there is no such hold.
func (d *Daemon) silence() string {
	deadline := d.downAfter()
	if deadline <= 0 || !d.registered.Load() {
		return ""
	}
	d.heardMu.Lock()
	since := time.Since(d.born) - d.beatTaken
	if since < deadline {
		d.heardMu.Unlock()
		return ""
	}
	if d.silenceJudged != nil {
		d.silenceJudged()
	}
	unit := time.Second
	if deadline < 10*time.Second {
		unit = time.Millisecond
	}
	why := fmt.Sprintf("no heartbeat delivered for %s, past the controller's agent_down_after (%s): another agent instance may hold this server or router",
		since.Round(unit), deadline)
	if !d.silent {
		// Counted, and logged, before heardMu is released:
		// heartbeatTaken, which ends it, then sees it counted
		// (holdOver) and logs its end after its beginning.
		d.silent = true
		d.conflicts.Add(1)
		d.log.Error(why+"; its routers, VMs, snapshots and backups take no step until a heartbeat is taken and the work fetched again",
			"agent_id", d.agentID)
	}
	d.heardMu.Unlock()
	return why
}

// isSilent reports whether a silence past agent_down_after is on (it
// begins when silence judges it, and ends when a heartbeat is taken).
func (d *Daemon) isSilent() bool {
	d.heardMu.Lock()
	defer d.heardMu.Unlock()
	return d.silent
}

// heartbeatTaken records a heartbeat (or registration) sent at sent that
// a controller took: it ends a silence past agent_down_after (the
// controller took this agent as its server's holder again). The workers
// still act only on work asked for after the silence began (acting); if
// that has been synced already (work fetches went on during the
// silence), they are retried at once.
func (d *Daemon) heartbeatTaken(sent time.Time) {
	// A deadline passed since the last check (none called it) is a
	// silence too: the work fetched before it is not acted on.
	d.silence()
	if d.metrics != nil {
		d.metrics.lastBeat.SetToCurrentTime()
	}
	at := sent.Sub(d.born)
	d.heardMu.Lock()
	d.beatTaken = max(d.beatTaken, at)
	ended := d.silent
	d.silent = false
	d.heardMu.Unlock()
	if !ended {
		return
	}
	d.log.Info("heartbeat taken again after a silence past the controller's agent_down_after: this agent holds its server and router")
	d.holdOver()
}

// holdOver is called when a refusal for another agent instance or a
// silence past agent_down_after ends (heartbeatConflict, heartbeatTaken).
// Once no hold is left, the workers act again on work asked for after
// the last one began: if that has been synced already (work fetches went
// on during a silence), they are retried at once; if not, the work query
// under way is ended (endFetch) and the work loop asks again at once,
// without blocking. Left open, a blocking query asked before the hold (a
// partition short enough for its connection to survive) or during it
// answers only when the work changes or its wait ends (work_wait, 5 min
// by default): the workers waited that long for the next work fetch
// while the agent's health said "ok".
func (d *Daemon) holdOver() {
	if d.conflict() != "" || d.isSilent() {
		return // the other hold's end calls it again
	}
	if d.synced.Load() < d.conflicts.Load() {
		d.endFetch()
		return
	}
	if d.routers != nil {
		d.routers.Retry()
	}
	if d.vms != nil {
		d.vms.Retry()
	}
}

// endFetch ends the work query under way, if any (fetchCancel), or the
// work loop's wait after a failed one (wakeFetch).
func (d *Daemon) endFetch() {
	if cancel := d.fetchCancel.Load(); cancel != nil {
		(*cancel)()
	}
	d.wakeFetch()
}

// wakeFetch ends the work loop's wait after a failed fetch, now or (while
// a fetch is under way) after that fetch if it fails: the next fetch goes
// out at once, not at the end of the backoff.
func (d *Daemon) wakeFetch() {
	select {
	case d.fetchNow <- struct{}{}:
	default:
	}
}

// fetchWait waits delay after a failed work fetch, or until wakeFetch;
// false when ctx ended.
func (d *Daemon) fetchWait(ctx context.Context, delay time.Duration) bool {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-d.fetchNow:
	}
	return true
}

// heldElsewhere is the last refusal of a heartbeat or state report for
// another agent instance holding this server or router, as a 409
// agent_conflict_001; nil while heartbeats are taken.
func (d *Daemon) heldElsewhere() error {
	c := d.conflict()
	if c == "" {
		return nil
	}
	return &api.Error{Status: http.StatusConflict, ErrorCode: api.ErrAgentConflict,
		Detail: "work answer not acted on: refused for another agent instance: " + c}
}

// workLoop long-polls the work and syncs the routers and the VMs'
// segments with it. A failure keeps everything built and retries with
// backoff.
func (d *Daemon) workLoop(ctx context.Context) {
	bo := backoff{min: d.minRetry, max: d.maxRetry}
	// early paces answers to the blocking query that come back at once
	// with nothing new (a controller or proxy that does not block).
	early := backoff{min: d.minRetry, max: d.maxRetry}
	resync := d.cfg.ResyncDuration()
	wait := min(d.cfg.WorkWaitDuration(), resync)
	lastResync := time.Now()
	var index uint64
	// hash is the content hash of the work last acted on: the blocking
	// query then answers when this agent's work changes, not at every
	// change to the tables a work is built from anywhere in the region.
	var hash string
	// reregistered is set while the last fetch was refused for another
	// agent instance and the registration that followed was taken.
	reregistered := false
	// failingSince is when the work fetches began to fail and wait out
	// a backoff (zero while they succeed; a revoked token replaced from
	// token_file is no such failure), for the line that says they work
	// again.
	var failingSince time.Time
	for ctx.Err() == nil {
		if time.Since(lastResync) >= resync {
			// The next Sync applies every object again, rulesets
			// included (Builder.Resync: rules changed by hand inside a
			// router's table do not show in its stored digest).
			d.epoch.Add(1)
			if d.builder != nil {
				d.builder.Resync()
			}
			lastResync = time.Now()
		}
		var w *api.Work
		var meta *client.Meta
		reg := d.registration()
		asked := time.Now()
		d.silence() // a silence past its deadline is counted before this fetch
		conflicts := d.conflicts.Load()
		fctx, fcancel := context.WithCancel(ctx)
		d.fetchCancel.Store(&fcancel)
		if index > 0 && d.synced.Load() < d.conflicts.Load() && d.conflict() == "" && !d.isSilent() {
			// A hold ended since the last answer, while no query was
			// under way for holdOver to end: the workers wait for work
			// asked after it, so ask at once rather than block. (Checked
			// after fetchCancel is set: a hold that ends later ends
			// this query.)
			index, hash = 0, ""
		}
		// A blocking query (index > 0) may take its wait.
		extra := time.Duration(0)
		if index > 0 {
			extra = wait
		}
		err := d.ctl.doWithin(fctx, extra, func(ctx context.Context, c *client.Client) (err error) {
			w, meta, err = c.Agent().Work(ctx, reg.ServerID, reg.RouterID, index, wait, hash)
			if err == nil {
				err = d.checkWork(w, meta)
			}
			return err
		})
		d.fetchCancel.Store(nil)
		ended := fctx.Err() != nil
		fcancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && ended {
			held := d.heldElsewhere()
			if held == nil {
				// Ended by a hold's end (holdOver), or by a refusal
				// (refusedElsewhere) that a heartbeat taken has ended
				// already: no failed fetch (no error, no backoff); ask
				// again at once, without blocking.
				index, hash = 0, ""
				continue
			}
			// ended by a refusal: go to the registration that ends it
			err = held
		}
		if err == nil {
			// A heartbeat refused since: another agent holds the server
			// or router now, and this answer (its query passed the
			// controller's check before) must not be acted on.
			err = d.heldElsewhere()
		}
		if err != nil {
			d.metrics.fetchErrors.Inc()
			d.fetchErr.Store(err.Error())
			delay := bo.next()
			var bad *badWorkError
			if errors.As(err, &bad) {
				d.log.Error(fmt.Sprintf("work answer unusable, retrying in %s (what is built stays)", delay), "error", err)
			} else if unavailable(err) {
				if d.reloadCA(err) {
					bo.reset()
					index = 0
					continue
				}
				d.log.Warn(fmt.Sprintf("controller unreachable, retrying in %s (what is built stays)", delay), "error", err)
			} else {
				if client.StatusCode(err) == http.StatusUnauthorized && d.reloadToken() {
					// The token was revoked or expired, and token_file
					// holds its successor (a rotation): go on with it.
					bo.reset()
					index = 0
					continue
				}
				if isAgentConflict(err) {
					// Another agent acts for this server or router:
					// nothing is acted on until this one registers
					// again, which the controller takes once the other
					// has been silent past its deadline (its records
					// then hold this host's VTEP and interfaces again).
					// At once: register paces a refused registration
					// itself, and the backoff here may have grown to
					// max_retry (30 s) during a partition that ended in
					// this refusal. Only a fetch refused right after a
					// registration was taken (a controller refusing
					// the holder it took) waits the backoff first, so
					// that the two do not alternate in a busy loop.
					if reregistered {
						d.log.Error(fmt.Sprintf("work fetch refused right after a registration was taken, registering again in %s (what is built stays)", delay), "error", err)
						sleep(ctx, delay)
					} else {
						d.log.Error("work fetch refused, registering again (what is built stays)", "error", err)
					}
					if !d.register(ctx) {
						return
					}
					// Taken: the refusal is over (register ends it); a
					// heartbeat soon says so, and the work is asked
					// for at once.
					d.beatSoon()
					if !reregistered {
						bo.reset()
					}
					reregistered = true
					index, hash = 0, ""
					continue
				}
				d.log.Error(fmt.Sprintf("work fetch refused, retrying in %s (what is built stays)", delay), "error", err)
				if client.StatusCode(err) == http.StatusBadRequest {
					// The controller no longer knows our ids (a new
					// cluster?): register again.
					d.register(ctx)
				}
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			index = 0
			d.fetchWait(ctx, delay)
			continue
		}
		bo.reset()
		reregistered = false
		wasFailing, _ := d.fetchErr.Swap("").(string)
		if !failingSince.IsZero() {
			d.log.Info("work fetched again", "failing_for", time.Since(failingSince).Round(time.Millisecond))
			failingSince = time.Time{}
		}
		// A wake-up meant for a wait after a failure that did not come.
		select {
		case <-d.fetchNow:
		default:
		}
		d.metrics.lastFetch.SetToCurrentTime()
		next := max(w.Index, meta.LastIndex)
		if next < index {
			next = 0 // the controller's index went back (restored cluster): start over
		}
		// A blocking query answered at once with the index it was asked
		// past did not block: fetching again at once would be a busy loop.
		pause := time.Duration(0)
		if index != 0 && next == index && time.Since(asked) < wait/2 {
			pause = early.next()
			d.log.Debug("the work query did not block; pausing", "index", index, "pause", pause)
		} else {
			early.reset()
		}
		index, hash = next, meta.ContentHash
		d.log.Debug("work", "index", index, "routers", len(w.Routers), "vms", len(w.VMs))
		// The work is complete: what is not in it goes.
		if d.routers != nil {
			d.routers.Sync(w.Routers, true)
		}
		if d.segWant != nil {
			d.wantSegments(segmentsOf(w.VMs))
		}
		if d.vms != nil {
			d.vms.Sync(w.VMs, true)
			d.pruneImages(ctx, w.VMs)
		}
		d.workFetched(ctx, w)
		// Asked for after every conflict so far began, and taken: the
		// workers hold this work now and may act on it (acting).
		held := d.synced.Load() < conflicts
		if held {
			d.synced.Store(conflicts)
		}
		if wasFailing != "" || held {
			// The controller is back: the objects whose state reports
			// failed meanwhile report now, not at the end of a backoff
			// that may have grown to a minute.
			if d.routers != nil {
				d.routers.Retry()
			}
			if d.vms != nil {
				d.vms.Retry()
			}
		}
		if d.synced.Load() < d.conflicts.Load() && d.conflict() == "" && !d.isSilent() {
			// A refusal or silence began after this query was asked
			// and is over already (a heartbeat was taken meanwhile):
			// the workers wait for work asked after it, so ask at once
			// rather than block until the work changes (work_wait).
			index, hash, pause = 0, "", 0
		}
		if pause > 0 {
			sleep(ctx, pause)
		}
	}
}

// badWorkError is a 2xx answer to the work fetch that is not a work
// listing: no index (the controller always sends one, at least 1), or no
// list of the routers or VMs the agent's roles build (the controller
// always sends both, empty ones included). Taken for a complete listing
// of nothing it would make the agent remove everything it built; it is
// "unavailable" (no status): the next controller is tried.
type badWorkError struct{ why string }

func (e *badWorkError) Error() string {
	return "the answer to the work fetch is not a work listing (" + e.why + "): a proxy or another server at the controller's address?"
}

// checkWork checks that a work answer is a listing the agent may act on.
func (d *Daemon) checkWork(w *api.Work, meta *client.Meta) error {
	switch {
	case w == nil || meta == nil:
		return &badWorkError{why: "no content"}
	case w.Index == 0 && meta.LastIndex == 0:
		return &badWorkError{why: "no index"}
	case d.cfg.HasRole(api.RoleNetwork) && w.Routers == nil:
		return &badWorkError{why: "no routers list"}
	case d.cfg.HasRole(api.RoleHypervisor) && w.VMs == nil:
		return &badWorkError{why: "no vms list"}
	}
	return nil
}

// vpnStatus is the state of every VPN of the agent's routers (nil
// without the network role).
func (d *Daemon) vpnStatus(ctx context.Context) []api.VPNStatus {
	if d.vpn == nil {
		return nil
	}
	st := d.vpn.Status(ctx)
	for i := range st {
		st[i].Clip()
	}
	st, left := fitVPNStatus(st, vpnStatusBudget)
	if old := d.vpnLeftOut.Swap(int64(left)); old != int64(left) && left > 0 {
		d.log.Warn("VPN statuses over the heartbeat's budget even without their SAs: the last ones are left out (their state shows as unknown)",
			"left_out", left, "sent", len(st), "budget_bytes", vpnStatusBudget)
	}
	return st
}

// vpnStatusBudget bounds the JSON of a heartbeat's VPN statuses: with
// the policy log's share (heartbeatBudget) and the rest, under the
// controller's 1 MiB. Each status is bounded (Clip), but not how many
// there are: a network agent with many VPNs of many routes each would
// send heartbeats the controller refuses (413) for ever.
const vpnStatusBudget = 192 << 10

// fitVPNStatus shortens the statuses to at most budget bytes of JSON,
// the largest first: its IPsec SAs' traffic selectors, then (if still
// over) those SAs themselves, then (still over: hundreds of VPNs failing
// at once, each with a long error) the errors, cut to vpnErrorShort bytes.
// Every VPN keeps its IKE state, and the small statuses (most) stay
// whole. Only when even that is over (far more VPNs than a router has) are
// the last statuses left out: it returns those kept and how many were
// left out.
func fitVPNStatus(st []api.VPNStatus, budget int) ([]api.VPNStatus, int) {
	size := func(s *api.VPNStatus) int {
		b, err := json.Marshal(s)
		if err != nil {
			return 0
		}
		return len(b) + 1
	}
	sizes := make([]int, len(st))
	total := 2
	for i := range st {
		sizes[i] = size(&st[i])
		total += sizes[i]
	}
	order := make([]int, len(st))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(sizes[b], sizes[a]) })
	resize := func(i int) {
		n := size(&st[i])
		total -= sizes[i] - n
		sizes[i] = n
	}
	for _, i := range order {
		if total <= budget {
			return st, 0
		}
		s := &st[i]
		for c := range s.Children {
			s.Children[c].LocalTS, s.Children[c].RemoteTS = []string{}, []string{}
		}
		if total-sizes[i]+size(s) > budget {
			s.Children = []api.VPNChildStatus{}
		}
		resize(i)
	}
	for _, i := range order {
		if total <= budget {
			return st, 0
		}
		st[i].Error = api.CutUTF8(st[i].Error, vpnErrorShort)
		resize(i)
	}
	if total <= budget {
		return st, 0
	}
	kept := len(st)
	for kept > 0 && total > budget {
		kept--
		total -= sizes[kept]
	}
	return st[:kept], len(st) - kept
}

// vpnErrorShort is what is kept of a VPN status's error when the
// statuses are over their budget even without their SAs.
const vpnErrorShort = 96

// restoreVPNRoutes puts router r's VPN routes back after its supervisor
// restarted its charon (vpn.Config.Restarted).
func (d *Daemon) restoreVPNRoutes(ctx context.Context, b *netrouter.Builder, r vpn.Router) {
	res, err := b.RestoreVPNRoutes(ctx, r.ID)
	log := d.log.Named("router").With("router", r.ID, "namespace", r.Namespace)
	if err != nil {
		// The next apply (spec change or resync) tries again.
		log.Error("vpn routes after charon restart", "error", err)
		return
	}
	log.Info("vpn routes restored after charon restart", "changes", strings.Join(res.Changes, "; "), "took", res.Duration)
	d.beatSoon()
}

// networkConfigs are the configurations of the network role's router
// builder and VPN manager. The VPN mode (the configured one, or what the
// kernel offers) goes to both: the manager sets each connection's XFRM
// interface id, and the builder must make those interfaces and route the
// remote subnets into them (with libipsec, into charon's TUN device).
func (d *Daemon) networkConfigs() (netrouter.Config, vpn.Config) {
	mode := d.cfg.VPNMode
	if mode == "" {
		mode = vpn.DetectMode()
	}
	return netrouter.Config{
			PublicBridge: d.cfg.PublicBridge, PublicBridgeAddr: d.cfg.PublicBridgeAddr,
			SegmentMode: d.cfg.SegmentMode, VTEPAddr: d.cfg.VTEPAddr, UnderlayDevice: d.cfg.UnderlayDevice,
			Prefix: d.cfg.LinkPrefix, NamespacePrefix: d.cfg.NamespacePrefix,
			StateDir: filepath.Join(d.cfg.DataDir, "routers"), Logger: d.log.Named("netrouter"),
			Segments: d.segments, // nil without the hypervisor role
			VPNMode:  mode,
		}, vpn.Config{Mode: mode, Charon: d.cfg.CharonPath, RunDir: d.cfg.VPNRunDir,
			Initiated: d.beatSoon, Logger: d.log}
}
