package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.hcl")
	os.WriteFile(path, []byte(`controllers = ["http://a:1"]
token = "file-token"
roles = ["network"]
data_dir = "`+dir+`"
vtep_addr = "10.0.0.1"
log_level = "debug"
`), 0o644)
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

// The example config parses (its token file and dirs do not exist here,
// so only those errors are allowed).
func TestExampleConfigParses(t *testing.T) {
	_, err := parse([]string{"-config", "../configs/agent.hcl"}, io.Discard)
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n")[1:] {
		if !strings.HasPrefix(line, "token_file:") && !strings.HasPrefix(line, "storage:") && !strings.HasPrefix(line, "ca_file:") {
			t.Errorf("configs/agent.hcl: %s", line)
		}
	}
}

// -h prints the usage and exits 0; a bad flag or config exits 2.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}} {
		if err := run(args, io.Discard); exitCode(err) != 0 {
			t.Errorf("%v: %v, exit %d", args, err, exitCode(err))
		}
	}
	if err := run([]string{"-roles"}, io.Discard); exitCode(err) != 2 {
		t.Errorf("-roles without a value: %v, exit %d", err, exitCode(err))
	}
	if err := run(nil, io.Discard); exitCode(err) != 2 {
		t.Errorf("no configuration: %v, exit %d", err, exitCode(err))
	}
}
