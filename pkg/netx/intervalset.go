package netx

import (
	"errors"
	"fmt"
	"slices"
)

// Interval is the closed range [Lo, Hi] of U128 values (Lo ≤ Hi).
type Interval struct {
	Lo, Hi U128
}

// Len returns the number of values in iv, Hi − Lo + 1, saturating at MaxU128
// for the full range [0, MaxU128].
func (iv Interval) Len() U128 { return iv.Hi.Sub(iv.Lo).AddSat(U64(1)) }

// Contains reports whether x lies in iv.
func (iv Interval) Contains(x U128) bool { return !x.Less(iv.Lo) && !iv.Hi.Less(x) }

// String returns "[lo, hi]" in decimal.
func (iv Interval) String() string { return "[" + iv.Lo.String() + ", " + iv.Hi.String() + "]" }

// IntervalSet is an immutable set of U128 values stored as sorted, disjoint,
// non-adjacent closed intervals (adjacent or overlapping inserts coalesce).
// The zero value is the empty set. Every update returns a new set; the old
// one is unchanged and shares all untouched nodes with the new one, so a copy
// of the value is an O(1) snapshot, safe for concurrent readers.
//
// # Why a persistent treap
//
// The IPAM needs, for up to millions of allocated addresses per block,
// O(log n) insert, remove, membership and "first free at or after x", cheap
// snapshots for go-memdb's MVCC (a block's set is replaced, never mutated,
// inside a write transaction) and a deterministic structure for the raft FSM.
//   - A sorted slice with binary search has O(log n) look-ups but O(n)
//     inserts and removals (the copy), and a snapshot is an O(n) copy.
//   - A mutable balanced tree (red-black, B-tree) needs a deep copy per
//     snapshot or a copy-on-write protocol.
//   - A persistent treap with path copying gives expected O(log n) for every
//     update (≈ 2·ln n new nodes), O(1) snapshots, and is short enough to
//     verify (see Check). A persistent B-tree would use less memory per
//     interval (fewer pointers) at the price of much more code; nodes here
//     are 80 bytes and coalescing keeps the interval count far below the
//     address count for realistic allocation patterns (sequential
//     allocation is one interval).
//
// Priorities are a keyed hash (splitmix64) of the interval's start and the
// set's seed, not random numbers, so the tree depends only on the operations
// applied: replicas stay byte-for-byte identical. Give untrusted key choices
// (tenants picking explicit addresses) a secret per-cluster seed so that they
// cannot build a degenerate tree.
//
// Subtree aggregates (number of intervals, number of values) make Len, Count
// and CountBelow O(1)/O(log n).
type IntervalSet struct {
	root *ivNode
	seed uint64
}

type ivNode struct {
	iv          Interval
	prio        uint64
	left, right *ivNode
	count       U128 // values in the subtree, saturating
	n           int  // intervals in the subtree
}

// NewIntervalSet returns an empty set whose tree shape is keyed by seed.
func NewIntervalSet(seed uint64) IntervalSet { return IntervalSet{seed: seed} }

// Seed returns the seed the set was created with.
func (s IntervalSet) Seed() uint64 { return s.seed }

// Len returns the number of intervals.
func (s IntervalSet) Len() int { return s.root.size() }

// Count returns the number of values in the set (saturating at MaxU128).
func (s IntervalSet) Count() U128 { return s.root.total() }

// IsEmpty reports whether the set has no values.
func (s IntervalSet) IsEmpty() bool { return s.root == nil }

func (t *ivNode) size() int {
	if t == nil {
		return 0
	}
	return t.n
}

func (t *ivNode) total() U128 {
	if t == nil {
		return U128{}
	}
	return t.count
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (s IntervalSet) prio(lo U128) uint64 {
	return splitmix64(splitmix64(lo.Lo^s.seed) ^ lo.Hi)
}

func (s IntervalSet) newNode(iv Interval) *ivNode {
	return &ivNode{iv: iv, prio: s.prio(iv.Lo), count: iv.Len(), n: 1}
}

// with returns t with the given children, copying t only if they differ.
func (t *ivNode) with(l, r *ivNode) *ivNode {
	if t.left == l && t.right == r {
		return t
	}
	n := &ivNode{iv: t.iv, prio: t.prio, left: l, right: r}
	n.fix()
	return n
}

func (t *ivNode) fix() {
	t.n = 1 + t.left.size() + t.right.size()
	t.count = t.left.total().AddSat(t.iv.Len()).AddSat(t.right.total())
}

// split returns the nodes with Lo < k and those with Lo ≥ k.
func split(t *ivNode, k U128) (*ivNode, *ivNode) {
	if t == nil {
		return nil, nil
	}
	if t.iv.Lo.Less(k) {
		l, r := split(t.right, k)
		return t.with(t.left, l), r
	}
	l, r := split(t.left, k)
	return l, t.with(r, t.right)
}

// merge joins a and b where every key of a is below every key of b.
func merge(a, b *ivNode) *ivNode {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if a.prio >= b.prio {
		return a.with(a.left, merge(a.right, b))
	}
	return b.with(merge(a, b.left), b.right)
}

func maxNode(t *ivNode) *ivNode {
	if t == nil {
		return nil
	}
	for t.right != nil {
		t = t.right
	}
	return t
}

func removeMax(t *ivNode) *ivNode {
	if t.right == nil {
		return t.left
	}
	return t.with(t.left, removeMax(t.right))
}

// Find returns the interval containing x.
func (s IntervalSet) Find(x U128) (Interval, bool) {
	t := s.root
	for t != nil {
		switch {
		case x.Less(t.iv.Lo):
			t = t.left
		case t.iv.Hi.Less(x):
			t = t.right
		default:
			return t.iv, true
		}
	}
	return Interval{}, false
}

// Contains reports whether x is in the set.
func (s IntervalSet) Contains(x U128) bool {
	_, ok := s.Find(x)
	return ok
}

// ContainsRange reports whether every value of [lo, hi] is in the set.
func (s IntervalSet) ContainsRange(lo, hi U128) bool {
	iv, ok := s.Find(lo)
	return ok && !iv.Hi.Less(hi)
}

// NextFree returns the smallest value ≥ x that is not in the set; ok is false
// when every value from x to MaxU128 is in the set. Because intervals are
// kept coalesced this is one O(log n) look-up.
func (s IntervalSet) NextFree(x U128) (U128, bool) {
	iv, ok := s.Find(x)
	if !ok {
		return x, true
	}
	n, over := iv.Hi.Inc()
	return n, !over
}

// Ceil returns the first interval whose Hi ≥ x (the one containing x, or the
// next one above x).
func (s IntervalSet) Ceil(x U128) (Interval, bool) {
	var best *ivNode
	t := s.root
	for t != nil {
		if t.iv.Hi.Less(x) {
			t = t.right
		} else {
			best = t
			t = t.left
		}
	}
	if best == nil {
		return Interval{}, false
	}
	return best.iv, true
}

// Floor returns the last interval whose Lo ≤ x.
func (s IntervalSet) Floor(x U128) (Interval, bool) {
	var best *ivNode
	t := s.root
	for t != nil {
		if x.Less(t.iv.Lo) {
			t = t.left
		} else {
			best = t
			t = t.right
		}
	}
	if best == nil {
		return Interval{}, false
	}
	return best.iv, true
}

// Min returns the lowest interval.
func (s IntervalSet) Min() (Interval, bool) {
	t := s.root
	if t == nil {
		return Interval{}, false
	}
	for t.left != nil {
		t = t.left
	}
	return t.iv, true
}

// Max returns the highest interval.
func (s IntervalSet) Max() (Interval, bool) {
	t := maxNode(s.root)
	if t == nil {
		return Interval{}, false
	}
	return t.iv, true
}

// Add returns the set with x added.
func (s IntervalSet) Add(x U128) IntervalSet { return s.Insert(x, x) }

// Delete returns the set with x removed.
func (s IntervalSet) Delete(x U128) IntervalSet { return s.Remove(x, x) }

// Insert returns the set with every value of [lo, hi] added; it coalesces
// with overlapping and adjacent intervals. Nothing changes when hi < lo.
func (s IntervalSet) Insert(lo, hi U128) IntervalSet {
	if hi.Less(lo) || s.ContainsRange(lo, hi) {
		return s
	}
	l, r := split(s.root, lo)
	if m := maxNode(l); m != nil {
		if next, over := m.iv.Hi.Inc(); over || !next.Less(lo) {
			lo = m.iv.Lo
			hi = Max128(hi, m.iv.Hi)
			l = removeMax(l)
		}
	}
	// Absorb every interval of r that starts at or before hi+1.
	if hi.IsMax() {
		r = nil
	} else {
		bound, _ := hi.Inc()
		var mid *ivNode
		if bound.IsMax() {
			mid, r = r, nil
		} else {
			after, _ := bound.Inc()
			mid, r = split(r, after)
		}
		if m := maxNode(mid); m != nil {
			hi = Max128(hi, m.iv.Hi)
		}
	}
	return IntervalSet{root: merge(merge(l, s.newNode(Interval{lo, hi})), r), seed: s.seed}
}

// Remove returns the set with every value of [lo, hi] removed, splitting an
// interval that straddles either end. Nothing changes when hi < lo.
func (s IntervalSet) Remove(lo, hi U128) IntervalSet {
	if hi.Less(lo) {
		return s
	}
	if c, ok := s.Ceil(lo); !ok || hi.Less(c.Lo) {
		return s // nothing in [lo, hi]
	}
	l, r := split(s.root, lo)
	var pieces [2]Interval
	np := 0
	if m := maxNode(l); m != nil && !m.iv.Hi.Less(lo) {
		l = removeMax(l)
		below, _ := lo.Dec() // lo > m.Lo ≥ 0
		pieces[np] = Interval{m.iv.Lo, below}
		np++
		if hi.Less(m.iv.Hi) {
			above, _ := hi.Inc()
			pieces[np] = Interval{above, m.iv.Hi}
			np++
		}
	}
	if hi.IsMax() {
		r = nil
	} else {
		above, _ := hi.Inc()
		mid, rest := split(r, above)
		if m := maxNode(mid); m != nil && hi.Less(m.iv.Hi) {
			pieces[np] = Interval{above, m.iv.Hi}
			np++
		}
		r = rest
	}
	t := l
	for i := 0; i < np; i++ {
		t = merge(t, s.newNode(pieces[i]))
	}
	return IntervalSet{root: merge(t, r), seed: s.seed}
}

// CountBelow returns the number of values in the set that are < x.
func (s IntervalSet) CountBelow(x U128) U128 {
	var res U128
	t := s.root
	for t != nil {
		if !t.iv.Lo.Less(x) {
			t = t.left
			continue
		}
		res = res.AddSat(t.left.total())
		if t.iv.Hi.Less(x) {
			res = res.AddSat(t.iv.Len())
			t = t.right
			continue
		}
		return res.AddSat(x.Sub(t.iv.Lo))
	}
	return res
}

// CountIn returns the number of values of the set in [lo, hi].
func (s IntervalSet) CountIn(lo, hi U128) U128 {
	if hi.Less(lo) {
		return U128{}
	}
	var upTo U128
	if hi.IsMax() {
		upTo = s.Count()
	} else {
		n, _ := hi.Inc()
		upTo = s.CountBelow(n)
	}
	return upTo.Sub(s.CountBelow(lo))
}

// WalkFrom calls fn for each interval whose Hi ≥ x, in ascending order,
// until fn returns false. Each step is amortised O(1) after an O(log n)
// descent.
func (s IntervalSet) WalkFrom(x U128, fn func(Interval) bool) {
	var stack []*ivNode
	t := s.root
	for t != nil {
		if t.iv.Hi.Less(x) {
			t = t.right
		} else {
			stack = append(stack, t)
			t = t.left
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !fn(n.iv) {
			return
		}
		for t = n.right; t != nil; t = t.left {
			stack = append(stack, t)
		}
	}
}

// Walk calls fn for every interval in ascending order until fn returns false.
func (s IntervalSet) Walk(fn func(Interval) bool) { s.WalkFrom(U128{}, fn) }

// Intervals returns all intervals in ascending order.
func (s IntervalSet) Intervals() []Interval {
	out := make([]Interval, 0, s.Len())
	s.Walk(func(iv Interval) bool { out = append(out, iv); return true })
	return out
}

// Gaps returns the complement of the set within [lo, hi]: the maximal
// intervals of [lo, hi] that hold no member, in ascending order.
func (s IntervalSet) Gaps(lo, hi U128) []Interval {
	if hi.Less(lo) {
		return nil
	}
	var out []Interval
	cur, done := lo, false
	s.WalkFrom(lo, func(iv Interval) bool {
		if hi.Less(iv.Lo) {
			return false
		}
		if cur.Less(iv.Lo) {
			end, _ := iv.Lo.Dec()
			out = append(out, Interval{cur, end})
		}
		var over bool
		cur, over = iv.Hi.Inc()
		if over || hi.Less(cur) {
			done = true
			return false
		}
		return true
	})
	if !done {
		out = append(out, Interval{cur, hi})
	}
	return out
}

// Equal reports whether s and o hold the same values.
func (s IntervalSet) Equal(o IntervalSet) bool {
	if s.root == o.root {
		return true
	}
	if s.Len() != o.Len() || s.Count() != o.Count() {
		return false
	}
	a, b := s.Intervals(), o.Intervals()
	return slices.Equal(a, b)
}

// FromIntervals builds a set with the given seed from intervals in any order;
// overlapping and adjacent intervals coalesce and empty ones (Hi < Lo) are
// dropped. It runs in O(n log n) for the sort plus O(n) for the tree.
func FromIntervals(seed uint64, ivs []Interval) IntervalSet {
	s := IntervalSet{seed: seed}
	sorted := make([]Interval, 0, len(ivs))
	for _, iv := range ivs {
		if !iv.Hi.Less(iv.Lo) {
			sorted = append(sorted, iv)
		}
	}
	slices.SortFunc(sorted, func(a, b Interval) int { return a.Lo.Cmp(b.Lo) })
	merged := sorted[:0]
	for _, iv := range sorted {
		if k := len(merged); k > 0 {
			last := &merged[k-1]
			if next, over := last.Hi.Inc(); over || !next.Less(iv.Lo) {
				last.Hi = Max128(last.Hi, iv.Hi)
				continue
			}
		}
		merged = append(merged, iv)
	}
	// Cartesian-tree construction: O(n) with a stack of the right spine.
	var stack []*ivNode
	for _, iv := range merged {
		n := &ivNode{iv: iv, prio: s.prio(iv.Lo)}
		var last *ivNode
		for len(stack) > 0 && stack[len(stack)-1].prio < n.prio {
			last = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		}
		n.left = last
		if len(stack) > 0 {
			stack[len(stack)-1].right = n
		}
		stack = append(stack, n)
	}
	if len(stack) > 0 {
		s.root = stack[0]
		fixAll(s.root)
	}
	return s
}

func fixAll(t *ivNode) {
	if t == nil {
		return
	}
	fixAll(t.left)
	fixAll(t.right)
	t.fix()
}

// Check verifies the set's invariants (order, disjoint non-adjacent
// intervals, heap order of priorities, aggregates). It is meant for tests.
func (s IntervalSet) Check() error {
	var prev *Interval
	var err error
	var walk func(t *ivNode, parentPrio uint64, isRoot bool)
	walk = func(t *ivNode, parentPrio uint64, isRoot bool) {
		if t == nil || err != nil {
			return
		}
		if !isRoot && t.prio > parentPrio {
			err = fmt.Errorf("heap order broken at %v", t.iv)
			return
		}
		if t.prio != s.prio(t.iv.Lo) {
			err = fmt.Errorf("priority of %v is not its hash", t.iv)
			return
		}
		walk(t.left, t.prio, false)
		if err != nil {
			return
		}
		if t.iv.Hi.Less(t.iv.Lo) {
			err = fmt.Errorf("empty interval %v", t.iv)
			return
		}
		if prev != nil {
			next, over := prev.Hi.Inc()
			if over || !next.Less(t.iv.Lo) {
				err = fmt.Errorf("intervals %v and %v overlap or touch", *prev, t.iv)
				return
			}
		}
		iv := t.iv
		prev = &iv
		walk(t.right, t.prio, false)
		if err != nil {
			return
		}
		if t.n != 1+t.left.size()+t.right.size() {
			err = errors.New("bad interval count aggregate")
			return
		}
		if t.count != t.left.total().AddSat(t.iv.Len()).AddSat(t.right.total()) {
			err = errors.New("bad value count aggregate")
		}
	}
	walk(s.root, 0, true)
	return err
}
