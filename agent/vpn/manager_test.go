package vpn

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"iter"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/strongswan/govici/vici"
)

// fakeSession plays charon: it keeps loaded connection names and records
// every command with its main argument.
type fakeSession struct {
	calls       []string
	conns       []string
	initiateErr error
	loadConnErr error
	// refuse makes load-conn of these connections fail (charon refusing
	// one VPN's configuration).
	refuse map[string]error
	sas    []*vici.Message // list-sa events
	// halfOpen is the IKE SA a failed initiate leaves (list-sa event).
	halfOpen *vici.Message
	// initiating, when set, gets each initiate's connection, which then
	// hangs until release is closed (a peer that does not answer).
	initiating chan<- string
	release    <-chan struct{}
	// initiated are the children initiated, in order.
	initiated []string
}

func (f *fakeSession) Call(_ context.Context, cmd string, in *vici.Message) (*vici.Message, error) {
	out := vici.NewMessage()
	switch cmd {
	case "get-conns":
		_ = out.Set("conns", slices.Clone(f.conns))
		f.calls = append(f.calls, cmd)
		return out, nil
	case "load-conn":
		name := in.Keys()[0]
		if err := cmp.Or(f.refuse[name], f.loadConnErr); err != nil {
			f.calls = append(f.calls, cmd+" "+name)
			return nil, err
		}
		if !slices.Contains(f.conns, name) {
			f.conns = append(f.conns, name)
		}
		f.calls = append(f.calls, cmd+" "+name)
	case "unload-conn":
		name := in.Get("name").(string)
		f.conns = slices.DeleteFunc(f.conns, func(s string) bool { return s == name })
		f.calls = append(f.calls, cmd+" "+name)
	case "load-shared", "unload-shared":
		f.calls = append(f.calls, cmd+" "+in.Get("id").(string))
	default:
		f.calls = append(f.calls, cmd)
	}
	return out, nil
}

func (f *fakeSession) CallStreaming(_ context.Context, cmd, _ string, in *vici.Message) iter.Seq2[*vici.Message, error] {
	arg, _ := in.Get("ike").(string)
	if id, ok := in.Get("ike-id").(string); ok {
		arg = "id:" + id
	}
	f.calls = append(f.calls, cmd+" "+arg)
	return func(yield func(*vici.Message, error) bool) {
		switch cmd {
		case "initiate":
			if c, ok := in.Get("child").(string); ok {
				f.initiated = append(f.initiated, c)
			}
			if f.initiating != nil {
				f.initiating <- arg
				<-f.release
			}
			if f.initiateErr != nil {
				if f.halfOpen != nil {
					f.sas = append(f.sas, f.halfOpen)
				}
				yield(nil, f.initiateErr) // v0.8: the failed response is the last element
			}
		case "list-sas":
			for _, m := range f.sas {
				if arg != "" && m.Get(arg) == nil {
					continue
				}
				if !yield(m, nil) {
					return
				}
			}
		}
	}
}

func (f *fakeSession) Close() error { return nil }

func (f *fakeSession) take() []string {
	c := f.calls
	f.calls = nil
	return c
}

func testInstance(f *fakeSession) *instance {
	cfg := &Config{Mode: ModeLibIPsec, InitiateTimeout: time.Second}
	return &instance{cfg: cfg, router: Router{ID: 5, Namespace: "P4", PublicAddr: netip.MustParseAddr("198.51.100.10")},
		log: hclog.NewNullLogger(), sess: f, loaded: map[uint64]string{}, initErr: map[uint64]string{}, refused: map[uint64]refusal{},
		dial: func(context.Context) (session, error) { return f, nil }, kick: make(chan struct{}, 1)}
}

// asked reports (and takes) an apply's ask for an initiate pass.
func asked(in *instance) bool {
	select {
	case <-in.kick:
		return true
	default:
		return false
	}
}

func want(t *testing.T, in *instance, specs ...api.VPNSpec) {
	t.Helper()
	in.want = nil
	for _, v := range specs {
		r, err := render(in.router.Namespace, in.router.PublicAddr, ModeLibIPsec, v)
		if err != nil {
			t.Fatal(err)
		}
		in.want = append(in.want, r)
	}
}

func spec(id uint64, establish string) api.VPNSpec {
	v := baseSpec()
	v.ID, v.IKEDHGroups, v.IPSecEstablishTime = id, "group2", establish
	return v
}

// TestApplyIsIncremental: new VPNs are loaded (and initiated by the next
// pass when "immediately"), unchanged ones are not touched, a changed one
// is re-loaded and its SAs terminated, a removed one is terminated and
// unloaded with its secret, and a foreign connection is left alone.
func TestApplyIsIncremental(t *testing.T) {
	f := &fakeSession{conns: []string{"other-conn"}}
	in := testInstance(f)
	ctx := context.Background()
	want(t, in, spec(1, "immediately"), spec(2, "on-traffic"))
	ch, err := in.applyLocked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.take(), "; "); got != "get-conns; load-shared ike-P4-1; load-conn P4-1; load-shared ike-P4-2; load-conn P4-2" {
		t.Fatalf("first apply: %s", got)
	}
	if len(ch) != 2 || !asked(in) {
		t.Fatalf("changes %v; asked for initiates: false", ch)
	}
	in.initiatePass()
	if got := strings.Join(f.take(), "; "); got != "list-sas P4-1; initiate P4-1" {
		t.Fatalf("initiate pass: %s", got)
	}

	ch, _ = in.applyLocked(ctx)
	if got := f.take(); len(ch) != 0 || !slices.Equal(got, []string{"get-conns"}) {
		t.Fatalf("unchanged apply: changes %v, calls %v", ch, got)
	}

	changed := spec(1, "immediately")
	changed.PreSharedKey = "a-new-key"
	want(t, in, changed)
	ch, _ = in.applyLocked(ctx)
	if got := strings.Join(f.take(), "; "); got != "get-conns; terminate P4-2; unload-conn P4-2; unload-shared ike-P4-2; load-shared ike-P4-1; load-conn P4-1; terminate P4-1" {
		t.Fatalf("change+removal: %s", got)
	}
	in.initiatePass()
	if got := strings.Join(f.take(), "; "); got != "list-sas P4-1; initiate P4-1" {
		t.Fatalf("initiate pass after the change: %s", got)
	}
	if !slices.Equal(ch, []string{"vpn P4-2 unloaded", "vpn P4-1 re-loaded"}) {
		t.Fatalf("changes %v", ch)
	}
	if !slices.Contains(f.conns, "other-conn") {
		t.Fatal("a connection not of this router was unloaded")
	}
}

// TestApplyAdopted: on a charon of an earlier agent, a VPN it has with
// the same connection is re-loaded in place and not initiated while up
// (its SAs are kept), one that changed while no agent ran is re-loaded and
// re-established, one that is gone from the spec is unloaded, and one it
// has not got is loaded and initiated.
func TestApplyAdopted(t *testing.T) {
	up := vici.NewMessage()
	children := vici.NewMessage()
	c := vici.NewMessage()
	_ = c.Set("name", "P4-1-1")
	_ = c.Set("state", "INSTALLED")
	_ = children.Set("P4-1-1-3", c)
	sa := vici.NewMessage()
	_ = sa.Set("uniqueid", "3")
	_ = sa.Set("state", "ESTABLISHED")
	_ = sa.Set("child-sas", children)
	_ = up.Set("P4-1", sa)
	f := &fakeSession{conns: []string{"P4-1", "P4-2", "P4-4", "P4-5", "P4-9"}, sas: []*vici.Message{up}}
	in := testInstance(f)
	in.pskKey = []byte("0123456789abcdef0123456789abcdef")
	want(t, in, spec(1, "immediately"), spec(2, "immediately"), spec(3, "immediately"), spec(4, "on-traffic"), spec(5, "on-traffic"))
	// 4's PSK changed while no agent ran (same connection, other key
	// digest); 5's state file is of an agent that kept no PSK digest.
	in.adopted = map[uint64]string{1: in.want[0].connDigest, 2: "an older connection", 4: in.want[3].connDigest,
		5: in.want[4].connDigest, 9: "x"}
	in.adoptedPSK = map[uint64]string{1: in.want[0].pskDigest(in.pskKey), 2: in.want[1].pskDigest(in.pskKey),
		4: in.want[3].pskDigest([]byte("another key")), 9: "y"}
	ch, err := in.applyLocked(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.take(), "; "); got != "get-conns; terminate P4-9; unload-conn P4-9; unload-shared ike-P4-9; "+
		"load-shared ike-P4-1; load-conn P4-1; "+
		"load-shared ike-P4-2; load-conn P4-2; terminate P4-2; "+
		"load-shared ike-P4-3; load-conn P4-3; "+
		"load-shared ike-P4-4; load-conn P4-4; terminate P4-4; "+
		"load-shared ike-P4-5; load-conn P4-5" {
		t.Fatalf("adopted apply: %s", got)
	}
	in.initiatePass()
	if got := strings.Join(f.take(), "; "); got != "list-sas P4-1; list-sas P4-2; initiate P4-2; list-sas P4-3; initiate P4-3" {
		t.Fatalf("initiate pass: %s", got)
	}
	if want := []string{"vpn P4-9 unloaded", "vpn P4-1 adopted", "vpn P4-2 re-loaded", "vpn P4-3 loaded",
		"vpn P4-4 re-loaded", "vpn P4-5 adopted"}; !slices.Equal(ch, want) {
		t.Fatalf("changes %v, want %v", ch, want)
	}
	ch, _ = in.applyLocked(context.Background())
	if got := f.take(); len(ch) != 0 || !slices.Equal(got, []string{"get-conns"}) {
		t.Fatalf("second apply: changes %v, calls %v", ch, got)
	}
}

// TestStateFileKeepsNoKey: the state file has each VPN's connection
// digest and an HMAC of its PSK under the run directory's key: neither
// the PSK nor its plain hash.
func TestStateFileKeepsNoKey(t *testing.T) {
	dir := t.TempDir()
	key, err := loadPSKKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := loadPSKKey(dir); err != nil || string(again) != string(key) {
		t.Fatalf("the key changed when read again: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, pskKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	f := &fakeSession{}
	in := testInstance(f)
	in.dir, in.pskKey = dir, key
	want(t, in, spec(1, "on-traffic"))
	if _, err := in.applyLocked(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := readState(dir)
	psk := in.want[0].psk.reveal()
	plain := sha256.Sum256([]byte(psk))
	if st.PSKs[1] == "" || st.PSKs[1] != in.want[0].pskDigest(key) || st.Conns[1] != in.want[0].connDigest ||
		strings.Contains(string(b), psk) || strings.Contains(string(b), hex.EncodeToString(plain[:16])) {
		t.Fatalf("state file %s", b)
	}
}

// TestInitiateFailureIsReported: a failed initiate (the error is the
// stream's last message) is kept for the status and the half-open IKE SA
// is terminated.
func TestInitiateFailureIsReported(t *testing.T) {
	half := vici.NewMessage()
	sa := vici.NewMessage()
	_ = sa.Set("uniqueid", "3")
	_ = sa.Set("state", "CONNECTING")
	_ = half.Set("P4-1", sa)
	f := &fakeSession{initiateErr: errors.New("vici: command failed: peer not responding"), halfOpen: half}
	in := testInstance(f)
	want(t, in, spec(1, "immediately"))
	if _, err := in.applyLocked(context.Background()); err != nil {
		t.Fatal(err)
	}
	in.initiatePass()
	calls := f.take()
	if !slices.Contains(calls, "terminate id:3") {
		t.Fatalf("half-open SA not terminated: %v", calls)
	}
	in.stSess = f
	st := in.status(context.Background())
	if len(st) != 1 || st[0].IKEState != "CONNECTING" || !strings.Contains(st[0].Error, "peer not responding") {
		t.Fatalf("status %+v", st)
	}
	f.sas = nil
	st = in.status(context.Background())
	if st[0].IKEState != api.VPNStateDown || len(st[0].Children) != 0 || st[0].VirtualRouterID != 5 {
		t.Fatalf("status without SA %+v", st)
	}
}

// TestParseSAs reads a list-sa event the way charon sends it.
func TestParseSAs(t *testing.T) {
	child := vici.NewMessage()
	for k, v := range map[string]string{"name": "P4-1-1", "state": "INSTALLED", "bytes-in": "840", "bytes-out": "900",
		"packets-in": "10", "packets-out": "11"} {
		_ = child.Set(k, v)
	}
	_ = child.Set("local-ts", []string{"10.1.0.0/24"})
	_ = child.Set("remote-ts", []string{"10.2.0.0/24"})
	children := vici.NewMessage()
	_ = children.Set("P4-1-1-7", child)
	sa := vici.NewMessage()
	for k, v := range map[string]string{"uniqueid": "4", "version": "2", "state": "ESTABLISHED", "local-host": "198.51.100.10",
		"remote-host": "203.0.113.9", "established": "42"} {
		_ = sa.Set(k, v)
	}
	_ = sa.Set("child-sas", children)
	ev := vici.NewMessage()
	_ = ev.Set("P4-1", sa)
	got := parseSAs(ev)
	if len(got) != 1 || got[0].state != "ESTABLISHED" || got[0].established != 42 || got[0].version != 2 || len(got[0].children) != 1 {
		t.Fatalf("%+v", got)
	}
	c := got[0].children[0]
	if c.Name != "P4-1-1" || c.PacketsOut != 11 || c.BytesIn != 840 || c.RemoteTS[0] != "10.2.0.0/24" {
		t.Fatalf("child %+v", c)
	}
}

// TestRefusedConnLeavesNoKey: when charon refuses a new VPN's connection,
// the secret loaded just before it is unloaded again (a VPN that never
// runs must not leave its key in charon).
func TestRefusedConnLeavesNoKey(t *testing.T) {
	f := &fakeSession{loadConnErr: errors.New("vici: command failed: invalid proposal")}
	in := testInstance(f)
	want(t, in, spec(1, "on-traffic"))
	if _, err := in.applyLocked(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.take(), "; "); got != "get-conns; load-shared ike-P4-1; load-conn P4-1; unload-shared ike-P4-1" {
		t.Fatalf("calls: %s", got)
	}
}

// TestRefusedVPNFailsAlone: charon refusing one VPN does not stop the
// router's other VPNs from loading (before, the first refusal ended the
// apply and the router went UNRESOURCED). The refused one is reported in
// its status, is not tried again while its spec is unchanged, is tried
// again once it changes, and a refused change of a running VPN unloads
// the old version (the spec says otherwise).
func TestRefusedVPNFailsAlone(t *testing.T) {
	refused := errors.New("vici: command failed: invalid proposal")
	f := &fakeSession{refuse: map[string]error{"P4-2": refused}}
	in := testInstance(f)
	ctx := context.Background()
	want(t, in, spec(1, "on-traffic"), spec(2, "on-traffic"), spec(3, "on-traffic"))
	ch, err := in.applyLocked(ctx)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := strings.Join(f.take(), "; "); got != "get-conns; load-shared ike-P4-1; load-conn P4-1; "+
		"load-shared ike-P4-2; load-conn P4-2; unload-shared ike-P4-2; load-shared ike-P4-3; load-conn P4-3" {
		t.Fatalf("calls: %s", got)
	}
	if !slices.Equal(ch, []string{"vpn P4-1 loaded", "vpn P4-3 loaded"}) {
		t.Fatalf("changes %v", ch)
	}
	in.stSess = f
	st := in.status(ctx)
	if len(st) != 3 || st[0].Error != "" || st[2].Error != "" || !strings.Contains(st[1].Error, "strongSwan refused it") ||
		!strings.Contains(st[1].Error, "invalid proposal") {
		t.Fatalf("status %+v", st)
	}

	// Unchanged: not sent to charon again.
	f.take()
	if _, err := in.applyLocked(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); !slices.Equal(got, []string{"get-conns"}) {
		t.Fatalf("second apply: %v", got)
	}
	// Changed, and now accepted.
	delete(f.refuse, "P4-2")
	fixed := spec(2, "on-traffic")
	fixed.IPSecLifetime = 1800
	want(t, in, spec(1, "on-traffic"), fixed, spec(3, "on-traffic"))
	if ch, err = in.applyLocked(ctx); err != nil || !slices.Equal(ch, []string{"vpn P4-2 loaded"}) {
		t.Fatalf("fixed apply: %v %v", ch, err)
	}
	if st := in.status(ctx); st[1].Error != "" {
		t.Fatalf("status after the fix %+v", st[1])
	}
	f.take()
	// A running VPN's new version refused: the old one is unloaded.
	f.refuse["P4-3"] = refused
	changed := spec(3, "on-traffic")
	changed.IPSecLifetime = 1800
	want(t, in, spec(1, "on-traffic"), fixed, changed)
	ch, err = in.applyLocked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.take(), "; "); got != "get-conns; load-shared ike-P4-3; load-conn P4-3; terminate P4-3; unload-conn P4-3; unload-shared ike-P4-3" {
		t.Fatalf("refused change: %s", got)
	}
	if slices.Contains(f.conns, "P4-3") || !slices.Contains(f.conns, "P4-1") || !slices.Contains(f.conns, "P4-2") {
		t.Fatalf("charon's connections %v", f.conns)
	}
	if _, ok := in.loaded[3]; ok || !slices.Equal(ch, []string{"vpn P4-3 unloaded (its new configuration was refused)"}) {
		t.Fatalf("changes %v, loaded %v", ch, in.loaded)
	}
}

// TestInvalidVPNFailsAlone: a VPN whose spec cannot be rendered is not an
// error of Ensure: it is listed in Result.Failed and its status carries
// the error (here the router has no other VPN, so no charon is started;
// the system test TestVPNFailsAlone covers the mix with a running one),
// until an Ensure without it or Remove.
func TestInvalidVPNFailsAlone(t *testing.T) {
	m, err := New(Config{Mode: ModeLibIPsec, RunDir: t.TempDir(), Charon: "/nonexistent/charon"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := Router{ID: 5, Namespace: "P4", PublicAddr: netip.MustParseAddr("198.51.100.10")}
	bad := spec(7, "immediately")
	bad.IKEDHGroups = "group99"
	res, err := m.Ensure(ctx, r, []api.VPNSpec{bad})
	var se *SpecError
	if err != nil || len(res.Failed) != 1 || !errors.As(res.Failed[0], &se) || se.VPNID != 7 {
		t.Fatalf("Ensure: %+v, %v", res, err)
	}
	st := m.RouterStatus(ctx, r.ID)
	if len(st) != 1 || st[0].VPNID != 7 || st[0].VirtualRouterID != 5 || st[0].IKEState != api.VPNStateDown ||
		!strings.Contains(st[0].Error, "group99") {
		t.Fatalf("status %+v", st)
	}
	if all := m.Status(ctx); len(all) != 1 || all[0].VPNID != 7 {
		t.Fatalf("Status %+v", all)
	}
	if _, err := m.Ensure(ctx, r, []api.VPNSpec{bad, bad}); err == nil {
		t.Fatal("a VPN listed twice: no error")
	}
	if err := m.Remove(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if st := m.RouterStatus(ctx, r.ID); len(st) != 0 {
		t.Fatalf("status after Remove %+v", st)
	}
}

// TestRejectedVPNFailsAlone: a VPN the caller rejected (the router
// builder: its routes do not fit the router) is not loaded, is listed in
// Result.Failed and its status is DOWN with the error.
func TestRejectedVPNFailsAlone(t *testing.T) {
	m, err := New(Config{Mode: ModeLibIPsec, RunDir: t.TempDir(), Charon: "/nonexistent/charon"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := Router{ID: 5, Namespace: "P4", PublicAddr: netip.MustParseAddr("198.51.100.10")}
	rej := &SpecError{VPNID: 7, Err: errors.New("vpn 7: routes[0].local_subnet: 10.9.0.0/24 is not in a subnet of the router")}
	res, err := m.Ensure(ctx, r, []api.VPNSpec{spec(7, "immediately")}, rej)
	if err != nil || len(res.Failed) != 1 || res.Failed[0] != error(rej) {
		t.Fatalf("Ensure: %+v, %v (a rejected VPN must not start charon)", res, err)
	}
	st := m.RouterStatus(ctx, r.ID)
	if len(st) != 1 || st[0].VPNID != 7 || st[0].IKEState != api.VPNStateDown || !strings.Contains(st[0].Error, "not in a subnet") {
		t.Fatalf("status %+v", st)
	}
}

// TestInitiatesDoNotHoldTheLock: while an initiate hangs (a peer that
// does not answer), an apply of the same router goes through at once; the
// hanging initiate's failure is not recorded against the VPN the apply
// re-loaded meanwhile, and the next pass initiates what that apply loaded.
func TestInitiatesDoNotHoldTheLock(t *testing.T) {
	ctl := &fakeSession{}
	in := testInstance(ctl)
	initiating, release := make(chan string), make(chan struct{})
	fail := errors.New("vici: command failed: peer not responding")
	pass := &fakeSession{initiating: initiating, release: release, initiateErr: fail}
	in.dial = func(context.Context) (session, error) { return pass, nil }
	ctx := context.Background()
	want(t, in, spec(1, "immediately"))
	if _, err := in.applyLocked(ctx); err != nil {
		t.Fatal(err)
	}
	asked(in)
	ctl.take()
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.initiatePass()
	}()
	if got := <-initiating; got != "P4-1" {
		t.Fatalf("initiating %q", got)
	}

	changed := spec(1, "immediately")
	changed.PreSharedKey = "a-new-key"
	want(t, in, changed, spec(2, "immediately")) // the pass took its list already
	next := in.want
	applied := make(chan error, 1)
	go func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		in.want = next
		_, err := in.applyLocked(ctx)
		applied <- err
	}()
	select {
	case err := <-applied:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the apply waited for a hanging initiate: the pass holds the instance lock")
	}
	if got := strings.Join(ctl.take(), "; "); got != "get-conns; load-shared ike-P4-1; load-conn P4-1; terminate P4-1; load-shared ike-P4-2; load-conn P4-2" {
		t.Fatalf("apply during the initiate: %s", got)
	}
	if !asked(in) {
		t.Fatal("the apply asked for no initiate pass")
	}
	close(release)
	<-done
	in.mu.Lock()
	stale := in.initErr[1]
	in.mu.Unlock()
	if stale != "" {
		t.Fatalf("the old connection's initiate failure was recorded for the re-loaded VPN: %q", stale)
	}

	pass.initiating, pass.calls = nil, nil
	in.initiatePass()
	if got := strings.Join(pass.take(), "; "); got != "list-sas P4-1; initiate P4-1; list-sas P4-1; list-sas P4-2; initiate P4-2; list-sas P4-2" {
		t.Fatalf("next pass: %s", got)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, id := range []uint64{1, 2} {
		if !strings.Contains(in.initErr[id], "peer not responding") {
			t.Fatalf("vpn %d: initiate failure not recorded: %q", id, in.initErr[id])
		}
	}
}

// TestNoStartAfterRemove: the agent cancels a router's apply before it
// removes (scrubs) the router, and the apply may still reach Ensure. Such
// an Ensure must start nothing: before, an Ensure with a cancelled context
// created the instance (and its supervisor) anyway, and with the router
// gone nobody removed it: its supervisor tried to start charon every tick
// for ever; and an Ensure that found the instance just before Remove
// closed it started a charon with no supervisor and no owner. (A system
// test cannot hit these windows deterministically: this drives the
// Manager's own logic, with a charon that cannot start.)
func TestNoStartAfterRemove(t *testing.T) {
	dir := t.TempDir()
	m, err := New(Config{Mode: ModeLibIPsec, RunDir: dir, Charon: "/nonexistent/charon", IP: "/bin/false",
		StartTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	r := Router{ID: 5, Namespace: "P4", PublicAddr: netip.MustParseAddr("198.51.100.10")}

	// The apply's context is cancelled (its router is being removed).
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Ensure(cancelled, r, []api.VPNSpec{spec(1, "immediately")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ensure with a cancelled context: %v", err)
	}
	if ids := m.Routers(); len(ids) != 0 {
		t.Fatalf("instances %v after an Ensure whose apply was cancelled: a supervisor would start charon for ever", ids)
	}
	if _, err := os.Stat(filepath.Join(dir, r.Namespace)); !os.IsNotExist(err) {
		t.Fatalf("run directory of the router: %v", err)
	}

	// Ensure found the instance, then Remove closed it.
	ctx := context.Background()
	in, _, err := m.instance(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	rd, err := render(r.Namespace, r.PublicAddr, ModeLibIPsec, spec(1, "immediately"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.ensure(ctx, r, []*rendered{rd}, Result{}); !errors.Is(err, errRemoved) {
		t.Fatalf("Ensure on a removed instance: %v, want errRemoved (no charon start)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, r.Namespace)); !os.IsNotExist(err) {
		t.Fatalf("run directory of the removed router: %v (charon was started)", err)
	}
	select {
	case <-in.done:
	default:
		t.Fatal("the removed instance's supervisor still runs")
	}
	if ids := m.Routers(); len(ids) != 0 {
		t.Fatalf("instances %v", ids)
	}
}

// TestInitiateMissingChildrenOnly: a VPN with two children whose IKE SA is
// ESTABLISHED with only the first gets only the second initiated; with no
// IKE SA both are. Before, every child was initiated in order, stopping at
// the first error: charon ≥ 5.9.6 refuses the duplicate of the installed
// first child, so the second never came back (older ones pile duplicates
// up).
func TestInitiateMissingChildrenOnly(t *testing.T) {
	v := spec(1, "immediately")
	v.TrafficSelector = true
	v.Routes = []api.VPNRouteSpec{{LocalSubnet: "10.1.0.0/25", RemoteSubnet: "10.2.0.0/25"},
		{LocalSubnet: "10.1.0.128/25", RemoteSubnet: "10.2.0.128/25"}}
	f := &fakeSession{}
	in := testInstance(f)
	want(t, in, v)
	if _, err := in.applyLocked(context.Background()); err != nil {
		t.Fatal(err)
	}
	in.initiatePass()
	if !slices.Equal(f.initiated, []string{"P4-1-1", "P4-1-2"}) {
		t.Fatalf("without an IKE SA, initiated %v", f.initiated)
	}
	up, sa, children, c1 := vici.NewMessage(), vici.NewMessage(), vici.NewMessage(), vici.NewMessage()
	_ = c1.Set("name", "P4-1-1")
	_ = c1.Set("state", "INSTALLED")
	_ = children.Set("P4-1-1-7", c1)
	_ = sa.Set("uniqueid", "2")
	_ = sa.Set("state", "ESTABLISHED")
	_ = sa.Set("child-sas", children)
	_ = up.Set("P4-1", sa)
	f.sas, f.initiated = []*vici.Message{up}, nil
	in.initiatePass()
	if !slices.Equal(f.initiated, []string{"P4-1-2"}) {
		t.Fatalf("with the first child up, initiated %v, want only P4-1-2", f.initiated)
	}
	c2 := vici.NewMessage()
	_ = c2.Set("name", "P4-1-2")
	_ = c2.Set("state", "INSTALLED")
	_ = children.Set("P4-1-2-8", c2)
	f.initiated = nil
	in.initiatePass()
	if len(f.initiated) != 0 {
		t.Fatalf("with both children up, initiated %v", f.initiated)
	}
}

// TestInitiatedOnlyOnChange: Config.Initiated (the agent's early
// heartbeats) is called after a pass whose initiate failed with a new
// error or succeeded, not after one that failed again as before. Before,
// it was called after every failed initiate, so a peer that does not
// answer made the agent beat early on every tick.
func TestInitiatedOnlyOnChange(t *testing.T) {
	f := &fakeSession{initiateErr: errors.New("vici: command failed: peer not responding")}
	in := testInstance(f)
	calls := 0
	in.cfg.Initiated = func() { calls++ }
	want(t, in, spec(1, "immediately"))
	if _, err := in.applyLocked(context.Background()); err != nil {
		t.Fatal(err)
	}
	step := func(what string, want int) {
		t.Helper()
		in.initiatePass()
		if calls != want {
			t.Fatalf("%s: Initiated called %d times in all, want %d", what, calls, want)
		}
	}
	step("first failure", 1)
	step("the same failure again", 1)
	step("and again", 1)
	f.initiateErr = errors.New("vici: command failed: authentication failed")
	step("another error", 2)
	f.initiateErr = nil
	step("success", 3)
}
