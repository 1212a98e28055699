package vm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestFakePartialImportsSwept: partial imports an earlier run left in a
// pool (its own image's and another image's) are removed on the pool's
// first use; later uses leave the pool's temporary files alone (they are
// this builder's imports in progress).
func TestFakePartialImportsSwept(t *testing.T) {
	b, _, spec := fakeEnv(t)
	ctx := context.Background()
	dir := filepath.Join(b.cfg.StorageRoot, "ssd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := []string{filepath.Join(dir, ".import-"+imageVolume(spec.Image)+"-1"),
		filepath.Join(dir, ".import-image_9_0123456789abcdef-2")}
	for _, f := range stale {
		if err := os.WriteFile(f, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for _, f := range stale {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left after the pool's first use", filepath.Base(f))
		}
	}
	inProgress := filepath.Join(dir, ".import-image_9_0123456789abcdef-3")
	if err := os.WriteFile(inProgress, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Capacity(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inProgress); err != nil {
		t.Errorf("a later use of the pool removed a temporary file: %v", err)
	}
}

// TestFakeScrubRemovesSeedTemporaries: a scrub removes the temporary file
// of a seed write cut by a kill, with the seed.
func TestFakeScrubRemovesSeedTemporaries(t *testing.T) {
	b, _, spec := fakeEnv(t)
	ctx := context.Background()
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	seed := b.seedPath(b.DomainName(spec))
	tmp := filepath.Join(filepath.Dir(seed), "."+filepath.Base(seed)+"-123")
	if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(b.cfg.SeedDir); len(left) > 0 {
		t.Errorf("seed directory after the scrub: %v", left)
	}
}
