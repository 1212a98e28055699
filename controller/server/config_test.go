package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/systemtest"

	"github.com/hashicorp/go-hclog"
)

// TestExampleConfigsLoad: every example in configs/ parses and validates.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../configs/controller*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, f := range files {
		cfg := Defaults()
		if err := LoadFile(f, &cfg); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := cfg.Finish(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if cfg.dnsEnabled() {
			if _, err := cfg.dnsConfig(hclog.NewNullLogger()); err != nil {
				t.Errorf("%s: dns: %v", f, err)
			}
		}
	}
}

// TestDNSTCPConns: dns_tcp_conns reaches the DNS server's bound (0
// keeps its default: dns.DefaultTCPConns).
func TestDNSTCPConns(t *testing.T) {
	cfg := Defaults()
	cfg.DNSTCPConns = 64
	if d, err := cfg.dnsConfig(hclog.NewNullLogger()); err != nil || d.TCPConns != 64 {
		t.Errorf("dns_tcp_conns 64: TCPConns %d, %v", d.TCPConns, err)
	}
}

// TestJoinNeedsClusterToken: a node that would join without the cluster
// token is refused at start (the cluster would refuse it forever), and so
// by Check; the settings alone (Finish) do not tell, since a restart on a
// data dir with raft state ignores -join.
func TestJoinNeedsClusterToken(t *testing.T) {
	cfg := Defaults()
	cfg.NodeID, cfg.DataDir, cfg.Join = "n2", t.TempDir(), "127.0.0.1:1"
	cfg.HTTPAddr, cfg.RaftAddr, cfg.DNSAddr, cfg.LogLevel = "127.0.0.1:0", "127.0.0.1:0", "off", "off"
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); !errors.Is(err, ErrJoinNeedsClusterToken) || !strings.Contains(err.Error(), "-join needs the cluster token (cluster_token, -cluster-token or $REGENT_CLUSTER_TOKEN)") {
		t.Fatalf("Check: join without a cluster token: %v", err)
	}
	s, err := New(cfg, io.Discard)
	if err == nil {
		s.Shutdown(context.Background())
		t.Fatal("New: a node joined without the cluster token")
	}
	if !errors.Is(err, ErrJoinNeedsClusterToken) || !strings.Contains(err.Error(), "holds no raft state, so this node joins the cluster at 127.0.0.1:1") {
		t.Fatalf("New: %v", err)
	}
	cfg.ClusterToken = "s3cret-of-16-bytes"
	if err := Check(cfg); err != nil {
		t.Fatal(err)
	}
}

// TestJoinIgnoredWithoutClusterToken: a node restarted on a data dir with
// raft state ignores -join, so it starts without the cluster token (the
// docs: the same config restarts a node safely); it warns that, while it
// leads, the cluster refuses joins, which are checked against the leader's
// token.
func TestJoinIgnoredWithoutClusterToken(t *testing.T) {
	dir := bootstrappedDataDir(t)
	cfg := Config{NodeID: "n1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DNSAddr: "off", Join: "127.0.0.1:1"}
	if err := Check(cfg); err != nil {
		t.Fatalf("Check: %v", err)
	}
	logs := &systemtest.Buffer{}
	cfg.LogOutput = logs
	s, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatalf("restart with -join and no cluster token: %v", err)
	}
	defer s.Shutdown(context.Background())
	if l := logs.String(); !strings.Contains(l, "existing raft state found; not joining") ||
		!strings.Contains(l, "[WARN]  regent: no cluster_token: while this node leads, the cluster refuses every join") || strings.Contains(l, "join failed") {
		t.Fatalf("log:\n%s", l)
	}
}

// TestClusterTokenRefusedWhenWeak: a cluster token shorter than 16 bytes,
// or still configs/controller.hcl's placeholder, is a configuration error
// that says how to make one (configs/controller.hcl ships the placeholder
// commented out: TestExampleConfigsLoad).
func TestClusterTokenRefusedWhenWeak(t *testing.T) {
	for _, tok := range []string{"s3cret", "fifteen-bytes!!", "REPLACE-WITH-OUTPUT-OF: head -c32 /dev/urandom | base64"} {
		cfg := Defaults()
		cfg.DataDir, cfg.ClusterToken = t.TempDir(), tok
		if err := cfg.Finish(); err == nil || !strings.Contains(err.Error(), "cluster_token") || !strings.Contains(err.Error(), "head -c32 /dev/urandom | base64") {
			t.Errorf("cluster token %q: %v, want it refused with how to make one", tok, err)
		}
	}
	for _, tok := range []string{"", "sixteen-bytes-ok", "q8Xo3fKq0m1fQyVw5c0sA0Kq8Zc1n7pXr2YbT9uQe3w="} {
		cfg := Defaults()
		cfg.DataDir, cfg.ClusterToken = t.TempDir(), tok
		if err := cfg.Finish(); err != nil {
			t.Errorf("cluster token %q: %v", tok, err)
		}
	}
}

// TestPlacementConfig: the placement block overrides the CloudCIX factors
// one by one and is validated.
func TestPlacementConfig(t *testing.T) {
	cfg := Defaults()
	if f := cfg.Factors(); f.RAMFactor != 0.85 || f.CPUOversubscription != 8 {
		t.Fatalf("defaults: %+v", f)
	}
	ram, over := 0.9, 4
	cfg.Placement = &PlacementConfig{RAMFactor: &ram, CPUOversubscription: &over}
	if f := cfg.Factors(); f.RAMFactor != 0.9 || f.CPUOversubscription != 4 || f.DiskFactor != 0.77 {
		t.Fatalf("overrides: %+v", f)
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	bad := 1.5
	cfg.Placement.DiskFactor = &bad
	if err := cfg.Finish(); err == nil {
		t.Fatal("a disk factor of 1.5 was accepted")
	}
}

// TestCommitLingerConfig: the group commit's linger defaults to 5ms, the
// example config says so too, and a value that is not a duration is
// refused.
func TestCommitLingerConfig(t *testing.T) {
	cfg := Defaults()
	if cfg.CommitLinger.D() != 5*time.Millisecond {
		t.Fatalf("default commit_linger %q", cfg.CommitLinger)
	}
	if err := LoadFile("../../configs/controller.hcl", &cfg); err != nil || cfg.CommitLinger != "5ms" {
		t.Fatalf("configs/controller.hcl: %q %v", cfg.CommitLinger, err)
	}
	for v, want := range map[Duration]time.Duration{"": 0, "0s": -1, "0": -1, "3ms": 3 * time.Millisecond} {
		c := Config{CommitLinger: v}
		if got := c.coalesceLinger(); got != want {
			t.Errorf("commit_linger %q: cluster linger %v, want %v", v, got, want)
		}
	}
	cfg = Defaults()
	cfg.DataDir, cfg.CommitLinger = t.TempDir(), "soon"
	if err := cfg.Finish(); err == nil || !strings.Contains(err.Error(), "commit_linger") {
		t.Fatalf("commit_linger %q: %v", cfg.CommitLinger, err)
	}
}

// TestAgentHeartbeatConfig: agent_down_after shorter than two
// agent_heartbeat intervals, or a negative one, is a configuration error:
// every agent would be judged down between two heartbeats and up at the
// next, two raft writes per agent and interval.
func TestAgentHeartbeatConfig(t *testing.T) {
	for _, tc := range []struct {
		heartbeat, downAfter Duration
		bad                  string
	}{
		{}, {heartbeat: "500ms"}, {heartbeat: "10s", downAfter: "20s"}, {downAfter: "20s"},
		{heartbeat: "10s", downAfter: "15s", bad: "agent_down_after 15s must be at least twice agent_heartbeat 10s"},
		{downAfter: "10s", bad: "agent_down_after 10s must be at least twice agent_heartbeat 10s"},
		{heartbeat: "1m", bad: ""}, // down after three: 3m
		{heartbeat: "-1s", bad: "must be positive"},
	} {
		cfg := Defaults()
		cfg.DataDir = t.TempDir()
		cfg.AgentHeartbeat, cfg.AgentDownAfter = tc.heartbeat, tc.downAfter
		err := cfg.Finish()
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%+v: %v", tc, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%+v: %v, want %q", tc, err, tc.bad)
		}
	}
}

// TestRaftTimeoutsConfig: a heartbeat timeout set alone carries the
// election timeout and leader lease with it (they used to stay at 500 ms
// and 250 ms, which raft refused with a heartbeat of 1 s or 200 ms: the node
// exited at start though validate called the configuration valid); set
// ones that contradict each other are a configuration error.
func TestRaftTimeoutsConfig(t *testing.T) {
	for _, tc := range []struct {
		heartbeat, election, lease Duration
		bad                        string
	}{
		{heartbeat: "1s"}, {heartbeat: "200ms"}, {heartbeat: "50ms", election: "50ms", lease: "50ms"},
		{heartbeat: "1s", election: "500ms", bad: "election timeout 500ms is shorter than the heartbeat timeout 1s"},
		{heartbeat: "200ms", lease: "250ms", bad: "leader lease timeout 250ms is longer than the heartbeat timeout 200ms"},
		{heartbeat: "1ms", bad: "at least 5ms"},
	} {
		cfg := Defaults()
		cfg.DataDir = t.TempDir()
		cfg.HTTPAddr, cfg.RaftAddr, cfg.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		// As a config file or the flags set them: over the defaults.
		for _, f := range []struct{ to, v *Duration }{{&cfg.HeartbeatTimeout, &tc.heartbeat}, {&cfg.ElectionTimeout, &tc.election}, {&cfg.LeaderLeaseTimeout, &tc.lease}} {
			if *f.v != "" {
				*f.to = *f.v
			}
		}
		err := cfg.Finish()
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%+v: %v", tc, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%+v: %v, want %q", tc, err, tc.bad)
		}
		if err != nil {
			continue
		}
		s, err := New(cfg, io.Discard)
		if err != nil {
			t.Errorf("%+v: the node does not start: %v", tc, err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.Shutdown(ctx)
		cancel()
	}
}

// TestMelangeDNSConfig: melange_dns1 and melange_dns2 are unset by
// default, commented out in the example, and must be IP addresses.
func TestMelangeDNSConfig(t *testing.T) {
	cfg := Defaults()
	if err := LoadFile("../../configs/controller.hcl", &cfg); err != nil || cfg.MelangeDNS1 != "" || cfg.MelangeDNS2 != "" {
		t.Fatalf("configs/controller.hcl: %q %q %v", cfg.MelangeDNS1, cfg.MelangeDNS2, err)
	}
	for _, bad := range [][2]string{{"8.8.8", ""}, {"", "dns.google"}} {
		cfg = Defaults()
		cfg.DataDir, cfg.MelangeDNS1, cfg.MelangeDNS2 = t.TempDir(), bad[0], bad[1]
		if err := cfg.Finish(); err == nil || !strings.Contains(err.Error(), "melange_dns") {
			t.Errorf("melange_dns1 %q, melange_dns2 %q: %v", bad[0], bad[1], err)
		}
	}
	cfg = Defaults()
	cfg.DataDir, cfg.MelangeDNS1, cfg.MelangeDNS2 = t.TempDir(), "8.8.8.8", "2001:4860:4860::8844"
	if err := cfg.Finish(); err != nil {
		t.Errorf("good addresses: %v", err)
	}
}

// TestDNSApexConfig: the apex settings are normalised as zones serve them,
// bad ones are refused at start (a node with DNS off writes them too when
// it leads), and merge keeps the cluster's value of a setting not given.
func TestDNSApexConfig(t *testing.T) {
	c := Config{DNSNameservers: []string{" NS1.Example.NET", "ns2.example.net."}, DNSHostmaster: "dns@example.net"}
	a := c.apexConfig()
	if strings.Join(a.ns, ",") != "ns1.example.net.,ns2.example.net." || a.hostmaster != "dns.example.net." || !a.given() {
		t.Fatalf("apexConfig = %+v", a)
	}
	cur := &state.DNSSettings{NS: []string{"old.example.net."}, Hostmaster: "old.example.net."}
	if ns, hm := (apexConfig{hostmaster: "h.example.net."}).merge(cur); ns[0] != "old.example.net." || hm != "h.example.net." {
		t.Errorf("merge of a hostmaster only: %v %q", ns, hm)
	}
	if ns, hm := (apexConfig{}).merge(nil); len(ns) != 1 || ns[0] != defaultNameserver || hm != "" {
		t.Errorf("merge of nothing: %v %q", ns, hm)
	}
	for _, bad := range []Config{
		{DNSNameservers: []string{"ns1..example.net"}},
		{DNSHostmaster: "."},
	} {
		bad.DataDir, bad.HTTPAddr, bad.RaftAddr, bad.DNSAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "off"
		if err := bad.Finish(); err == nil || !strings.Contains(err.Error(), "dns_") {
			t.Errorf("%+v: Finish() = %v, want a dns_ error", bad.DNSNameservers, err)
		}
	}
}

// TestAdvertiseHTTPDefault: the URL peers are given is the HTTP listen
// address, except that a listener on every address advertises the raft
// address's host (which must be routable) with the HTTP port.
func TestAdvertiseHTTPDefault(t *testing.T) {
	for _, c := range []struct {
		scheme, listen, raft, want string
		derived                    bool
	}{
		{"http", "10.0.0.1:8080", "10.0.0.1:8300", "http://10.0.0.1:8080", false},
		{"https", "127.0.0.1:8080", "10.0.0.1:8300", "https://127.0.0.1:8080", false},
		{"http", "ctl1.example.net:8080", "10.0.0.1:8300", "http://ctl1.example.net:8080", false},
		{"http", "0.0.0.0:8080", "10.0.0.1:8300", "http://10.0.0.1:8080", true},
		{"https", "[::]:8080", "10.0.0.1:8300", "https://10.0.0.1:8080", true},
		{"http", ":8080", "ctl1.example.net:8300", "http://ctl1.example.net:8080", true},
		{"http", "[::]:8080", "[2001:db8::1]:8300", "http://[2001:db8::1]:8080", true},
	} {
		got, derived := advertiseHTTP(c.scheme, c.listen, c.raft)
		if got != c.want || derived != c.derived {
			t.Errorf("advertiseHTTP(%s, %s, %s) = %s, %v; want %s, %v", c.scheme, c.listen, c.raft, got, derived, c.want, c.derived)
		}
	}
}

// TestAdvertiseHTTPOnEveryAddress: a real node with -http-addr 0.0.0.0
// advertises (and records for forwarding) its raft host with the HTTP
// port, says so once in its log, and an explicit -advertise-http wins.
func TestAdvertiseHTTPOnEveryAddress(t *testing.T) {
	logs := &systemtest.Buffer{}
	cfg := Config{NodeID: "n1", DataDir: t.TempDir(), HTTPAddr: "0.0.0.0:0", RaftAddr: "127.0.0.1:0", DNSAddr: "off",
		Bootstrap: true, LogOutput: logs}
	s, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.URL(), "http://"))
	want := "http://127.0.0.1:" + port
	if got := s.Config().AdvertiseHTTP; got != want {
		t.Fatalf("advertise_http = %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !s.WaitReady(ctx) {
		t.Fatal("not ready")
	}
	for ctx.Err() == nil {
		if n, ok := s.Store().Read().Node("n1"); ok && n.HTTPAddr == want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, ok := s.Store().Read().Node("n1"); !ok || n.HTTPAddr != want {
		t.Fatalf("recorded node: %+v", n)
	}
	if l := logs.String(); strings.Count(l, "advertising the raft address's host") != 1 || !strings.Contains(l, "advertise_http="+want) {
		t.Fatalf("log:\n%s", l)
	}

	cfg2 := Config{NodeID: "n2", DataDir: t.TempDir(), HTTPAddr: "0.0.0.0:0", RaftAddr: "127.0.0.1:0", DNSAddr: "off",
		Bootstrap: true, LogLevel: "off", AdvertiseHTTP: "http://ctl2.example.net:8080"}
	s2, err := New(cfg2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown(context.Background())
	if got := s2.Config().AdvertiseHTTP; got != cfg2.AdvertiseHTTP {
		t.Fatalf("explicit advertise_http became %q", got)
	}
}

// TestJoinWithRaftStateIsLogged: a node restarted with -join over a data
// dir that holds raft state does not join, and says so (it used to be
// silent).
func TestJoinWithRaftStateIsLogged(t *testing.T) {
	dir := bootstrappedDataDir(t)
	logs := &systemtest.Buffer{}
	s, err := New(Config{NodeID: "n1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DNSAddr: "off",
		Join: "127.0.0.1:1", ClusterToken: "secret-of-16-bytes", LogOutput: logs}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if l := logs.String(); !strings.Contains(l, "[WARN]  regent: existing raft state found; not joining") ||
		!strings.Contains(l, "join=127.0.0.1:1") || strings.Contains(l, "join failed") {
		t.Fatalf("log:\n%s", l)
	}
}

// TestDNSPortInUse: a DNS address already taken is one clear error with a
// single "dns:" prefix (it used to read "dns: dns: listening on tcp ...").
func TestDNSPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = New(Config{NodeID: "n1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		DNSAddr: taken.Addr().String(), Bootstrap: true, LogLevel: "off"}, io.Discard)
	if err == nil {
		t.Fatal("started with its DNS address in use")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "dns: listening on tcp "+taken.Addr().String()+": ") || strings.Contains(msg, "dns: dns:") {
		t.Fatalf("error: %q", msg)
	}
	// A setting the node maps itself names the setting.
	_, err = New(Config{NodeID: "n1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		DNSAddr: "127.0.0.1:0", DNSAllowTransfer: []string{"nonsense"}, Bootstrap: true, LogLevel: "off"}, io.Discard)
	if err == nil || err.Error() != `dns_allow_transfer "nonsense": not an address or CIDR` {
		t.Fatalf("bad dns_allow_transfer: %v", err)
	}
}

// TestLooseRootTokenIsTightenedAtStart: a root.token readable by group or
// others (copied, or written by hand) is made owner-only when the node
// starts, with a warning; it used to stay as it was.
func TestLooseRootTokenIsTightenedAtStart(t *testing.T) {
	dir := bootstrappedDataDir(t)
	token := filepath.Join(dir, RootTokenFile)
	if err := os.Chmod(token, 0o644); err != nil {
		t.Fatal(err)
	}

	logs := &systemtest.Buffer{}
	s, err := New(Config{NodeID: "n1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DNSAddr: "off",
		LogLevel: "warn", LogOutput: logs}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if fi, err := os.Stat(token); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root.token after the restart: %v %v", fi.Mode(), err)
	}
	if l := logs.String(); strings.Count(l, "the root token file was readable by group or others: made it owner-only") != 1 || !strings.Contains(l, "was=-rw-r--r--") {
		t.Fatalf("log:\n%s", l)
	}
}

// TestRootTokenWrittenBeforeBootstrap: the root token is on disk before the
// bootstrap that makes it commits. While it cannot be written (here a
// directory stands in its place) the cluster is not bootstrapped, and once
// it can, the bootstrap goes through with the token in the file. The
// token used to be written after the commit: a failed write left a cluster
// whose root token nobody had, for good.
func TestRootTokenWrittenBeforeBootstrap(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, RootTokenFile)
	if err := os.Mkdir(token, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{NodeID: "n1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DNSAddr: "off",
		Bootstrap: true, LogLevel: "off"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.WaitReady(ctx) {
		t.Fatal("ready without a root token on disk")
	}
	if _, ok := s.Store().Read().Member(wire.GlobalMemberID); ok {
		t.Fatal("bootstrapped although the root token could not be written")
	}
	if err := os.Remove(token); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !s.WaitReady(ctx) {
		t.Fatal("never bootstrapped once the token could be written")
	}
	secret, err := os.ReadFile(token)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", s.URL()+"/membership/user/", nil)
	req.Header.Set("X-Auth-Token", strings.TrimSpace(string(secret)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the token in the file: %d", resp.StatusCode)
	}
}

// bootstrappedDataDir is the data dir of a single node "n1" that was
// bootstrapped, became ready and was stopped.
func bootstrappedDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := New(Config{NodeID: "n1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DNSAddr: "off",
		Bootstrap: true, LogLevel: "off"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !s.WaitReady(ctx) {
		t.Fatal("not ready")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSecondControllerOnItsDataDir: the same controller started twice (the
// same data dir and addresses) is told that the data dir is in use, not
// that its HTTP port is, and leaves the running node alone.
func TestSecondControllerOnItsDataDir(t *testing.T) {
	cfg := Config{NodeID: "n1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		DNSAddr: "127.0.0.1:0", Bootstrap: true, LogLevel: "off",
		HeartbeatTimeout: "200ms", ElectionTimeout: "200ms", LeaderLeaseTimeout: "100ms"}
	first, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !first.WaitReady(ctx) {
		t.Fatal("first node not ready")
	}
	again := cfg
	again.HTTPAddr = strings.TrimPrefix(first.URL(), "http://")
	_, err = New(again, io.Discard)
	if err == nil {
		t.Fatal("a second controller started on a data dir in use")
	}
	if msg := err.Error(); !strings.Contains(msg, "locked (is another controller using this data dir?)") {
		t.Errorf("error: %q; want it to say the data dir is in use", msg)
	}
	if resp, err := http.Get(first.URL() + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the running node after the refused start: %v %v", resp, err)
	}
}

// TestConfigFileMistakes: a mistake in the -config file is named by the
// attribute and its file and line: an unknown attribute, a value of the
// wrong type (in a block too), a duration that does not parse (a bare
// number included, which HCL would take as the string "5"), and every one
// of several mistakes, not only the first.
func TestConfigFileMistakes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"node_id = \"x\"\nbogus_key = 1\n", []string{`x.hcl:2,1-10: Unsupported argument; An argument named "bogus_key"`}},
		{"node_id = \"x\"\n\nheartbeat_timeout = \"5 secs\"\n", []string{`x.hcl:3,21-29: heartbeat_timeout "5 secs" is not a duration`}},
		{"dead_server_cleanup = 5\n", []string{`x.hcl:1,23-24: dead_server_cleanup "5" is not a duration`}},
		{"dns_nameservers = \"ns1.\"\n", []string{`x.hcl:1,20-24: dns_nameservers: Unsuitable value type`}},
		{"placement {\n  ram_factor = \"a\"\n  foo = 1\n}\n", []string{`x.hcl:3,3-6: Unsupported argument; An argument named "foo"`,
			`x.hcl:2,17-18: placement.ram_factor: Unsuitable value type`}},
	} {
		path := filepath.Join(dir, "x.hcl")
		if err := os.WriteFile(path, []byte(tc.src), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := Defaults()
		err := LoadFile(path, &cfg)
		if err == nil {
			t.Errorf("%q loaded", tc.src)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(err.Error(), filepath.Join(dir, want)) {
				t.Errorf("%q: %v\nwant %q", tc.src, err, want)
			}
		}
		if strings.Contains(err.Error(), "other diagnostic") {
			t.Errorf("%q: %v: a mistake left unnamed", tc.src, err)
		}
	}
}
