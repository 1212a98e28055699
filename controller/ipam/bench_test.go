package ipam

import (
	"fmt"
	"math/rand"
	"net/netip"
	"testing"

	"github.com/regentcloud/regent/pkg/netx"
)

// benchBlock returns a block holding n addresses in one of two patterns:
// "seq" = the n lowest allocatable addresses (sequential allocation from the
// bottom); "holes" = sequential allocation of n/0.8 addresses of which a
// random 20% were released and purged, leaving ≈ 0.16·n single-address
// holes spread over the whole run.
func benchBlock(b *testing.B, cfg Config, n int, pattern string) *Block {
	b.Helper()
	blk := mustBlock(b, cfg)
	rng := rand.New(rand.NewSource(1))
	total := n
	if pattern == "holes" {
		total = n * 5 / 4
	}
	addrs := make([]netip.Addr, 0, n)
	x := netx.FirstU128(cfg.Prefix)
	width := cfg.Prefix.Addr().BitLen()
	for i := 0; i < total; {
		a := netx.MustU128ToAddr(x, width)
		x = x.Add64(1)
		if blk.Why(a) != ReasonNone {
			continue // skip what the generator would skip
		}
		i++
		if pattern == "holes" && rng.Intn(5) == 0 {
			continue
		}
		addrs = append(addrs, a)
	}
	if err := blk.Load(addrs, nil); err != nil {
		b.Fatal(err)
	}
	return blk
}

var benchSink netip.Addr

func benchConfigs() []struct {
	name string
	cfg  Config
} {
	return []struct {
		name string
		cfg  Config
	}{
		{"v6-64", Config{Prefix: netip.MustParsePrefix("2001:db8:0:1::/64"), Gateway: netip.MustParseAddr("2001:db8:0:1::1"), Seed: 42}},
		{"v4-8", Config{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Gateway: netip.MustParseAddr("10.0.0.1"), Dialect: CloudCIX, Seed: 42}},
		{"v4-8-octets", Config{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Gateway: netip.MustParseAddr("10.0.0.1"), Seed: 42,
			Policy: Policy{Octets: []int64{0, 255}, Ranges: []Range{{Offset: 0, Length: 16}}}}},
	}
}

// BenchmarkNextFree measures one NextFree (read-only) on blocks holding
// 10k, 100k and 1M addresses.
func BenchmarkNextFree(b *testing.B) {
	for _, c := range benchConfigs() {
		for _, pattern := range []string{"seq", "holes"} {
			for _, n := range []int{10_000, 100_000, 1_000_000} {
				b.Run(fmt.Sprintf("%s/%s/%d", c.name, pattern, n), func(b *testing.B) {
					blk := benchBlock(b, c.cfg, n, pattern)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						a, err := blk.NextFree(Request{})
						if err != nil {
							b.Fatal(err)
						}
						benchSink = a
					}
					b.ReportMetric(float64(blk.Held().Len()), "intervals")
				})
			}
		}
	}
}

// BenchmarkAllocateNext measures NextFree plus the insert (path copying
// included) as the block keeps filling; every 4096 allocations the block is
// reset to its starting snapshot with an O(1) Clone.
func BenchmarkAllocateNext(b *testing.B) {
	for _, c := range benchConfigs() {
		for _, pattern := range []string{"seq", "holes"} {
			for _, n := range []int{10_000, 100_000, 1_000_000} {
				b.Run(fmt.Sprintf("%s/%s/%d", c.name, pattern, n), func(b *testing.B) {
					base := benchBlock(b, c.cfg, n, pattern)
					blk := base.Clone()
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if i%4096 == 0 {
							blk = base.Clone()
						}
						a, err := blk.AllocateNext(Request{})
						if err != nil {
							b.Fatal(err)
						}
						benchSink = a
					}
				})
			}
		}
	}
}

// BenchmarkNextFreeEUI64 measures the MAC-based generator in a /64 holding
// n addresses generated from random MACs, asking for a MAC whose first
// candidates are held.
func BenchmarkNextFreeEUI64(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("%d", n), func(b *testing.B) {
			cfg := Config{Prefix: netip.MustParsePrefix("2001:db8:0:1::/64"), Generator: EUI64, Seed: 42}
			blk := mustBlock(b, cfg)
			rng := rand.New(rand.NewSource(2))
			addrs := make([]netip.Addr, 0, n)
			const hot = netx.MAC(0x525400123400)
			for i := 0; i < 64; i++ { // the first 64 candidates of the hot MAC
				addrs = append(addrs, AddrFromIID(cfg.Prefix, EUI64IID(hot+netx.MAC(i))))
			}
			seen := map[netip.Addr]bool{}
			for _, a := range addrs {
				seen[a] = true
			}
			for len(addrs) < n {
				a := AddrFromIID(cfg.Prefix, EUI64IID(netx.MAC(rng.Int63n(1<<48))))
				if !seen[a] {
					seen[a] = true
					addrs = append(addrs, a)
				}
			}
			if err := blk.Load(addrs, nil); err != nil {
				b.Fatal(err)
			}
			req := Request{MAC: hot, HasMAC: true}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a, err := blk.NextFree(req)
				if err != nil {
					b.Fatal(err)
				}
				benchSink = a
			}
		})
	}
}
