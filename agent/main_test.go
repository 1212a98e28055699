package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/regentcloud/regent/agent/daemon"
)

// networkConfig is a network agent's config file with the given token and
// log level, its data in dir.
func networkConfig(dir, token, level string) string {
	return `controllers = ["http://a:1"]
token = "` + token + `"
roles = ["network"]
data_dir = "` + dir + `"
vtep_addr = "10.0.0.1"
log_level = "` + level + `"
`
}

func TestParseFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.hcl")
	os.WriteFile(path, []byte(networkConfig(dir, "file-token", "debug")), 0o644)
	cfg, err := parse([]string{"-config", path, "-controllers", "http://b:2,http://c:3", "-hostname", "edge-1",
		"-storage", "SSD=" + dir, "-log-json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Controllers, " ") != "http://b:2 http://c:3" || cfg.Token != "file-token" || cfg.Hostname != "edge-1" ||
		cfg.Storage["SSD"] != dir || !cfg.LogJSON || cfg.LogLevel != "debug" {
		t.Errorf("parsed %+v", cfg)
	}
	_, err = parse([]string{"-config", path, "-segment-mode", "gre", "-roles", "network,chef"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "segment_mode") || !strings.Contains(err.Error(), "chef") {
		t.Errorf("invalid flags: %v", err)
	}
	if _, err := parse([]string{"-config", filepath.Join(dir, "missing.hcl")}, io.Discard); err == nil {
		t.Error("a missing config file was accepted")
	}
}

// The example configs parse: configs/agent.hcl and the compose agent's
// deploy/agent-compose.hcl (their token file and dirs do not exist here,
// so only those errors are allowed). An HCL error (syntax, an unknown
// attribute) is one line without the "invalid configuration:" header; this
// test once skipped that line and so passed any such error.
func TestExampleConfigParses(t *testing.T) {
	for _, path := range []string{"../configs/agent.hcl", "../deploy/agent-compose.hcl"} {
		_, err := parse([]string{"-config", path}, io.Discard)
		if err == nil {
			continue
		}
		lines := strings.Split(err.Error(), "\n")
		if lines[0] != "invalid configuration:" {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for _, line := range lines[1:] {
			if !strings.HasPrefix(line, "token_file:") && !strings.HasPrefix(line, "storage:") && !strings.HasPrefix(line, "ca_file:") {
				t.Errorf("%s: %s", path, line)
			}
		}
	}
}

// -h prints the usage and exits 0; a bad flag or config exits 78
// (EX_CONFIG), the status deploy/regent-agent.service does not restart on;
// not 2, Go's status after a panic, which the unit must restart.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}} {
		if err := run(args, io.Discard); exitCode(err) != 0 {
			t.Errorf("%v: %v, exit %d", args, err, exitCode(err))
		}
	}
	if err := run([]string{"-roles"}, io.Discard); exitCode(err) != 78 {
		t.Errorf("-roles without a value: %v, exit %d", err, exitCode(err))
	}
	if code := exitCode(runtimeError{errors.New("metrics_addr: address in use")}); code != 1 {
		t.Errorf("a failure after start: exit %d, want 1 (the unit restarts on it)", code)
	}
	if err := run(nil, io.Discard); exitCode(err) != 78 {
		t.Errorf("no configuration: %v, exit %d", err, exitCode(err))
	}
	unit, err := os.ReadFile("../deploy/regent-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RestartPreventExitStatus=(.*)$`).FindAllSubmatch(unit, -1)
	if len(m) != 1 || strings.TrimSpace(string(m[0][1])) != strconv.Itoa(exitCode(errors.New("config"))) {
		t.Errorf("regent-agent.service: RestartPreventExitStatus %q, want exactly %d", m, exitCode(errors.New("config")))
	}
}

// baseConfig is the least configuration that passes Finish with both
// roles and the default data_dir, for comparing defaults.
func baseConfig(t *testing.T) string {
	disks := t.TempDir()
	return `controllers = ["http://a:1"]
token = "rgt_x"
hostname = "h1"
roles = ["hypervisor", "network"]
vtep_addr = "10.0.0.1"
storage = { SSD = "` + disks + `" }
`
}

func parseHCL(t *testing.T, src string) daemon.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.hcl")
	os.WriteFile(path, []byte(src), 0o644)
	cfg, err := parse([]string{"-config", path}, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	return cfg
}

// TestExampleConfigShowsDefaults: an attribute commented out in
// configs/agent.hcl shows its default (uncommenting it changes nothing),
// except those that are examples or detected on the host.
func TestExampleConfigShowsDefaults(t *testing.T) {
	examples := map[string]bool{"hostname": true, "public_bridge_addr": true, "token": true,
		"domain_type": true, "vpn_mode": true} // detected: /dev/kvm, XFRM interfaces
	src, err := os.ReadFile("../configs/agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	base := baseConfig(t)
	want := parseHCL(t, base)
	line := regexp.MustCompile(`^#\s*([a-z_]+)\s*=\s*("[^"]*"|\S+)`)
	n := 0
	for _, l := range strings.Split(string(src), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil || examples[m[1]] {
			continue
		}
		n++
		got := parseHCL(t, base+m[1]+" = "+m[2]+"\n")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("configs/agent.hcl: %q is not the default:\n got  %+v\n want %+v", strings.TrimSpace(l), got, want)
		}
	}
	if n < 10 {
		t.Errorf("only %d commented-out attributes found", n)
	}
}

// TestFlagsShowDefaults: -h shows the default of every flag that has one
// (as <data-dir>/... where it derives from data_dir).
func TestFlagsShowDefaults(t *testing.T) {
	var usage strings.Builder
	parse([]string{"-h"}, &usage)
	flags := map[string]string{} // flag → its usage text
	var cur string
	for _, l := range strings.Split(usage.String(), "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(l), "-"); ok && strings.HasPrefix(l, "  -") {
			cur = strings.Fields(f)[0]
			continue
		}
		flags[cur] += l
	}
	cfg := parseHCL(t, baseConfig(t))
	v := reflect.ValueOf(cfg)
	set := map[string]bool{"controllers": true, "token": true, "hostname": true, "roles": true, "vtep_addr": true, "storage": true}
	for i := range v.NumField() {
		attr, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("hcl"), ",")
		f := v.Field(i)
		if set[attr] || f.Kind() != reflect.String || f.String() == "" {
			continue
		}
		name := strings.ReplaceAll(attr, "_", "-")
		u, ok := flags[name]
		if !ok {
			t.Errorf("no flag -%s", name)
			continue
		}
		def := f.String()
		if attr != "data_dir" {
			def = strings.Replace(def, cfg.DataDir, "<data-dir>", 1)
		}
		if !strings.Contains(u, "(default "+def+")") && !strings.Contains(u, `(default "`+def+`")`) {
			t.Errorf("-%s: usage %q does not show its default %s", name, strings.TrimSpace(u), def)
		}
	}
}

// TestImageHasTheAgentsPackages: the image of deploy/Dockerfile, which the
// compose agent runs with the network role, installs what that role needs
// on the host (docs/operations.md, Agents): iproute2, nftables, dnsmasq,
// and for VPNs strongSwan's charon-systemd, strongswan-swanctl,
// libcharon-extra-plugins and libstrongswan-standard-plugins. The last one
// is only recommended by libstrongswan, so --no-install-recommends left it
// out, and without its openssl and gcm plugins charon refuses the API's
// default proposals (ECP groups, AES-GCM).
func TestImageHasTheAgentsPackages(t *testing.T) {
	b, err := os.ReadFile("../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	installed := map[string]bool{}
	for _, m := range regexp.MustCompile(`apt-get install ([^&\n]*)`).FindAllStringSubmatch(text, -1) {
		for _, w := range strings.Fields(m[1]) {
			if !strings.HasPrefix(w, "-") {
				installed[w] = true
			}
		}
	}
	for _, p := range []string{"iproute2", "nftables", "dnsmasq-base", "charon-systemd", "strongswan-swanctl",
		"libcharon-extra-plugins", "libstrongswan-standard-plugins"} {
		if !installed[p] {
			t.Errorf("deploy/Dockerfile does not install %s", p)
		}
	}
}

// TestHangup: SIGHUP's handler applies the log_level of the configuration
// read again, keeps the level when the file no longer parses, and reloads
// the files (token_file, ca_file) either way.
func TestHangup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.hcl")
	write := func(level string) { os.WriteFile(path, []byte(networkConfig(dir, "t", level)), 0o644) }
	write("info")
	var out strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: &out})
	reloads := 0
	args := []string{"-config", path}
	write("debug")
	if got := hangup(args, log, "info", func() { reloads++ }); got != "debug" || !log.IsDebug() || reloads != 1 {
		t.Errorf("level %q, debug %v, reloads %d", got, log.IsDebug(), reloads)
	}
	write("loud")
	if got := hangup(args, log, "debug", func() { reloads++ }); got != "debug" || !log.IsDebug() || reloads != 2 {
		t.Errorf("after a bad file: level %q, debug %v, reloads %d", got, log.IsDebug(), reloads)
	}
	if !strings.Contains(out.String(), "log level changed: from=info to=debug") || !strings.Contains(out.String(), "log_level unchanged") {
		t.Errorf("log:\n%s", out.String())
	}
}

// TestBadFlagIsOneLine: a mistaken flag is the error once and a hint to
// -h (what the journal shows of a unit with a typo in ExecStart), not the
// error printed twice around the whole usage; -h still prints the usage.
func TestBadFlagIsOneLine(t *testing.T) {
	for _, args := range [][]string{{"-bogus"}, {"-log-json=maybe"}, {"-roles"}} {
		var out strings.Builder
		err := run(args, &out)
		if out.Len() != 0 || err == nil || exitCode(err) != 78 ||
			!strings.HasSuffix(err.Error(), "\nRun 'regent-agent -h' for its usage.") || strings.Count(err.Error(), "\n") != 1 {
			t.Errorf("%v: exit %d, error %q, printed %q", args, exitCode(err), err, out.String())
		}
	}
	var out strings.Builder
	if err := run([]string{"-h"}, &out); exitCode(err) != 0 || !strings.Contains(out.String(), "-token-file") {
		t.Errorf("-h: %v, printed %q", err, out.String())
	}
}
