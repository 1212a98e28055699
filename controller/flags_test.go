package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/internal/cli"

	"github.com/regentcloud/regent/controller/server"
	"github.com/regentcloud/regent/pkg/testca"
)

// TestEveryServerFlagOverridesTheFile: each flag of "server" that is
// given on the command line changes the configuration (overlay copies it
// over what the -config file said); a flag overlay forgot would be
// silently ignored next to a config file.
func TestEveryServerFlagOverridesTheFile(t *testing.T) {
	fs, flags, _ := serverFlags()
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		n++
		set := false
		for _, v := range []string{"7s", "true", "127.0.0.9:1", "x.example.", "3"} {
			if f.Value.Set(v) == nil && f.Value.String() != f.DefValue {
				set = true
				break
			}
		}
		if !set {
			t.Errorf("-%s: no test value sets it", f.Name)
			return
		}
		cfg := server.Defaults()
		overlay(&cfg, flags, f.Name)
		if reflect.DeepEqual(cfg, server.Defaults()) {
			t.Errorf("-%s: given on the command line, it does not change the configuration (overlay misses it)", f.Name)
		}
	})
	if n < 30 {
		t.Errorf("only %d flags seen", n)
	}
}

// TestServerHelp: "server -h" prints the flags on stdout and succeeds; a
// wrong flag is a usage error that points at "server -h".
func TestServerHelp(t *testing.T) {
	var out bytes.Buffer
	if _, err := serverConfig([]string{"-h"}, &out); !errors.Is(err, cli.ErrHelp) ||
		!strings.HasPrefix(out.String(), "Usage: regent-controller server [flags]") || !strings.Contains(out.String(), "-dead-server-cleanup") {
		t.Fatalf("server -h: %v\n%s", err, out.String())
	}
	out.Reset()
	_, err := serverConfig([]string{"-bogus"}, &out)
	var ue usageError
	if !errors.As(err, &ue) || out.Len() != 0 || ue.message() != "regent-controller: flag provided but not defined: -bogus\nRun 'regent-controller server -h' for its usage.\n" {
		t.Fatalf("server -bogus: %v, stdout %q", err, out.String())
	}
	if cfg, err := serverConfig([]string{"-dev", "-dead-server-cleanup", "1m"}, &out); err != nil || !cfg.Dev || cfg.DeadServerCleanup != "1m" || cfg.HTTPAddr != "127.0.0.1:8080" {
		t.Fatalf("server -dev: %v %+v", err, cfg)
	}
}

// TestReadmeListsEveryServerFlag: the Configuration table of README.md
// names every flag of "server" with its default, and no flag that does not
// exist.
func TestReadmeListsEveryServerFlag(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fs, _, _ := serverFlags()
	// A row: | `-a`, `-b` | default | meaning |
	row := regexp.MustCompile("(?m)^\\| (`-[a-z0-9-]+`(?:, `-[a-z0-9-]+`)*) \\|")
	flagName := regexp.MustCompile("`-([a-z0-9-]+)`")
	listed := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		for _, f := range flagName.FindAllStringSubmatch(m[1], -1) {
			listed[f[1]] = true
			if fs.Lookup(f[1]) == nil {
				t.Errorf("README lists -%s, which server does not have", f[1])
			}
		}
	}
	var missing []string
	fs.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] {
			missing = append(missing, "-"+f.Name)
		}
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README's Configuration table misses %s", strings.Join(missing, ", "))
	}
}

// TestServerConfigErrorsAreExitStatus2: a configuration that cannot work
// is a configError (main exits 2, which the systemd unit does not restart
// on), as is a config file that does not load; nothing starts.
func TestServerConfigErrorsAreExitStatus2(t *testing.T) {
	var ce configError
	if err := runServer([]string{"-data-dir", t.TempDir(), "-http-addr", "bad"}); !errors.As(err, &ce) || !strings.Contains(err.Error(), "-http-addr") {
		t.Errorf("bad -http-addr: %v", err)
	}
	if err := runServer([]string{"-config", filepath.Join(t.TempDir(), "missing.hcl")}); !errors.As(err, &ce) {
		t.Errorf("missing config file: %v", err)
	}
}

// TestServerClusterTokenFromEnvironment: server takes the cluster token
// from $REGENT_CLUSTER_TOKEN when neither -cluster-token nor the file's
// cluster_token gives one (so it need not be on the command line, where ps
// shows it); either of those wins over the environment.
func TestServerClusterTokenFromEnvironment(t *testing.T) {
	t.Setenv("REGENT_CLUSTER_TOKEN", "from-env-16-bytes")
	var out bytes.Buffer
	cfg, err := serverConfig([]string{"-data-dir", t.TempDir(), "-join", "10.0.0.1:8080"}, &out)
	if err != nil || cfg.ClusterToken != "from-env-16-bytes" {
		t.Fatalf("env only: %v, token %q", err, cfg.ClusterToken)
	}
	if err := cfg.Finish(); err != nil {
		t.Fatalf("join with the token from the environment: %v", err)
	}
	if cfg, err := serverConfig([]string{"-cluster-token", "from-flag"}, &out); err != nil || cfg.ClusterToken != "from-flag" {
		t.Fatalf("flag and env: %v, token %q", err, cfg.ClusterToken)
	}
	file := filepath.Join(t.TempDir(), "c.hcl")
	if err := os.WriteFile(file, []byte(`cluster_token = "from-file"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := serverConfig([]string{"-config", file}, &out); err != nil || cfg.ClusterToken != "from-file" {
		t.Fatalf("file and env: %v, token %q", err, cfg.ClusterToken)
	}
	t.Setenv("REGENT_CLUSTER_TOKEN", "")
	if cfg, err := serverConfig([]string{"-data-dir", t.TempDir(), "-join", "10.0.0.1:8080"}, &out); err != nil || server.Check(cfg) == nil {
		t.Fatalf("join with no token anywhere accepted: %v", err)
	}
}

// TestServerJoinWithoutClusterToken: a node that would join (its data dir
// holds no raft state) without the cluster token stops at once with exit
// status 78, saying why; validate says the same. (A restart on a data dir
// with raft state starts: server's TestJoinIgnoredWithoutClusterToken.)
func TestServerJoinWithoutClusterToken(t *testing.T) {
	t.Setenv("REGENT_CLUSTER_TOKEN", "")
	args := []string{"-node-id", "n2", "-data-dir", t.TempDir(), "-join", "127.0.0.1:1",
		"-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", "-dns-addr", "off", "-log-level", "error"}
	err := runValidate(args, io.Discard, io.Discard)
	if exitStatus(err) != server.ExitConfig || !errors.Is(err, server.ErrJoinNeedsClusterToken) {
		t.Fatalf("validate: exit %d, %v", exitStatus(err), err)
	}
	err = runServer(args)
	if exitStatus(err) != server.ExitConfig || !errors.Is(err, server.ErrJoinNeedsClusterToken) || !strings.Contains(err.Error(), "holds no raft state") {
		t.Fatalf("server: exit %d, %v", exitStatus(err), err)
	}
}

// TestDeployServerCommandLines: the regent-controller command lines of
// deploy/docker-compose.yml (each controller's command) and of
// deploy/Dockerfile (CMD) take only flags the server has, and make a
// configuration that passes Finish (the compose controllers have their
// cluster token in the environment).
func TestDeployServerCommandLines(t *testing.T) {
	t.Setenv(server.EnvClusterToken, "compose-cluster-token")
	compose, err := os.ReadFile("../deploy/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]string
	// command: >-  followed by its more indented lines
	text := strings.Split(string(compose), "\n")
	for i := 0; i < len(text); i++ {
		if strings.TrimSpace(text[i]) != "command: >-" {
			continue
		}
		indent := len(text[i]) - len(strings.TrimLeft(text[i], " "))
		var words []string
		for i++; i < len(text) && len(text[i])-len(strings.TrimLeft(text[i], " ")) > indent; i++ {
			words = append(words, strings.Fields(text[i])...)
		}
		lines = append(lines, words)
	}
	if len(lines) != 3 {
		t.Fatalf("%d controller commands in docker-compose.yml, want 3", len(lines))
	}
	dockerfile, err := os.ReadFile("../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	cmd := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindSubmatch(dockerfile)
	if cmd == nil {
		t.Fatal("no CMD in the Dockerfile")
	}
	var words []string
	if err := json.Unmarshal(cmd[1], &words); err != nil {
		t.Fatal(err)
	}
	lines = append(lines, words)
	for i, words := range lines {
		if len(words) == 0 || words[0] != "server" {
			t.Errorf("%q: not a server command", words)
			continue
		}
		cfg, err := serverConfig(words[1:], io.Discard)
		if err == nil {
			err = cfg.Finish()
		}
		if err != nil {
			t.Errorf("%q: %v", words, err)
		}
		if i == len(lines)-1 {
			// The image EXPOSEs its HTTP and DNS ports: the CMD's node
			// must listen on them beyond the container's loopback.
			for name, addr := range map[string]string{"http_addr": cfg.HTTPAddr, "dns_addr": cfg.DNSAddr} {
				if host, _, err := net.SplitHostPort(addr); err != nil || host != "0.0.0.0" {
					t.Errorf("Dockerfile CMD %q: %s %q, want 0.0.0.0 (the port is EXPOSEd)", words, name, addr)
				}
			}
		}
	}
}

// TestRaftSnapshotFlags: -raft-snapshot-threshold, -raft-snapshot-interval
// and -raft-trailing-logs set the raft snapshot policy, as do their
// attributes in the -config file (the flags win); unset, they are left to
// the defaults. A count below 1, an interval under 5s or a value that is
// not a number stops the start with an error naming the flag (exit status
// 78), before anything starts.
func TestRaftSnapshotFlags(t *testing.T) {
	var out bytes.Buffer
	cfg, err := serverConfig([]string{"-raft-snapshot-threshold", "500", "-raft-snapshot-interval", "30s", "-raft-trailing-logs", "2000"}, &out)
	if err != nil || cfg.RaftSnapshotThreshold == nil || *cfg.RaftSnapshotThreshold != 500 || cfg.RaftSnapshotInterval != "30s" ||
		cfg.RaftTrailingLogs == nil || *cfg.RaftTrailingLogs != 2000 {
		t.Fatalf("flags: %v %+v", err, cfg)
	}
	if cfg, err := serverConfig(nil, &out); err != nil || cfg.RaftSnapshotThreshold != nil || cfg.RaftSnapshotInterval != "" || cfg.RaftTrailingLogs != nil {
		t.Fatalf("no flags: %v %+v", err, cfg)
	}
	file := filepath.Join(t.TempDir(), "c.hcl")
	if err := os.WriteFile(file, []byte("raft_snapshot_threshold = 300\nraft_snapshot_interval = \"1m\"\nraft_trailing_logs = 700\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = serverConfig([]string{"-config", file, "-raft-trailing-logs", "900"}, &out)
	if err != nil || *cfg.RaftSnapshotThreshold != 300 || cfg.RaftSnapshotInterval != "1m" || *cfg.RaftTrailingLogs != 900 {
		t.Fatalf("file and flag: %v %+v", err, cfg)
	}

	var ce configError
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-raft-snapshot-threshold", "0"}, "-raft-snapshot-threshold (raft_snapshot_threshold) must be at least 1, got 0"},
		{[]string{"-raft-snapshot-threshold", "-5"}, "-raft-snapshot-threshold (raft_snapshot_threshold) must be at least 1, got -5"},
		{[]string{"-raft-trailing-logs", "0"}, "-raft-trailing-logs (raft_trailing_logs) must be at least 1, got 0"},
		{[]string{"-raft-snapshot-interval", "1s"}, "-raft-snapshot-interval (raft_snapshot_interval) must be at least 5s, got 1s"},
		{[]string{"-raft-snapshot-interval", "0"}, "-raft-snapshot-interval (raft_snapshot_interval) must be at least 5s, got 0"},
	} {
		args := append([]string{"-data-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", "-dns-addr", "off"}, bad.args...)
		if err := runServer(args); !errors.As(err, &ce) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want a configuration error with %q", bad.args, err, bad.want)
		}
	}
	for _, v := range []string{"many", "1.5"} {
		var ue usageError
		if _, err := serverConfig([]string{"-raft-snapshot-threshold", v}, &out); !errors.As(err, &ue) ||
			!strings.Contains(err.Error(), "-raft-snapshot-threshold: "+strconv.Quote(v)+" is not a whole number") {
			t.Errorf("-raft-snapshot-threshold %s: %v", v, err)
		}
	}
	if err := os.WriteFile(file, []byte("raft_snapshot_threshold = 0\nraft_snapshot_interval = \"2s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runServer([]string{"-config", file, "-data-dir", t.TempDir()})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "-raft-snapshot-threshold (raft_snapshot_threshold) must be at least 1, got 0") ||
		!strings.Contains(err.Error(), "-raft-snapshot-interval (raft_snapshot_interval) must be at least 5s, got 2s") {
		t.Errorf("bad values in the file: %v", err)
	}
}

// TestDNSCountsNegative: a negative -dns-tcp-conns or -dns-udp-sockets is
// a configuration error naming the flag and attribute (exit status 78,
// which systemd does not restart), found before the data dir is touched.
// It was the DNS server's "dns: TCPConns must not be negative", exit 1,
// after raft had bootstrapped the data dir: Restart=on-failure started it
// again and again.
func TestDNSCountsNegative(t *testing.T) {
	var ce configError
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-dns-tcp-conns", "-5"}, "-dns-tcp-conns (dns_tcp_conns) must not be negative, got -5"},
		{[]string{"-dns-udp-sockets", "-1"}, "-dns-udp-sockets (dns_udp_sockets) must not be negative, got -1"},
	} {
		dir := t.TempDir()
		args := append([]string{"-data-dir", dir, "-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", "-dns-addr", "127.0.0.1:0", "-bootstrap"}, bad.args...)
		if err := runServer(args); !errors.As(err, &ce) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want a configuration error with %q", bad.args, err, bad.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%q: the data dir was written: %v", bad.args, entries)
		}
	}
}

// TestValidate: validate takes the server's flags and -config file and
// checks what a start would: a good configuration says so; a raft key that
// does not match its certificate, or an audit file in a directory that
// does not exist, is a configuration error naming the setting (exit
// status 78), as is a value Finish refuses; an unknown flag is a usage
// error of validate.
func TestValidate(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "regent test CA")
	cert, key := ca.WriteFiles(t, dir, "node")
	_, otherKey := ca.WriteFiles(t, dir, "other")
	caPath := ca.WriteCA(t, filepath.Join(dir, "ca.pem"))
	base := []string{"-data-dir", dir, "-raft-tls-cert", cert, "-raft-tls-ca", caPath}
	var out bytes.Buffer
	if err := runValidate(append(base, "-raft-tls-key", key, "-audit-log", filepath.Join(dir, "audit.log"), "-cluster-token", "cluster-token-of-16-bytes"), &out, io.Discard); err != nil {
		t.Fatalf("a good configuration: %v", err)
	}
	if !strings.Contains(out.String(), "configuration valid") {
		t.Errorf("output %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.log")); err == nil {
		t.Error("validate created the audit file")
	}
	var ce configError
	for name, args := range map[string][]string{
		"raft_tls_cert": append(slices.Clone(base), "-raft-tls-key", otherKey),
		"audit_log":     append(slices.Clone(base), "-raft-tls-key", key, "-audit-log", filepath.Join(dir, "none", "audit.log")),
		"log_level":     append(slices.Clone(base), "-raft-tls-key", key, "-log-level", "loud"),
	} {
		err := runValidate(args, io.Discard, io.Discard)
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want a configuration error naming it", name, err)
		}
	}
	var ue usageError
	if err := runValidate([]string{"-no-such-flag"}, io.Discard, io.Discard); !errors.As(err, &ue) || ue.cmd != "validate" {
		t.Errorf("unknown flag: %v", err)
	}
}

// TestValidateWarnsWithoutClusterToken: validate says, on stderr and
// without failing, that no cluster token is set and what that costs (a
// single node needs none); configs/controller.hcl ships without one.
func TestValidateWarnsWithoutClusterToken(t *testing.T) {
	t.Setenv("REGENT_CLUSTER_TOKEN", "")
	const warning = "regent-controller: warning: cluster_token is not set (cluster_token, -cluster-token or $REGENT_CLUSTER_TOKEN): no node can join a cluster while this node leads it"
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if err := runValidate([]string{"-data-dir", dir}, &out, &errOut); err != nil || out.String() != "configuration valid\n" ||
		!strings.HasPrefix(errOut.String(), warning) || strings.Count(errOut.String(), "\n") != 1 || strings.Contains(errOut.String(), "-join") {
		t.Fatalf("no cluster token: %v\nstdout: %q\nstderr: %q", err, out.String(), errOut.String())
	}
	// The example production config (whose TLS files do not exist here).
	errOut.Reset()
	if err := runValidate([]string{"-config", "../configs/controller.hcl"}, io.Discard, &errOut); err == nil || !strings.HasPrefix(errOut.String(), warning) {
		t.Fatalf("configs/controller.hcl: %v\nstderr: %q", err, errOut.String())
	}
	// -join on a data dir with a raft store (a restart) is valid without
	// the token, and the warning says what -join then does.
	os.MkdirAll(filepath.Join(dir, "raft"), 0o700)
	os.WriteFile(filepath.Join(dir, "raft", "raft.db"), nil, 0o600)
	errOut.Reset()
	if err := runValidate([]string{"-data-dir", dir, "-join", "10.0.0.1:8080"}, io.Discard, &errOut); err != nil ||
		!strings.HasPrefix(errOut.String(), warning) || !strings.Contains(errOut.String(), "with -join set, this node starts only as the member") {
		t.Fatalf("-join on raft state: %v\nstderr: %q", err, errOut.String())
	}
	// None with a token, nor for a dev node.
	for _, args := range [][]string{{"-data-dir", dir, "-cluster-token", "cluster-token-of-16-bytes"}, {"-dev", "-data-dir", dir}} {
		errOut.Reset()
		if err := runValidate(args, io.Discard, &errOut); err != nil || errOut.Len() != 0 {
			t.Errorf("%q: %v, stderr %q", args, err, errOut.String())
		}
	}
}

// TestExitStatus: a configuration error, and a mistake on server's command
// line, exit with 78 (EX_CONFIG), the one status
// deploy/regent-controller.service does not restart on; not 2, Go's status
// after a panic or fatal runtime error, which the unit must restart. Other
// commands' usage mistakes keep 2; any other failure is 1.
func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{configError{errors.New("bad")}, 78},
		{usageError{"flag provided but not defined: -x", "server"}, 78},
		{usageError{"members takes no arguments", "members"}, 2},
		{usageError{"flag provided but not defined: -x", "validate"}, 2},
		{errors.New("connection refused"), 1},
	} {
		if got := exitStatus(tc.err); got != tc.want {
			t.Errorf("exitStatus(%#v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if _, err := serverConfig([]string{"-no-such-flag"}, io.Discard); exitStatus(err) != 78 {
		t.Errorf("server -no-such-flag: %v, exit %d, want 78", err, exitStatus(err))
	}
	if err := runServer([]string{"-data-dir", t.TempDir(), "-log-level", "loud"}); exitStatus(err) != 78 {
		t.Errorf("server with a bad log level: %v, exit %d, want 78", err, exitStatus(err))
	}
	unit, err := os.ReadFile("../deploy/regent-controller.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RestartPreventExitStatus=(.*)$`).FindAllSubmatch(unit, -1)
	if len(m) != 1 || strings.TrimSpace(string(m[0][1])) != strconv.Itoa(server.ExitConfig) {
		t.Errorf("regent-controller.service: RestartPreventExitStatus %q, want exactly %d (not 2: a panic must be restarted)", m, server.ExitConfig)
	}
}
