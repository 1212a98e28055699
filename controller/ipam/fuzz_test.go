package ipam

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/netx"
)

func FuzzValidateIPs(f *testing.F) {
	f.Add("10.0.0.1/24,fe::/64,1.2.3.4", "10.0.0.5,::1,x")
	f.Add("10.0.0.0/ 8,10.0.0.0/+8,10.0.0.0/2_4", "")
	f.Add("", "255.255.255.255")
	f.Fuzz(func(t *testing.T, ranges, addrs string) {
		res, err := ValidateIPs(&ranges, &addrs)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, r := range res.AddressRanges {
			if seen[r.Input] {
				t.Fatalf("duplicate key %q", r.Input)
			}
			seen[r.Input] = true
			if r.Valid != (r.Error == nil) || r.Valid != (r.Details != nil) {
				t.Fatalf("inconsistent %+v", r)
			}
			if r.Valid {
				p, err := netx.ParsePrefix(r.Details.CIDR)
				if err != nil || p.String() != r.Details.CIDR {
					t.Fatalf("cidr %q: %v", r.Details.CIDR, err)
				}
			} else if ValidatorMessage(r.Error.Code) == "" {
				t.Fatalf("unknown code %q", r.Error.Code)
			}
		}
		for _, a := range res.IPAddresses {
			if a.Valid != (a.Details != nil) {
				t.Fatalf("inconsistent %+v", a)
			}
			if a.Valid && a.Details.ParentNetwork != "" {
				p, err := netip.ParsePrefix(a.Details.ParentNetwork)
				if err != nil || !p.Masked().Contains(netip.MustParseAddr(a.Input)) {
					t.Fatalf("parent %q of %q", a.Details.ParentNetwork, a.Input)
				}
			}
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatal(err)
		}
		if ranges != "" && len(res.AddressRanges) > strings.Count(ranges, ",")+1 {
			t.Fatal("more results than items")
		}
	})
}

// FuzzBlockOps decodes the input into a sequence of operations on a small
// block and checks every step against the brute-force model.
func FuzzBlockOps(f *testing.F) {
	f.Add([]byte{0, 0, 1, 5, 2, 5, 3, 0, 4, 1, 5, 200})
	f.Add([]byte{5, 7, 5, 0, 0, 0, 0, 0, 6, 3, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		cfg := Config{Prefix: pfx("10.0.0.0/26"), Gateway: ip("10.0.0.1"), Policy: Policy{Octets: []int64{3}}}
		b := mustBlock(t, cfg)
		m := newModel(cfg)
		now := time.Unix(0, 0)
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%7, int(ops[i+1])
			addr := m.addr(arg % m.size)
			now = now.Add(time.Second)
			switch op {
			case 0:
				got, err := b.AllocateNext(Request{})
				want, ok := m.next(Request{})
				if ok != (err == nil) || (ok && got != want) {
					t.Fatalf("op %d: next %v %v; model %v %v", i, got, err, want, ok)
				}
				if ok {
					off, _ := m.off(got)
					m.state[off] = Allocated
				}
			case 1:
				err := b.Allocate(addr)
				if want := m.why(addr); (want == ReasonNone) != (err == nil) {
					t.Fatalf("op %d: allocate %v: %v; model %v", i, addr, err, want)
				}
				if err == nil {
					m.state[arg%m.size] = Allocated
				}
			case 2:
				err := b.Release(addr, now)
				if (err == nil) != (m.state[arg%m.size] == Allocated) {
					t.Fatalf("op %d: release %v: %v", i, addr, err)
				}
				if err == nil {
					m.state[arg%m.size], m.at[arg%m.size] = Deallocated, now
				}
			case 3:
				err := b.Restore(addr)
				if (err == nil) != (m.state[arg%m.size] == Deallocated) {
					t.Fatalf("op %d: restore %v: %v", i, addr, err)
				}
				if err == nil {
					m.state[arg%m.size] = Allocated
				}
			case 4:
				cutoff := now.Add(-time.Duration(arg%8) * time.Second)
				got := b.Purge(cutoff)
				n := 0
				for off, s := range m.state {
					if s == Deallocated && !m.at[off].After(cutoff) {
						m.state[off] = Free
						n++
					}
				}
				if n != len(got) {
					t.Fatalf("op %d: purged %d; model %d", i, len(got), n)
				}
			case 5:
				p := Policy{Octets: []int64{int64(arg % 64)}, Ranges: []Range{{Offset: int64(arg%90) - 45, Length: int64(arg % 7)}}}
				if err := b.SetPolicy(p); err != nil {
					t.Fatal(err)
				}
				m.policy = p
			case 6:
				if err := b.SetGateway(addr); err != nil {
					t.Fatal(err)
				}
				m.gw = addr
			}
			for off := 0; off < m.size; off++ {
				if r := b.Why(m.addr(off)); r != m.why(m.addr(off)) {
					t.Fatalf("op %d: Why(%v) = %v; model %v", i, m.addr(off), r, m.why(m.addr(off)))
				}
			}
		}
		if _, err := b.NextFree(Request{}); err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		checkBlockInvariants(t, b)
	})
}
