package state

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"

	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/pkg/api"
)

// Snapshot format: a header line, one JSON record per line in a fixed table
// order (rows in id order), and a trailer with the record count and the
// SHA-256 of every byte before it. The same state always gives the same bytes.
const snapshotHeader = "REGENT-SNAPSHOT 1\n"

// snapshotTables is the order of tables in a snapshot; append-only.
var snapshotTables = []string{tableIndex, Members, Users, Tokens, Regions, Nodes,
	ASNs, IPPolicies, IPBlocks, IPAddresses, MACRanges, Domains, Records, IPRoutes, Interfaces, IPNats, AllowedIPs,
	CIXBlacklist, CIXWhitelist,
	StorageTypes, Images, RegionImages, Servers, ServerInterfaces, Routers, Projects, VirtualRouters, VMs, Storages, VMHistories,
	VPNs, VPNHistories, Snapshots, Backups, SnapshotHistories, BackupHistories,
	DNSSettingsTable}

func newRecord(table string) (any, bool) {
	switch table {
	case tableIndex:
		return &IndexEntry{}, true
	case Members:
		return &api.Member{}, true
	case Users:
		return &api.User{}, true
	case Tokens:
		return &TokenRecord{}, true
	case Regions:
		return &api.Region{}, true
	case Nodes:
		return &Node{}, true
	case ASNs:
		return &api.ASN{}, true
	case IPPolicies:
		return &api.IPPolicy{}, true
	case IPBlocks:
		return &BlockRecord{}, true
	case IPAddresses:
		return &api.IPAddress{}, true
	case MACRanges:
		return &api.MACRange{}, true
	case Domains:
		return &api.Domain{}, true
	case Records:
		return &api.Record{}, true
	case IPRoutes:
		return &api.IPRoute{}, true
	case Interfaces:
		return &api.Interface{}, true
	case IPNats:
		return &api.IPNat{}, true
	case AllowedIPs:
		return &api.AllowedIP{}, true
	case StorageTypes:
		return &api.StorageType{}, true
	case Images:
		return &api.Image{}, true
	case RegionImages:
		return &api.RegionImage{}, true
	case Servers:
		return &api.Server{}, true
	case ServerInterfaces:
		return &api.ServerInterface{}, true
	case Routers:
		return &api.Router{}, true
	case Projects:
		return &api.Project{}, true
	case VirtualRouters:
		return &api.VirtualRouter{}, true
	case VMs:
		return &api.VM{}, true
	case Storages:
		return &api.Storage{}, true
	case VMHistories:
		return &api.VMHistory{}, true
	case CIXBlacklist, CIXWhitelist:
		return &api.CIXListEntry{}, true
	case VPNs:
		return &VPNRecord{}, true
	case VPNHistories:
		return &api.VPNHistory{}, true
	case Snapshots:
		return &api.Snapshot{}, true
	case Backups:
		return &api.Backup{}, true
	case SnapshotHistories, BackupHistories:
		return &api.ObjectHistory{}, true
	case DNSSettingsTable:
		return &DNSSettings{}, true
	}
	return nil, false
}

// upgradeRecord reads what a snapshot written by an older version keeps
// under a field's former name into the field (obj is raw already decoded
// under the current names). A snapshot always restores to the current
// names, so the next snapshot is written with them only.
//
//   - vm_history: cpu, ram, gpu are cpu_quantity, ram_quantity,
//     gpu_quantity since they took CloudCIX's names.
func upgradeRecord(table string, raw json.RawMessage, obj any) error {
	switch table {
	case VMHistories:
		var old struct {
			CPU *int `json:"cpu"`
			RAM *int `json:"ram"`
			GPU *int `json:"gpu"`
		}
		if err := json.Unmarshal(raw, &old); err != nil {
			return err
		}
		h := obj.(*api.VMHistory)
		for _, f := range []struct {
			old *int
			cur *int
		}{{old.CPU, &h.CPUQuantity}, {old.RAM, &h.RAMQuantity}, {old.GPU, &h.GPUQuantity}} {
			if f.old != nil && *f.cur == 0 {
				*f.cur = *f.old
			}
		}
	}
	return nil
}

type record struct {
	T      string          `json:"t"`
	V      json.RawMessage `json:"v,omitempty"`
	N      int             `json:"n,omitempty"`
	SHA256 string          `json:"sha256,omitempty"`
}

// Persist writes the whole state seen by r to w.
func (r *ReadTxn) Persist(w io.Writer) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(w, 64<<10)
	out := io.MultiWriter(bw, h)
	if _, err := io.WriteString(out, snapshotHeader); err != nil {
		return err
	}
	n := 0
	var line []byte
	for _, table := range snapshotTables {
		it, err := r.txn.Get(table, "id")
		if err != nil {
			return err
		}
		// The line is json.Marshal(record{T: table, V: v}) and a newline,
		// written without marshalling v a second time: the table names need
		// no escaping and v is compact already.
		open := []byte(`{"t":"` + table + `","v":`)
		for raw := it.Next(); raw != nil; raw = it.Next() {
			v, err := json.Marshal(raw)
			if err != nil {
				return err
			}
			line = append(append(append(line[:0], open...), v...), '}', '\n')
			if _, err := out.Write(line); err != nil {
				return err
			}
			n++
		}
	}
	trailer, _ := json.Marshal(record{T: "#end", N: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	if _, err := bw.Write(append(trailer, '\n')); err != nil {
		return err
	}
	return bw.Flush()
}

// ErrBadSnapshot wraps every reason a snapshot is refused.
var ErrBadSnapshot = errors.New("invalid snapshot")

// Validate reads a whole snapshot and reports whether it would restore,
// without touching the store. It returns the highest raft index recorded in
// the snapshot, so a restore can place the state above it.
func Validate(r io.Reader) (uint64, error) {
	db, err := load(r)
	if err != nil {
		return 0, err
	}
	var max uint64
	it, err := db.Txn(false).Get(tableIndex, "id")
	if err != nil {
		return 0, err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if e := raw.(*IndexEntry); e.Index > max {
			max = e.Index
		}
	}
	return max, nil
}

// Restore replaces the whole state with the snapshot in r. A snapshot that
// does not validate completely leaves the state unchanged.
func (s *Store) Restore(r io.Reader) error {
	db, err := load(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.abandon
	s.db, s.abandon = db, make(chan struct{})
	s.restores++
	s.mu.Unlock()
	close(old)
	return nil
}

type hashingReader struct {
	r *bufio.Reader
	h hash.Hash
}

func load(r io.Reader) (*memdb.MemDB, error) { return loadWith(r, true) }

// loadWith is load; short is false only in the test that checks the short
// way for the records Persist writes against the general decoder alone.
func loadWith(r io.Reader, short bool) (*memdb.MemDB, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
	}
	hr := hashingReader{r: bufio.NewReaderSize(r, 64<<10), h: sha256.New()}
	header, err := hr.r.ReadString('\n')
	if err != nil || header != snapshotHeader {
		return nil, bad("not a Regent snapshot (missing header)")
	}
	hr.h.Write([]byte(header))
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, err
	}
	txn := db.Txn(true)
	defer txn.Abort()
	n := 0
	perTable := map[string]int{}
	for lineNo := 2; ; lineNo++ {
		line, err := readLine(hr.r)
		if err == io.EOF {
			return nil, bad("truncated: no trailer after %d records", n)
		}
		if err != nil {
			return nil, err
		}
		// The records as Persist writes them take the short way; anything
		// else, and any record the short way refuses, the decoder below,
		// which decides what is accepted and why not.
		if table, v, ok := splitRecord(line); ok && short {
			obj, _ := newRecord(table)
			if json.Unmarshal(v, obj) == nil && upgradeRecord(table, v, obj) == nil {
				hr.h.Write(line)
				if err := txn.Insert(table, obj); err != nil {
					return nil, bad("line %d: %v", lineNo, err)
				}
				perTable[table]++
				n++
				continue
			}
		}
		var rec record
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, bad("line %d: %v", lineNo, err)
		}
		if rec.T == "#end" {
			if rec.N != n {
				return nil, bad("trailer counts %d records, found %d", rec.N, n)
			}
			if sum := hex.EncodeToString(hr.h.Sum(nil)); sum != rec.SHA256 {
				return nil, bad("checksum mismatch")
			}
			if _, err := hr.r.ReadByte(); err != io.EOF {
				return nil, bad("data after trailer")
			}
			if err := checkUnique(txn, perTable); err != nil {
				return nil, bad("%v", err)
			}
			// Derived state that is not serialised: the IPAM engines.
			if err := rebuildIPAM(txn); err != nil {
				return nil, bad("ipam: %v", err)
			}
			if err := rebuildInterfaces(txn); err != nil {
				return nil, bad("ipam: %v", err)
			}
			if err := rebuildNAT(txn); err != nil {
				return nil, bad("ipam: %v", err)
			}
			txn.Commit()
			return db, nil
		}
		hr.h.Write(line)
		obj, ok := newRecord(rec.T)
		if !ok {
			return nil, bad("line %d: unknown table %q", lineNo, rec.T)
		}
		if err := json.Unmarshal(rec.V, obj); err != nil {
			return nil, bad("line %d: %v", lineNo, err)
		}
		if err := upgradeRecord(rec.T, rec.V, obj); err != nil {
			return nil, bad("line %d: %v", lineNo, err)
		}
		if err := txn.Insert(rec.T, obj); err != nil {
			return nil, bad("line %d: %v", lineNo, err)
		}
		perTable[rec.T]++
		n++
	}
}

// readLine returns the next line, with its newline; the slice is valid until
// the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	rest, err := r.ReadBytes('\n')
	return append(long, rest...), err
}

// splitRecord returns the table and the value of a record line in the form
// Persist writes, {"t":"<table>","v":<value>} and a newline, for a table of
// snapshotTables (the name as the constant). ok is false for any other line.
// The value is not checked: it is a record of the table only if it is one
// JSON value, which the caller's json.Unmarshal of it checks.
func splitRecord(line []byte) (table string, v []byte, ok bool) {
	const open, sep, end = `{"t":"`, `","v":`, "}\n"
	if !bytes.HasPrefix(line, []byte(open)) || !bytes.HasSuffix(line, []byte(end)) {
		return "", nil, false
	}
	rest := line[len(open) : len(line)-len(end)]
	i := bytes.IndexByte(rest, '"')
	if i < 0 || !bytes.HasPrefix(rest[i:], []byte(sep)) {
		return "", nil, false
	}
	name := rest[:i]
	for _, t := range snapshotTables {
		if string(name) == t {
			return t, rest[i+len(sep):], true
		}
	}
	return "", nil, false
}

// checkUnique verifies that no record overwrote another: memdb replaces a row
// with the same id and does not enforce unique secondary indexes, so every
// unique index must hold exactly as many rows as were loaded.
func checkUnique(txn *memdb.Txn, loaded map[string]int) error {
	// In name order, so that a snapshot with several duplicates is always
	// refused with the same message.
	tables := schema().Tables
	for _, table := range slices.Sorted(maps.Keys(tables)) {
		ts := tables[table]
		for _, name := range slices.Sorted(maps.Keys(ts.Indexes)) {
			idx := ts.Indexes[name]
			if !idx.Unique {
				continue
			}
			it, err := txn.Get(table, name)
			if err != nil {
				return err
			}
			n := 0
			for raw := it.Next(); raw != nil; raw = it.Next() {
				n++
			}
			want := loaded[table]
			if idx.AllowMissing {
				// Only the rows that have a value are in the index.
				if want, err = indexed(txn, table, idx); err != nil {
					return err
				}
			}
			if n != want {
				return fmt.Errorf("table %s: %d records but %d distinct values of unique index %q", table, want, n, name)
			}
		}
	}
	return nil
}

// indexed counts the rows of table that have a value for idx.
func indexed(txn *memdb.Txn, table string, idx *memdb.IndexSchema) (int, error) {
	single, ok := idx.Indexer.(memdb.SingleIndexer)
	if !ok {
		return 0, fmt.Errorf("table %s: index %q is not a single-value index", table, idx.Name)
	}
	it, err := txn.Get(table, "id")
	if err != nil {
		return 0, err
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if has, _, err := single.FromObject(raw); err != nil {
			return 0, err
		} else if has {
			n++
		}
	}
	return n, nil
}
