package auditlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/regentcloud/regent/pkg/auditlog"
)

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(l) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}

// TestConcurrentAppends: lines appended from many goroutines all reach
// the file whole, each once, and the file is owner-only.
func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := auditlog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const g, n = 32, 500
	var wg sync.WaitGroup
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				w.Append(fmt.Appendf(nil, `{"g":%d,"n":%d,"pad":"%0100d"}`, i, j, 0))
			}
		}()
	}
	wg.Wait()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lines(t, path)
	seen := map[string]bool{}
	whole := regexp.MustCompile(`^\{"g":\d+,"n":\d+,"pad":"0{100}"\}$`)
	for _, l := range got {
		if seen[l] || !whole.MatchString(l) {
			t.Fatalf("line twice or torn: %q", l)
		}
		seen[l] = true
	}
	if len(got) != g*n {
		t.Fatalf("%d lines, want %d", len(got), g*n)
	}
	if written, failed, dropped := w.Counts(); written != g*n || failed != 0 || dropped != 0 {
		t.Errorf("counts %d %d %d", written, failed, dropped)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	w.Append([]byte("after close"))
	if _, _, dropped := w.Counts(); dropped != 1 {
		t.Errorf("a line after Close: dropped %d", dropped)
	}
}

// TestReopenAfterRotation: after the file is moved away (logrotate), Reopen
// starts a new one at the path; every line is in exactly one of them, in
// order.
func TestReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	w, err := auditlog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		w.Append(fmt.Appendf(nil, "%d", i))
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 150; i++ { // still into the moved file, as with any logger
		w.Append(fmt.Appendf(nil, "%d", i))
	}
	w.Sync() // else Reopen sends the lines not yet written to the new file
	if err := w.Reopen(path); err != nil {
		t.Fatal(err)
	}
	for i := 150; i < 200; i++ {
		w.Append(fmt.Appendf(nil, "%d", i))
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	old, cur := lines(t, path+".1"), lines(t, path)
	if len(old) != 150 || len(cur) != 50 || old[149] != "149" || cur[0] != "150" || cur[49] != "199" {
		t.Fatalf("rotated %d lines (last %q), new %d lines", len(old), old[len(old)-1], len(cur))
	}
	if err := w.Reopen(path); err == nil {
		t.Error("Reopen after Close succeeded")
	}
}

// TestWriteFailures: a file that cannot be written (/dev/full: ENOSPC)
// counts the lines as failed, reports the error once (OnChange) and goes on.
func TestWriteFailures(t *testing.T) {
	w, err := auditlog.Open("/dev/full")
	if err != nil {
		t.Fatalf("/dev/full: %v", err)
	}
	defer w.Close(context.Background())
	var changes []error
	w.OnChange = func(err error) { changes = append(changes, err) }
	for range 10 {
		w.Append([]byte("x"))
		w.Sync()
	}
	if _, failed, _ := w.Counts(); failed != 10 || w.Err() == nil {
		t.Errorf("failed %d, err %v", failed, w.Err())
	}
	// Told once, when the writes began to fail.
	if len(changes) != 1 || changes[0] == nil {
		t.Errorf("OnChange calls %v", changes)
	}
}

// TestConcurrentClose: Close from several goroutines while lines are
// appended neither panics nor loses a line appended before the first
// Close began.
func TestConcurrentClose(t *testing.T) {
	for range 20 {
		path := filepath.Join(t.TempDir(), "audit.log")
		w, err := auditlog.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			w.Append(fmt.Appendf(nil, "%d", i))
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(2)
			go func() { defer wg.Done(); w.Close(context.Background()) }()
			go func() { defer wg.Done(); w.Append([]byte("late")); w.Sync() }()
		}
		wg.Wait()
		got := lines(t, path)
		n := 0
		for _, l := range got {
			if l != "late" {
				n++
			}
		}
		written, _, dropped := w.Counts()
		if n != 1000 || written != uint64(len(got)) {
			t.Fatalf("%d of the 1000 lines, %d in all; counts written %d dropped %d", n, len(got), written, dropped)
		}
	}
}

// TestHungWrite: a write that does not return (a stuck network file
// system; here a pipe nobody reads) holds up neither Reopen nor Close:
// Reopen sends later lines to the new file, Close gives up when its
// context ends and says how many lines wait. When the write returns, the
// waiting lines reach the new file.
func TestHungWrite(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := auditlog.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 1<<20) // more than a pipe holds
	w.Append(big)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ); err == nil && n > 0 {
			break // the write is under way, and the pipe fills
		}
		if time.Now().After(deadline) {
			t.Fatal("the write never began")
		}
	}
	within := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s waits for the hung write", what)
		}
	}
	next := filepath.Join(dir, "audit.log")
	within("Reopen", func() {
		if err := w.Reopen(next); err != nil {
			t.Error(err)
		}
	})
	for i := range 3 {
		w.Append(fmt.Appendf(nil, "after %d", i))
	}
	within("Close", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := w.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "3 more lines wait") || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with the write hung: %v", err)
		}
	})
	// The write returns once the pipe is read; the lines that waited go to
	// the new file and the writer stops.
	drained := make(chan int64)
	go func() {
		var total int64
		buf := make([]byte, 64<<10)
		for total < int64(len(big))+1 {
			n, err := r.Read(buf)
			total += int64(n)
			if err != nil && !errors.Is(err, syscall.EAGAIN) {
				break
			}
			if n == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		drained <- total
	}()
	if n := <-drained; n != int64(len(big))+1 {
		t.Errorf("the pipe got %d bytes, want %d", n, len(big)+1)
	}
	within("Close after the write returned", func() {
		if err := w.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if got := lines(t, next); len(got) != 3 || got[0] != "after 0" || got[2] != "after 2" {
		t.Errorf("new file: %q", got)
	}
	if written, failed, dropped := w.Counts(); written != 4 || failed != 0 || dropped != 0 {
		t.Errorf("counts: written %d failed %d dropped %d", written, failed, dropped)
	}
}
