package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// Storage: one libvirt dir pool per storage type, under Config.StorageRoot.
// Images are imported once per pool (verified by sha256 while copying,
// renamed into place only when the digest matches) and every VM's primary
// disk is a qcow2 overlay whose backing store is the image volume.

type poolXML struct {
	XMLName xml.Name `xml:"pool"`
	Type    string   `xml:"type,attr"`
	Name    string   `xml:"name"`
	UUID    string   `xml:"uuid"`
	Path    string   `xml:"target>path"`
	Mode    string   `xml:"target>permissions>mode"`
}

type volumeXML struct {
	XMLName  xml.Name       `xml:"volume"`
	Name     string         `xml:"name"`
	Capacity volCapacityXML `xml:"capacity"`
	Format   volFormatXML   `xml:"target>format"`
	Mode     string         `xml:"target>permissions>mode"`
	Backing  *volBackingXML `xml:"backingStore,omitempty"`
}

type volCapacityXML struct {
	Unit  string `xml:"unit,attr"`
	Value uint64 `xml:",chardata"`
}

type volFormatXML struct {
	Type string `xml:"type,attr"`
}

type volBackingXML struct {
	Path   string       `xml:"path"`
	Format volFormatXML `xml:"format"`
}

var storageTypeRe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// storageDir is the pool directory name of a storage type.
func storageDir(storageType string) string {
	if storageType == "" {
		storageType = "default"
	}
	return storageTypeRe.ReplaceAllString(storageType, "_")
}

func (b *Builder) poolName(storageType string) string {
	return b.cfg.PoolPrefix + storageDir(storageType)
}

func (b *Builder) poolPath(storageType string) string {
	if p := b.cfg.PoolPaths[storageType]; p != "" {
		return p
	}
	return filepath.Join(b.cfg.StorageRoot, storageDir(storageType))
}

func poolUUID(name string) string { return domainUUID("pool/" + name) }

// ensurePool defines, builds and starts the pool of a storage type, and
// sweeps it of partial imports on its first use (sweepImports).
func (b *Builder) ensurePool(ctx context.Context, storageType string) (string, error) {
	b.poolMu.Lock()
	defer b.poolMu.Unlock()
	name := b.poolName(storageType)
	if err := b.startPool(ctx, storageType, name); err != nil {
		return "", err
	}
	return name, b.sweepImports(ctx, storageType, name)
}

func (b *Builder) startPool(ctx context.Context, storageType, name string) error {
	info, err := b.lv.PoolInfo(ctx, name)
	switch {
	case isCode(err, errNoStoragePool):
		x, _ := xml.Marshal(poolXML{Type: "dir", Name: name, UUID: poolUUID(name), Path: b.poolPath(storageType), Mode: "0755"})
		if err := b.lv.DefinePool(ctx, string(x)); err != nil {
			return lv(err, "define pool %s", name)
		}
	case err != nil:
		return lv(err, "pool %s", name)
	case info.Active:
		return nil
	}
	if err := os.MkdirAll(b.poolPath(storageType), 0o755); err != nil {
		return lv(err, "pool %s", name)
	}
	return lv(done(b.lv.StartPool(ctx, name), errOperationInvalid), "start pool %s", name)
}

// sweepImports removes, on the first use of a pool directory by this
// builder, the partial image imports (.import-*) of an earlier run that
// was killed midway. importImage removes leftovers of its own image only,
// when that image is imported again; a killed import of an image that is
// not imported again (a new version was published meanwhile, no VM wants
// it any more) stayed for good, and every pool refresh listed it as a
// volume. No import of this builder can be running: every import follows
// an ensurePool of its pool, and the first one sweeps (under poolMu)
// before it returns.
func (b *Builder) sweepImports(ctx context.Context, storageType, pool string) error {
	dir := b.poolPath(storageType)
	if b.swept[dir] {
		return nil
	}
	left, err := filepath.Glob(filepath.Join(dir, ".import-*"))
	if err != nil {
		return lv(err, "sweep pool %s", pool)
	}
	for _, f := range left {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return lv(err, "sweep pool %s", pool)
		}
	}
	if len(left) > 0 {
		b.log.Info("removed partial image imports of an earlier run", "pool", pool, "files", left)
		// Out of libvirt's volume list too.
		if err := b.lv.RefreshPool(ctx, pool); err != nil {
			return lv(err, "refresh pool %s", pool)
		}
	}
	if b.swept == nil {
		b.swept = map[string]bool{}
	}
	b.swept[dir] = true
	return nil
}

var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

// imageVolume is the volume name of an image: its id and digest, so a new
// image content under the same id is a new volume.
func imageVolume(img api.ImageSpec) string {
	return fmt.Sprintf("image_%d_%s", img.ID, strings.ToLower(img.SHA256)[:16])
}

// imageFormat reads a file's header: qcow2 or raw.
func imageFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(f, hdr); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	if bytes.Equal(hdr, []byte{'Q', 'F', 'I', 0xfb}) {
		return "qcow2", nil
	}
	return "raw", nil
}

// ensureImage imports an image into a pool once and returns its volume.
func (b *Builder) ensureImage(ctx context.Context, pool, storageType string, img api.ImageSpec) (VolumeInfo, string, error) {
	if img.Source == "" {
		return VolumeInfo{}, "", newError(CodeImageMissing, "image %d has no source", img.ID)
	}
	if !sha256Re.MatchString(strings.ToLower(img.SHA256)) {
		return VolumeInfo{}, "", newError(CodeBadSpec, "image %d: sha256 %q is not 64 hex digits", img.ID, img.SHA256)
	}
	name := imageVolume(img)
	vi, err := b.lv.VolumeInfo(ctx, pool, name)
	if err == nil {
		format, ferr := imageFormat(vi.Path)
		return vi, format, lv(ferr, "image volume %s", name)
	}
	if !isCode(err, errNoStorageVol) {
		return vi, "", lv(err, "image volume %s", name)
	}

	unlock, err := b.lockImport(ctx, pool+"/"+name)
	if err != nil {
		return VolumeInfo{}, "", err
	}
	defer unlock()
	dir := b.poolPath(storageType)
	final := filepath.Join(dir, name)
	if _, err := os.Stat(final); err != nil {
		if err := b.importImage(ctx, img, dir, final); err != nil {
			return VolumeInfo{}, "", err
		}
	}
	if err := b.lv.RefreshPool(ctx, pool); err != nil {
		return VolumeInfo{}, "", lv(err, "refresh pool %s", pool)
	}
	vi, err = b.lv.VolumeInfo(ctx, pool, name)
	if err != nil {
		return vi, "", lv(err, "image volume %s", name)
	}
	format, err := imageFormat(vi.Path)
	return vi, format, lv(err, "image volume %s", name)
}

// lockImport takes the import lock of one image volume (key), waiting
// until it is free or ctx ends.
func (b *Builder) lockImport(ctx context.Context, key string) (func(), error) {
	b.importsMu.Lock()
	if b.imports == nil {
		b.imports = map[string]chan struct{}{}
	}
	ch := b.imports[key]
	if ch == nil {
		ch = make(chan struct{}, 1)
		b.imports[key] = ch
	}
	b.importsMu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// importImage copies an image's source to final through a temporary file,
// verifying its sha256.
func (b *Builder) importImage(ctx context.Context, img api.ImageSpec, dir, final string) error {
	// Leftovers of an import killed midway.
	if old, _ := filepath.Glob(filepath.Join(dir, ".import-"+filepath.Base(final)+"-*")); len(old) > 0 {
		for _, o := range old {
			_ = os.Remove(o)
		}
	}
	src, err := b.openSource(ctx, img.Source)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, ".import-"+filepath.Base(final)+"-*")
	if err != nil {
		return lv(err, "import image %d", img.ID)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return newError(CodeImageMissing, "image %d: %v", img.ID, err)
		}
		if isNoSpace(err) {
			return newError(CodePoolFull, "image %d: %v", img.ID, err)
		}
		var ve *Error
		if errors.As(err, &ve) {
			return err // the source's (a stalled download)
		}
		return lv(err, "import image %d", img.ID)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(img.SHA256) {
		return newError(CodeImageChecksum, "image %d from %s: sha256 is %s, want %s", img.ID, img.Source, got, img.SHA256)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return lv(err, "import image %d", img.ID)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return lv(err, "import image %d", img.ID)
	}
	b.log.Info("image imported", "image", img.ID, "source", img.Source, "path", final)
	return nil
}

// openSource opens a local path, a file:// URL or an http(s) URL.
func (b *Builder) openSource(ctx context.Context, source string) (io.ReadCloser, error) {
	u, err := url.Parse(source)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		// The download ends when nothing arrives for ImportStallTimeout
		// (header or body): a stalled server must not hold the VM's build,
		// and with it every change of the VM, for ever.
		ctx, cancel := context.WithCancelCause(ctx)
		stall := b.cfg.ImportStallTimeout
		stalled := fmt.Errorf("nothing received for %s", stall)
		timer := time.AfterFunc(stall, func() { cancel(stalled) })
		fail := func(err error) error {
			timer.Stop()
			if context.Cause(ctx) == stalled {
				err = stalled
			}
			cancel(nil)
			return newError(CodeImageMissing, "image source %s: %v", source, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
		if err != nil {
			timer.Stop()
			cancel(nil)
			return nil, newError(CodeBadSpec, "image source %q: %v", source, err)
		}
		resp, err := b.cfg.HTTPClient.Do(req)
		if err != nil {
			return nil, fail(err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fail(errors.New(resp.Status))
		}
		return &stallReader{body: resp.Body, source: source, timer: timer, stall: stall, ctx: ctx, cancel: cancel, stalled: stalled}, nil
	}
	path := source
	if err == nil && u.Scheme == "file" {
		path = u.Path
	}
	if !filepath.IsAbs(path) && b.cfg.ImageDir != "" {
		path = filepath.Join(b.cfg.ImageDir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, newError(CodeImageMissing, "image source %s does not exist", path)
		}
		return nil, newError(CodeImageMissing, "image source %s: %v", path, err)
	}
	return f, nil
}

// stallReader is an http(s) image body whose every read that brings
// data pushes the stall deadline back; once it passed, reads fail with
// "nothing received for ...".
type stallReader struct {
	body    io.ReadCloser
	source  string
	timer   *time.Timer
	stall   time.Duration
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stalled error
}

func (r *stallReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if n > 0 {
		r.timer.Reset(r.stall)
	}
	if err != nil && err != io.EOF && context.Cause(r.ctx) == r.stalled {
		err = newError(CodeImageMissing, "image source %s: %v", r.source, r.stalled)
	}
	return n, err
}

func (r *stallReader) Close() error {
	r.timer.Stop()
	err := r.body.Close()
	r.cancel(nil)
	return err
}

func isNoSpace(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "no space left") || strings.Contains(err.Error(), "not enough space"))
}

// volumeName is the volume of one storage of a domain.
func volumeName(domain string, storageID uint64) string {
	return fmt.Sprintf("%s_%d.qcow2", domain, storageID)
}

// ensureVolume creates a disk volume of at least size bytes and grows it
// when it is smaller. base, when set, is asked only when the volume has to
// be created: the backing volume the new one overlays and that volume's
// size, which the new one is never smaller than. grow resizes an existing
// volume (it differs for disks of a running domain).
func (b *Builder) ensureVolume(ctx context.Context, pool, name string, size uint64,
	base func(ctx context.Context) (*volBackingXML, uint64, error),
	grow func(ctx context.Context, current uint64) error) (VolumeInfo, error) {
	vi, err := b.lv.VolumeInfo(ctx, pool, name)
	if isCode(err, errNoStorageVol) {
		var backing *volBackingXML
		create := size
		if base != nil {
			var baseSize uint64
			if backing, baseSize, err = base(ctx); err != nil {
				return vi, err
			}
			create = max(create, baseSize)
		}
		x, _ := xml.Marshal(volumeXML{Name: name, Capacity: volCapacityXML{Unit: "bytes", Value: create},
			Format: volFormatXML{Type: "qcow2"}, Mode: "0644", Backing: backing})
		if err := done(b.lv.CreateVolume(ctx, pool, string(x)), errStorageVolExist); err != nil {
			if isNoSpace(err) {
				return vi, newError(CodePoolFull, "create volume %s: %v", name, err)
			}
			return vi, lv(err, "create volume %s", name)
		}
		vi, err = b.lv.VolumeInfo(ctx, pool, name)
	}
	if err != nil {
		return vi, lv(err, "volume %s", name)
	}
	if vi.Capacity < size {
		if err := grow(ctx, vi.Capacity); err != nil {
			return vi, err
		}
		vi.Capacity = size
	}
	return vi, nil
}

// poolDir is a pool's libvirt name and directory.
type poolDir struct{ name, dir string }

// poolDirs lists the pools of this builder: every directory under
// StorageRoot, and those PoolPaths puts elsewhere.
func (b *Builder) poolDirs() ([]poolDir, error) {
	var pools []poolDir
	seen := map[string]bool{}
	dirs, err := os.ReadDir(b.cfg.StorageRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, d := range dirs {
		if d.IsDir() {
			dir := filepath.Join(b.cfg.StorageRoot, d.Name())
			pools, seen[dir] = append(pools, poolDir{b.cfg.PoolPrefix + d.Name(), dir}), true
		}
	}
	types := make([]string, 0, len(b.cfg.PoolPaths))
	for t := range b.cfg.PoolPaths {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		if dir := b.poolPath(t); !seen[dir] {
			pools, seen[dir] = append(pools, poolDir{b.poolName(t), dir}), true
		}
	}
	return pools, nil
}

// deleteVolume removes a volume through libvirt, or its file when libvirt
// does not know it (the pool was not refreshed, or is not defined).
func (b *Builder) deleteVolume(ctx context.Context, p poolDir, name string) error {
	err := b.lv.DeleteVolume(ctx, p.name, name)
	if isCode(err, errNoStorageVol, errNoStoragePool) {
		err = os.Remove(filepath.Join(p.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	return lv(err, "delete volume %s", name)
}

// removeDomainVolumes deletes every volume of a domain in every pool under
// the storage root (volumes of storages removed from the spec included),
// and backup overlays left by an interrupted backup.
func (b *Builder) removeDomainVolumes(ctx context.Context, domain string) error {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(domain) + `_[0-9]+\.qcow2(\.backup-[0-9a-z-]+)?$`)
	pools, err := b.poolDirs()
	if err != nil {
		return lv(err, "scrub %s", domain)
	}
	for _, p := range pools {
		files, err := os.ReadDir(p.dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return lv(err, "scrub %s", domain)
		}
		refreshed := false
		for _, f := range files {
			if !re.MatchString(f.Name()) {
				continue
			}
			if !refreshed {
				_ = b.lv.RefreshPool(ctx, p.name)
				refreshed = true
			}
			if err := b.deleteVolume(ctx, p, f.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}
