package netrouter

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/agent/vpn"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/atomicfile"
	"sigs.k8s.io/knftables"
)

// Config configures a Builder.
type Config struct {
	// PublicBridge is the host bridge of the region's floating subnet; it
	// is created when missing.
	PublicBridge string
	// PublicBridgeAddr, when set ("198.51.100.1/24"), is put on the public
	// bridge: for tests and for hosts that are the floating gateway.
	PublicBridgeAddr string
	// SegmentMode is ModeVXLAN (default) or ModeVLAN.
	SegmentMode string
	// VTEPAddr is the local VXLAN tunnel endpoint and UnderlayDevice the
	// link it lives on (VXLAN); in vlan mode UnderlayDevice is the parent
	// of the 802.1Q sub-interfaces.
	VTEPAddr       string
	UnderlayDevice string
	// VXLANPort is the VXLAN UDP port (4789).
	VXLANPort int
	// Prefix starts every host link name the builder creates ("rg") and
	// scopes its ownership tags; at most 4 characters.
	Prefix string
	// NamespacePrefix starts router namespace names ("P": P<project_id>).
	NamespacePrefix string
	// StateDir keeps per-router files (dnsmasq configuration and leases).
	StateDir string
	// NFLogGroup is the nflog group of rules with logging on (100).
	NFLogGroup uint16
	// PolicyLogSize is how many policy log entries are kept per router (256).
	PolicyLogSize int
	// VPNMode is how the router's VPNs carry ESP (agent/vpn): vpn.ModeXFRM
	// routes each VPN's remote subnets into an XFRM interface with the
	// VPN's if_id; vpn.ModeLibIPsec (default) into charon's TUN device.
	VPNMode string
	// Dnsmasq is the dnsmasq binary ("dnsmasq" from PATH).
	Dnsmasq string
	Logger  hclog.Logger
	// Segments, when set, is the host's Segments of a hypervisor agent in
	// the same process: the builder then creates and garbage-collects
	// segment bridges with it (same lock, and the hypervisor's segments
	// are never collected). Its mode and prefix must be the builder's;
	// nil: the builder makes its own from the fields above.
	Segments *Segments `json:"-"`
}

// Builder reconciles virtual routers on this host. Its methods are safe
// for concurrent use; calls for the same router are serialised.
type Builder struct {
	cfg   Config
	names naming
	log   hclog.Logger
	nft   nftables

	// hook, when set (tests), runs before each build step and can stop
	// the build there.
	hook func(step string) error

	seg *Segments // segment bridges and devices, shared with a hypervisor

	mu      sync.Mutex
	routers map[uint64]*running
	closed  bool

	// plogSeq numbers the policy log entries of all routers (PolicyLogEntry.Seq).
	plogSeq atomic.Uint64
	// plogEpoch names plogSeq's numbering (PolicyLogEpoch): random, made
	// with the Builder, whose numbers start from 1.
	plogEpoch string

	// metaLimits bound the metadata servers' connections (tests lower them).
	metaLimits metadataLimits

	// procs are the routers' children (dnsmasq) this process supervises.
	procs processes
}

// running is what the builder runs for one router in this process.
type running struct {
	mu       sync.Mutex
	dhcp     *process
	dhcpConf []byte
	meta     *metadata
	metaSrv  *metadataServer
	// metaOnly: metaSrv serves what ServeMetadata gave (a saved copy of
	// an earlier spec), not an Ensure's spec.
	metaOnly bool
	plog     *policyLog
	// nftDigest is the ruleset digest this process last applied or saw
	// in the kernel ("" unknown, nftForce: apply at the next Ensure).
	nftDigest string
	// last is the plan of the router's latest Ensure or EnsureVPNRoutes
	// (nil after Quiesce): what RestoreVPNRoutes puts back.
	last *desired
	// noStaleDHCP: no dnsmasq of an earlier agent process serves the
	// router (looked for while it had no subnets; only an earlier process
	// can have left one, so once is enough).
	noStaleDHCP bool
}

// nftForce is the nftDigest that makes the next Ensure apply the ruleset
// whatever the table says (Resync).
const nftForce = "!"

// Failing describes the routers' services that keep exiting (dnsmasq
// exited three times in the last minute: a crash loop its restarts would
// hide), for the agent's health.
func (b *Builder) Failing() []string { return b.procs.failing(time.Now()) }

// Restarts is how many times this process restarted a router's service
// that had exited (regent_agent_router_service_restarts_total).
func (b *Builder) Restarts() uint64 { return b.procs.restarts.Load() }

// Resync makes the next Ensure of every router apply its nftables ruleset
// again even when the digest stored in the table matches: the digest
// vouches for the ruleset this agent applied, not for rules changed by
// hand inside the table since. The agent calls it at each periodic
// resync (drift repair); the ruleset goes in as one transaction, so
// traffic sees the old rules or the new, never none.
func (b *Builder) Resync() {
	b.mu.Lock()
	all := make([]*running, 0, len(b.routers))
	for _, rs := range b.routers {
		all = append(all, rs)
	}
	b.mu.Unlock()
	for _, rs := range all {
		rs.mu.Lock()
		rs.nftDigest = nftForce
		rs.mu.Unlock()
	}
}

// Result says what an Ensure changed; an empty Changes means the host
// already matched the spec.
type Result struct {
	Changes  []string
	Duration time.Duration
	// VPNFailed are the VPNs of the spec whose routes are invalid, each a
	// *vpn.SpecError: the router is built without them (no routes, no
	// rules); the agent hands them to vpn.Manager.Ensure as rejected, so
	// they are not loaded and their status carries the error.
	VPNFailed []error
}

// Router is a router this builder owns on the host.
type Router struct {
	ID        uint64
	ProjectID uint64
	Namespace string
}

// New validates cfg and returns a Builder. It does not touch the host
// apart from checking that nft is usable.
func New(cfg Config) (*Builder, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.SegmentMode == "" {
		cfg.SegmentMode = ModeVXLAN
	}
	if cfg.SegmentMode != ModeVXLAN && cfg.SegmentMode != ModeVLAN {
		return nil, fmt.Errorf("netrouter: segment mode %q is not %s or %s", cfg.SegmentMode, ModeVXLAN, ModeVLAN)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "rg"
	}
	if len(cfg.Prefix) > 4 {
		return nil, fmt.Errorf("netrouter: prefix %q is longer than 4 characters", cfg.Prefix)
	}
	if cfg.NamespacePrefix == "" {
		cfg.NamespacePrefix = "P"
	}
	if cfg.PublicBridge == "" || len(cfg.PublicBridge) > maxIfName {
		return nil, fmt.Errorf("netrouter: public bridge name %q is empty or too long", cfg.PublicBridge)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("netrouter: state dir is required")
	}
	if cfg.VXLANPort == 0 {
		cfg.VXLANPort = 4789
	}
	if cfg.NFLogGroup == 0 {
		cfg.NFLogGroup = 100
	}
	if cfg.PolicyLogSize <= 0 {
		cfg.PolicyLogSize = 256
	}
	if cfg.VPNMode == "" {
		cfg.VPNMode = vpn.ModeLibIPsec
	}
	if cfg.VPNMode != vpn.ModeLibIPsec && cfg.VPNMode != vpn.ModeXFRM {
		return nil, fmt.Errorf("netrouter: vpn mode %q is not %s or %s", cfg.VPNMode, vpn.ModeLibIPsec, vpn.ModeXFRM)
	}
	if cfg.Dnsmasq == "" {
		cfg.Dnsmasq = "dnsmasq"
	}
	if _, err := exec.LookPath(cfg.Dnsmasq); err != nil {
		return nil, fmt.Errorf("netrouter: dnsmasq: %w", err)
	}
	if cfg.SegmentMode == ModeVLAN && cfg.UnderlayDevice == "" {
		return nil, errors.New("netrouter: vlan mode needs an underlay device")
	}
	b := &Builder{
		cfg:     cfg,
		names:   naming{prefix: cfg.Prefix, nsPrefix: cfg.NamespacePrefix},
		log:     cfg.Logger.Named("netrouter"),
		routers: map[uint64]*running{},

		plogEpoch: rand.Text(),

		metaLimits: defaultMetadataLimits,
	}
	if cfg.PublicBridgeAddr != "" {
		if _, err := netip.ParsePrefix(cfg.PublicBridgeAddr); err != nil {
			return nil, fmt.Errorf("netrouter: public bridge address: %w", err)
		}
	}
	var err error
	if b.seg = cfg.Segments; b.seg == nil {
		b.seg, err = NewSegments(SegmentsConfig{SegmentMode: cfg.SegmentMode, VTEPAddr: cfg.VTEPAddr,
			UnderlayDevice: cfg.UnderlayDevice, VXLANPort: cfg.VXLANPort, Prefix: cfg.Prefix, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
	} else if b.seg.cfg.SegmentMode != cfg.SegmentMode || b.seg.cfg.Prefix != cfg.Prefix {
		return nil, fmt.Errorf("netrouter: the shared segments have mode %s and prefix %q, the builder %s and %q",
			b.seg.cfg.SegmentMode, b.seg.cfg.Prefix, cfg.SegmentMode, cfg.Prefix)
	}
	nft, err := knftables.New(knftables.InetFamily, tableName)
	if err != nil {
		return nil, fmt.Errorf("netrouter: nftables: %w", err)
	}
	b.nft = nft
	return b, nil
}

// Namespace is the network namespace of a project's router.
func (b *Builder) Namespace(projectID uint64) string { return b.names.namespace(projectID) }

func (b *Builder) routerDir(id uint64) string {
	return filepath.Join(b.cfg.StateDir, "router-"+strconv.FormatUint(id, 10))
}

func (b *Builder) state(id uint64) (*running, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("netrouter: builder closed")
	}
	r := b.routers[id]
	if r == nil {
		r = &running{meta: newMetadata()}
		b.routers[id] = r
	}
	return r, nil
}

func (b *Builder) step(name string) error {
	if b.hook != nil {
		return b.hook(name)
	}
	return nil
}

// Ensure makes the host match spec, changing only what differs. It is safe
// to call again after any failure or crash. A *SpecError means the spec
// itself is invalid.
func (b *Builder) Ensure(ctx context.Context, spec *api.RouterSpec) (Result, error) {
	return b.ensureAs(ctx, spec, false)
}

// EnsureQuiesced makes the host match spec like Ensure, but keeps the
// router quiesced throughout (an update of a QUIESCED router): the public
// veth is taken down before anything else changes and never comes up,
// DHCP, metadata and the policy log are stopped and not started, and a
// failure at any step leaves the router quiesced. A later Ensure (restart)
// brings it up with everything already in place.
func (b *Builder) EnsureQuiesced(ctx context.Context, spec *api.RouterSpec) (Result, error) {
	return b.ensureAs(ctx, spec, true)
}

func (b *Builder) ensureAs(ctx context.Context, spec *api.RouterSpec, quiesced bool) (Result, error) {
	var routerID uint64
	var namespace string
	planned := false
	res, err := b.locked(spec, func(d *desired, rs *running, c *changes) error {
		routerID, namespace, planned = d.routerID, d.namespace, true
		if quiesced {
			rs.last = nil // a quiesced router has no VPNs
		}
		return b.ensure(ctx, d, rs, c, quiesced)
	})
	if !planned {
		return res, err // an invalid spec (*SpecError) or no state for it
	}
	log := b.log.With("router", routerID, "namespace", namespace, "quiesced", quiesced)
	if err != nil {
		log.Error("ensure failed", "error", err, "changes", len(res.Changes))
		return res, fmt.Errorf("router %d: %w", routerID, err)
	}
	if len(res.Changes) > 0 {
		log.Info("router reconciled", "changes", strings.Join(res.Changes, "; "), "duration", res.Duration)
	}
	return res, nil
}

// locked plans spec and runs fn under the router's lock, timing it and
// collecting its changes.
func (b *Builder) locked(spec *api.RouterSpec, fn func(d *desired, rs *running, c *changes) error) (Result, error) {
	start := time.Now()
	d, err := plan(spec, b.names, b.cfg.SegmentMode)
	if err != nil {
		return Result{}, err
	}
	rs, err := b.state(d.routerID)
	if err != nil {
		return Result{}, err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.last = d
	c := &changes{}
	err = fn(d, rs, c)
	return Result{Changes: c.list, Duration: time.Since(start), VPNFailed: d.vpnFailed}, err
}

type changes struct{ list []string }

func (c *changes) add(format string, a ...any) { c.list = append(c.list, fmt.Sprintf(format, a...)) }

// ensure runs the build steps; quiesced keeps the router quiesced: its
// public side and services are stopped first and stay so.
func (b *Builder) ensure(ctx context.Context, d *desired, rs *running, c *changes, quiesced bool) error {
	dir := b.routerDir(d.routerID)
	type step struct {
		name string
		fn   func() error
	}
	steps := []step{
		{"state", func() error { return b.ensureStateDir(dir, d, c) }},
		{"namespace", func() error { return b.ensureNamespace(ctx, d, rs, c) }},
	}
	if quiesced {
		steps = append(steps, step{"quiesce", func() error { return b.quiesce(ctx, d, rs, c) }})
	}
	steps = append(steps,
		// The ruleset before the links: a new namespace forwards as soon
		// as its veths are up and its default route is in, and until the
		// ruleset is there it would do so with no firewall, no NAT and no
		// VPN fence (a VM's traffic to a VPN's remote subnet out of pub0
		// unencrypted). The ruleset names interfaces, it needs none of
		// them to exist.
		step{"nftables", func() error { return b.ensureNft(ctx, d, rs, c) }},
		step{"links", func() error { return b.ensureLinks(ctx, d, c, !quiesced) }},
		step{"vpn", func() error { return b.ensureVPN(ctx, d, c) }},
	)
	if !quiesced {
		steps = append(steps,
			step{"dhcp", func() error { return b.ensureDHCP(ctx, d, dir, rs, c) }},
			step{"metadata", func() error { return b.ensureMetadata(d, rs, c) }},
			step{"policylog", func() error { return b.ensurePolicyLog(d, rs, c) }},
		)
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.step(s.name); err != nil {
			return err
		}
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// stateFile records which router a state dir belongs to, written before
// anything else is built so a crash leaves a findable trace.
type stateFile struct {
	RouterID  uint64 `json:"router_id"`
	ProjectID uint64 `json:"project_id"`
	Namespace string `json:"namespace"`
}

func (b *Builder) ensureStateDir(dir string, d *desired, c *changes) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, _ := json.Marshal(stateFile{RouterID: d.routerID, ProjectID: d.projectID, Namespace: d.namespace})
	wrote, err := atomicfile.WriteIfChanged(filepath.Join(dir, "router.json"), data, 0o644)
	if wrote {
		c.add("state file")
	}
	return err
}

func (b *Builder) ensureNamespace(ctx context.Context, d *desired, rs *running, c *changes) error {
	created, err := ensureNamespace(d.namespace)
	if created {
		c.add("namespace %s", d.namespace)
		// Servers still running belong to a namespace that is gone.
		rs.stop(ctx)
		rs.nftDigest = ""
	}
	if err != nil {
		return err
	}
	// Forwarding and secondary promotion (so removing a NAT address never
	// takes the others with it).
	return withNetnsPath(nsPath(d.namespace), func() error {
		for _, s := range []struct{ key, val string }{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv6/conf/all/forwarding", "1"},
			{"net/ipv4/conf/all/promote_secondaries", "1"},
			{"net/ipv4/conf/default/promote_secondaries", "1"},
			// Hairpin NAT goes out of the interface it came in: an ICMP
			// redirect would send the caller to the VM directly, which
			// does not own the public address.
			{"net/ipv4/conf/all/send_redirects", "0"},
			{"net/ipv4/conf/default/send_redirects", "0"},
			// Strict reverse path filtering (the kernel uses the higher of
			// all and the interface's, so it covers existing links): a VM
			// cannot send into the public network, or another subnet, with
			// a source address not routed back to its own interface.
			{"net/ipv4/conf/all/rp_filter", "1"},
		} {
			changed, err := setSysctl(s.key, s.val)
			if err != nil {
				return err
			}
			if changed {
				c.add("sysctl %s=%s", s.key, s.val)
			}
		}
		return nil
	})
}

// setSysctl writes /proc/sys/<key> of the calling thread's namespace when
// it differs.
func setSysctl(key, val string) (bool, error) {
	path := filepath.Join("/proc/sys", key)
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && strings.HasPrefix(key, "net/ipv6/") {
		return false, nil // IPv6 disabled on this host
	}
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(old)) == val {
		return false, nil
	}
	return true, os.WriteFile(path, []byte(val), 0o644)
}

func (b *Builder) ensureNft(ctx context.Context, d *desired, rs *running, c *changes) error {
	tx := b.nft.NewTransaction()
	digest := renderRuleset(tx, d, rulesetOpts{nflogGroup: b.cfg.NFLogGroup, vpnMode: b.cfg.VPNMode})
	return withNetnsPath(nsPath(d.namespace), func() error {
		// Reading the table back costs an nft run: skip it when this
		// process applied a different ruleset last (a change is certain).
		// After a Resync the ruleset goes in again even when the stored
		// digest matches (hand edits inside the table do not show in it);
		// that re-apply is not reported as a change.
		forced := rs.nftDigest == nftForce
		if rs.nftDigest == "" || rs.nftDigest == digest || forced {
			if appliedDigest(ctx, b.nft) == digest {
				if !forced {
					rs.nftDigest = digest
					return nil
				}
			} else {
				forced = false
			}
		}
		rs.nftDigest = ""
		if err := b.nft.Run(ctx, tx); err != nil {
			return err
		}
		rs.nftDigest = digest
		if !forced {
			c.add("nftables ruleset %s", digest)
		}
		return nil
	})
}

func (b *Builder) ensureDHCP(ctx context.Context, d *desired, dir string, rs *running, c *changes) error {
	confPath := filepath.Join(dir, dnsmasqConf)
	if len(d.subnets) == 0 {
		if rs.dhcp != nil {
			_ = rs.dhcp.Stop(ctx)
			rs.dhcp, rs.dhcpConf = nil, nil
			c.add("dhcp stopped")
		}
		// Nor may a dnsmasq of an earlier agent process serve on.
		if !rs.noStaleDHCP {
			if killed, err := killStale(filepath.Join(dir, dnsmasqPid), confPath); err != nil {
				return err
			} else if killed {
				c.add("dhcp: stopped dnsmasq of an earlier agent")
			}
			rs.noStaleDHCP = true
		}
		return nil
	}
	conf, hosts := renderDnsmasq(d, dir)
	hostsChanged, err := atomicfile.WriteIfChanged(filepath.Join(dir, dnsmasqHosts), hosts, 0o644)
	if err != nil {
		return err
	}
	confChanged, err := atomicfile.WriteIfChanged(confPath, conf, 0o644)
	if err != nil {
		return err
	}
	if rs.dhcp != nil && (confChanged || !slices.Equal(rs.dhcpConf, conf)) {
		_ = rs.dhcp.Stop(ctx)
		rs.dhcp = nil
		c.add("dhcp configuration changed: restart")
	}
	if rs.dhcp == nil {
		// A dnsmasq left by an earlier agent process serves the old
		// configuration and is not ours to supervise: replace it.
		if killed, err := killStale(filepath.Join(dir, dnsmasqPid), confPath); err != nil {
			return err
		} else if killed {
			c.add("dhcp: replaced dnsmasq of an earlier agent")
		}
		argv := []string{b.cfg.Dnsmasq, "--keep-in-foreground", "--conf-file=" + confPath}
		rs.dhcp = b.procs.start(b.log.Named("dnsmasq").With("router", d.routerID), fmt.Sprintf("router %d: dnsmasq (DHCP)", d.routerID), nsPath(d.namespace), argv)
		rs.dhcpConf = conf
		c.add("dhcp started")
		return nil
	}
	if hostsChanged {
		if rs.dhcp.signal(syscall.SIGHUP) {
			c.add("dhcp hosts reloaded")
		}
	}
	return nil
}

func (b *Builder) ensureMetadata(d *desired, rs *running, c *changes) error {
	rs.meta.set(d)
	rs.metaOnly = false
	if rs.metaSrv != nil && rs.metaSrv.alive() {
		return nil
	}
	srv, err := startMetadataServer(b.log.Named("metadata").With("router", d.routerID), nsPath(d.namespace), rs.meta, b.metaLimits)
	if err != nil {
		return err
	}
	rs.metaSrv = srv
	c.add("metadata server started")
	return nil
}

func (b *Builder) ensurePolicyLog(d *desired, rs *running, c *changes) error {
	if rs.plog != nil && rs.plog.alive() {
		return nil
	}
	log := b.log.Named("policylog").With("router", d.routerID)
	p, err := startPolicyLog(log, nsPath(d.namespace), b.cfg.NFLogGroup, b.cfg.PolicyLogSize, &b.plogSeq)
	if err != nil {
		// The router works without its log: report, retry on the next Ensure.
		log.Warn("policy log unavailable", "error", err)
		return nil
	}
	rs.plog = p
	c.add("policy log started")
	return nil
}

// PolicyLogEpoch names the numbering of the policy log entries' Seq: a
// random id made with the Builder. The numbers start again from 1 with
// each Builder (each agent start), and so does the epoch: a reader that
// keeps numbers across Builders (the controller) tells them apart by it.
func (b *Builder) PolicyLogEpoch() string { return b.plogEpoch }

// PolicyLog returns the most recent packets that matched a logging rule
// of router id, oldest first (nil when the router does not run here).
func (b *Builder) PolicyLog(id uint64) []PolicyLogEntry {
	b.mu.Lock()
	rs := b.routers[id]
	b.mu.Unlock()
	if rs == nil {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.plog == nil {
		return nil
	}
	return rs.plog.entries()
}

// stopRunning stops the router's processes and servers in this process.
func (rs *running) stop(ctx context.Context) {
	if rs.dhcp != nil {
		_ = rs.dhcp.Stop(ctx)
		rs.dhcp, rs.dhcpConf = nil, nil
	}
	if rs.metaSrv != nil {
		_ = rs.metaSrv.Stop(ctx)
		rs.metaSrv = nil
	}
	rs.metaOnly = false
	if rs.plog != nil {
		rs.plog.Stop()
		rs.plog = nil
	}
}

// Quiesce stops a router without removing it: the public veth goes down
// (no traffic in or out) and DHCP and metadata stop. Ensure restarts it.
// Only the spec's id and project_id are read (planQuiesce): a router whose
// spec Ensure refuses (UNRESOURCED) can still be quiesced, and so go
// through SCRUB to CLOSED.
func (b *Builder) Quiesce(ctx context.Context, spec *api.RouterSpec) error {
	d, err := planQuiesce(spec, b.names)
	if err != nil {
		return err
	}
	rs, err := b.state(d.routerID)
	if err != nil {
		return err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.last = nil // a quiesced router has no VPNs
	return b.quiesce(ctx, d, rs, &changes{})
}

// planQuiesce is the part of plan quiesce needs: the router's id and the
// names made from its project (namespace, public veth). Nothing else of
// the spec is read, so a spec plan refuses does not keep a router up.
func planQuiesce(spec *api.RouterSpec, n naming) (*desired, error) {
	if spec.ID == 0 || spec.ProjectID == 0 {
		return nil, &SpecError{Err: fmt.Errorf("router %d of project %d: id and project_id are required", spec.ID, spec.ProjectID)}
	}
	return &desired{routerID: spec.ID, projectID: spec.ProjectID, namespace: n.namespace(spec.ProjectID), publicVeth: n.publicVeth(spec.ProjectID)}, nil
}

// quiesce stops the router's services (also a dnsmasq of an earlier agent
// process) and takes its public veth down.
func (b *Builder) quiesce(ctx context.Context, d *desired, rs *running, c *changes) error {
	if rs.dhcp != nil || rs.metaSrv != nil {
		c.add("services stopped")
	}
	rs.stop(ctx)
	dir := b.routerDir(d.routerID)
	if killed, _ := killStale(filepath.Join(dir, dnsmasqPid), filepath.Join(dir, dnsmasqConf)); killed {
		c.add("dhcp: stopped dnsmasq of an earlier agent")
	}
	return b.setPublicDown(d, c)
}

// Scrub removes everything of router id from the host: processes,
// namespace (with its nftables table), links, segment bridges nothing else
// uses, and files. Missing pieces are fine.
func (b *Builder) Scrub(ctx context.Context, id uint64) error {
	// A closed builder still scrubs: it just has nothing running.
	rs, err := b.state(id)
	if err != nil {
		rs = &running{}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.stop(ctx)

	dir := b.routerDir(id)
	var errs []error
	if _, err := killStale(filepath.Join(dir, dnsmasqPid), filepath.Join(dir, dnsmasqConf)); err != nil {
		errs = append(errs, err)
	}
	routers, err := b.List(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range routers {
		if r.ID != id {
			continue
		}
		if err := b.removeRouterLinks(r); err != nil {
			errs = append(errs, err)
		}
		if r.Namespace != "" {
			if err := deleteNamespace(r.Namespace); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := b.seg.gc(nil); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	b.mu.Lock()
	delete(b.routers, id)
	b.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("scrub router %d: %w", id, errors.Join(errs...))
	}
	b.log.Info("router scrubbed", "router", id)
	return nil
}

// List returns the routers this builder owns on the host: namespaces whose
// loopback carries its tag, host links with its router tags and its state
// directories (so half-built routers are found too).
func (b *Builder) List(ctx context.Context) ([]Router, error) {
	found := map[uint64]Router{}
	merge := func(r Router) {
		old := found[r.ID]
		if r.Namespace == "" {
			r.Namespace = old.Namespace
		}
		if r.ProjectID == 0 {
			r.ProjectID = old.ProjectID
		}
		found[r.ID] = r
	}
	ents, err := os.ReadDir(b.cfg.StateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "router-") {
			continue
		}
		var sf stateFile
		data, err := os.ReadFile(filepath.Join(b.cfg.StateDir, e.Name(), "router.json"))
		if err == nil && json.Unmarshal(data, &sf) == nil && sf.RouterID != 0 {
			merge(Router{ID: sf.RouterID, ProjectID: sf.ProjectID, Namespace: sf.Namespace})
		}
	}
	nsRouters, err := b.listNamespaceRouters()
	if err != nil {
		return nil, err
	}
	for _, r := range nsRouters {
		merge(r)
	}
	linkRouters, err := b.listLinkRouters()
	if err != nil {
		return nil, err
	}
	for _, r := range linkRouters {
		merge(r)
	}
	out := make([]Router, 0, len(found))
	for _, r := range found {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Router) int { return cmpU64(a.ID, b.ID) })
	return out, ctx.Err()
}

// Close stops the processes and servers of every router; what is built
// on the host stays.
func (b *Builder) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	routers := b.routers
	b.routers = map[uint64]*running{}
	b.mu.Unlock()
	for _, rs := range routers {
		rs.mu.Lock()
		rs.stop(ctx)
		rs.mu.Unlock()
	}
	return nil
}
