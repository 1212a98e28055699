package daemon

// The hypervisor role: VMs through agent/vm and libvirtd, driven by the
// same ROBOT state machine as the virtual routers.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/agent/reconcile"
	"github.com/regentcloud/regent/agent/vm"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// vmBuilder is what the VM handler needs of agent/vm.
type vmBuilder interface {
	DomainName(spec *api.VMSpec) string
	Build(ctx context.Context, spec *api.VMSpec) error
	Update(ctx context.Context, spec *api.VMSpec) error
	Quiesce(ctx context.Context, spec *api.VMSpec) error
	Scrub(ctx context.Context, spec *api.VMSpec) error
	Domains(ctx context.Context) ([]string, error)
	ScrubDomain(ctx context.Context, name string) error
	// Snapshots and backups (snapshot.go).
	SnapshotCreate(ctx context.Context, spec *api.VMSpec, name string) error
	SnapshotRevert(ctx context.Context, spec *api.VMSpec, name string, generation uint64) error
	SnapshotDelete(ctx context.Context, spec *api.VMSpec, name string, subtree bool) error
	Backup(ctx context.Context, spec *api.VMSpec, name string) (string, error)
	BackupDelete(ctx context.Context, spec *api.VMSpec, name string) error
	BackupRestore(ctx context.Context, spec *api.VMSpec, name string, generation uint64) error
}

// vmReporter makes the compare-and-swap state reports of VMs and their
// snapshots and backups.
type vmReporter interface {
	SetVMState(ctx context.Context, id uint64, r client.StateReport) error
	SetSnapshotState(ctx context.Context, id uint64, r client.StateReport) error
	SetBackupState(ctx context.Context, id uint64, r client.StateReport) error
}

// SetVMState reports a VM's state change to the controllers.
func (c *controllers) SetVMState(ctx context.Context, id uint64, r client.StateReport) error {
	return c.do(ctx, func(ctx context.Context, cl *client.Client) error { return cl.Agent().SetVMState(ctx, id, r) })
}

// maxLibvirtFailures is how many attempts in a row may fail with a plain
// libvirt error (vm_libvirt) before the VM goes UNRESOURCED: a libvirtd
// restart or a busy host is retried, a persistent failure is reported.
const maxLibvirtFailures = 5

// errNoSegment: a NIC's segment bridge is not on this host yet (the
// virtual router, or the hypervisor's segment set-up, makes it); retried.
type errNoSegment struct{ bridges []string }

func (e *errNoSegment) Error() string {
	return fmt.Sprintf("segment bridge %v not on this host yet; retrying", e.bridges)
}

// vmHandler drives VMs through the ROBOT state machine with agent/vm:
// build, update and restart converge the domain and keep it running
// (Build), quiesce shuts it down, an update while quiesced is applied to
// the shut-off domain (Quiesce, Update), scrub removes the domain, its
// volumes and its seed. Failures carrying an agent/vm code (bad spec,
// missing image, checksum, full pool; libvirt errors after
// maxLibvirtFailures attempts) put the VM UNRESOURCED with error_code and
// error_detail.
type vmHandler struct {
	m       *machine
	snaps   *machine // the VMs' snapshots (snapshot.go)
	backups *machine // and backups
	b       vmBuilder
	metrics *Metrics
	log     hclog.Logger
	// missing returns the segment bridges of spec that are not on the
	// host (nil: no check).
	missing func(spec *api.VMSpec) []string

	// failures counts consecutive vm_libvirt failures per "vm/<id>",
	// "snapshot/<id>", "backup/<id>".
	failures *retryBudget
}

func newVMHandler(b vmBuilder, report vmReporter, metrics *Metrics, log hclog.Logger) *vmHandler {
	return &vmHandler{m: &machine{kind: "VM", set: report.SetVMState},
		snaps:   &machine{kind: "snapshot", set: report.SetSnapshotState, plans: snapshotPlans},
		backups: &machine{kind: "backup", set: report.SetBackupState, plans: backupPlans},
		b:       b, metrics: metrics, log: log, failures: &retryBudget{max: maxLibvirtFailures}}
}

// setHeld makes the VMs, their snapshots and their backups wait, with no
// host action and no state report, while held says why ("" when they may
// go on: machine.held), and tells refused of their state reports refused
// for another agent instance (machine.refused).
func (h *vmHandler) setHeld(held func() string, refused func(error)) {
	for _, m := range []*machine{h.m, h.snaps, h.backups} {
		m.held, m.refused = held, refused
	}
}

// specVersion is a digest of a whole spec (a VM's or a router's), so any
// change reaches the host. It is keyed (HMAC with the daemon's random key)
// because the reconcile loop logs versions and specs carry secrets (VPN
// pre-shared keys, userdata): an unkeyed digest would let a weak key be
// guessed offline from a log line.
func specVersion(key []byte, spec any) string {
	b, _ := json.Marshal(spec)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil)[:12])
}

// Key is the VM's domain name: the key Owned lists after a restart.
func (h *vmHandler) Key(s api.VMSpec) string { return h.b.DomainName(&s) }

// Apply implements reconcile.Handler.
func (h *vmHandler) Apply(ctx context.Context, spec api.VMSpec) error {
	log := h.log.With("vm", spec.ID, "project", spec.ProjectID, "state", spec.State, "generation", spec.Generation)
	key := fmt.Sprintf("vm/%d", spec.ID)
	res, err := h.m.run(ctx, object{id: spec.ID, generation: spec.Generation, state: spec.State}, steps{
		do:     func(ctx context.Context, act action) error { return h.do(ctx, &spec, act, log) },
		failed: func(err error) string { return h.failedKey(key, err) },
	}, log)
	if err == nil {
		h.clearFailures(key)
	}
	h.metrics.reconciled(api.KindVM, res)
	if err != nil || res != resultOK {
		return waitsForLibvirtd(err)
	}
	// The domain is as the VM's state says: now its snapshots and backups.
	return waitsForLibvirtd(h.applySnapshots(ctx, &spec, log))
}

// waitsForLibvirtd marks a failure because libvirtd is away (not running,
// restarting, not answering) as a wait: the loop retries it without a
// warning per VM and attempt; the daemon logs libvirtd's absence once.
func waitsForLibvirtd(err error) error {
	var ve *vm.Error
	if errors.As(err, &ve) && vm.ConnectionLost(err) {
		return reconcile.Waiting(err)
	}
	return err
}

func (h *vmHandler) clearFailures(key string) { h.failures.clear(key) }

func (h *vmHandler) do(ctx context.Context, spec *api.VMSpec, act action, log hclog.Logger) error {
	start := time.Now()
	var name string
	var err error
	switch act {
	case actEnsure:
		name = "build"
		if h.missing != nil {
			if br := h.missing(spec); len(br) > 0 {
				return &errNoSegment{bridges: br}
			}
		}
		err = h.b.Build(ctx, spec)
	case actQuiesce:
		name = "quiesce"
		err = h.b.Quiesce(ctx, spec)
	case actQuiescedUpdate:
		// Down first, so a vCPU or RAM change does not restart it.
		name = "update"
		if err = h.b.Quiesce(ctx, spec); err == nil {
			err = h.b.Update(ctx, spec)
		}
	case actScrub:
		name = "scrub"
		err = h.b.Scrub(ctx, spec)
	default:
		return nil
	}
	took := time.Since(start)
	h.metrics.built(api.KindVM, name, took)
	if err == nil && (act != actEnsure || took > 100*time.Millisecond) {
		log.Info("vm "+name, "domain", h.b.DomainName(spec), "took", took.Round(time.Millisecond))
	}
	return err
}

// failedKey classifies a failure of the VM, snapshot or backup key: the
// agent/vm code of one that cannot be made as its spec says; "" (retry)
// for a missing segment, a lost libvirtd connection and the first plain
// libvirt errors.
func (h *vmHandler) failedKey(id string, err error) string {
	var ve *vm.Error
	if !errors.As(err, &ve) {
		return ""
	}
	code := vm.ErrorCode(err)
	if code != vm.CodeLibvirt {
		return code
	}
	if vm.ConnectionLost(err) {
		return "" // libvirtd is away: wait for it
	}
	if !h.failures.spent(id) {
		return ""
	}
	return code
}

// Owned implements reconcile.Handler: the domains the builder owns.
func (h *vmHandler) Owned(ctx context.Context) ([]string, error) { return h.b.Domains(ctx) }

// Remove implements reconcile.Handler: a domain no VM in the complete work
// wants is scrubbed with its volumes.
func (h *vmHandler) Remove(ctx context.Context, name string) error {
	start := time.Now()
	err := h.b.ScrubDomain(ctx, name)
	h.metrics.built(api.KindVM, "scrub", time.Since(start))
	if err == nil {
		h.log.Info("scrubbed a domain no VM wants", "domain", name)
		h.metrics.reconciled(api.KindVM, resultRemoved)
	}
	return err
}

// finishVM fills the hypervisor settings' defaults and validates them.
func (c *Config) finishVM() []error {
	var errs []error
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.LibvirtSocket, vm.DefaultSocket)
	def(&c.StorageRoot, filepath.Join(c.DataDir, "pools"))
	def(&c.ImageDir, filepath.Join(c.DataDir, "images"))
	def(&c.SeedDir, filepath.Join(c.DataDir, "seeds"))
	def(&c.BackupDir, filepath.Join(c.DataDir, "backups"))
	def(&c.ConsoleLogDir, filepath.Join(c.DataDir, "console"))
	def(&c.ShutdownTimeout, "2m")
	def(&c.ImageRetention, "24h")
	if c.DomainType != "" && c.DomainType != "kvm" && c.DomainType != "qemu" {
		errs = append(errs, fmt.Errorf("domain_type: %q is not kvm or qemu (empty: kvm where /dev/kvm exists)", c.DomainType))
	}
	for _, d := range []struct{ name, v string }{{"storage_root", c.StorageRoot}, {"image_dir", c.ImageDir},
		{"seed_dir", c.SeedDir}, {"backup_dir", c.BackupDir}, {"console_log_dir", c.ConsoleLogDir}} {
		if !filepath.IsAbs(d.v) {
			errs = append(errs, fmt.Errorf("%s: %q must be an absolute path", d.name, d.v))
		}
	}
	if d, err := time.ParseDuration(c.ShutdownTimeout); err != nil || d < time.Second {
		errs = append(errs, fmt.Errorf("shutdown_timeout: %q must be a duration of at least 1s, such as \"2m\"", c.ShutdownTimeout))
	}
	if d, err := time.ParseDuration(c.ImageRetention); err != nil || d < 0 {
		errs = append(errs, fmt.Errorf("image_retention: %q must be a duration of 0s or more, such as \"24h\"", c.ImageRetention))
	}
	// The prefix starts domain, volume and file names the agent matches
	// (and deletes) by pattern: no glob or path characters in it.
	if !domainPrefixRe.MatchString(c.DomainPrefix) {
		errs = append(errs, fmt.Errorf("domain_prefix: %q may only hold letters, digits, '-', '_' and '.' (at most 32)", c.DomainPrefix))
	}
	return errs
}

var domainPrefixRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{0,32}$`)

// vmConfig is the builder's configuration.
func (c *Config) vmConfig(log hclog.Logger) vm.Config {
	timeout, _ := time.ParseDuration(c.ShutdownTimeout)
	types := make([]string, 0, len(c.Storage))
	for t := range c.Storage {
		types = append(types, t)
	}
	slices.Sort(types)
	return vm.Config{DomainType: c.DomainType, NamePrefix: c.DomainPrefix, PoolPrefix: "regent-" + c.DomainPrefix,
		StorageRoot: c.StorageRoot, PoolPaths: c.Storage, StorageTypes: types,
		ImageDir: c.ImageDir, SeedDir: c.SeedDir, ConsoleLogDir: c.ConsoleLogDir, BackupDir: c.BackupDir,
		BridgePrefix: c.LinkPrefix, SegmentMode: c.SegmentMode, ShutdownTimeout: timeout}
}

// startVMs sets up the hypervisor role: the builder over libvirtd, its
// domain metrics and the VM reconcile loop. The returned stop ends them.
func (d *Daemon) startVMs(ctx context.Context) (stop func(), err error) {
	conn := vm.NewConn(d.cfg.LibvirtSocket)
	b, err := vm.New(d.cfg.vmConfig(d.log), conn, d.log) // it names its logger "vm"
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := d.metrics.Registry.Register(b.Collector()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("vm metrics: %w", err)
	}
	d.vmBuilder = b
	h := newVMHandler(b, d.ctl, d.metrics, d.log.Named("vm"))
	h.missing = func(spec *api.VMSpec) []string { return missingBridges(d.cfg.LinkPrefix, d.cfg.SegmentMode, spec) }
	for _, r := range []string{resultOK, resultError, resultConflict, resultInvalid, resultWaiting, resultRemoved} {
		d.metrics.reconciles.WithLabelValues(api.KindVM, r)
	}
	d.vms = d.vmLoop(ctx, h)
	d.log.Info("hypervisor role: building VMs through libvirtd", "socket", d.cfg.LibvirtSocket,
		"domain_type", d.cfg.DomainType, "storage", d.cfg.Storage)
	return func() {
		d.vms.Stop()
		conn.Close()
	}, nil
}

// vmLoop is the reconcile loop of the VMs over h, which acts on nothing
// while another agent instance holds the server (Daemon.acting).
func (d *Daemon) vmLoop(ctx context.Context, h *vmHandler) *reconcile.Loop[api.VMSpec] {
	h.setHeld(d.acting, d.reportConflict)
	return reconcile.New(ctx, reconcile.Config[api.VMSpec]{
		Key: h.Key, Handler: h,
		Version: func(s api.VMSpec) string {
			return specVersion(d.versionKey, s) + "/" + strconv.FormatUint(d.epoch.Load(), 10)
		},
		MinBackoff: d.minRetry, MaxBackoff: time.Minute, Logger: d.log.Named("reconcile"),
	})
}

// imagePruneEvery is the least time between two image prunes.
const imagePruneEvery = time.Minute

// pruneImages removes the image volumes nothing uses any more
// (vm.Builder.PruneImages) after a complete work fetch, at most once per
// imagePruneEvery (or image_retention, when shorter: with 0s at every
// complete fetch): the images of vms stay, as do those a disk or a backup
// is based on. A prune that a build in progress held off is tried again
// at the next fetch.
func (d *Daemon) pruneImages(ctx context.Context, vms []api.VMSpec) {
	retention, _ := time.ParseDuration(d.cfg.ImageRetention)
	if d.vmBuilder == nil || (!d.lastPrune.IsZero() && time.Since(d.lastPrune) < min(d.pruneEvery, retention)) {
		return
	}
	want := make([]api.ImageSpec, 0, len(vms))
	for _, v := range vms {
		want = append(want, v.Image)
	}
	pruned, err := d.vmBuilder.PruneImages(ctx, want, retention)
	if errors.Is(err, vm.ErrImagesBusy) {
		d.log.Debug("image prune skipped: a build is using the image volumes")
		return
	}
	d.lastPrune = time.Now()
	for _, p := range pruned {
		d.metrics.imagesRemoved.Inc()
		d.metrics.imageBytesRemoved.Add(float64(p.Bytes))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		d.log.Warn("image prune failed; nothing more removed until the next one", "error", err)
	}
}

// missingBridges lists the segment bridges of spec's NICs that are not on
// the host.
func missingBridges(prefix, mode string, spec *api.VMSpec) []string {
	var out []string
	for _, n := range spec.NICs {
		id := n.VNI
		if mode == netrouter.ModeVLAN {
			id = n.VLAN
		}
		br := netrouter.SegmentBridge(prefix, mode, id)
		if _, err := net.InterfaceByName(br); err != nil && !slices.Contains(out, br) {
			out = append(out, br)
		}
	}
	return out
}

// vmCapacity is the hypervisor's capacity from libvirt (node info, pools);
// ok is false without the hypervisor role or when libvirtd does not answer.
func (d *Daemon) vmCapacity() (api.Capacity, bool) {
	if d.vmBuilder == nil {
		return api.Capacity{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.vmBuilder.Capacity(ctx)
	d.setLibvirtErr(err)
	return c, err == nil
}

// setLibvirtErr records the last libvirt capacity read's error for the
// health, and logs only when it changes: it is read at every heartbeat,
// and an unreachable libvirtd would otherwise be a warning every 10 s
// (/healthz, the heartbeats and regent_agent_degraded keep saying it).
func (d *Daemon) setLibvirtErr(err error) {
	now := ""
	if err != nil {
		now = err.Error()
	}
	was, _ := d.libvirtErr.Swap(now).(string)
	switch {
	case now == was:
	case now != "":
		d.log.Warn("libvirtd does not answer: capacity falls back to the host's figures, VM work is retried (logged again when this changes)", "error", err)
	case was != "":
		d.log.Info("libvirtd answers again")
		if d.vms != nil {
			d.vms.Retry() // the VMs waiting out a backoff for it
		}
	}
}
