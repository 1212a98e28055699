package state

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// scaleState is a store of one member's CloudCIX subnets, 100 in each /16
// allocation, perSubnet addresses in each, and subnets/4 Melange /24
// blocks of 50 tenants, each in a network of its own; built in one
// transaction (index 1).
func scaleState(tb testing.TB, subnets, perSubnet int) *Store {
	tb.Helper()
	s := New()
	tx := s.Write(1, t0)
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tx.Abort()
			tb.Fatal(err)
		}
	}
	_, err := tx.Bootstrap("CIX", "root", &TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_root"}, Hash: "hash-root"})
	must(err)
	m, err := tx.MemberCreate(&api.Member{Name: "acme"})
	must(err)
	var alloc *api.IPBlock
	for i := range subnets {
		if i%100 == 0 {
			asn, err := tx.ASNCreate(&api.ASN{MemberID: m.ID, Number: uint64(65000 + i/100)})
			must(err)
			alloc, err = tx.IPBlockCreate(&api.IPBlock{Dialect: api.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: fmt.Sprintf("10.%d.0.0/16", i/100)})
			must(err)
		}
		sn, err := tx.IPBlockCreate(&api.IPBlock{Dialect: api.DialectCloudCIX, ParentID: alloc.ID,
			CIDR: fmt.Sprintf("10.%d.%d.0/24", i/100, i%100), Gateway: fmt.Sprintf("10.%d.%d.1", i/100, i%100)})
		must(err)
		for range perSubnet {
			_, err := tx.IPAddressCreate(&api.IPAddress{BlockID: sn.ID})
			must(err)
		}
	}
	var tenants []uint64
	for i := range 50 {
		t, err := tx.MemberCreate(&api.Member{Name: fmt.Sprintf("tenant-%d", i)})
		must(err)
		tenants = append(tenants, t.ID)
	}
	for i := range subnets / 4 {
		_, err := tx.IPBlockCreate(&api.IPBlock{Dialect: api.DialectMelange, MemberID: tenants[i%50],
			CIDR: fmt.Sprintf("172.%d.%d.0/24", 16+i/256, i%256), NetworkID: fmt.Sprintf("net-%d", i)})
		must(err)
	}
	tx.Commit()
	return s
}

// BenchmarkIPBlockCreateScale: one block create (aborted) in a state of
// 1,000 and of 20,000 CloudCIX subnets (and a quarter as many Melange
// blocks): a CloudCIX subnet among the 100 of its allocation, and a Melange
// top-level block in a network of its own. The overlap checks read the
// blocks they compare with from the indexes, so the cost does not grow with
// the other allocations' subnets (docs/benchmarks.md, "Scale audit").
func BenchmarkIPBlockCreateScale(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		s := scaleState(b, n, 0)
		run := func(name string, blk func() *api.IPBlock) {
			b.Run(fmt.Sprintf("%s/subnets=%d", name, n), func(b *testing.B) {
				for b.Loop() {
					tx := s.Write(2, t0.Add(time.Second))
					if _, err := tx.IPBlockCreate(blk()); err != nil {
						b.Fatal(err)
					}
					tx.Abort()
				}
			})
		}
		alloc := s.Read().IPBlockChildren(0)[0]
		run("cloudcix_subnet", func() *api.IPBlock {
			return &api.IPBlock{Dialect: api.DialectCloudCIX, ParentID: alloc.ID, CIDR: "10.0.200.0/24"}
		})
		run("melange_block", func() *api.IPBlock {
			return &api.IPBlock{Dialect: api.DialectMelange, MemberID: 3, CIDR: "192.168.0.0/24", NetworkID: "net-new"}
		})
	}
}

// BenchmarkSnapshotScale: persisting and restoring a snapshot of 1,000
// and of 20,000 subnets with 5 addresses each (docs/benchmarks.md, "Scale
// audit"): the cost should grow with the state, not faster.
func BenchmarkSnapshotScale(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		s := scaleState(b, n, 5)
		var snap bytes.Buffer
		if err := s.Read().Persist(&snap); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("persist/subnets=%d", n), func(b *testing.B) {
			cpu := processCPU()
			for b.Loop() {
				if err := s.Read().Persist(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
		b.Run(fmt.Sprintf("restore/subnets=%d", n), func(b *testing.B) {
			b.SetBytes(int64(snap.Len()))
			var peak, kept uint64
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				hw := startHeapWatch()
				b.StartTimer()
				c0 := processCPU()
				st := New()
				if err := st.Restore(bytes.NewReader(snap.Bytes())); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU() - c0
				b.StopTimer()
				p, k := hw.stop()
				peak, kept = max(peak, p), max(kept, k)
				runtime.KeepAlive(st)
				b.StartTimer()
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(kept)/(1<<20), "kept-heap-MB")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		})
		b.Run(fmt.Sprintf("purge_due/subnets=%d", n), func(b *testing.B) {
			for b.Loop() {
				s.Read().IPPurgeDue(t0)
			}
		})
	}
}

// BenchmarkDomainCreateScale: one domain create, aborted, with 1,000 and
// with 50,000 domains of 500 members in the state (docs/benchmarks.md,
// "Scale audit"): the overlap check with the other members' domains.
func BenchmarkDomainCreateScale(b *testing.B) {
	for _, n := range []int{1000, 50000} {
		s := New()
		tx := s.Write(1, t0)
		if _, err := tx.Bootstrap("CIX", "root", &TokenRecord{Hash: "h"}); err != nil {
			b.Fatal(err)
		}
		var members []uint64
		for i := range 500 {
			m, err := tx.MemberCreate(&api.Member{Name: fmt.Sprintf("m%d", i)})
			if err != nil {
				b.Fatal(err)
			}
			members = append(members, m.ID)
		}
		for i := range n {
			if _, err := tx.DomainCreate(&api.Domain{MemberID: members[i%500], Name: fmt.Sprintf("zone%d.tenant%d.example", i, i%500)}); err != nil {
				b.Fatal(err)
			}
		}
		tx.Commit()
		b.Run(fmt.Sprintf("domains=%d", n), func(b *testing.B) {
			for b.Loop() {
				tx := s.Write(2, t0.Add(time.Second))
				if _, err := tx.DomainCreate(&api.Domain{MemberID: members[0], Name: "new.zone.tenant0.example"}); err != nil {
					b.Fatal(err)
				}
				tx.Abort()
			}
		})
	}
}

// processCPU is the CPU time the process has used (user and system, all
// threads, the collector's included): on a shared machine a fairer
// measure of work than the wall-clock time of an operation.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapWatch samples the heap (bytes in objects, live or not yet swept
// garbage) every millisecond from a collection on, to report the peak a
// restore needs on top of the heap it started with.
type heapWatch struct {
	base  uint64
	peak  atomic.Uint64
	done  chan struct{}
	ended chan struct{}
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapWatch() *heapWatch {
	runtime.GC()
	h := &heapWatch{base: heapObjects(), done: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(h.ended)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := heapObjects(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.done:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// stop returns the peak above the starting heap, and what is left above it
// after a collection (the restored state, while the caller keeps it).
func (h *heapWatch) stop() (peak, kept uint64) {
	close(h.done)
	<-h.ended
	if v := heapObjects(); v > h.peak.Load() {
		h.peak.Store(v)
	}
	runtime.GC()
	sub := func(v uint64) uint64 {
		if v < h.base {
			return 0
		}
		return v - h.base
	}
	return sub(h.peak.Load()), sub(heapObjects())
}

// heldParent is a store with a CloudCIX /12 subnet holding n addresses,
// and that subnet's id.
func heldParent(tb testing.TB, n int) (*Store, uint64) {
	tb.Helper()
	f := newFixture(tb)
	f.bootstrap()
	m := f.member("acme")
	var sn *api.IPBlock
	f.ok("subnet", func(t *Txn) error {
		asn, err := t.ASNCreate(&api.ASN{MemberID: m.ID, Number: 65000})
		if err != nil {
			return err
		}
		alloc, err := t.IPBlockCreate(&api.IPBlock{Dialect: api.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: "10.0.0.0/8"})
		if err != nil {
			return err
		}
		if sn, err = t.IPBlockCreate(&api.IPBlock{Dialect: api.DialectCloudCIX, ParentID: alloc.ID, CIDR: "10.0.0.0/12", Gateway: "10.0.0.1"}); err != nil {
			return err
		}
		for range n {
			if _, err := t.IPAddressCreate(&api.IPAddress{BlockID: sn.ID}); err != nil {
				return err
			}
		}
		return nil
	})
	return f.s, sn.ID
}

// refusedChild is a subnet create under parent, refused (109: the parent
// holds addresses).
func refusedChild(tb testing.TB, s *Store, parent uint64) {
	tx := s.Write(1<<20, t0)
	defer tx.Abort()
	_, err := tx.IPBlockCreate(&api.IPBlock{Dialect: api.DialectCloudCIX, ParentID: parent, CIDR: "10.0.1.0/24", Gateway: "10.0.1.1"})
	if err == nil {
		tb.Fatal("a child of a subnet holding addresses was created")
	}
}

// BenchmarkIPBlockCreateHeldParent: a subnet create refused because its
// parent holds addresses (10,000 or 100,000 of them): whether the parent
// holds any is the first row of its part of the address index, where
// loading every row made the refusal O(n) (docs/benchmarks.md, "Scale
// audit").
func BenchmarkIPBlockCreateHeldParent(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		s, parent := heldParent(b, n)
		b.Run(fmt.Sprintf("addresses=%d", n), func(b *testing.B) {
			for b.Loop() {
				refusedChild(b, s, parent)
			}
		})
	}
}

// TestEmptinessChecksDoNotLoadRows: the refused create of a subnet under a
// parent holding 20,000 addresses allocates far less than the 160 KB a
// slice of its rows takes.
func TestEmptinessChecksDoNotLoadRows(t *testing.T) {
	s, parent := heldParent(t, 20000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	refusedChild(t, s, parent)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("a refused subnet create allocated %d bytes: the parent's address rows were loaded", n)
	}
}

// scatteredBlock is a store with a Melange /12 block holding n addresses,
// every other one (n runs of the held set, none adjacent), and the block.
func scatteredBlock(tb testing.TB, n int) (*fixture, *api.IPBlock) {
	tb.Helper()
	f := newFixture(tb)
	f.bootstrap()
	m := f.member("acme")
	var blk *api.IPBlock
	f.ok("block", func(t *Txn) (err error) {
		if blk, err = t.IPBlockCreate(&api.IPBlock{Dialect: api.DialectMelange, MemberID: m.ID, CIDR: "10.0.0.0/12", Gateway: "10.0.0.1"}); err != nil {
			return err
		}
		for i := range n {
			x := 2 + 2*i
			a := fmt.Sprintf("10.%d.%d.%d", x>>16, x>>8&255, x&255)
			if _, err := t.IPAddressCreate(&api.IPAddress{BlockID: blk.ID, Address: a}); err != nil {
				return err
			}
		}
		return nil
	})
	return f, blk
}

// engineRebuilds is the Rebuilds count of block id's stored engine.
func engineRebuilds(s *Store, id uint64) int {
	rec, _ := get[*BlockRecord](s.Read(), IPBlocks, id)
	return rec.engine.Rebuilds()
}

// BenchmarkIPBlockUpdateRename: renaming a block that holds 100,000
// scattered addresses (aborted). A rename changes neither the gateway nor
// the policy, so the engine's derived index is not rebuilt: two full
// rebuilds inside Apply before (docs/benchmarks.md, "Scale audit").
func BenchmarkIPBlockUpdateRename(b *testing.B) {
	f, blk := scatteredBlock(b, 100000)
	for b.Loop() {
		tx := f.s.Write(1<<20, t0)
		n := *blk
		n.Name = "renamed"
		if _, err := tx.IPBlockUpdate(&n, 0); err != nil {
			b.Fatal(err)
		}
		tx.Abort()
	}
}

// TestIPBlockRenameDoesNotRebuild: a rename (and a change of generator)
// leaves the engine's derived index as it is; a new gateway rebuilds it
// once.
func TestIPBlockRenameDoesNotRebuild(t *testing.T) {
	f, blk := scatteredBlock(t, 1000)
	before := engineRebuilds(f.s, blk.ID)
	upd := func(b api.IPBlock) {
		t.Helper()
		f.ok("update", func(t *Txn) error { _, err := t.IPBlockUpdate(&b, 0); return err })
	}
	n := *blk
	n.Name = "renamed"
	upd(n)
	if got := engineRebuilds(f.s, blk.ID) - before; got != 0 {
		t.Fatalf("a rename rebuilt the engine's index %d time(s)", got)
	}
	n.Gateway = "10.0.0.3"
	upd(n)
	if got := engineRebuilds(f.s, blk.ID) - before; got != 1 {
		t.Fatalf("a new gateway rebuilt the engine's index %d time(s), want 1", got)
	}
}
