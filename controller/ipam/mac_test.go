package ipam

import (
	"errors"
	"testing"

	"github.com/regentcloud/regent/pkg/netx"
)

func macRange(t *testing.T, s string) netx.MACRange {
	t.Helper()
	r, err := netx.ParseMACRange(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMACRanges(t *testing.T) {
	s := NewMACSet(1)
	// Checklist 53: the first MAC of AD:BC:CE:0:0:0/24.
	m, i, err := s.AllocateNext([]netx.MACRange{macRange(t, "AD:BC:CE:0:0:0/24")}, AnyMAC)
	if err != nil || i != 0 || m.EUI() != "AD-BC-CE-00-00-00" {
		t.Fatalf("%v %d %v", m, i, err)
	}
	// Checklist 79: /48 holds one MAC; /47 two, then the next range.
	s = NewMACSet(1)
	ranges := []netx.MACRange{macRange(t, "BC:76:4E:20:00:00/48"), macRange(t, "BC:76:4E:30:00:00/47"), macRange(t, "BC:76:4E:40:00:00/40")}
	var got []string
	var idx []int
	for k := 0; k < 4; k++ {
		m, i, err := s.AllocateNext(ranges, AnyMAC)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.String())
		idx = append(idx, i)
	}
	want := []string{"bc:76:4e:20:00:00", "bc:76:4e:30:00:00", "bc:76:4e:30:00:01", "bc:76:4e:40:00:00"}
	for k := range want {
		if got[k] != want[k] {
			t.Fatalf("got %v", got)
		}
	}
	if idx[0] != 0 || idx[1] != 1 || idx[2] != 1 || idx[3] != 2 {
		t.Fatal(idx)
	}
	if _, _, err := s.AllocateNext(ranges[:2], AnyMAC); !errors.Is(err, ErrNoMoreMACs) {
		t.Fatalf("full: %v", err)
	}
	// Freed MACs are reused.
	if err := s.Release(0xbc764e300000); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := s.AllocateNext(ranges, AnyMAC); m != 0xbc764e300000 {
		t.Fatalf("reuse %v", m)
	}
	if err := s.Release(0x1); !errors.Is(err, ErrMACNotAllocated) {
		t.Fatal(err)
	}
	// A caller-supplied MAC bypasses ranges but stays unique.
	if err := s.Allocate(0xbc764e400000); !errors.Is(err, ErrMACInUse) {
		t.Fatal(err)
	}
	if err := s.Allocate(0x525400000001); err != nil || s.Len() != 5 || s.CountIn(ranges[1]) != 2 {
		t.Fatalf("%v %d", err, s.Len())
	}
	if err := CheckMACInRange(ranges[0], 0xbc764e200001); !errors.Is(err, ErrMACOutside) {
		t.Fatal(err)
	}
	clone := s.Clone()
	_ = s.Release(0x525400000001)
	if !clone.Contains(0x525400000001) {
		t.Fatal("clone not isolated")
	}
}

func TestMACLocalUnicast(t *testing.T) {
	s := NewMACSet(2)
	// 00:00:00:00:00:00/6 spans first octets 0x00–0x03; only 0x02 is LA
	// unicast.
	r := macRange(t, "00:00:00:00:00:00/6")
	m, err := s.NextFree(r, LocalUnicast)
	if err != nil || m.String() != "02:00:00:00:00:00" || !m.IsLocalUnicast() {
		t.Fatalf("%v %v", m, err)
	}
	// A range with a multicast first octet has nothing to give.
	if _, err := s.NextFree(macRange(t, "01:00:00:00:00:00/8"), LocalUnicast); !errors.Is(err, ErrNoMoreMACs) {
		t.Fatal(err)
	}
	// Every LA unicast MAC of a wider range, in order: 0x02, 0x06, 0x0a …
	wide := macRange(t, "04:00:00:00:00:00/6") // 0x04–0x07
	if m, _ := s.NextFree(wide, LocalUnicast); m.String() != "06:00:00:00:00:00" {
		t.Fatal(m)
	}
	if m, _ := s.NextFree(macRange(t, "00:00:00:00:00:00/0"), LocalUnicast); m.String() != "02:00:00:00:00:00" {
		t.Fatal(m)
	}
	top := macRange(t, "fc:00:00:00:00:00/6") // 0xfc–0xff: 0xfe
	if m, _ := s.NextFree(top, LocalUnicast); m.String() != "fe:00:00:00:00:00" {
		t.Fatal(m)
	}
	if !macRange(t, "52:54:00:00:00:00/24").IsLocalUnicast() {
		t.Fatal("52:54:00 is LA unicast")
	}
	// Held MACs inside the LA block are skipped with one look-up.
	for i := 0; i < 100; i++ {
		if err := s.Allocate(netx.MAC(0x020000000000 + i)); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := s.NextFree(r, LocalUnicast); m != 0x020000000064 {
		t.Fatal(m)
	}
}
