package auditlog_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

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
	if err := w.Close(); err != nil {
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
	if err := w.Reopen(path); err != nil {
		t.Fatal(err)
	}
	for i := 150; i < 200; i++ {
		w.Append(fmt.Appendf(nil, "%d", i))
	}
	if err := w.Close(); err != nil {
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
	defer w.Close()
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
			go func() { defer wg.Done(); w.Close() }()
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
