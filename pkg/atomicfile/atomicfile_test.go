package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "state[1].json")
	if err := Write(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	// a temporary of a writer killed midway is removed by the next write
	stale := filepath.Join(dir, ".state[1].json-123")
	if err := os.WriteFile(stale, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "two" {
		t.Fatalf("content %q %v", b, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the file alone: %v", len(ents), ents)
	}
	// a failed write leaves the old file and no temporary: a directory
	// stands where the file should go
	blocked := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(blocked, []byte("x"), 0o600); err == nil {
		t.Error("a write over a non-empty directory succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("after a failed write the directory holds %v", ents)
	}
}

func TestWriteIfChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if wrote, err := WriteIfChanged(path, []byte("a"), 0o644); !wrote || err != nil {
		t.Fatalf("first write: %v %v", wrote, err)
	}
	st, _ := os.Stat(path)
	if wrote, err := WriteIfChanged(path, []byte("a"), 0o600); wrote || err != nil {
		t.Fatalf("same content: wrote %v, %v", wrote, err)
	}
	st2, _ := os.Stat(path)
	if st2.Mode().Perm() != 0o600 || !os.SameFile(st, st2) {
		t.Errorf("same content: mode %v, same file %v; want 0600, the file kept", st2.Mode().Perm(), os.SameFile(st, st2))
	}
	if wrote, err := WriteIfChanged(path, []byte("b"), 0o600); !wrote || err != nil {
		t.Fatalf("new content: %v %v", wrote, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "b" {
		t.Errorf("content %q", b)
	}
}

// TestWriteDirWithGlobCharacters: the clean-up of killed writers'
// temporaries looks only beside path, also when the directory's name holds
// characters a glob treats specially (a [12] that would match the
// directories 1 and 2 next to it).
func TestWriteDirWithGlobCharacters(t *testing.T) {
	base := t.TempDir()
	dir, other := filepath.Join(base, "node[12]"), filepath.Join(base, "node1")
	for _, d := range []string{dir, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// another directory's writer, midway
	theirs := filepath.Join(other, ".state.json-123")
	if err := os.WriteFile(theirs, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// a writer of this path killed midway
	ours := filepath.Join(dir, ".state.json-456")
	if err := os.WriteFile(ours, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "state.json"), []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Errorf("a temporary in another directory was removed: %v", err)
	}
	if _, err := os.Stat(ours); !os.IsNotExist(err) {
		t.Errorf("the killed writer's temporary beside the file is still there: %v", err)
	}
}

// TestLegacyTemporaryRemoved: the "<name>.tmp" that earlier versions of the
// agent wrote through, left by a crash before an upgrade (the VPN key's is
// a secret), goes at the next write; another file's does not.
func TestLegacyTemporaryRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "psk-digest.key")
	for _, n := range []string{"psk-digest.key.tmp", "other.tmp", ".other-1"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := Temporaries(path); len(got) != 1 || filepath.Base(got[0]) != "psk-digest.key.tmp" {
		t.Fatalf("Temporaries = %v", got)
	}
	if err := Write(path, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	var names []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[.other-1 other.tmp psk-digest.key]" {
		t.Errorf("directory after the write: %v", names)
	}
}
