package vm

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regentcloud/regent/agent/hostinfo"
	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/atomicfile"
)

// Config is the builder's configuration. Zero fields take the defaults
// documented on each.
type Config struct {
	// DomainType is "kvm", or "qemu" (TCG) where there is no /dev/kvm;
	// "" picks kvm when /dev/kvm exists.
	DomainType string
	// Machine is the QEMU machine type ("" lets libvirt choose).
	Machine string
	// NamePrefix starts every domain name: <prefix><project>_<vm>.
	NamePrefix string
	// PoolPrefix starts every storage pool name ("regent-").
	PoolPrefix string
	// StorageRoot holds one pool directory per storage type
	// (/var/lib/regent/pools).
	StorageRoot string
	// PoolPaths puts the pool of a storage type in a directory of its own
	// instead of <StorageRoot>/<storage type>.
	PoolPaths map[string]string
	// StorageTypes are reported by Capacity even before a VM uses them.
	StorageTypes []string
	// ImageDir resolves relative image sources (/var/lib/regent/images).
	ImageDir string
	// SeedDir holds the NoCloud seed ISOs (/var/lib/regent/seeds).
	SeedDir string
	// ConsoleLogDir holds each domain's serial console log
	// (/var/log/regent/console).
	ConsoleLogDir string
	// BackupDir receives backups (/var/lib/regent/backups).
	BackupDir string
	// BridgePrefix and SegmentMode are the virtual router's
	// (netrouter.Config Prefix and SegmentMode): a NIC's tap goes on the
	// bridge netrouter.SegmentBridge names.
	BridgePrefix string
	SegmentMode  string
	// ShutdownTimeout bounds the ACPI shutdown of Quiesce before the
	// domain is destroyed (2 minutes).
	ShutdownTimeout time.Duration
	// HTTPClient fetches http(s) image sources (http.DefaultClient).
	HTTPClient *http.Client
	// ImportStallTimeout fails an http(s) image download when nothing
	// arrives for this long, the response header included (2 minutes).
	ImportStallTimeout time.Duration
}

// Builder builds VMs. It keeps no state of its own beyond a few locks:
// libvirt and the pool directories are the truth, so it survives restarts.
type Builder struct {
	cfg Config
	lv  Libvirt
	log hclog.Logger

	poolMu sync.Mutex
	swept  map[string]bool // pool directories swept of partial imports (under poolMu)
	// imports holds one lock per image volume being imported (a
	// channel of capacity 1, so a wait ends with its context): imports
	// of different images go on side by side, while a slow one lasts.
	importsMu sync.Mutex
	imports   map[string]chan struct{}
	// imageMu is held for reading while an image volume is needed
	// (checked, then built upon) and for writing by PruneImages, which
	// keeps unusedSince under it: when each unused image volume was
	// first found unused.
	imageMu     sync.RWMutex
	unusedSince map[string]time.Time
	// stepsMu serialises the edits of the domains' doneSteps files.
	stepsMu sync.Mutex
	// serverID is the server the agent is registered as (SetServerID):
	// domains are tagged with it and garbage collection takes only
	// those of this server.
	serverID atomic.Uint64
	// untagged are the domains without a server tag already logged.
	untaggedMu sync.Mutex
	untagged   map[string]bool
	// host reads the pools' file systems for Capacity (statfs bounded in
	// time, a hung mount included).
	host hostinfo.Reader
}

// SetServerID sets the server the agent is registered as. Domains defined
// from now on carry it; Domains and ScrubDomain take only domains that
// carry it, so an agent registered under a new id (a new or restored
// controller cluster) never collects the domains it made as another
// server. Until it is set, nothing is collected.
func (b *Builder) SetServerID(id uint64) { b.serverID.Store(id) }

// ServerID is the server id SetServerID set (0: none yet).
func (b *Builder) ServerID() uint64 { return b.serverID.Load() }

// New returns a builder over a libvirt connection.
func New(cfg Config, l Libvirt, log hclog.Logger) (*Builder, error) {
	if cfg.DomainType == "" {
		cfg.DomainType = "qemu"
		if _, err := os.Stat("/dev/kvm"); err == nil {
			cfg.DomainType = "kvm"
		}
	}
	if cfg.DomainType != "kvm" && cfg.DomainType != "qemu" {
		return nil, fmt.Errorf("vm: domain type %q is not kvm or qemu", cfg.DomainType)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.PoolPrefix, "regent-")
	def(&cfg.StorageRoot, "/var/lib/regent/pools")
	def(&cfg.ImageDir, "/var/lib/regent/images")
	def(&cfg.SeedDir, "/var/lib/regent/seeds")
	def(&cfg.ConsoleLogDir, "/var/log/regent/console")
	def(&cfg.BackupDir, "/var/lib/regent/backups")
	def(&cfg.SegmentMode, netrouter.ModeVXLAN)
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 2 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.ImportStallTimeout <= 0 {
		cfg.ImportStallTimeout = 2 * time.Minute
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if c, ok := l.(*Conn); ok {
		// The connection logs its losses and reconnects with the builder.
		c.setLogger(log.Named("libvirt"))
	}
	return &Builder{cfg: cfg, lv: l, log: log.Named("vm")}, nil
}

// DomainName is the libvirt domain of a VM.
func (b *Builder) DomainName(spec *api.VMSpec) string {
	return fmt.Sprintf("%s%d_%d", b.cfg.NamePrefix, spec.ProjectID, spec.ID)
}

func (b *Builder) seedPath(domain string) string {
	return filepath.Join(b.cfg.SeedDir, domain+"-seed.iso")
}

func (b *Builder) consoleLog(domain string) string {
	return filepath.Join(b.cfg.ConsoleLogDir, domain+"-serial.log")
}

// bridge is the segment bridge of a NIC, the same one the virtual router
// creates for the subnet.
func (b *Builder) bridge(n api.NICSpec) string {
	if b.cfg.SegmentMode == netrouter.ModeVLAN {
		return netrouter.SegmentBridge(b.cfg.BridgePrefix, netrouter.ModeVLAN, n.VLAN)
	}
	return netrouter.SegmentBridge(b.cfg.BridgePrefix, netrouter.ModeVXLAN, n.VNI)
}

// plan validates a spec and lays out its domain (disk paths are filled
// in by ensureStorage).
func (b *Builder) plan(spec *api.VMSpec) (domainPlan, error) {
	p := domainPlan{
		Type: b.cfg.DomainType, Name: b.DomainName(spec), Machine: b.cfg.Machine,
		VMID: spec.ID, ProjectID: spec.ProjectID, Generation: spec.Generation, ImageID: spec.Image.ID, ServerID: b.serverID.Load(),
		CPU: spec.CPU,
	}
	p.ConsoleLog = b.consoleLog(p.Name)
	if spec.CPU <= 0 {
		return p, newError(CodeBadSpec, "cpu %d is not positive", spec.CPU)
	}
	if spec.RAMMB <= 0 {
		return p, newError(CodeBadSpec, "ram_mb %d is not positive", spec.RAMMB)
	}
	p.MemoryMiB = uint64(spec.RAMMB)
	var primary *api.StorageSpec
	var extras []api.StorageSpec
	for i := range spec.Storages {
		s := spec.Storages[i]
		if s.GB <= 0 {
			return p, newError(CodeBadSpec, "storage %d: gb %d is not positive", s.ID, s.GB)
		}
		if s.Primary {
			if primary != nil {
				return p, newError(CodeBadSpec, "storages %d and %d are both primary", primary.ID, s.ID)
			}
			primary = &spec.Storages[i]
			continue
		}
		extras = append(extras, s)
	}
	if primary == nil {
		return p, newError(CodeBadSpec, "no primary storage")
	}
	sort.Slice(extras, func(i, j int) bool { return extras[i].ID < extras[j].ID })
	all := append([]api.StorageSpec{*primary}, extras...)
	for i, s := range all {
		p.Disks = append(p.Disks, disk{StorageID: s.ID, Target: diskTarget(i), Volume: volumeName(p.Name, s.ID),
			Bytes: uint64(s.GB) << 30, Primary: s.Primary})
	}
	for i, n := range spec.NICs {
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			return p, newError(CodeBadSpec, "nics[%d]: mac %q", i, n.MAC)
		}
		if b.cfg.SegmentMode == netrouter.ModeVLAN && n.VLAN == 0 || b.cfg.SegmentMode != netrouter.ModeVLAN && n.VNI == 0 {
			return p, newError(CodeBadSpec, "nics[%d]: no %s segment id", i, b.cfg.SegmentMode)
		}
		p.NICs = append(p.NICs, nic{MAC: hw.String(), Bridge: b.bridge(n)})
	}
	p.SeedPath = b.seedPath(p.Name)
	return p, nil
}

// current is what libvirt has of a domain now.
type current struct {
	defined bool
	state   DomainState
	live    *domainXML // nil unless active
}

func (b *Builder) current(ctx context.Context, name string) (current, error) {
	st, err := b.lv.DomainState(ctx, name)
	if isCode(err, errNoDomain) {
		return current{}, nil
	}
	if err != nil {
		return current{}, lv(err, "state of %s", name)
	}
	c := current{defined: true, state: st}
	if st.Active() {
		x, err := b.lv.DomainXML(ctx, name, false)
		if isCode(err, errNoDomain) {
			return current{}, nil
		}
		if err != nil {
			return c, lv(err, "xml of %s", name)
		}
		if c.live, err = parseDomainXML(x); err != nil {
			return c, lv(err, "xml of %s", name)
		}
	}
	return c, nil
}

// liveDisk finds a disk of the running domain by target.
func (c current) liveDisk(target string) *diskXML {
	if c.live == nil {
		return nil
	}
	for i, d := range c.live.Devices.Disks {
		if d.Target.Dev == target && d.Device == "disk" {
			return &c.live.Devices.Disks[i]
		}
	}
	return nil
}

// ensureStorage makes the pool, the image and every disk volume, growing
// disks that are smaller than the spec (live through QEMU when the domain
// runs with the disk attached). It fills in the disk paths. The image is
// needed only to create the primary volume: an existing VM's disk stays
// on the image it was built from, at its size, whatever version of the
// image its spec names now (a new version, even a broken one, is for new
// VMs and never reaches a running one's disk).
func (b *Builder) ensureStorage(ctx context.Context, spec *api.VMSpec, p *domainPlan, cur current) error {
	// The image stays until the primary disk is based on it (PruneImages).
	b.imageMu.RLock()
	defer b.imageMu.RUnlock()
	pool, err := b.ensurePool(ctx, spec.StorageType)
	if err != nil {
		return err
	}
	for i := range p.Disks {
		dk := &p.Disks[i]
		var base func(ctx context.Context) (*volBackingXML, uint64, error)
		if dk.Primary {
			base = func(ctx context.Context) (*volBackingXML, uint64, error) {
				img, imgFormat, err := b.ensureImage(ctx, pool, spec.StorageType, spec.Image)
				if err != nil {
					return nil, 0, err
				}
				return &volBackingXML{Path: img.Path, Format: volFormatXML{Type: imgFormat}}, img.Capacity, nil
			}
		}
		grow := func(ctx context.Context, have uint64) error {
			if cur.liveDisk(dk.Target) != nil {
				b.log.Info("growing disk of running domain", "domain", p.Name, "disk", dk.Target, "from", have, "to", dk.Bytes)
				return lv(b.lv.BlockResize(ctx, p.Name, dk.Target, dk.Bytes), "grow %s of %s", dk.Target, p.Name)
			}
			b.log.Info("growing volume", "volume", dk.Volume, "from", have, "to", dk.Bytes)
			err := b.lv.ResizeVolume(ctx, pool, dk.Volume, dk.Bytes)
			if isNoSpace(err) {
				return newError(CodePoolFull, "grow %s: %v", dk.Volume, err)
			}
			return lv(err, "grow volume %s", dk.Volume)
		}
		vi, err := b.ensureVolume(ctx, pool, dk.Volume, dk.Bytes, base, grow)
		if err != nil {
			return err
		}
		dk.Path = vi.Path
	}
	return nil
}

// Build makes a VM exist and run as its spec says: pool, image, volumes,
// seed ISO, domain definition, start, autostart. It is idempotent and is
// also how a spec change is applied (see Update).
func (b *Builder) Build(ctx context.Context, spec *api.VMSpec) error {
	return b.converge(ctx, spec, true)
}

// Update applies a changed spec. Everything lands in the persistent
// definition first (vCPUs, RAM, disk sizes, added disks). A running domain
// then gets what QEMU can take live: grown disks (block resize) and added
// disks (hot attach). A vCPU or RAM change cannot be hot-applied with the
// static topology the builder defines, so a running domain with one is
// restarted: ACPI shutdown with the quiesce timeout, destroy, start. A
// domain that is shut off stays shut off.
func (b *Builder) Update(ctx context.Context, spec *api.VMSpec) error {
	return b.converge(ctx, spec, false)
}

func (b *Builder) converge(ctx context.Context, spec *api.VMSpec, start bool) error {
	p, err := b.plan(spec)
	if err != nil {
		return err
	}
	cur, err := b.current(ctx, p.Name)
	if err != nil {
		return err
	}
	// A backup cut after it froze the disks (a kill, a failed commit)
	// leaves them on overlays that hold everything written since: the
	// definition below names the volumes, so fold the overlays back
	// first (running), or refuse (shut off: only the persistent
	// definition knows the overlays, and a redefinition would lose them).
	if cur.live != nil {
		if ov := overlayDisks(cur.live); len(ov) > 0 {
			b.log.Warn("disks on the overlays of an interrupted backup: folding them back first", "domain", p.Name, "disks", len(ov))
			if err := b.foldOverlays(ctx, p.Name, ov); err != nil {
				return err
			}
			if cur, err = b.current(ctx, p.Name); err != nil {
				return err
			}
		}
	} else if cur.defined {
		x, err := b.lv.DomainXML(ctx, p.Name, true)
		if err != nil && !isCode(err, errNoDomain) {
			return lv(err, "xml of %s", p.Name)
		}
		if err == nil {
			d, err := parseDomainXML(x)
			if err != nil {
				return lv(err, "xml of %s", p.Name)
			}
			if ov := overlayDisks(d); len(ov) > 0 {
				return newError(CodeLibvirt, "%s is shut off with disk %s on the backup overlay %s: commit it into the volume (qemu-img commit) and redefine the domain first; redefining it now would lose what the overlay holds",
					p.Name, ov[0].Target.Dev, ov[0].Source.File)
			}
		}
	}
	if err := b.ensureStorage(ctx, spec, &p, cur); err != nil {
		return err
	}
	iso, err := seedISO(spec)
	if err != nil {
		return newError(CodeBadSpec, "seed: %v", err)
	}
	// The seed holds the VM's userdata, which may carry secrets: only root
	// reads it; libvirt hands it to QEMU's user when it starts the domain
	// (dynamic ownership, the default).
	if _, err := atomicfile.WriteIfChanged(p.SeedPath, iso, 0o600); err != nil {
		return lv(err, "write seed of %s", p.Name)
	}
	if err := os.MkdirAll(b.cfg.ConsoleLogDir, 0o755); err != nil {
		return lv(err, "console log dir")
	}
	x, err := domainXMLFor(p)
	if err != nil {
		return lv(err, "domain xml of %s", p.Name)
	}
	if err := b.lv.DefineDomain(ctx, string(x)); err != nil {
		return lv(err, "define %s", p.Name)
	}
	restart := false
	if cur.live != nil {
		for _, dk := range p.Disks {
			if cur.liveDisk(dk.Target) != nil {
				continue
			}
			dx, _ := diskDeviceXML(dk)
			b.log.Info("attaching disk to running domain", "domain", p.Name, "disk", dk.Target)
			if err := b.lv.AttachDevice(ctx, p.Name, string(dx)); err != nil {
				return lv(err, "attach %s to %s", dk.Target, p.Name)
			}
		}
		if cur.live.VCPU.Value != p.CPU || cur.live.Memory.bytes() != p.MemoryMiB<<20 {
			b.log.Info("vcpu or memory changed: restarting", "domain", p.Name,
				"vcpu", cur.live.VCPU.Value, "want_vcpu", p.CPU, "memory", cur.live.Memory.bytes(), "want_memory", p.MemoryMiB<<20)
			restart = true
		}
	}
	if start && cur.live == nil || restart {
		// Disks of two points in time are never started: a restore cut
		// in its renames finishes first (it starts the domain then).
		unfinished, err := b.readRestoreMarker(p.Name)
		if err != nil {
			return lv(err, "restore marker of %s", p.Name)
		}
		if unfinished != nil {
			b.log.Warn("a restore from a backup is unfinished: the domain stays off until it is done",
				"domain", p.Name, "backup", unfinished.Backup)
			return nil
		}
	}
	if restart {
		if err := b.stop(ctx, p.Name); err != nil {
			return err
		}
	}
	if start && cur.live == nil || restart {
		if err := done(b.lv.StartDomain(ctx, p.Name), errOperationInvalid); err != nil {
			return lv(err, "start %s", p.Name)
		}
		if err := b.lv.SetAutostart(ctx, p.Name, true); err != nil {
			return lv(err, "autostart %s", p.Name)
		}
	}
	return nil
}

// Quiesce shuts a VM down: ACPI shutdown, then destroy when it has not
// stopped within Config.ShutdownTimeout. Autostart is turned off so it
// stays down across host reboots. A missing domain is already quiesced.
func (b *Builder) Quiesce(ctx context.Context, spec *api.VMSpec) error {
	name := b.DomainName(spec)
	if err := b.stop(ctx, name); err != nil {
		return err
	}
	return lv(done(b.lv.SetAutostart(ctx, name, false), errNoDomain), "autostart %s", name)
}

// stop is ACPI shutdown with a timeout, then destroy.
func (b *Builder) stop(ctx context.Context, name string) error {
	st, err := b.lv.DomainState(ctx, name)
	if isCode(err, errNoDomain) {
		return nil
	}
	if err != nil {
		return lv(err, "state of %s", name)
	}
	if !st.Active() {
		return nil
	}
	if err := done(b.lv.ShutdownDomain(ctx, name), errOperationInvalid, errNoDomain); err != nil {
		return lv(err, "shutdown %s", name)
	}
	deadline := time.Now().Add(b.cfg.ShutdownTimeout)
	for time.Now().Before(deadline) {
		st, err := b.lv.DomainState(ctx, name)
		if isCode(err, errNoDomain) || err == nil && !st.Active() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	b.log.Info("ACPI shutdown timed out: destroying", "domain", name, "timeout", b.cfg.ShutdownTimeout)
	return lv(done(b.lv.DestroyDomain(ctx, name), errOperationInvalid, errNoDomain), "destroy %s", name)
}

// Restart starts a quiesced VM (building it when its domain is gone).
func (b *Builder) Restart(ctx context.Context, spec *api.VMSpec) error {
	name := b.DomainName(spec)
	if m, err := b.readRestoreMarker(name); err != nil || m != nil {
		if err == nil {
			err = fmt.Errorf("the restore from %s is unfinished: its disks are of two points in time until a restore finishes", m.Backup)
		}
		return lv(err, "start %s", name)
	}
	err := b.lv.StartDomain(ctx, name)
	if isCode(err, errNoDomain) {
		return b.Build(ctx, spec)
	}
	if err := done(err, errOperationInvalid); err != nil {
		return lv(err, "start %s", name)
	}
	return lv(b.lv.SetAutostart(ctx, name, true), "autostart %s", name)
}

// Scrub removes everything of a VM: the domain (destroyed, undefined with
// its nvram and snapshot metadata), its volumes in every pool, its seed ISO
// and console log. It is idempotent.
func (b *Builder) Scrub(ctx context.Context, spec *api.VMSpec) error {
	return b.scrub(ctx, b.DomainName(spec))
}

// ScrubDomain scrubs a domain by name: garbage collection of a domain that
// Domains lists but the complete work no longer has. It refuses a domain
// Domains would not list.
func (b *Builder) ScrubDomain(ctx context.Context, name string) error {
	ok, err := b.collectable(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("vm: %s is not a domain of this builder and server %d (no regent metadata for that name and server)", name, b.serverID.Load())
	}
	return b.scrub(ctx, name)
}

func (b *Builder) scrub(ctx context.Context, name string) error {
	if err := done(b.lv.DestroyDomain(ctx, name), errOperationInvalid, errNoDomain); err != nil {
		return lv(err, "destroy %s", name)
	}
	// The files go before the definition: garbage collection finds a VM
	// by its defined domain only, so a scrub cut (a failure, a kill)
	// after the undefine would leave its volumes and its seed (with the
	// userdata) for good. Cut before it, the next scrub finds it again.
	if err := b.removeDomainVolumes(ctx, name); err != nil {
		return err
	}
	// With the seed, the temporary file of a seed write cut by a kill
	// (atomicfile removes it only when it writes that seed again).
	files := atomicfile.Temporaries(b.seedPath(name))
	for _, f := range append(files, b.seedPath(name), b.consoleLog(name), b.restoreMarkerPath(name), b.doneStepsPath(name)) {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return lv(err, "scrub %s", name)
		}
	}
	if err := done(b.lv.UndefineDomain(ctx, name), errNoDomain); err != nil {
		return lv(err, "undefine %s", name)
	}
	return nil
}

// State is the libvirt state of a VM's domain; ok is false when there is
// no domain.
func (b *Builder) State(ctx context.Context, spec *api.VMSpec) (st DomainState, ok bool, err error) {
	st, err = b.lv.DomainState(ctx, b.DomainName(spec))
	if isCode(err, errNoDomain) {
		return 0, false, nil
	}
	return st, err == nil, err
}

// Domains lists the domains this builder owns, for garbage collection
// after a complete fetch of the work: named <prefix><project>_<vm> and
// tagged with the builder's metadata element for that project and VM and
// for the server the agent is registered as (SetServerID). A domain of
// that shape that someone else defined (no tag) is not ours, whatever the
// prefix (it may be empty). One tagged for another server (the agent was
// registered under another id) is left alone, and so is one an older
// agent defined without a server (logged once): the next converge of its
// VM tags it.
func (b *Builder) Domains(ctx context.Context) ([]string, error) {
	names, err := b.lv.ListDomains(ctx)
	if err != nil {
		return nil, lv(err, "list domains")
	}
	var out []string
	for _, n := range names {
		ok, err := b.collectable(ctx, n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// collectable: domain name is ours (owns) and tagged with this server.
func (b *Builder) collectable(ctx context.Context, name string) (bool, error) {
	m, err := b.owns(ctx, name)
	if err != nil || m == nil {
		return false, err
	}
	server := b.serverID.Load()
	if m.Server == 0 {
		b.untaggedMu.Lock()
		first := !b.untagged[name]
		if b.untagged == nil {
			b.untagged = map[string]bool{}
		}
		b.untagged[name] = true
		b.untaggedMu.Unlock()
		if first {
			b.log.Warn("domain without a server tag (an older agent's): not garbage-collected until its VM is converged again", "domain", name)
		}
	}
	return server != 0 && m.Server == server, nil
}

// owns returns the builder's metadata of domain name when it is one this
// builder made (see Domains), nil otherwise. A domain that is gone is not.
func (b *Builder) owns(ctx context.Context, name string) (*regentMetaXML, error) {
	rest, ok := strings.CutPrefix(name, b.cfg.NamePrefix)
	if !ok {
		return nil, nil
	}
	var p, v uint64
	if _, err := fmt.Sscanf(rest, "%d_%d", &p, &v); err != nil || fmt.Sprintf("%d_%d", p, v) != rest {
		return nil, nil
	}
	// The persistent definition: a redefinition (which tags an older
	// agent's domain) reaches a running domain's live one only at its
	// next start.
	x, err := b.lv.DomainXML(ctx, name, true)
	if isCode(err, errNoDomain) {
		return nil, nil
	}
	if err != nil {
		return nil, lv(err, "xml of %s", name)
	}
	d, err := parseDomainXML(x)
	if err != nil {
		return nil, nil // not one of ours: ours parse
	}
	m := d.Metadata
	if m == nil || m.VM == nil || m.VM.ProjectID != p || m.VM.ID != v {
		return nil, nil
	}
	return m.VM, nil
}
