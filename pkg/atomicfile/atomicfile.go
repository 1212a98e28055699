// Package atomicfile replaces files whole: a reader, or the host after a
// crash, finds the old content or the new, never a part of either. The
// agent keeps its state this way (router digests, dnsmasq files, cloud-init
// seeds, the VPN key and state, the saved router metadata).
package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// Write replaces path with data, with mode perm: a temporary file in the
// same directory is written, synced and renamed over path, and the
// directory is synced, so the new file survives a crash once Write
// returns. The directory is created (0755) when missing. Temporaries that
// a writer killed midway left beside path are removed first (they may
// hold secrets).
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, o := range Temporaries(path) {
		_ = os.Remove(o)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a failure; gone after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteIfChanged is Write unless path already holds data, in which case
// only its mode is set to perm. It reports whether it wrote.
func WriteIfChanged(path string, data []byte, perm os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() != perm {
			return false, os.Chmod(path, perm)
		}
		return false, nil
	}
	return true, Write(path, data, perm)
}

// Temporaries lists the temporary files of writes of path that did not
// finish (a writer killed midway): ".<name>-*" beside it, and "<name>.tmp",
// the name earlier versions of the agent wrote through. Names are matched
// as they are, never as glob patterns, so a directory named like one
// ("node[12]") matches nothing of another's.
func Temporaries(path string) []string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); !e.IsDir() && (strings.HasPrefix(n, "."+base+"-") || n == base+".tmp") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}
