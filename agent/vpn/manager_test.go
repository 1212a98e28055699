package vpn

import (
	"context"
	"errors"
	"iter"
	"net/netip"
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
	sas         []*vici.Message // list-sa events
	// halfOpen is the IKE SA a failed initiate leaves (list-sa event).
	halfOpen *vici.Message
	// initiating, when set, gets each initiate's connection, which then
	// hangs until release is closed (a peer that does not answer).
	initiating chan<- string
	release    <-chan struct{}
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
		if f.loadConnErr != nil {
			f.calls = append(f.calls, cmd+" "+name)
			return nil, f.loadConnErr
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
		log: hclog.NewNullLogger(), sess: f, loaded: map[uint64]string{}, initErr: map[uint64]string{},
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
	f := &fakeSession{conns: []string{"P4-1", "P4-2", "P4-9"}, sas: []*vici.Message{up}}
	in := testInstance(f)
	want(t, in, spec(1, "immediately"), spec(2, "immediately"), spec(3, "immediately"))
	in.adopted = map[uint64]string{1: in.want[0].connDigest, 2: "an older connection", 9: "x"}
	ch, err := in.applyLocked(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.take(), "; "); got != "get-conns; terminate P4-9; unload-conn P4-9; unload-shared ike-P4-9; "+
		"load-shared ike-P4-1; load-conn P4-1; "+
		"load-shared ike-P4-2; load-conn P4-2; terminate P4-2; "+
		"load-shared ike-P4-3; load-conn P4-3" {
		t.Fatalf("adopted apply: %s", got)
	}
	in.initiatePass()
	if got := strings.Join(f.take(), "; "); got != "list-sas P4-1; list-sas P4-2; initiate P4-2; list-sas P4-3; initiate P4-3" {
		t.Fatalf("initiate pass: %s", got)
	}
	if want := []string{"vpn P4-9 unloaded", "vpn P4-1 adopted", "vpn P4-2 re-loaded", "vpn P4-3 loaded"}; !slices.Equal(ch, want) {
		t.Fatalf("changes %v, want %v", ch, want)
	}
	ch, _ = in.applyLocked(context.Background())
	if got := f.take(); len(ch) != 0 || !slices.Equal(got, []string{"get-conns"}) {
		t.Fatalf("second apply: changes %v, calls %v", ch, got)
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
// runs must not leave its key in charon), and the error is a LoadError.
func TestRefusedConnLeavesNoKey(t *testing.T) {
	f := &fakeSession{loadConnErr: errors.New("vici: command failed: invalid proposal")}
	in := testInstance(f)
	want(t, in, spec(1, "on-traffic"))
	_, err := in.applyLocked(context.Background())
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %v, want a LoadError", err)
	}
	if got := strings.Join(f.take(), "; "); got != "get-conns; load-shared ike-P4-1; load-conn P4-1; unload-shared ike-P4-1" {
		t.Fatalf("calls: %s", got)
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
