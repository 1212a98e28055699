package vpn

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/atomicfile"
	"github.com/strongswan/govici/vici"
)

// Config configures a Manager.
type Config struct {
	// Mode is ModeXFRM or ModeLibIPsec; "" detects (DetectMode).
	Mode string
	// Charon is the charon-systemd binary (/usr/sbin/charon-systemd).
	Charon string
	// IP is the iproute2 binary that enters the namespace ("ip" from PATH).
	IP string
	// RunDir holds one directory per instance: strongswan.conf, the VICI
	// socket, the pid file and charon's log (required).
	RunDir string
	// PluginConfDir is included for the plugin settings
	// (/etc/strongswan.d/charon).
	PluginConfDir string
	// Tick is how often each instance initiates its "immediately" VPNs
	// that have no IKE SA (30s).
	Tick time.Duration
	// InitiateTimeout bounds one initiate (10s); StartTimeout the wait for
	// a new charon's socket (10s).
	InitiateTimeout time.Duration
	StartTimeout    time.Duration
	// Initiated, when set, is called after initiates ran and changed what
	// a status read shows (the agent reports soon instead of at its next
	// heartbeat).
	Initiated func()
	// Restarted, when set, is called by a router's supervisor after it
	// restarted that router's dead charon and re-loaded its VPNs (not
	// under any lock of the Manager; ctx ends when the instance stops).
	// In libipsec mode the new charon has a new TUN device and the
	// kernel dropped the routes into the old one: the agent puts the
	// router's VPN routes back here, at once.
	Restarted func(ctx context.Context, r Router)
	Logger    hclog.Logger
}

// Router is a router's side of its VPNs.
type Router struct {
	ID        uint64
	Namespace string
	// PublicAddr is the router's public address: the local IKE endpoint.
	PublicAddr netip.Addr
}

// Manager runs one charon per router namespace that has VPNs. Its methods
// are safe for concurrent use; calls for one router are serialised.
type Manager struct {
	cfg Config
	log hclog.Logger

	mu        sync.Mutex
	instances map[uint64]*instance // by router id
	// invalid is, per router, the VPNs of its last Ensure whose spec
	// cannot be rendered (vpn id → error): they run nowhere, and their
	// status carries the error.
	invalid map[uint64]map[uint64]string
	// pskKey keys the PSK digests of the state files (pskKeyFile).
	pskKey []byte
	closed bool
}

// pskKeyFile, in the run directory, holds the random key of the PSK
// digests in the instances' state files (HMAC-SHA256): a state file alone
// tells nothing about a key, yet the next agent can tell whether a VPN's
// PSK changed while no agent ran.
const pskKeyFile = "psk-digest.key"

// loadPSKKey reads the run directory's PSK digest key, creating it the
// first time.
func loadPSKKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, pskKeyFile)
	if b, err := os.ReadFile(path); err == nil && len(b) == 32 {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, atomicfile.Write(path, k, 0o600)
}

// New checks cfg and returns a Manager; it starts nothing.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Mode == "" {
		cfg.Mode = DetectMode()
	}
	if cfg.Mode != ModeXFRM && cfg.Mode != ModeLibIPsec {
		return nil, fmt.Errorf("vpn: mode %q is not %s or %s", cfg.Mode, ModeXFRM, ModeLibIPsec)
	}
	if cfg.Charon == "" {
		cfg.Charon = "/usr/sbin/charon-systemd"
	}
	if cfg.IP == "" {
		cfg.IP = "ip"
	}
	if p, err := exec.LookPath(cfg.IP); err == nil {
		cfg.IP = p
	}
	if cfg.RunDir == "" {
		return nil, errors.New("vpn: run dir is required")
	}
	if cfg.PluginConfDir == "" {
		cfg.PluginConfDir = "/etc/strongswan.d/charon"
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 30 * time.Second
	}
	if cfg.InitiateTimeout <= 0 {
		cfg.InitiateTimeout = 10 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	return &Manager{cfg: cfg, log: cfg.Logger.Named("vpn"), instances: map[uint64]*instance{},
		invalid: map[uint64]map[uint64]string{}}, nil
}

// Mode returns the ESP mode in use.
func (m *Manager) Mode() string { return m.cfg.Mode }

// Result says what an Ensure changed.
type Result struct {
	Changes []string
	// Failed are the VPNs that do not run because their spec cannot be
	// mapped to strongSwan (*SpecError) or charon refused it (*LoadError),
	// each with its VPN id. They fail on their own: the router's other
	// VPNs run, and the status of each failed one carries its error.
	Failed []error
}

// LoadError is strongSwan refusing a VPN's configuration (load-conn or
// load-shared failed): retrying the same spec on the same charon will not
// help.
type LoadError struct {
	VPNID uint64
	Err   error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("vpn %d: strongSwan refused it: %v", e.VPNID, e.Err)
}
func (e *LoadError) Unwrap() error { return e.Err }

// Ensure makes router r's charon run exactly vpns: it starts charon when
// there are VPNs, loads new and changed ones, leaves unchanged ones alone,
// unloads removed ones, and stops charon when there are none. Each VPN
// succeeds or fails on its own: one whose spec cannot be rendered, or
// that charon refuses, does not run (an older version of it is unloaded)
// and is listed in Result.Failed and in its status' error, while the
// others are loaded; a VPN refused by charon is tried again when its spec
// changes or charon is restarted. A *SpecError (a VPN listed twice) is
// about the spec as a whole; other errors are the host's.
//
// rejected are VPNs of vpns the caller found invalid itself (*SpecError
// with the VPN's id: the router builder refuses a VPN whose routes do not
// fit the router): they fail alone exactly like one that cannot be
// rendered.
func (m *Manager) Ensure(ctx context.Context, r Router, vpns []api.VPNSpec, rejected ...error) (Result, error) {
	want := make([]*rendered, 0, len(vpns))
	var failed []error
	invalid := map[uint64]string{}
	seen := map[uint64]bool{}
	reject := map[uint64]error{}
	for _, err := range rejected {
		var se *SpecError
		if errors.As(err, &se) {
			reject[se.VPNID] = err
		}
	}
	for _, v := range vpns {
		if seen[v.ID] {
			return Result{}, &SpecError{VPNID: v.ID, Err: fmt.Errorf("vpn %d: listed twice", v.ID)}
		}
		seen[v.ID] = true
		if err := reject[v.ID]; err != nil {
			failed = append(failed, err)
			invalid[v.ID] = err.Error()
			continue
		}
		rd, err := render(r.Namespace, r.PublicAddr, m.cfg.Mode, v)
		if err != nil {
			failed = append(failed, err)
			invalid[v.ID] = err.Error()
			continue
		}
		want = append(want, rd)
	}
	m.mu.Lock()
	if len(invalid) > 0 {
		m.invalid[r.ID] = invalid
	} else {
		delete(m.invalid, r.ID)
	}
	m.mu.Unlock()
	if len(want) == 0 {
		stopped, err := m.stop(r.ID)
		if stopped {
			return Result{Changes: []string{"charon stopped (no VPNs)"}, Failed: failed}, err
		}
		return Result{Failed: failed}, err
	}
	in, created, err := m.instance(ctx, r)
	if err != nil {
		return Result{Failed: failed}, err
	}
	res := Result{Failed: failed}
	if created {
		res.Changes = append(res.Changes, "vpn instance "+r.Namespace)
	}
	return in.ensure(ctx, r, want, res)
}

// errRemoved is an Ensure that lost a race with Remove (or Close) of its
// router: it starts nothing.
var errRemoved = errors.New("vpn: the router's VPNs were removed meanwhile")

// ensure is Ensure on the router's instance.
func (in *instance) ensure(ctx context.Context, r Router, want []*rendered, res Result) (Result, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		// Remove (a scrub) took the instance between Ensure finding it
		// and locking it: a charon started now would have no supervisor
		// and no owner, and run on in a deleted namespace.
		return res, errRemoved
	}
	if in.router != r {
		// A new public address (or namespace) is in every rendered
		// connection, so the VPNs re-load with it.
		in.router = r
	}
	in.want = want
	if in.proc != nil && !in.proc.inNamespace(r.Namespace) {
		// The namespace was deleted and built again: charon would run on
		// in the old one (which it keeps alive), out of the router's
		// reach. It follows the namespace: stopped, and started in the
		// new one below.
		in.log.Warn("the router's namespace was recreated: charon is restarted in the new one", "pid", in.proc.pid)
		in.stopLocked()
		res.Changes = append(res.Changes, "charon stopped (namespace recreated)")
	}
	in.publishLocked()
	if in.sess == nil {
		adopted, err := in.startLocked(ctx)
		if err != nil {
			return res, err
		}
		if adopted {
			res.Changes = append(res.Changes, "charon adopted")
		} else {
			res.Changes = append(res.Changes, "charon started")
		}
	}
	ch, err := in.applyLocked(ctx)
	res.Changes = append(res.Changes, ch...)
	for _, r := range in.want {
		if rf, ok := in.refused[r.conn.VPNID]; ok && rf.digest == r.digest {
			res.Failed = append(res.Failed, rf.err)
		}
	}
	return res, err
}

// instance returns router r's instance, creating (not starting) it. It
// creates none for a cancelled ctx: the agent cancels a router's apply
// before it removes the router, so an apply that lost that race never
// leaves a supervisor behind that would start charon for a router that is
// gone (and retry for ever once its namespace is deleted).
func (m *Manager) instance(ctx context.Context, r Router) (*instance, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false, errors.New("vpn: manager closed")
	}
	if in := m.instances[r.ID]; in != nil {
		return in, false, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("vpn: router %d: %w", r.ID, err)
	}
	if m.pskKey == nil {
		k, err := loadPSKKey(m.cfg.RunDir)
		if err != nil {
			return nil, false, fmt.Errorf("vpn: psk digest key: %w", err)
		}
		m.pskKey = k
	}
	in := &instance{cfg: &m.cfg, router: r, dir: filepath.Join(m.cfg.RunDir, r.Namespace),
		log: m.log.With("router", r.ID, "namespace", r.Namespace), loaded: map[uint64]string{},
		initErr: map[uint64]string{}, refused: map[uint64]refusal{}, pskKey: m.pskKey, stopc: make(chan struct{}), done: make(chan struct{}),
		kick: make(chan struct{}, 1)}
	in.dial = func(ctx context.Context) (session, error) {
		return dialVICI(ctx, filepath.Join(in.dir, "charon.vici"))
	}
	m.instances[r.ID] = in
	go in.supervise()
	return in, true, nil
}

// Remove stops router id's charon (its SAs go with it) and removes its
// files. It is a no-op for a router without VPNs.
func (m *Manager) Remove(_ context.Context, id uint64) error {
	m.mu.Lock()
	delete(m.invalid, id)
	m.mu.Unlock()
	_, err := m.stop(id)
	return err
}

// stop stops router id's charon and removes its files.
func (m *Manager) stop(id uint64) (bool, error) {
	m.mu.Lock()
	in := m.instances[id]
	delete(m.instances, id)
	m.mu.Unlock()
	if in == nil {
		// Not ours yet: the charon an earlier agent left (the router lost
		// its VPNs, or went, while no agent ran) is found by its state file.
		return m.removeOrphan(id)
	}
	in.close()
	if err := os.RemoveAll(in.dir); err != nil {
		return true, err
	}
	in.log.Info("charon stopped")
	return true, nil
}

// Routers returns the ids of the routers that have a charon instance.
func (m *Manager) Routers() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, 0, len(m.instances))
	for id := range m.instances {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// removeOrphan stops the charon of router id that no instance owns (an
// earlier agent's) and removes its directory.
func (m *Manager) removeOrphan(id uint64) (bool, error) {
	ents, err := os.ReadDir(m.cfg.RunDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	stopped := false
	for _, ent := range ents {
		dir := filepath.Join(m.cfg.RunDir, ent.Name())
		st, ok := readState(dir)
		if !ent.IsDir() || !ok || st.Router != id {
			continue
		}
		killStale(filepath.Join(dir, "charon.pid"), m.cfg.Charon, filepath.Join(dir, "strongswan.conf"))
		if err := os.RemoveAll(dir); err != nil {
			return true, err
		}
		m.log.Info("charon of an earlier agent stopped", "router", id, "namespace", ent.Name())
		stopped = true
	}
	return stopped, nil
}

// Close stops the supervisors and lets every charon run on: the tunnels
// stay up while the agent is stopped, upgraded or restarted, and the next
// Manager on the same RunDir adopts them. Remove (or an Ensure without
// VPNs) is what stops a charon.
func (m *Manager) Close(context.Context) error {
	m.mu.Lock()
	m.closed = true
	ins := slices.Collect(maps.Values(m.instances))
	clear(m.instances)
	m.mu.Unlock()
	for _, in := range ins {
		in.detach()
	}
	return nil
}

// Status reads the state of every VPN of every instance (list-sas), the
// instances concurrently. A VPN whose instance cannot be read carries the
// error.
func (m *Manager) Status(ctx context.Context) []api.VPNStatus {
	m.mu.Lock()
	ins := make([]*instance, 0, len(m.instances))
	for _, in := range m.instances {
		ins = append(ins, in)
	}
	m.mu.Unlock()
	// Read every charon at once: a hung one costs its own 5 s timeout, not
	// a delay of the heartbeat per router.
	per := make([][]api.VPNStatus, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			per[i] = in.status(ctx)
		}()
	}
	wg.Wait()
	var out []api.VPNStatus
	for _, p := range per {
		out = append(out, p...)
	}
	m.mu.Lock()
	for id, bad := range m.invalid {
		out = appendInvalid(out, id, bad)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].VPNID < out[j].VPNID })
	return out
}

// RouterStatus is Status for one router.
func (m *Manager) RouterStatus(ctx context.Context, id uint64) []api.VPNStatus {
	m.mu.Lock()
	in := m.instances[id]
	bad := maps.Clone(m.invalid[id])
	m.mu.Unlock()
	var out []api.VPNStatus
	if in != nil {
		out = in.status(ctx)
	}
	out = appendInvalid(out, id, bad)
	sort.Slice(out, func(i, j int) bool { return out[i].VPNID < out[j].VPNID })
	return out
}

// appendInvalid adds the status of router's VPNs whose spec cannot be
// rendered (vpn id → error): down, with the error.
func appendInvalid(out []api.VPNStatus, router uint64, bad map[uint64]string) []api.VPNStatus {
	now := time.Now().UTC().Format(time.RFC3339)
	for id, msg := range bad {
		out = append(out, api.VPNStatus{VPNID: id, VirtualRouterID: router, Time: now, IKEState: api.VPNStateDown,
			Children: []api.VPNChildStatus{}, Error: msg})
	}
	return out
}

// instance is one router's charon and what it should have loaded.
type instance struct {
	cfg *Config
	dir string
	log hclog.Logger

	// mu serialises the control session's use and the fields below. The
	// initiates do not hold it: they run in the supervisor on a session
	// of their own (initiatePass).
	mu      sync.Mutex
	router  Router
	proc    *charonProc
	sess    session
	want    []*rendered
	loaded  map[uint64]string // vpn id → digest loaded into this charon
	initErr map[uint64]string // last initiate failure per VPN
	// refused are the VPNs this charon refused, with the digest it
	// refused: not tried again until the spec changes or charon restarts.
	refused map[uint64]refusal
	// adopted is, for a charon of an earlier agent, the connection digest
	// of each VPN it had loaded (its state file); nil otherwise.
	adopted map[uint64]string
	// adoptedPSK is the keyed PSK digest (pskDigest) of each of them.
	adoptedPSK map[uint64]string
	pskKey     []byte

	// Status reads use their own VICI session and a copy of the fields
	// above, so a heartbeat never waits for a slow initiate.
	stMu   sync.Mutex
	stSess session
	snap   snapshot

	// closed is set by Remove and Close (under mu, after the supervisor
	// stopped): nothing starts charon any more.
	closed bool

	// dial opens a VICI session of the initiate passes' own.
	dial func(context.Context) (session, error)
	// kick asks the supervisor for an initiate pass (buffered: one
	// pending pass covers any number of asks).
	kick  chan struct{}
	stopc chan struct{}
	done  chan struct{}
}

// refusal is a VPN charon refused (load-shared or load-conn).
type refusal struct {
	digest string
	err    *LoadError
}

// snapshot is what status needs of an instance.
type snapshot struct {
	router  Router
	running bool
	want    []*rendered
	loaded  map[uint64]string
	initErr map[uint64]string
	refused map[uint64]refusal
}

// publishLocked copies the fields status reads.
func (in *instance) publishLocked() {
	in.stMu.Lock()
	defer in.stMu.Unlock()
	in.snap = snapshot{router: in.router, running: in.sess != nil, want: slices.Clone(in.want),
		loaded: maps.Clone(in.loaded), initErr: maps.Clone(in.initErr), refused: maps.Clone(in.refused)}
}

// startLocked starts (or adopts) charon and forgets what the previous
// one had loaded.
func (in *instance) startLocked(ctx context.Context) (bool, error) {
	p, s, adopted, err := startCharon(ctx, in.cfg, in.router.Namespace, in.dir, in.log)
	if err != nil {
		return false, err
	}
	st, err := vici.NewSession(vici.WithSocketPath(filepath.Join(in.dir, "charon.vici")))
	if err != nil {
		_ = s.Close()
		if adopted {
			p.detach()
		} else {
			p.stop()
		}
		return false, fmt.Errorf("status session: %w", err)
	}
	in.stMu.Lock()
	in.stSess = st
	in.stMu.Unlock()
	in.proc, in.sess = p, s
	clear(in.loaded)
	clear(in.refused) // a new charon gets another chance
	in.adopted, in.adoptedPSK = nil, nil
	if adopted {
		st, _ := readState(in.dir)
		in.adopted, in.adoptedPSK = st.Conns, st.PSKs
		if in.adopted == nil {
			in.adopted = map[uint64]string{}
		}
		in.log.Info("charon adopted", "pid", p.pid, "mode", in.cfg.Mode, "vpns", len(in.adopted))
	} else {
		in.log.Info("charon started", "pid", p.pid, "mode", in.cfg.Mode)
	}
	in.saveStateLocked()
	in.publishLocked()
	return adopted, nil
}

// state is an instance's state file: which router it serves and the
// connection digest of each VPN loaded into its charon, for the next
// agent that adopts the charon, and of its PSK an HMAC keyed with the run
// directory's pskKeyFile (never the key, nor a plain hash of it).
type state struct {
	Router    uint64            `json:"router"`
	Namespace string            `json:"namespace"`
	Conns     map[uint64]string `json:"conns"`
	PSKs      map[uint64]string `json:"psks,omitempty"`
}

func readState(dir string) (state, bool) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return state{}, false
	}
	return st, true
}

// saveStateLocked writes the state file (atomically). A VPN whose load
// failed half-way is left out: an adopter re-establishes it.
func (in *instance) saveStateLocked() {
	st := state{Router: in.router.ID, Namespace: in.router.Namespace, Conns: map[uint64]string{}, PSKs: map[uint64]string{}}
	for _, r := range in.want {
		if d, ok := in.loaded[r.conn.VPNID]; ok && d == r.digest {
			st.Conns[r.conn.VPNID] = r.connDigest
			st.PSKs[r.conn.VPNID] = r.pskDigest(in.pskKey)
		}
	}
	// Adopted VPNs not applied yet keep their entries.
	for id, d := range in.adopted {
		if _, ok := in.loaded[id]; !ok {
			st.Conns[id] = d
			if k, ok := in.adoptedPSK[id]; ok {
				st.PSKs[id] = k
			}
		}
	}
	b, _ := json.Marshal(st)
	if err := atomicfile.Write(filepath.Join(in.dir, "state.json"), b, 0o600); err != nil {
		in.log.Warn("state file", "error", err)
	}
}

// closeSessionsLocked closes both VICI sessions (control and status).
func (in *instance) closeSessionsLocked() {
	in.stMu.Lock()
	if in.stSess != nil {
		_ = in.stSess.Close()
		in.stSess = nil
	}
	in.stMu.Unlock()
	if in.sess != nil {
		_ = in.sess.Close()
		in.sess = nil
	}
}

// stopLocked stops charon.
func (in *instance) stopLocked() {
	in.closeSessionsLocked()
	if in.proc != nil {
		in.proc.stop()
		in.proc = nil
	}
}

// close stops the supervisor and charon.
func (in *instance) close() {
	in.stopSupervisor()
	in.mu.Lock()
	in.closed = true
	in.stopLocked()
	in.mu.Unlock()
}

// detach stops the supervisor and closes the sessions; charon runs on.
func (in *instance) detach() {
	in.stopSupervisor()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closed = true
	in.closeSessionsLocked()
	if in.proc != nil {
		in.proc.detach()
		in.proc = nil
	}
	in.log.Info("charon left running")
}

func (in *instance) stopSupervisor() {
	select {
	case <-in.stopc:
	default:
		close(in.stopc)
	}
	<-in.done
}

// charonStable is how long a charon must have run for its death to be
// restarted after the shortest wait again.
const charonStable = 10 * time.Second

// supervise restarts charon when it dies (and loads everything again,
// then calls Config.Restarted) and initiates the "immediately" VPNs without an IKE SA every tick and after
// every apply (initiatePass).
func (in *instance) supervise() {
	defer close(in.done)
	t := time.NewTicker(in.cfg.Tick)
	defer t.Stop()
	// The wait before a restart doubles with each restart (up to 30 s) and
	// starts again at 200 ms only when the charon that died had run for
	// charonStable: a charon that dies right after each start (a bad
	// plugin, a full disk) is not restarted five times a second for ever.
	backoff := 200 * time.Millisecond
	var restartedAt time.Time
	for {
		in.mu.Lock()
		var exited <-chan struct{}
		watched := in.proc
		if watched != nil {
			exited = watched.exited
		}
		in.mu.Unlock()
		select {
		case <-in.stopc:
			return
		case <-exited:
			restarted := false
			in.mu.Lock()
			if in.proc != watched {
				// Replaced meanwhile (an Ensure moved charon into a
				// recreated namespace): nothing to restart.
				in.mu.Unlock()
				continue
			}
			if time.Since(restartedAt) >= charonStable {
				backoff = 200 * time.Millisecond
			}
			if in.proc != nil {
				in.log.Warn("charon exited, restarting and loading its VPNs again", "error", in.proc.err, "backoff", backoff)
				in.stopLocked()
				in.publishLocked()
			}
			in.mu.Unlock()
			select {
			case <-in.stopc:
				return
			case <-time.After(backoff):
			}
			in.mu.Lock()
			if in.sess == nil && len(in.want) > 0 {
				ctx, cancel := in.stopContext(30 * time.Second)
				_, err := in.startLocked(ctx)
				if err == nil {
					_, err = in.applyLocked(ctx)
				}
				cancel()
				if err != nil {
					in.log.Error("charon restart", "error", err)
				} else {
					restartedAt, restarted = time.Now(), true
				}
				backoff = min(2*backoff, 30*time.Second)
			}
			r := in.router
			in.mu.Unlock()
			if restarted {
				in.restarted(r)
			}
		case <-t.C:
			in.mu.Lock()
			restart := in.sess == nil && len(in.want) > 0
			restarted := false
			if restart {
				// A restart that failed earlier: try again.
				ctx, cancel := in.stopContext(30 * time.Second)
				if _, err := in.startLocked(ctx); err == nil {
					restartedAt = time.Now()
					_, err = in.applyLocked(ctx)
					if err != nil {
						in.log.Error("loading VPNs after restart", "error", err)
					} else {
						restarted = true
					}
				} else {
					in.log.Error("charon start", "error", err)
				}
				cancel()
			}
			r := in.router
			in.mu.Unlock()
			if restarted {
				in.restarted(r)
			}
			if !restart {
				in.initiatePass()
			}
		case <-in.kick:
			in.initiatePass()
		}
	}
}

// restarted runs the Restarted hook for router r (in the supervisor,
// without the instance lock: the hook may take the router's other locks
// and call back into the Manager).
func (in *instance) restarted(r Router) {
	if in.cfg.Restarted == nil {
		return
	}
	ctx, cancel := in.stopContext(30 * time.Second)
	defer cancel()
	in.cfg.Restarted(ctx, r)
}

// stopContext is a context that ends after d or when the instance stops.
func (in *instance) stopContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() { // ends with ctx (cancel is always called)
		select {
		case <-in.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// applyLocked loads what changed, unloads what went and asks the
// supervisor to initiate what is down (it does not wait for that). A
// VPN an adopted charon already has with the same connection is re-loaded
// in place (load-conn of an identical connection keeps its SAs) and only
// initiated if it is down; one that changed while no agent ran is
// re-loaded and re-established.
func (in *instance) applyLocked(ctx context.Context) ([]string, error) {
	// The initiates run afterwards, in the supervisor (initiatePass): an
	// apply never waits for a peer that does not answer.
	defer in.wantInitiates()
	defer in.publishLocked()
	if in.dir != "" {
		defer in.saveStateLocked()
	}
	var changes []string
	wanted := map[string]bool{}
	for _, r := range in.want {
		wanted[r.conn.Name] = true
	}
	// Unload what charon has of ours and is not wanted (removed VPNs, or
	// leftovers of an earlier run).
	conns, err := in.connNames(ctx)
	if err != nil {
		return changes, err
	}
	prefix := in.router.Namespace + "-"
	has := map[string]bool{}
	for _, name := range conns {
		has[name] = true
	}
	for _, name := range conns {
		if wanted[name] || !strings.HasPrefix(name, prefix) {
			continue
		}
		if err := in.unload(ctx, name); err != nil {
			return changes, err
		}
		if id, err := strconv.ParseUint(strings.TrimPrefix(name, prefix), 10, 64); err == nil {
			delete(in.loaded, id)
			delete(in.initErr, id)
			delete(in.adopted, id)
		}
		changes = append(changes, "vpn "+name+" unloaded")
	}
	for _, r := range in.want {
		id := r.conn.VPNID
		old, had := in.loaded[id]
		if had && old == r.digest {
			continue
		}
		if rf, ok := in.refused[id]; ok && rf.digest == r.digest {
			continue // refused as it is: not again until it changes
		}
		adopt := false
		if !had && has[r.conn.Name] {
			// The same connection and PSK as the earlier agent loaded:
			// kept as it is. A state file of an agent that kept no PSK
			// digest cannot tell: the SAs are kept and the key loaded.
			prev, ok := in.adopted[id]
			psk, pskKnown := in.adoptedPSK[id]
			if ok && prev == r.connDigest && (!pskKnown || psk == r.pskDigest(in.pskKey)) {
				adopt = true
			} else {
				// Changed while no agent ran (or unknown): re-establish.
				had = true
			}
			delete(in.adopted, id)
			delete(in.adoptedPSK, id)
		}
		err := in.load(ctx, r, had && !adopt)
		var le *LoadError
		if errors.As(err, &le) {
			// This VPN fails on its own: the others load. An older
			// version of it does not run on in its place.
			in.refused[id] = refusal{digest: r.digest, err: le}
			delete(in.initErr, id)
			in.log.Error("strongSwan refused the vpn: it does not run", "vpn", id, "error", le.Err)
			if had || adopt {
				delete(in.loaded, id)
				if err := in.unload(ctx, r.conn.Name); err != nil {
					return changes, err
				}
				changes = append(changes, "vpn "+r.conn.Name+" unloaded (its new configuration was refused)")
			}
			continue
		}
		if err != nil {
			return changes, err
		}
		delete(in.refused, id)
		in.loaded[id] = r.digest
		verb := "loaded"
		switch {
		case adopt:
			verb = "adopted"
		case had:
			verb = "re-loaded"
			delete(in.initErr, id)
		default:
			delete(in.initErr, id)
		}
		changes = append(changes, fmt.Sprintf("vpn %s %s", r.conn.Name, verb))
	}
	for id := range in.refused {
		if !slices.ContainsFunc(in.want, func(r *rendered) bool { return r.conn.VPNID == id }) {
			delete(in.refused, id)
		}
	}
	return changes, nil
}

// connNames lists the loaded connections (get-conns).
func (in *instance) connNames(ctx context.Context) ([]string, error) {
	m, err := in.sess.Call(ctx, "get-conns", nil)
	if err != nil {
		return nil, fmt.Errorf("get-conns: %w", err)
	}
	names, _ := m.Get("conns").([]string)
	return names, nil
}

// load loads one VPN's secret and connection; a changed VPN's SAs are
// terminated so the new configuration takes effect.
func (in *instance) load(ctx context.Context, r *rendered, replace bool) error {
	if _, err := in.sess.Call(ctx, "load-shared", r.sharedMessage()); err != nil {
		// The error text is charon's errmsg, which never echoes the key.
		return &LoadError{VPNID: r.conn.VPNID, Err: fmt.Errorf("load-shared %s: %w", r.secretID, err)}
	}
	// A new VPN whose connection is refused must not leave its key loaded
	// in charon (a replaced one keeps it: its old connection still runs).
	refused := func(err error) error {
		if !replace {
			s := vici.NewMessage()
			_ = s.Set("id", r.secretID)
			if _, uerr := in.sess.Call(ctx, "unload-shared", s); uerr != nil {
				in.log.Debug("unload-shared after a refused load-conn", "id", r.secretID, "error", uerr)
			}
		}
		return &LoadError{VPNID: r.conn.VPNID, Err: err}
	}
	msg, err := r.conn.message()
	if err != nil {
		return refused(err)
	}
	if _, err := in.sess.Call(ctx, "load-conn", msg); err != nil {
		return refused(fmt.Errorf("load-conn %s: %w", r.conn.Name, err))
	}
	if replace {
		in.terminate(ctx, r.conn.Name)
	}
	in.log.Info("vpn loaded", "vpn", r.conn.VPNID, "conn", r.conn.Name, "children", len(r.conn.Children),
		"proposals", len(r.conn.Proposals), "remote", r.conn.RemoteAddrs[0])
	return nil
}

// unload terminates a connection's SAs and unloads it and its secret.
func (in *instance) unload(ctx context.Context, name string) error {
	in.terminate(ctx, name)
	m := vici.NewMessage()
	_ = m.Set("name", name)
	if _, err := in.sess.Call(ctx, "unload-conn", m); err != nil {
		return fmt.Errorf("unload-conn %s: %w", name, err)
	}
	s := vici.NewMessage()
	_ = s.Set("id", "ike-"+name)
	if _, err := in.sess.Call(ctx, "unload-shared", s); err != nil {
		in.log.Debug("unload-shared", "conn", name, "error", err)
	}
	in.log.Info("vpn unloaded", "conn", name)
	return nil
}

// terminate closes every IKE SA of a connection (no error when none).
func (in *instance) terminate(ctx context.Context, name string) {
	m := vici.NewMessage()
	_ = m.Set("ike", name)
	_ = m.Set("force", "yes")
	_ = m.Set("timeout", "-1")
	if err := stream(ctx, in.sess, "terminate", m); err != nil && !strings.Contains(err.Error(), "no matching") {
		in.log.Debug("terminate", "conn", name, "error", err)
	}
}

// stream runs a streamed command and returns the error of its last
// message: the command's own result (govici v0.8 yields a failed
// command's response as the last element).
func stream(ctx context.Context, sess session, cmd string, m *vici.Message) error {
	var last error
	for _, err := range sess.CallStreaming(ctx, cmd, "control-log", m) {
		last = err
	}
	return last
}

// wantInitiates asks the supervisor for an initiate pass.
func (in *instance) wantInitiates() {
	select {
	case in.kick <- struct{}{}:
	default:
	}
}

// initiatePass brings up the "immediately" VPNs that are down. It runs in
// the supervisor, on a VICI session of its own and without the instance
// lock: an initiate towards a peer that does not answer takes up to
// InitiateTimeout per child, and Ensure, Remove and status reads must not
// wait for it. Only the supervisor initiates, so two initiates of one VPN
// never race each other. A result is kept only while the VPN is still
// loaded as it was when the pass began (an Ensure may re-load or unload it
// meanwhile; it asks for another pass then).
func (in *instance) initiatePass() {
	in.mu.Lock()
	var todo []*rendered
	if in.sess != nil {
		for _, r := range in.want {
			if r.conn.Immediate && in.loaded[r.conn.VPNID] == r.digest {
				todo = append(todo, r)
			}
		}
	}
	in.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	// Every call below has its own timeout; the pass as a whole ends
	// when they have all run out, or when the instance stops.
	budget := 5 * time.Second // dial
	for _, r := range todo {
		// list-sas, one initiate per child, the half-open terminate
		budget += 10*time.Second + time.Duration(len(r.conn.Children))*(in.cfg.InitiateTimeout+5*time.Second)
	}
	ctx, cancel := in.stopContext(budget)
	defer cancel()
	sess, err := in.dial(ctx)
	if err != nil {
		in.log.Warn("vpn initiates: VICI session", "error", err)
		return
	}
	defer sess.Close()
	changed := false
	for _, r := range todo {
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		children, err := missingChildren(lctx, sess, r)
		lcancel()
		if err != nil {
			in.log.Warn("vpn initiates", "error", err)
			break
		}
		if len(children) == 0 {
			continue
		}
		err = in.initiate(ctx, sess, r, children)
		in.mu.Lock()
		if in.loaded[r.conn.VPNID] == r.digest {
			// A success brought SAs up; a failure changes the status
			// only when its error differs from the last one (a peer that
			// does not answer must not make the agent beat early on
			// every tick).
			prev := in.initErr[r.conn.VPNID]
			if err != nil {
				in.initErr[r.conn.VPNID] = "initiate: " + err.Error()
			} else {
				delete(in.initErr, r.conn.VPNID)
			}
			if err == nil || in.initErr[r.conn.VPNID] != prev {
				in.publishLocked()
				changed = true
			}
		}
		in.mu.Unlock()
	}
	if changed && in.cfg.Initiated != nil {
		in.cfg.Initiated()
	}
}

// initiate brings the given children of an "immediately" VPN up. A
// failure (the peer is down or not configured yet) is not an error of the
// router: it shows in the status and the next tick tries again. A
// half-open IKE SA it leaves is terminated so retries do not pile up.
func (in *instance) initiate(ctx context.Context, sess session, r *rendered, children []child) error {
	for _, ch := range children {
		m := vici.NewMessage()
		_ = m.Set("ike", r.conn.Name)
		_ = m.Set("child", ch.Name)
		_ = m.Set("timeout", strconv.Itoa(int(in.cfg.InitiateTimeout/time.Millisecond)))
		cctx, cancel := context.WithTimeout(ctx, in.cfg.InitiateTimeout+5*time.Second)
		err := stream(cctx, sess, "initiate", m)
		cancel()
		if err != nil {
			in.log.Warn("vpn initiate failed; retrying later", "vpn", r.conn.VPNID, "child", ch.Name, "error", err)
			tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
			in.terminateHalfOpen(tctx, sess, r.conn.Name)
			tcancel()
			return err
		}
	}
	in.log.Info("vpn initiated", "vpn", r.conn.VPNID, "conn", r.conn.Name)
	return nil
}

// terminateHalfOpen destroys the connection's IKE SAs that are not
// ESTABLISHED. The timeout must be positive: with -1 (do not wait) charon
// queues a delete without force, which leaves a CONNECTING IKE SA
// retransmitting (seen with strongSwan 5.9).
func (in *instance) terminateHalfOpen(ctx context.Context, sess session, name string) {
	sas, err := listSAs(ctx, sess, name)
	if err != nil {
		in.log.Debug("list-sas for half-open IKE SAs", "conn", name, "error", err)
		return
	}
	for _, sa := range sas {
		if sa.state != "ESTABLISHED" && sa.uniqueID != "" {
			m := vici.NewMessage()
			_ = m.Set("ike-id", sa.uniqueID)
			_ = m.Set("force", "yes")
			_ = m.Set("timeout", "1000")
			if err := stream(ctx, sess, "terminate", m); err != nil {
				in.log.Debug("terminate a half-open IKE SA", "conn", name, "ike-id", sa.uniqueID, "error", err)
			}
		}
	}
}

// missingChildren returns the children of a VPN to initiate: all of them
// when it has neither an ESTABLISHED IKE SA nor one being set up, those an
// ESTABLISHED IKE SA lacks otherwise (initiating one it has would be
// refused by charon ≥ 5.9.6 as an "existing duplicate", or pile up
// duplicates on an older one), none while an IKE SA is CONNECTING.
func missingChildren(ctx context.Context, sess session, r *rendered) ([]child, error) {
	sas, err := listSAs(ctx, sess, r.conn.Name)
	if err != nil {
		return nil, err
	}
	established := false
	have := map[string]bool{}
	for _, sa := range sas {
		switch sa.state {
		case "CONNECTING":
			return nil, nil // in progress (ours or the peer's)
		case "ESTABLISHED":
			established = true
			for _, c := range sa.children {
				switch c.State {
				case "DELETING", "DELETED", "DESTROYING":
				default:
					have[c.Name] = true
				}
			}
		}
	}
	if !established {
		return r.conn.Children, nil
	}
	var out []child
	for _, ch := range r.conn.Children {
		if !have[ch.Name] {
			out = append(out, ch)
		}
	}
	return out, nil
}
