package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
