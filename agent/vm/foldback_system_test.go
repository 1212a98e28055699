package vm

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSystemBackupFoldBack: the overlays a backup freezes the disks on
// are folded back when the agent stops gracefully during the copy (its
// context cancelled), and every disk is tried when the commit of one
// fails; a converge (drift repair) of a running domain left on an overlay
// folds it back before it redefines the domain, and one of a shut-off
// domain whose definition names an overlay refuses.
func TestSystemBackupFoldBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, e, _, spec := builtVM(t, ctx, 6, 14)
	fc := &faultyConn{Conn: c}
	b, err := New(e.config(), fc, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	name := b.DomainName(spec)
	onOverlay := func(inactive bool) []string {
		t.Helper()
		x, err := c.DomainXML(ctx, name, inactive)
		if err != nil {
			t.Fatal(err)
		}
		d, err := parseDomainXML(x)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, dk := range d.Devices.Disks {
			if dk.Device == "disk" && dk.Source != nil && strings.HasSuffix(dk.Source.File, overlaySuffix) {
				out = append(out, dk.Target.Dev)
			}
		}
		return out
	}
	overlayFiles := func() []string {
		f, _ := filepath.Glob(filepath.Join(e.root, "pools", "*", "*"+overlaySuffix))
		return f
	}

	// A graceful stop during the copy.
	bctx, bcancel := context.WithCancel(ctx)
	fc.afterSnapshot = bcancel
	_, err = b.Backup(bctx, spec, "backup-1")
	t.Logf("backup cancelled during its copy: %v", err)
	if ov := onOverlay(false); len(ov) != 0 {
		t.Errorf("after a backup cancelled during its copy, disks %v are on overlays", ov)
	}
	if f := overlayFiles(); len(f) != 0 {
		t.Errorf("overlay files left: %v", f)
	}

	// The commit of the first disk fails: the second is folded back all
	// the same.
	fc.failOnce("CommitActive", errors.New("block commit refused"))
	if _, err := b.Backup(ctx, spec, "backup-2"); err == nil {
		t.Fatal("the backup with a failing block commit succeeded")
	}
	if ov := onOverlay(false); strings.Join(ov, ",") != "vda" {
		t.Errorf("after a failed commit of vda, disks on overlays: %v, want vda only", ov)
	}
	// Drift repair folds it back before it redefines the domain.
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("converge of a domain on an overlay: %v", err)
	}
	if ov, ovp := onOverlay(false), onOverlay(true); len(ov)+len(ovp) != 0 {
		t.Errorf("after converge, disks on overlays: live %v, persistent %v", ov, ovp)
	}
	if f := overlayFiles(); len(f) != 0 {
		t.Errorf("overlay files left after converge: %v", f)
	}
	wantState(t, ctx, b, spec, StateRunning)

	// Shut off with vda on its overlay: converge refuses, changing nothing.
	fc.failOnce("CommitActive", errors.New("block commit refused"))
	if _, err := b.Backup(ctx, spec, "backup-3"); err == nil {
		t.Fatal("the backup with a failing block commit succeeded")
	}
	if err := c.DestroyDomain(ctx, name); err != nil {
		t.Fatal(err)
	}
	if ovp := onOverlay(true); len(ovp) == 0 {
		t.Logf("libvirt's persistent definition does not name the overlay after a shut-off: nothing to refuse")
	} else {
		if err := b.Build(ctx, spec); err == nil || !strings.Contains(err.Error(), "overlay") {
			t.Errorf("converge of a shut-off domain on an overlay: %v, want a refusal", err)
		}
		if got := onOverlay(true); strings.Join(got, ",") != strings.Join(ovp, ",") {
			t.Errorf("the refused converge redefined the domain: overlays %v, were %v", got, ovp)
		}
	}
}
