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
