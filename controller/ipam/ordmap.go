package ipam

import (
	"time"

	"github.com/regentcloud/regent/pkg/netx"
)

// ordKey is a totally ordered key with a seeded hash for treap priorities.
type ordKey[K any] interface {
	cmp(K) int
	hash(seed uint64) uint64
}

// pmap is a persistent ordered map: a treap with path copying, like
// netx.IntervalSet. Updates return a new map and never modify shared nodes.
type pmap[K ordKey[K], V any] struct {
	root *pnode[K, V]
	seed uint64
}

type pnode[K ordKey[K], V any] struct {
	key         K
	val         V
	prio        uint64
	left, right *pnode[K, V]
	n           int
}

func (t *pnode[K, V]) size() int {
	if t == nil {
		return 0
	}
	return t.n
}

func (t *pnode[K, V]) with(l, r *pnode[K, V]) *pnode[K, V] {
	if t.left == l && t.right == r {
		return t
	}
	return &pnode[K, V]{key: t.key, val: t.val, prio: t.prio, left: l, right: r, n: 1 + l.size() + r.size()}
}

// psplit returns the nodes whose key satisfies left (a predicate that holds
// for a prefix of the key order) and the rest.
func psplit[K ordKey[K], V any](t *pnode[K, V], left func(K) bool) (*pnode[K, V], *pnode[K, V]) {
	if t == nil {
		return nil, nil
	}
	if left(t.key) {
		l, r := psplit(t.right, left)
		return t.with(t.left, l), r
	}
	l, r := psplit(t.left, left)
	return l, t.with(r, t.right)
}

func pmerge[K ordKey[K], V any](a, b *pnode[K, V]) *pnode[K, V] {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if a.prio >= b.prio {
		return a.with(a.left, pmerge(a.right, b))
	}
	return b.with(pmerge(a, b.left), b.right)
}

func (m pmap[K, V]) len() int { return m.root.size() }

func (m pmap[K, V]) get(k K) (V, bool) {
	t := m.root
	for t != nil {
		switch c := k.cmp(t.key); {
		case c < 0:
			t = t.left
		case c > 0:
			t = t.right
		default:
			return t.val, true
		}
	}
	var zero V
	return zero, false
}

// put returns the map with k set to v.
func (m pmap[K, V]) put(k K, v V) pmap[K, V] {
	l, r := psplit(m.root, func(x K) bool { return x.cmp(k) < 0 })
	_, r = psplit(r, func(x K) bool { return x.cmp(k) == 0 })
	n := &pnode[K, V]{key: k, val: v, prio: k.hash(m.seed), n: 1}
	return pmap[K, V]{root: pmerge(pmerge(l, n), r), seed: m.seed}
}

// del returns the map without k.
func (m pmap[K, V]) del(k K) pmap[K, V] {
	if _, ok := m.get(k); !ok {
		return m
	}
	l, r := psplit(m.root, func(x K) bool { return x.cmp(k) < 0 })
	_, r = psplit(r, func(x K) bool { return x.cmp(k) == 0 })
	return pmap[K, V]{root: pmerge(l, r), seed: m.seed}
}

// cut splits the map into the keys satisfying left (a prefix of the order)
// and the rest.
func (m pmap[K, V]) cut(left func(K) bool) (pmap[K, V], pmap[K, V]) {
	l, r := psplit(m.root, left)
	return pmap[K, V]{root: l, seed: m.seed}, pmap[K, V]{root: r, seed: m.seed}
}

// walk calls fn in key order until it returns false.
func (m pmap[K, V]) walk(fn func(K, V) bool) {
	var stack []*pnode[K, V]
	for t := m.root; t != nil; t = t.left {
		stack = append(stack, t)
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !fn(n.key, n.val) {
			return
		}
		for t := n.right; t != nil; t = t.left {
			stack = append(stack, t)
		}
	}
}

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// addrKey orders addresses (as integers).
type addrKey netx.U128

func (a addrKey) cmp(b addrKey) int { return netx.U128(a).Cmp(netx.U128(b)) }
func (a addrKey) hash(seed uint64) uint64 {
	return mix(mix(a.Lo^seed) ^ a.Hi)
}

// timeKey orders (time, address) pairs.
type timeKey struct {
	at   time.Time
	addr netx.U128
}

func (a timeKey) cmp(b timeKey) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return a.addr.Cmp(b.addr)
}

func (a timeKey) hash(seed uint64) uint64 { return addrKey(a.addr).hash(seed ^ 0x5bd1e995) }

// deallocIndex holds the soft-deallocated addresses of a block by address
// (for Restore and look-ups) and by (time, address) (for Purge).
type deallocIndex struct {
	byAddr pmap[addrKey, time.Time]
	byTime pmap[timeKey, struct{}]
}

func newDeallocIndex(seed uint64) deallocIndex {
	return deallocIndex{byAddr: pmap[addrKey, time.Time]{seed: seed}, byTime: pmap[timeKey, struct{}]{seed: seed}}
}

func (d deallocIndex) len() int { return d.byAddr.len() }

func (d deallocIndex) get(a netx.U128) (time.Time, bool) { return d.byAddr.get(addrKey(a)) }

func (d deallocIndex) add(a netx.U128, at time.Time) deallocIndex {
	return deallocIndex{byAddr: d.byAddr.put(addrKey(a), at), byTime: d.byTime.put(timeKey{at, a}, struct{}{})}
}

func (d deallocIndex) remove(a netx.U128) deallocIndex {
	at, ok := d.get(a)
	if !ok {
		return d
	}
	return deallocIndex{byAddr: d.byAddr.del(addrKey(a)), byTime: d.byTime.del(timeKey{at, a})}
}
