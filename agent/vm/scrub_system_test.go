package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// faultyConn is the real libvirtd connection with calls made to fail on
// demand: a call named in fail fails (once) instead of reaching libvirtd,
// as if the agent were killed or libvirtd refused right there.
type faultyConn struct {
	*Conn
	mu   sync.Mutex
	fail map[string]error
	// afterSnapshot runs once after a CreateSnapshot that succeeded.
	afterSnapshot func()
}

func (f *faultyConn) CreateSnapshot(ctx context.Context, domain, xml string, diskOnly bool) error {
	if err := f.Conn.CreateSnapshot(ctx, domain, xml, diskOnly); err != nil {
		return err
	}
	f.mu.Lock()
	after := f.afterSnapshot
	f.afterSnapshot = nil
	f.mu.Unlock()
	if after != nil {
		after()
	}
	return nil
}

func (f *faultyConn) failOnce(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	f.fail[op] = err
}

func (f *faultyConn) fault(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.fail[op]
	delete(f.fail, op)
	return err
}

func (f *faultyConn) DeleteVolume(ctx context.Context, pool, name string) error {
	if err := f.fault("DeleteVolume"); err != nil {
		return err
	}
	return f.Conn.DeleteVolume(ctx, pool, name)
}

func (f *faultyConn) CommitActive(ctx context.Context, domain, disk string) error {
	if err := f.fault("CommitActive"); err != nil {
		return err
	}
	return f.Conn.CommitActive(ctx, domain, disk)
}

// TestSystemScrubCutBeforeUndefine cuts a scrub while it deletes the VM's
// volumes: the domain is still defined, so garbage collection (Domains,
// ScrubDomain) finds it and removes the volumes and the seed (with the
// userdata) instead of leaving them for good.
func TestSystemScrubCutBeforeUndefine(t *testing.T) {
	c := needLibvirt(t)
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fc := &faultyConn{Conn: c}
	b := systemBuilder(t, c, fc, e, e.config())
	b.SetServerID(1) // registered
	spec := testSpec(e)
	spec.Storages = append(spec.Storages, StorageSpecForTest(12, 1))
	name := b.DomainName(spec)
	if err := b.Build(ctx, spec); err != nil {
		t.Fatalf("build: %v", err)
	}

	fc.failOnce("DeleteVolume", errors.New("killed"))
	if err := b.Scrub(ctx, spec); err == nil {
		t.Fatal("the scrub with a failing volume delete succeeded")
	}
	doms, err := b.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(doms, name) {
		t.Fatalf("garbage collection does not find %s after a cut scrub (domains %v): its volumes and seed stay for good", name, doms)
	}
	if err := b.ScrubDomain(ctx, name); err != nil {
		t.Fatalf("scrub by garbage collection: %v", err)
	}
	if _, ok, err := b.State(ctx, spec); ok || err != nil {
		t.Errorf("domain still defined (err %v)", err)
	}
	left, _ := filepath.Glob(filepath.Join(e.root, "pools", "ssd", name+"_*"))
	if len(left) != 0 {
		t.Errorf("volumes left: %v", left)
	}
	if _, err := os.Stat(b.seedPath(name)); !os.IsNotExist(err) {
		t.Errorf("seed left: %v", err)
	}
}
