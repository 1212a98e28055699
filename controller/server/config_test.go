package server

import (
	"path/filepath"
	"testing"

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
