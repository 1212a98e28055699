package vm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// TestSystemBuildFaults (issue 7, bad input and faults) builds one good
// VM on a real libvirtd, then VMs that cannot be built: a missing image, a
// checksum mismatch, an image larger than its pool (a 16 MiB tmpfs) and a
// domain libvirt cannot start. Each fails with its error code (the agent
// turns it into UNRESOURCED with error_code and error_detail), leaves no
// partial image, volume or running domain behind, and the good VM keeps
// running throughout.
func TestSystemBuildFaults(t *testing.T) {
	c := needLibvirt(t)
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// the pool of storage type "small" is a 16 MiB tmpfs
	small := filepath.Join(e.root, "small-pool")
	if err := os.MkdirAll(small, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", small)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", small).Run() })
	cfg := e.config()
	cfg.PoolPaths = map[string]string{"small": small}
	b := systemBuilder(t, c, c, e, cfg)

	good := testSpec(e)
	if err := b.Build(ctx, good); err != nil {
		t.Fatalf("build of the good VM: %v", err)
	}
	variant := func(id uint64, edit func(s *api.VMSpec)) *api.VMSpec {
		s := testSpec(e)
		s.ID, s.Name = id, "bad"+filepath.Base(t.Name())
		s.Storages = []api.StorageSpec{{ID: 100 + id, Name: "root", GB: 1, Primary: true}}
		s.NICs[0].MAC = "52:54:00:ab:cd:" + hex.EncodeToString([]byte{byte(id)})
		edit(s)
		return s
	}

	// a 24 MiB image of random bytes (raw, incompressible) for the tmpfs
	big := filepath.Join(e.root, "big.img")
	data := make([]byte, 24<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bigSum := sha256.Sum256(data)

	cases := []struct {
		name string
		spec *api.VMSpec
		code string
		// pool is the directory that must hold no image or volume of the VM
		pool string
		// before prepares the host; the detail must contain detail
		before func(s *api.VMSpec)
		detail string
	}{
		{name: "missing image", code: CodeImageMissing, pool: filepath.Join(e.root, "pools", "ssd"), detail: "does not exist",
			spec: variant(21, func(s *api.VMSpec) {
				s.Image.ID, s.Image.Source = 21, filepath.Join(e.root, "no-such-image.qcow2")
			})},
		{name: "checksum mismatch", code: CodeImageChecksum, pool: filepath.Join(e.root, "pools", "ssd"), detail: "sha256 is " + e.imageSum,
			spec: variant(22, func(s *api.VMSpec) {
				s.Image.ID, s.Image.SHA256 = 22, strings.Repeat("ab", 32)
			})},
		{name: "full pool", code: CodePoolFull, pool: small, detail: "no space left",
			spec: variant(23, func(s *api.VMSpec) {
				s.Image.ID, s.Image.Source, s.Image.SHA256 = 23, big, hex.EncodeToString(bigSum[:])
				s.StorageType = "small"
			})},
		{name: "libvirt refuses to start the domain", code: CodeLibvirt, pool: "", detail: "serial.log",
			spec: variant(24, func(*api.VMSpec) {}),
			before: func(s *api.VMSpec) {
				// QEMU cannot open a serial log that is a directory
				if err := os.MkdirAll(b.consoleLog(b.DomainName(s)), 0o755); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before(tc.spec)
			}
			err := b.Build(ctx, tc.spec)
			if err == nil {
				t.Fatal("the build succeeded")
			}
			if code := ErrorCode(err); code != tc.code || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %q (code %s), want code %s and a detail with %q", err, code, tc.code, tc.detail)
			}
			t.Logf("%s: %v", tc.code, err)
			name := b.DomainName(tc.spec)
			if st, ok, _ := b.State(ctx, tc.spec); ok && st == StateRunning {
				t.Errorf("domain %s is running after a failed build", name)
			}
			if tc.pool != "" {
				left, _ := filepath.Glob(filepath.Join(tc.pool, "*"))
				for _, f := range left {
					base := filepath.Base(f)
					if strings.HasPrefix(base, ".import-") || strings.Contains(base, name) || base == imageVolume(tc.spec.Image) {
						t.Errorf("left in the pool after the failed build: %s", base)
					}
				}
			}
			// scrub cleans whatever the failed build left
			if err := b.Scrub(ctx, tc.spec); err != nil {
				t.Errorf("scrub after the failure: %v", err)
			}
		})
		wantState(t, ctx, b, good, StateRunning)
	}
	if err := b.Scrub(ctx, good); err != nil {
		t.Fatal(err)
	}
}
