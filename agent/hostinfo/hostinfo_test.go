package hostinfo

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestCapacityReadsThisHost(t *testing.T) {
	dir := t.TempDir()
	c, err := Capacity(map[string]string{"SSD": dir, "HDD": "/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.CPUCores != runtime.NumCPU() || c.RAMMB == 0 {
		t.Errorf("capacity = %+v", c)
	}
	if len(c.Storage) != 2 || c.Storage[0].Type != "HDD" || c.Storage[1].Type != "SSD" {
		t.Fatalf("storage = %+v, want HDD then SSD", c.Storage)
	}
	for _, s := range c.Storage {
		if s.FreeGB > s.TotalGB {
			t.Errorf("%s: free %d > total %d", s.Type, s.FreeGB, s.TotalGB)
		}
	}
	if _, err := Capacity(map[string]string{"SSD": filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing storage directory is not an error")
	}
}

func TestMemTotal(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemFree: 1 kB\nMemTotal:       24576000 kB\n"), 0o644)
	if kb, err := MemTotalKiB(p); err != nil || kb/1024 != 24000 {
		t.Errorf("MemTotalKiB = %d, %v", kb, err)
	}
	os.WriteFile(p, []byte("nothing\n"), 0o644)
	if _, err := MemTotalKiB(p); err == nil {
		t.Error("no MemTotal line is not an error")
	}
}

func TestInterfaces(t *testing.T) {
	ifs, err := Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name == "lo" || i.MAC == "" {
			t.Errorf("unexpected interface %+v", i)
		}
	}
}
