package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"

	"github.com/regentcloud/regent/pkg/api"
)

// fakeLibvirt is a small in-memory libvirtd: domains and pools in maps,
// volumes as files in the pool directories. It answers with the same
// error codes as libvirtd.
type fakeLibvirt struct {
	mu       sync.Mutex
	domains  map[string]*fakeDomain
	pools    map[string]*fakePool
	caps     map[string]uint64 // volume path → capacity
	acpi     bool              // guests obey ACPI shutdown
	calls    []string
	failNext map[string]error
	budget   int // when > 0, the budget-th call from now fails ("killed")
}

type fakeDomain struct {
	xml   string
	uuid  string
	state DomainState
	auto  bool
}

type fakePool struct {
	path   string
	active bool
}

func newFake() *fakeLibvirt {
	return &fakeLibvirt{domains: map[string]*fakeDomain{}, pools: map[string]*fakePool{}, caps: map[string]uint64{},
		failNext: map[string]error{}}
}

func lverr(code int, msg string) error { return libvirt.Error{Code: uint32(code), Message: msg} }

func (f *fakeLibvirt) call(op string, args ...any) error {
	f.calls = append(f.calls, strings.TrimSpace(op+" "+fmt.Sprint(args...)))
	if f.budget > 0 {
		f.budget--
		if f.budget == 0 {
			return fmt.Errorf("killed before %s", op)
		}
	}
	if err := f.failNext[op]; err != nil {
		delete(f.failNext, op)
		return err
	}
	return nil
}

func (f *fakeLibvirt) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeLibvirt) dom(name string) (*fakeDomain, error) {
	d := f.domains[name]
	if d == nil {
		return nil, lverr(errNoDomain, "Domain not found: no domain with matching name '"+name+"'")
	}
	return d, nil
}

func (f *fakeLibvirt) DefineDomain(_ context.Context, x string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d domainXML
	if err := xml.Unmarshal([]byte(x), &d); err != nil {
		return lverr(27, err.Error())
	}
	if err := f.call("define", d.Name); err != nil {
		return err
	}
	if old := f.domains[d.Name]; old != nil {
		if old.uuid != d.UUID {
			return lverr(9, "domain already exists with uuid "+old.uuid)
		}
		old.xml = x
		return nil
	}
	f.domains[d.Name] = &fakeDomain{xml: x, uuid: d.UUID, state: StateShutoff}
	return nil
}

func (f *fakeLibvirt) StartDomain(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("start", name); err != nil {
		return err
	}
	d, err := f.dom(name)
	if err != nil {
		return err
	}
	if d.state == StateRunning {
		return lverr(errOperationInvalid, "domain is already running")
	}
	d.state = StateRunning
	return nil
}

func (f *fakeLibvirt) ShutdownDomain(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("shutdown", name)
	d, err := f.dom(name)
	if err != nil {
		return err
	}
	if d.state != StateRunning {
		return lverr(errOperationInvalid, "domain is not running")
	}
	if f.acpi {
		d.state = StateShutoff
	}
	return nil
}

func (f *fakeLibvirt) DestroyDomain(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("destroy", name)
	d, err := f.dom(name)
	if err != nil {
		return err
	}
	if d.state != StateRunning {
		return lverr(errOperationInvalid, "domain is not running")
	}
	d.state = StateShutoff
	return nil
}

func (f *fakeLibvirt) UndefineDomain(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("undefine", name)
	if _, err := f.dom(name); err != nil {
		return err
	}
	delete(f.domains, name)
	return nil
}

func (f *fakeLibvirt) DomainState(_ context.Context, name string) (DomainState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return 0, err
	}
	return d.state, nil
}

func (f *fakeLibvirt) DomainXML(_ context.Context, name string, _ bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return "", err
	}
	return d.xml, nil
}

func (f *fakeLibvirt) ListDomains(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.domains {
		out = append(out, n)
	}
	return out, nil
}

func (f *fakeLibvirt) SetAutostart(_ context.Context, name string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.dom(name)
	if err != nil {
		return err
	}
	d.auto = on
	return nil
}

func (f *fakeLibvirt) AttachDevice(_ context.Context, name, x string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.call("attach", name)
}

func (f *fakeLibvirt) BlockResize(_ context.Context, name, disk string, size uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.call("blockresize", name, disk, size)
}

func (f *fakeLibvirt) CreateSnapshot(context.Context, string, string, bool) error { return nil }
func (f *fakeLibvirt) RevertSnapshot(context.Context, string, string) error       { return nil }
func (f *fakeLibvirt) DeleteSnapshot(context.Context, string, string, bool) error {
	return lverr(errNoDomainSnapshot, "no snapshot")
}
func (f *fakeLibvirt) ListSnapshots(context.Context, string) ([]SnapshotInfo, error) { return nil, nil }
func (f *fakeLibvirt) CommitActive(context.Context, string, string) error            { return nil }

func (f *fakeLibvirt) DefinePool(_ context.Context, x string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var p poolXML
	if err := xml.Unmarshal([]byte(x), &p); err != nil {
		return err
	}
	if err := f.call("definepool", p.Name); err != nil {
		return err
	}
	f.pools[p.Name] = &fakePool{path: p.Path}
	return nil
}

func (f *fakeLibvirt) pool(name string) (*fakePool, error) {
	p := f.pools[name]
	if p == nil {
		return nil, lverr(errNoStoragePool, "no pool "+name)
	}
	return p, nil
}

func (f *fakeLibvirt) StartPool(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("startpool", name); err != nil {
		return err
	}
	p, err := f.pool(name)
	if err != nil {
		return err
	}
	if p.active {
		return lverr(errOperationInvalid, "pool is already active")
	}
	p.active = true
	return os.MkdirAll(p.path, 0o755)
}

func (f *fakeLibvirt) RefreshPool(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.pool(name)
	return err
}

func (f *fakeLibvirt) PoolInfo(_ context.Context, name string) (PoolInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pool(name)
	if err != nil {
		return PoolInfo{}, err
	}
	// More available than any test machine's disk has: libvirt counts
	// the blocks reserved for root, which Capacity must not report.
	return PoolInfo{Active: p.active, Capacity: 100 << 30, Available: 1 << 50}, nil
}

func (f *fakeLibvirt) CreateVolume(_ context.Context, pool, x string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pool(pool)
	if err != nil {
		return err
	}
	var v volumeXML
	if err := xml.Unmarshal([]byte(x), &v); err != nil {
		return err
	}
	if err := f.call("createvol", v.Name); err != nil {
		return err
	}
	path := filepath.Join(p.path, v.Name)
	if _, err := os.Stat(path); err == nil {
		return lverr(errStorageVolExist, "storage volume exists")
	}
	f.caps[path] = v.Capacity.Value
	return os.WriteFile(path, []byte("QFI\xfb"), 0o644)
}

func (f *fakeLibvirt) VolumeInfo(_ context.Context, pool, name string) (VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pool(pool)
	if err != nil {
		return VolumeInfo{}, err
	}
	path := filepath.Join(p.path, name)
	st, err := os.Stat(path)
	if err != nil {
		return VolumeInfo{}, lverr(errNoStorageVol, "no storage vol "+name)
	}
	c, ok := f.caps[path]
	if !ok {
		c = uint64(st.Size())
	}
	return VolumeInfo{Path: path, Capacity: c, Allocation: uint64(st.Size())}, nil
}

func (f *fakeLibvirt) ResizeVolume(_ context.Context, pool, name string, size uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pool(pool)
	if err != nil {
		return err
	}
	f.call("resizevol", name, size)
	f.caps[filepath.Join(p.path, name)] = size
	return nil
}

func (f *fakeLibvirt) DeleteVolume(_ context.Context, pool, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pool(pool)
	if err != nil {
		return err
	}
	f.call("deletevol", name)
	if err := os.Remove(filepath.Join(p.path, name)); err != nil {
		return lverr(errNoStorageVol, "no storage vol")
	}
	return nil
}

func (f *fakeLibvirt) NodeInfo(context.Context) (NodeInfo, error) {
	return NodeInfo{CPUs: 4, MemoryKiB: 8 << 20}, nil
}

func (f *fakeLibvirt) DomainStats(context.Context) ([]DomainStats, error) { return nil, nil }

var _ Libvirt = (*fakeLibvirt)(nil)

// fakeEnv is a builder over the fake with an image file.
func fakeEnv(t *testing.T) (*Builder, *fakeLibvirt, *api.VMSpec) {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "image.qcow2")
	data := []byte("QFI\xfb a tiny image")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	f := newFake()
	b := unitBuilder(t, f, Config{StorageRoot: filepath.Join(dir, "pools"), SeedDir: filepath.Join(dir, "seeds"),
		ConsoleLogDir: filepath.Join(dir, "console"), ShutdownTimeout: 300 * time.Millisecond, StorageTypes: []string{"ssd"}})
	spec := xmlSpec()
	spec.Image.Source, spec.Image.SHA256 = img, hex.EncodeToString(sum[:])
	return b, f, spec
}

func TestFakeBuildIdempotent(t *testing.T) {
	b, f, spec := fakeEnv(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := b.Build(ctx, spec); err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
	}
	if len(f.domains) != 1 || f.domains["42_7"].state != StateRunning || !f.domains["42_7"].auto {
		t.Fatalf("domains %+v", f.domains)
	}
	if n := f.count("createvol"); n != 3 {
		t.Errorf("%d volumes created, want 3 (once each)", n)
	}
	if n := f.count("start 42_7"); n != 1 {
		t.Errorf("started %d times", n)
	}
	// The seed holds the userdata: nobody but root reads it, also when an
	// older agent left it readable.
	if st, err := os.Stat(b.seedPath("42_7")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("seed: %v %v, want mode 0600", st.Mode(), err)
	}
	if err := os.Chmod(b.seedPath("42_7"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(b.seedPath("42_7")); st.Mode().Perm() != 0o600 {
		t.Errorf("a readable seed left readable: %v", st.Mode())
	}
	// The image was imported once, under its digest.
	imgs, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", "image_3_*"))
	if len(imgs) != 1 {
		t.Errorf("images %v", imgs)
	}
	c, err := b.Capacity(ctx)
	if err != nil || c.CPUCores != 4 || len(c.Storage) != 1 || c.Storage[0].TotalGB != 100 {
		t.Errorf("capacity %+v %v", c, err)
	}
	// The free space is what QEMU may write (statfs's blocks available to
	// unprivileged users), not libvirt's pool "available", which counts
	// the blocks reserved for root: on a host whose disk has 50 GiB for
	// users and 211 GiB free the agent reported 211.
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.poolPath("ssd"), &st); err != nil {
		t.Fatal(err)
	}
	if usable := st.Bavail * uint64(st.Bsize) >> 30; len(c.Storage) == 1 && (c.Storage[0].FreeGB > usable+1 || c.Storage[0].FreeGB+1 < usable) {
		t.Errorf("free %d GiB, want the %d GiB unprivileged users may write", c.Storage[0].FreeGB, usable)
	}
}

func TestFakeImageErrors(t *testing.T) {
	ctx := context.Background()
	b, f, spec := fakeEnv(t)
	spec.Image.SHA256 = strings.Repeat("0", 64)
	if err := b.Build(ctx, spec); ErrorCode(err) != CodeImageChecksum {
		t.Errorf("checksum mismatch: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", "*"))
	left2, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", ".*"))
	if len(left)+len(left2) != 0 {
		t.Errorf("files left after a checksum mismatch: %v %v", left, left2)
	}
	if len(f.domains) != 0 {
		t.Errorf("domain defined despite a bad image")
	}

	spec.Image.Source = "/nonexistent/image.qcow2"
	if err := b.Build(ctx, spec); ErrorCode(err) != CodeImageMissing {
		t.Errorf("missing image: %v", err)
	}
	spec.Image.Source = ""
	if err := b.Build(ctx, spec); ErrorCode(err) != CodeImageMissing {
		t.Errorf("no source: %v", err)
	}
	spec.Image.Source, spec.Image.SHA256 = "/x", "abc"
	if err := b.Build(ctx, spec); ErrorCode(err) != CodeBadSpec {
		t.Errorf("bad sha256: %v", err)
	}
}

func TestFakeLibvirtErrorIsCoded(t *testing.T) {
	b, f, spec := fakeEnv(t)
	f.failNext["define"] = lverr(1, "internal error: boom")
	err := b.Build(context.Background(), spec)
	if ErrorCode(err) != CodeLibvirt || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err %v", err)
	}
	// The next build converges.
	if err := b.Build(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
}

func TestFakeQuiesceRestartScrub(t *testing.T) {
	ctx := context.Background()
	b, f, spec := fakeEnv(t)
	// Nothing exists: quiesce and scrub are already done.
	if err := b.Quiesce(ctx, spec); err != nil {
		t.Fatalf("quiesce of nothing: %v", err)
	}
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatalf("scrub of nothing: %v", err)
	}
	if err := b.Restart(ctx, spec); err != nil { // builds it
		t.Fatalf("restart of nothing: %v", err)
	}
	if f.domains["42_7"] == nil || f.domains["42_7"].state != StateRunning {
		t.Fatal("restart did not build")
	}
	// A guest that obeys ACPI is not destroyed.
	f.calls = nil
	f.acpi = true
	if err := b.Quiesce(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if f.count("destroy") != 0 || f.domains["42_7"].auto {
		t.Errorf("destroyed %d times, autostart %v", f.count("destroy"), f.domains["42_7"].auto)
	}
	// One that ignores it is destroyed after the timeout.
	f.acpi = false
	b.Restart(ctx, spec)
	start := time.Now()
	if err := b.Quiesce(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if f.count("destroy") != 1 || f.domains["42_7"].state != StateShutoff || time.Since(start) < 300*time.Millisecond {
		t.Errorf("destroy %d state %v after %v", f.count("destroy"), f.domains["42_7"].state, time.Since(start))
	}
	// Update of a stopped domain leaves it stopped; of a running one with
	// new vCPUs it restarts it.
	spec.CPU = 4
	if err := b.Update(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if f.domains["42_7"].state != StateShutoff {
		t.Error("update started a quiesced domain")
	}
	b.Restart(ctx, spec)
	starts := f.count("start 42_7")
	spec.CPU = 3
	spec.Storages[0].GB = 9 // grows vdc (storage 30) live
	if err := b.Update(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if f.count("start 42_7") != starts+1 || f.domains["42_7"].state != StateRunning {
		t.Errorf("update with new vcpus did not restart")
	}
	if f.count("blockresize 42_7 vdc") != 0 && f.count("resizevol") == 0 {
		t.Errorf("disk not grown: %v", f.calls)
	}
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if len(f.domains) != 0 {
		t.Errorf("domains left %v", f.domains)
	}
	left, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", "42_7*"))
	if len(left) != 0 {
		t.Errorf("volumes left %v", left)
	}
	if _, err := os.Stat(b.seedPath("42_7")); err == nil {
		t.Error("seed left")
	}
}

func TestSnapshotTreeShape(t *testing.T) {
	got := treeString(snapshotTree([]SnapshotInfo{
		{Name: "c", Parent: "a", Current: true}, {Name: "a"}, {Name: "b", Parent: "a"}, {Name: "z"}, {Name: "d", Parent: "c"},
	}))
	if got != "a(b,c*(d)),z" {
		t.Errorf("tree %s", got)
	}
}

func TestParseStats(t *testing.T) {
	v := func(x any) libvirt.TypedParamValue { return libvirt.TypedParamValue{I: x} }
	s := parseStats("d", []libvirt.TypedParam{
		{Field: "state.state", Value: v(int32(1))},
		{Field: "cpu.time", Value: v(uint64(2_500_000_000))},
		{Field: "balloon.current", Value: v(uint64(131072))},
		{Field: "net.count", Value: v(uint32(1))},
		{Field: "net.0.name", Value: v("vnet0")},
		{Field: "net.0.rx.bytes", Value: v(uint64(10))},
		{Field: "net.0.tx.bytes", Value: v(uint64(20))},
		{Field: "block.0.name", Value: v("vda")},
		{Field: "block.0.rd.bytes", Value: v(uint64(30))},
		{Field: "block.0.wr.bytes", Value: v(uint64(40))},
		{Field: "block.1.name", Value: v("hdc")},
	})
	if s.State != StateRunning || s.CPUSeconds != 2.5 || s.MemoryBytes != 128<<20 {
		t.Errorf("%+v", s)
	}
	if len(s.Net) != 1 || s.Net[0] != (NetStats{Device: "vnet0", RxBytes: 10, TxBytes: 20}) {
		t.Errorf("net %+v", s.Net)
	}
	if len(s.Block) != 2 || s.Block[0] != (BlockStats{Device: "vda", ReadBytes: 30, WriteBytes: 40}) || s.Block[1].Device != "hdc" {
		t.Errorf("block %+v", s.Block)
	}
}

// TestFakeInterruptedBuildConverges stops a build at every libvirt call in
// turn (as a SIGKILL of the agent would) and checks that the next build
// converges to one running domain with exactly its volumes, and that a
// scrub then leaves nothing of the VM.
func TestFakeInterruptedBuildConverges(t *testing.T) {
	ctx := context.Background()
	for n := 1; ; n++ {
		b, f, spec := fakeEnv(t)
		f.budget = n
		err := b.Build(ctx, spec)
		f.budget = 0
		if err == nil {
			if n < 4 {
				t.Fatalf("build made only %d calls", n)
			}
			break
		}
		if err := b.Build(ctx, spec); err != nil {
			t.Fatalf("interrupted at call %d: rebuild: %v", n, err)
		}
		if len(f.domains) != 1 || f.domains["42_7"].state != StateRunning {
			t.Fatalf("interrupted at call %d: domains %+v", n, f.domains)
		}
		vols, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", "*"))
		hidden, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", ".*"))
		if len(vols) != 4 || len(hidden) != 0 {
			t.Fatalf("interrupted at call %d: pool holds %v %v", n, vols, hidden)
		}
		if err := b.Scrub(ctx, spec); err != nil {
			t.Fatal(err)
		}
		vols, _ = filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", "42_7*"))
		if len(vols) != 0 || len(f.domains) != 0 {
			t.Fatalf("interrupted at call %d: after scrub %v %v", n, vols, f.domains)
		}
	}
}

// TestFakeImageFromURL imports an image over HTTP.
func TestFakeImageFromURL(t *testing.T) {
	b, f, spec := fakeEnv(t)
	data, _ := os.ReadFile(spec.Image.Source)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/img.qcow2" {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	spec.Image.Source = srv.URL + "/img.qcow2"
	if err := b.Build(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if f.domains["42_7"] == nil {
		t.Fatal("no domain")
	}
	// A new VM (an existing one needs its image no more) of a missing URL.
	spec.ID, spec.Image.ID, spec.Image.Source = 8, 4, srv.URL+"/missing"
	if err := b.Build(context.Background(), spec); ErrorCode(err) != CodeImageMissing {
		t.Errorf("missing URL: %v", err)
	}
}

// TestFakePoolFull imports an image into a pool on a 1 MiB tmpfs.
func TestFakePoolFull(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to mount a tmpfs")
	}
	b, _, spec := fakeEnv(t)
	if err := os.MkdirAll(b.cfg.StorageRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", b.cfg.StorageRoot).CombinedOutput(); err != nil {
		skipOrFail(t, "mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", b.cfg.StorageRoot).Run() })
	big := make([]byte, 2<<20)
	copy(big, "QFI\xfb")
	if err := os.WriteFile(spec.Image.Source, big, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(big)
	spec.Image.SHA256 = hex.EncodeToString(sum[:])
	if err := b.Build(context.Background(), spec); ErrorCode(err) != CodePoolFull {
		t.Fatalf("full pool: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", ".*")); len(left) != 0 {
		t.Errorf("partial import left: %v", left)
	}
}

// TestFakePoolPathsScrub: a storage type's pool in a directory of its own
// (Config.PoolPaths) gets the volumes, and scrub removes them there.
func TestFakePoolPathsScrub(t *testing.T) {
	ctx := context.Background()
	b, _, spec := fakeEnv(t)
	own := filepath.Join(t.TempDir(), "ssd-disks")
	b.cfg.PoolPaths = map[string]string{spec.StorageType: own}
	if err := b.Build(ctx, spec); err != nil {
		t.Fatal(err)
	}
	vols, _ := filepath.Glob(filepath.Join(own, b.DomainName(spec)+"_*.qcow2"))
	if len(vols) == 0 {
		t.Fatalf("no volumes in %s", own)
	}
	if err := b.Scrub(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(own, b.DomainName(spec)+"_*")); len(left) != 0 {
		t.Errorf("volumes left after scrub: %v", left)
	}
}
