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

// TestFakeForeignDomainIsNotOurs: with no name prefix, a domain of the
// builder's name shape that someone else defined (no regent metadata) is
// not listed for garbage collection and a scrub of it is refused; the
// builder's own VM is listed and scrubbed. One with our tag for another
// project/VM pair than its name says is not ours either.
func TestFakeForeignDomainIsNotOurs(t *testing.T) {
	b, f, spec := fakeEnv(t)
	ctx := context.Background()
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	foreign := `<domain type="qemu"><name>12_34</name><uuid>11111111-2222-3333-4444-555555555555</uuid><memory unit="KiB">1024</memory><devices></devices></domain>`
	if err := f.DefineDomain(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	mislabeled := `<domain type="qemu"><name>12_35</name><uuid>11111111-2222-3333-4444-555555555556</uuid><memory unit="KiB">1024</memory>` +
		`<metadata><vm xmlns="https://regentcloud.github.io/xmlns/vm/1" id="9" project="9" generation="1" image="1"></vm></metadata><devices></devices></domain>`
	if err := f.DefineDomain(ctx, mislabeled); err != nil {
		t.Fatal(err)
	}
	got, err := b.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{b.DomainName(spec)}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("owned domains %v, want %v", got, want)
	}
	for _, n := range []string{"12_34", "12_35"} {
		if err := b.ScrubDomain(ctx, n); err == nil {
			t.Errorf("scrub of foreign domain %s accepted", n)
		}
		if _, err := f.DomainXML(ctx, n, false); err != nil {
			t.Errorf("foreign domain %s: %v", n, err)
		}
	}
	if err := b.ScrubDomain(ctx, b.DomainName(spec)); err != nil {
		t.Fatalf("scrub of our own domain: %v", err)
	}
}
