package netrouter

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func nlattrBytes(typ uint16, v []byte) []byte {
	l := 4 + len(v)
	b := make([]byte, 4, nlAlign(l))
	binary.NativeEndian.PutUint16(b, uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	return append(b, make([]byte, nlAlign(l)-l)...)
}

func TestParseNflogPacket(t *testing.T) {
	ip := []byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 203, 0, 113, 9, 10, 0, 0, 5, 0xc3, 0x50, 0x08, 0xae}
	ts := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 1700000000), 250000)
	msg := []byte{2, 0, 0, 100}
	msg = append(msg, nlattrBytes(nfulaTimestamp, ts)...)
	msg = append(msg, nlattrBytes(nfulaPrefix, []byte("r7 in 4 allow \x00"))...)
	msg = append(msg, nlattrBytes(nfulaPayload, ip)...)
	e, ok := parseNflogPacket(msg)
	if !ok {
		t.Fatal("not parsed")
	}
	want := PolicyLogEntry{
		Time: time.Unix(1700000000, 250000000).UTC(), RouterID: 7, Direction: "in", Order: 4, Action: "allow",
		Protocol: "tcp", Source: netip.MustParseAddr("203.0.113.9"), Destination: netip.MustParseAddr("10.0.0.5"),
		SourcePort: 50000, DestinationPort: 2222,
	}
	if e != want {
		t.Fatalf("got  %+v\nwant %+v", e, want)
	}
	// A prefix that is not the builder's is ignored.
	other := append([]byte{2, 0, 0, 100}, nlattrBytes(nfulaPrefix, []byte("somebody else\x00"))...)
	if _, ok := parseNflogPacket(other); ok {
		t.Fatal("foreign prefix parsed")
	}
	// Truncated input never panics.
	for i := range msg {
		parseNflogPacket(msg[:i])
	}
}

func TestPolicyLogRing(t *testing.T) {
	var seq atomic.Uint64
	p := &policyLog{ring: make([]PolicyLogEntry, 3), seq: &seq}
	for i := 1; i <= 5; i++ {
		p.add(PolicyLogEntry{Order: i})
	}
	got := p.entries()
	if len(got) != 3 || got[0].Order != 3 || got[2].Order != 5 {
		t.Fatalf("ring: %+v", got)
	}
	// Entries are numbered in the order logged, across the logs of one
	// builder (another router's, or this one's restarted).
	for i, e := range got {
		if e.Seq != uint64(3+i) {
			t.Errorf("entry %d: seq %d, want %d", e.Order, e.Seq, 3+i)
		}
	}
	q := &policyLog{ring: make([]PolicyLogEntry, 3), seq: &seq}
	q.add(PolicyLogEntry{Order: 6})
	if got := q.entries(); got[0].Seq != 6 {
		t.Errorf("a second log's first entry: seq %d, want 6", got[0].Seq)
	}
}
