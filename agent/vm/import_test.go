package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSlowImportHoldsUpNoOtherImage: while one image's import hangs (a
// slow or stalled image server), a VM of another image is built: imports
// of different images do not wait for each other. Before, one lock over
// every import made each VM whose image was not in the pool yet wait for
// the hanging download, for as long as it lasted.
func TestSlowImportHoldsUpNoOtherImage(t *testing.T) {
	b, f, spec := fakeEnv(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("QFI\xfb"))
		w.(http.Flusher).Flush()
		select { // the rest never comes (until the test ends)
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	slow := *spec
	slow.ID, slow.Image.ID, slow.Image.Source = 8, 9, srv.URL+"/big.qcow2"
	slow.Image.SHA256 = hex.EncodeToString(make([]byte, 32))
	ctx, cancel := context.WithCancel(context.Background())
	slowDone := make(chan error, 1)
	go func() { slowDone <- b.Build(ctx, &slow) }()
	// The slow import is under way: its temporary file is in the pool.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", ".import-image_9_*")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow import did not start")
		}
	}

	other := *spec
	data := []byte("QFI\xfb another tiny image")
	other.Image.Source = filepath.Join(t.TempDir(), "other.qcow2")
	if err := os.WriteFile(other.Image.Source, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	other.Image.ID, other.Image.SHA256 = 4, hex.EncodeToString(sum[:])
	done := make(chan error, 1)
	go func() { done <- b.Build(context.Background(), &other) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a VM of another image waited 20 s for a hanging import")
	}
	f.mu.Lock()
	st := f.domains["42_7"]
	f.mu.Unlock()
	if st == nil || st.state != StateRunning {
		t.Errorf("domain 42_7: %+v", st)
	}
	cancel()
	if err := <-slowDone; err == nil {
		t.Error("the hanging import succeeded")
	}
}

// TestStalledImportFails: an image server that stops sending (after the
// header, or before it) fails the import once nothing has arrived for
// Config.ImportStallTimeout, with vm_image_missing. Before, the download
// waited for ever: the VM's build never returned, so the VM could not
// even be deleted (its worker never saw the new state).
func TestStalledImportFails(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/part.qcow2" {
			w.Write([]byte("QFI\xfb"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	for _, path := range []string{"/part.qcow2", "/noheader.qcow2"} {
		b, _, spec := fakeEnv(t)
		b.cfg.ImportStallTimeout = 300 * time.Millisecond
		spec.Image.Source = srv.URL + path
		done := make(chan error, 1)
		go func() { done <- b.Build(context.Background(), spec) }()
		select {
		case err := <-done:
			if ErrorCode(err) != CodeImageMissing || !strings.Contains(err.Error(), "nothing received for") {
				t.Errorf("%s: %v (code %q)", path, err, ErrorCode(err))
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the import of a stalled source still waits after 30 s", path)
		}
		if m, _ := filepath.Glob(filepath.Join(b.cfg.StorageRoot, "ssd", ".import-*")); len(m) > 0 {
			t.Errorf("%s: partial import left: %v", path, m)
		}
	}
}
