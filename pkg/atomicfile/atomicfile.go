// Package atomicfile replaces files whole: a reader, or the host after a
// crash, finds the old content or the new, never a part of either. The
// agent keeps its state this way (router digests, dnsmasq files, cloud-init
// seeds, the VPN key and state, the saved router metadata).
package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
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
	prefix := "." + filepath.Base(path) + "-"
	// Both parts escaped: a directory named like a glob ("node[12]") must
	// not match other directories' temporaries.
	if old, _ := filepath.Glob(filepath.Join(globEscape(dir), globEscape(prefix)+"*")); len(old) > 0 {
		for _, o := range old {
			_ = os.Remove(o)
		}
	}
	tmp, err := os.CreateTemp(dir, prefix+"*")
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

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}
