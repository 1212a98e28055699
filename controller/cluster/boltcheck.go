package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// ErrStateDamaged is returned by New when the node's raft state on disk
// cannot be read: a truncated or corrupt raft.db, or snapshots that all
// fail their checksum. Restarting cannot help.
var ErrStateDamaged = errors.New("cluster: the raft state in the data dir is damaged")

// errLocked is lockShared's timeout, as bbolt's is bbolt.ErrTimeout.
var errLocked = errors.New("timeout")

// lockedError is the error for a raft store another process holds.
func lockedError(path string, err error) error {
	return fmt.Errorf("cluster: open %s: locked (is another controller using this data dir?): %w", path, err)
}

// damagedHint says what an operator can do about damaged raft state.
const damagedHint = "move the data dir away and add the node back with `regent-controller join` (it receives the state from the leader), " +
	"or, for the cluster's last node, start a new node and restore a snapshot (`regent-controller snapshot restore`)"

// bbolt's on-disk format (go.etcd.io/bbolt, version 2), as much as the
// check below reads.
const (
	boltMagic          = 0xED0CDAED
	boltVersion        = 2
	boltPageHeader     = 16 // id u64, flags u16, count u16, overflow u32
	boltElemSize       = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	boltBucketHeader   = 16 // root pgid u64, sequence u64
	boltBranchPage     = 0x01
	boltLeafPage       = 0x02
	boltBucketLeafFlag = 0x01
	boltMetaSize       = 64 // magic .. checksum
	boltMetaChecksumAt = 56
)

// checkBoltFile reads path's bbolt structure with plain reads (no mmap)
// before bbolt opens it. bbolt trusts the file: opening a truncated file
// dies of SIGBUS, and, with NoFreelistSync, a page that points outside the
// file or carries a wrong header panics in a goroutine of bbolt's (it scans
// every reachable page to rebuild the freelist). Neither can be recovered,
// so the node would crash at every start with a Go stack trace instead of
// saying what is wrong. This walks the same pages that scan does and
// checks what it asserts: the file is as long as the meta page says, every
// page reached is a branch or leaf page with its own id, inside the file,
// referenced once. A file without a valid meta page is left to bbolt,
// which refuses it cleanly ("invalid database"). A missing file is fine.
//
// The check holds a shared lock on the file while it reads: a node running
// on the same data dir holds bbolt's exclusive lock and rewrites pages as
// it commits, and reading under it found pages "referenced twice" or "out
// of bounds" in a sound file, so a second node started by mistake said the
// running node's state was damaged (and to move the data dir away). Now it
// gets the lock error bbolt would give.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockShared(f, boltOpenTimeout); err != nil {
		return lockedError(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	m, ok := boltMeta(f)
	if !ok {
		return nil
	}
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s is %s: %s", ErrStateDamaged, path, fmt.Sprintf(format, args...), damagedHint)
	}
	if need := int64(m.pgid) * int64(m.pageSize); st.Size() < need {
		return damaged("truncated (%d bytes; its last transaction needs %d)", st.Size(), need)
	}
	c := &boltChecker{f: f, pageSize: int64(m.pageSize), maxPgid: m.pgid, seen: map[uint64]bool{}}
	if err := c.bucket(m.root, nil); err != nil {
		return damaged("corrupt (%v)", err)
	}
	return nil
}

type boltMetaPage struct {
	pageSize uint32
	root     uint64
	pgid     uint64
	txid     uint64
}

// boltMeta returns the newer valid one of the two meta pages, as bbolt
// picks it.
func boltMeta(f *os.File) (boltMetaPage, bool) {
	var best boltMetaPage
	found := false
	pageSize := int64(4096)
	for i := range 2 {
		buf := make([]byte, boltPageHeader+boltMetaSize)
		if _, err := f.ReadAt(buf, int64(i)*pageSize); err != nil {
			continue
		}
		b := buf[boltPageHeader:]
		le := binary.LittleEndian
		h := fnv.New64a()
		h.Write(b[:boltMetaChecksumAt])
		if le.Uint32(b[0:]) != boltMagic || le.Uint32(b[4:]) != boltVersion || h.Sum64() != le.Uint64(b[boltMetaChecksumAt:]) {
			continue
		}
		m := boltMetaPage{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
		if m.pageSize < 512 || m.pageSize > 1<<20 {
			continue
		}
		if i == 0 {
			pageSize = int64(m.pageSize)
		}
		if !found || m.txid > best.txid {
			best, found = m, true
		}
	}
	return best, found
}

type boltChecker struct {
	f        io.ReaderAt
	pageSize int64
	maxPgid  uint64
	seen     map[uint64]bool
}

// bucket checks the tree of a bucket whose root is page root, or, for an
// inline bucket (root 0), the page in inline.
func (c *boltChecker) bucket(root uint64, inline []byte) error {
	if root == 0 {
		if len(inline) < boltPageHeader {
			return fmt.Errorf("inline bucket of %d bytes", len(inline))
		}
		return c.elements(inline, 0)
	}
	return c.page(root, 0)
}

func (c *boltChecker) page(id uint64, depth int) error {
	if depth > 64 {
		return fmt.Errorf("page %d: tree deeper than 64", id)
	}
	if id < 2 || id >= c.maxPgid {
		return fmt.Errorf("page %d: out of bounds (%d pages)", id, c.maxPgid)
	}
	hdr := make([]byte, boltPageHeader)
	if _, err := c.f.ReadAt(hdr, int64(id)*c.pageSize); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr); got != id {
		return fmt.Errorf("page %d: header says page %d", id, got)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= c.maxPgid {
		return fmt.Errorf("page %d: %d overflow pages run past the end (%d pages)", id, overflow, c.maxPgid)
	}
	for i := id; i <= id+overflow; i++ {
		if c.seen[i] {
			return fmt.Errorf("page %d: referenced twice", i)
		}
		c.seen[i] = true
	}
	buf := make([]byte, int64(overflow+1)*c.pageSize)
	if _, err := c.f.ReadAt(buf, int64(id)*c.pageSize); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	return c.elements(buf, depth)
}

// elements checks the branch or leaf page in buf (its header first) and
// everything it leads to.
func (c *boltChecker) elements(buf []byte, depth int) error {
	le := binary.LittleEndian
	id := le.Uint64(buf)
	flags := le.Uint16(buf[8:])
	count := int(le.Uint16(buf[10:]))
	if boltPageHeader+count*boltElemSize > len(buf) {
		return fmt.Errorf("page %d: %d elements do not fit", id, count)
	}
	for i := range count {
		e := buf[boltPageHeader+i*boltElemSize:]
		at := boltPageHeader + i*boltElemSize // elements' positions are relative to themselves
		switch {
		case flags&boltBranchPage != 0:
			pos, ksize := int(le.Uint32(e)), int(le.Uint32(e[4:]))
			if at+pos+ksize > len(buf) {
				return fmt.Errorf("page %d: key %d runs past the page", id, i)
			}
			if err := c.page(le.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
		case flags&boltLeafPage != 0:
			eflags, pos, ksize, vsize := le.Uint32(e), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
			end := at + pos + ksize + vsize
			if pos < 0 || end > len(buf) || end < at {
				return fmt.Errorf("page %d: element %d runs past the page", id, i)
			}
			if eflags&boltBucketLeafFlag != 0 {
				v := buf[at+pos+ksize : end]
				if len(v) < boltBucketHeader {
					return fmt.Errorf("page %d: bucket header of %d bytes", id, len(v))
				}
				if err := c.bucket(le.Uint64(v), v[boltBucketHeader:]); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("page %d: not a branch or leaf page (flags %#x)", id, flags)
		}
	}
	return nil
}
