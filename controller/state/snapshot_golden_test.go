package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// goldenState is the state of testdata/snapshot-v1.golden: the scale
// fixture at a small size (members, users, tokens, ASNs, CloudCIX
// allocations and subnets, Melange blocks, addresses), one address
// released (soft-deallocated), and DNS settings.
func goldenState(t *testing.T) *Store {
	s := scaleState(t, 8, 3)
	tx := s.Write(2, t0.Add(time.Minute))
	a := s.Read().IPAddressListAll()[4]
	if _, err := tx.IPAddressRelease(IPRef{ID: a.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.DNSSettingsSet(&DNSSettings{NS: []string{"ns1.example.net."}, SetBy: "c1"}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	return s
}

// TestSnapshotGoldenV1: a snapshot written by the code of commit a212e97
// (testdata/snapshot-v1.golden, goldenState persisted; REGENT_UPDATE_GOLDEN=1
// rewrites it, which only the commit that changes the format may do, keeping
// the old file) still validates and restores, rebuilds the IPAM engines
// (the next address of a subnet is the one after its last), and persists to
// the same bytes; and goldenState persists to those bytes too.
func TestSnapshotGoldenV1(t *testing.T) {
	const path = "testdata/snapshot-v1.golden"
	if os.Getenv("REGENT_UPDATE_GOLDEN") == "1" {
		var buf bytes.Buffer
		if err := goldenState(t).Read().Persist(&buf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := Validate(bytes.NewReader(golden)); err != nil || idx != 2 {
		t.Fatalf("Validate: %d, %v; want 2, nil", idx, err)
	}
	s := New()
	if err := s.Restore(bytes.NewReader(golden)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	var again bytes.Buffer
	if err := s.Read().Persist(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, again.Bytes()) {
		t.Error("the restored golden snapshot persists to other bytes")
	}
	var fresh bytes.Buffer
	if err := goldenState(t).Read().Persist(&fresh); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, fresh.Bytes()) {
		t.Error("goldenState persists to other bytes than the golden snapshot")
	}
	r := s.Read()
	if n := len(r.IPAddressListAll()); n != 24 {
		t.Errorf("%d addresses restored, want 24", n)
	}
	released := 0
	for _, a := range r.IPAddressListAll() {
		if a.Deallocated {
			released++
		}
	}
	if released != 1 {
		t.Errorf("%d released addresses restored, want 1", released)
	}
	// The engines were rebuilt: subnet 10.0.0.0/24 has .2, .3, .4 (the
	// gateway is .1), so the next address is .5.
	var subnet uint64
	for _, b := range r.IPBlockList() {
		if b.CIDR == "10.0.0.0/24" {
			subnet = b.ID
		}
	}
	tx := s.Write(3, t0.Add(2*time.Minute))
	defer tx.Abort()
	a, err := tx.IPAddressCreate(&api.IPAddress{BlockID: subnet})
	if err != nil {
		t.Fatal(err)
	}
	if a.Address != "10.0.0.5" {
		t.Errorf("next address after restore: %s, want 10.0.0.5", a.Address)
	}
}

// goldenRecords returns the record lines of the golden snapshot (no header,
// no trailer).
func goldenRecords(t *testing.T) []string {
	golden, err := os.ReadFile("testdata/snapshot-v1.golden")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(golden), "\n"), "\n")
	return lines[1 : len(lines)-1]
}

// TestRestoreReadsAnyRecordForm: records in a form other than Persist's
// (keys in the other order, spaces, "t" in capitals, a line longer than the
// reader's buffer) restore as Persist's form does; Restore reads Persist's
// form a shorter way and must fall back to the decoder for the others.
func TestRestoreReadsAnyRecordForm(t *testing.T) {
	golden, err := os.ReadFile("testdata/snapshot-v1.golden")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 100<<10)
	var canonical, other []string
	for i, line := range goldenRecords(t) {
		var rec record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.T == Members && strings.Contains(line, `"name":"tenant-7"`) {
			line = strings.Replace(line, `"name":"tenant-7"`, `"name":"`+long+`"`, 1)
			rec.V = json.RawMessage(strings.Replace(string(rec.V), `"name":"tenant-7"`, `"name":"`+long+`"`, 1))
		}
		canonical = append(canonical, line)
		switch i % 3 {
		case 0:
			other = append(other, fmt.Sprintf(`{"v":%s,"t":%q}`, rec.V, rec.T))
		case 1:
			other = append(other, fmt.Sprintf(`{ "t" : %q , "v" : %s }`, rec.T, rec.V))
		default:
			other = append(other, fmt.Sprintf(`{"T":%q,"v":%s}`, rec.T, rec.V))
		}
	}
	persisted := func(lines []string) []byte {
		t.Helper()
		s := New()
		if err := s.Restore(bytes.NewReader(sealSnapshot([]byte(strings.Join(lines, "\n"))))); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		var buf bytes.Buffer
		if err := s.Read().Persist(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	want := persisted(canonical)
	if !bytes.Contains(want, []byte(long)) || bytes.Equal(want, golden) {
		t.Fatal("the long member name did not restore")
	}
	if got := persisted(other); !bytes.Equal(got, want) {
		t.Errorf("records in other forms restore to another state:\n%s\nwant\n%s", got, want)
	}
}

// TestRestoreAllocation: a restore allocates at most 16 bytes per byte of
// snapshot (the restored state itself keeps about 8); it allocated 20: every
// record line was copied, given a decoder of its own and its value copied
// again before the value was decoded, and the addresses were read twice to
// rebuild the IPAM engines (docs/benchmarks.md, "Snapshot restore").
func TestRestoreAllocation(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds a state of 1,000 addresses; counts allocations, which the race detector adds to")
	}
	var snap bytes.Buffer
	if err := scaleState(t, 200, 5).Read().Persist(&snap); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := New().Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	perByte := float64(after.TotalAlloc-before.TotalAlloc) / float64(snap.Len())
	t.Logf("%d bytes of snapshot, %.1f bytes allocated per byte", snap.Len(), perByte)
	if perByte > 16 {
		t.Errorf("restore allocated %.1f bytes per byte of snapshot, want at most 16", perByte)
	}
}

// TestPersistWritesRecordJSON: Persist writes each record as
// json.Marshal(record{T, V}) would, which it no longer calls, also for
// values with characters JSON escapes.
func TestPersistWritesRecordJSON(t *testing.T) {
	for _, table := range snapshotTables {
		if b, _ := json.Marshal(table); string(b) != `"`+table+`"` {
			t.Errorf("table name %q needs escaping", table)
		}
	}
	s := goldenState(t)
	tx := s.Write(3, t0.Add(2*time.Minute))
	if _, err := tx.MemberCreate(&api.Member{Name: "a<b>&\"c\"\u2028\\é"}); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	var buf bytes.Buffer
	if err := s.Read().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	for _, line := range lines[1 : len(lines)-1] {
		var rec record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if want, _ := json.Marshal(rec); string(want) != line {
			t.Errorf("record line\n%s\nwant\n%s", line, want)
		}
	}
	if !strings.Contains(buf.String(), `a\u003cb\u003e\u0026\"c\"\u2028\\é`) {
		t.Error("the member with escaped characters is not in the snapshot")
	}
}

// TestPersistAllocation: a persist allocates at most 1.5 bytes per byte it
// writes. It allocated 2.2: each record was marshalled twice, the second
// time inside its line, which was then copied to append the newline.
func TestPersistAllocation(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds a state of 1,000 addresses; counts allocations, which the race detector adds to")
	}
	r := scaleState(t, 200, 5).Read()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var n countingWriter
	if err := r.Persist(&n); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	perByte := float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
	t.Logf("%d bytes of snapshot, %.2f bytes allocated per byte", n, perByte)
	if perByte > 1.5 {
		t.Errorf("persist allocated %.2f bytes per byte of snapshot, want at most 1.5", perByte)
	}
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
