package netx

import (
	"math/big"
	"math/bits"
)

// U128 is an unsigned 128-bit integer: Hi holds the most significant 64 bits.
// The zero value is 0. Arithmetic wraps modulo 2^128 unless a method says
// otherwise.
type U128 struct {
	Hi, Lo uint64
}

// MaxU128 is 2^128 − 1.
var MaxU128 = U128{Hi: ^uint64(0), Lo: ^uint64(0)}

// U64 returns v as a U128.
func U64(v uint64) U128 { return U128{Lo: v} }

// IsZero reports whether u == 0.
func (u U128) IsZero() bool { return u.Hi == 0 && u.Lo == 0 }

// IsMax reports whether u == 2^128 − 1.
func (u U128) IsMax() bool { return u.Hi == ^uint64(0) && u.Lo == ^uint64(0) }

// Cmp returns -1, 0 or +1 as u is less than, equal to or greater than v.
func (u U128) Cmp(v U128) int {
	switch {
	case u.Hi < v.Hi:
		return -1
	case u.Hi > v.Hi:
		return 1
	case u.Lo < v.Lo:
		return -1
	case u.Lo > v.Lo:
		return 1
	}
	return 0
}

// Less reports whether u < v.
func (u U128) Less(v U128) bool { return u.Hi < v.Hi || (u.Hi == v.Hi && u.Lo < v.Lo) }

// Add returns u + v modulo 2^128.
func (u U128) Add(v U128) U128 {
	lo, c := bits.Add64(u.Lo, v.Lo, 0)
	hi, _ := bits.Add64(u.Hi, v.Hi, c)
	return U128{hi, lo}
}

// AddOverflow returns u + v and whether the true sum exceeded 2^128 − 1.
func (u U128) AddOverflow(v U128) (U128, bool) {
	lo, c := bits.Add64(u.Lo, v.Lo, 0)
	hi, c2 := bits.Add64(u.Hi, v.Hi, c)
	return U128{hi, lo}, c2 != 0
}

// AddSat returns u + v, saturating at MaxU128.
func (u U128) AddSat(v U128) U128 {
	s, o := u.AddOverflow(v)
	if o {
		return MaxU128
	}
	return s
}

// Add64 returns u + v modulo 2^128.
func (u U128) Add64(v uint64) U128 { return u.Add(U64(v)) }

// Sub returns u − v modulo 2^128.
func (u U128) Sub(v U128) U128 {
	lo, b := bits.Sub64(u.Lo, v.Lo, 0)
	hi, _ := bits.Sub64(u.Hi, v.Hi, b)
	return U128{hi, lo}
}

// SubUnderflow returns u − v and whether v > u.
func (u U128) SubUnderflow(v U128) (U128, bool) {
	lo, b := bits.Sub64(u.Lo, v.Lo, 0)
	hi, b2 := bits.Sub64(u.Hi, v.Hi, b)
	return U128{hi, lo}, b2 != 0
}

// Sub64 returns u − v modulo 2^128.
func (u U128) Sub64(v uint64) U128 { return u.Sub(U64(v)) }

// Inc returns u + 1 and false, or 0 and true when u is MaxU128.
func (u U128) Inc() (U128, bool) { return u.AddOverflow(U64(1)) }

// Dec returns u − 1 and false, or MaxU128 and true when u is 0.
func (u U128) Dec() (U128, bool) { return u.SubUnderflow(U64(1)) }

// And returns u & v.
func (u U128) And(v U128) U128 { return U128{u.Hi & v.Hi, u.Lo & v.Lo} }

// Or returns u | v.
func (u U128) Or(v U128) U128 { return U128{u.Hi | v.Hi, u.Lo | v.Lo} }

// Xor returns u ^ v.
func (u U128) Xor(v U128) U128 { return U128{u.Hi ^ v.Hi, u.Lo ^ v.Lo} }

// Not returns ^u.
func (u U128) Not() U128 { return U128{^u.Hi, ^u.Lo} }

// Lsh returns u << n (0 for n ≥ 128).
func (u U128) Lsh(n uint) U128 {
	switch {
	case n >= 128:
		return U128{}
	case n >= 64:
		return U128{Hi: u.Lo << (n - 64)}
	case n == 0:
		return u
	}
	return U128{Hi: u.Hi<<n | u.Lo>>(64-n), Lo: u.Lo << n}
}

// Rsh returns u >> n (0 for n ≥ 128).
func (u U128) Rsh(n uint) U128 {
	switch {
	case n >= 128:
		return U128{}
	case n >= 64:
		return U128{Lo: u.Hi >> (n - 64)}
	case n == 0:
		return u
	}
	return U128{Hi: u.Hi >> n, Lo: u.Lo>>n | u.Hi<<(64-n)}
}

// TrailingZeros returns the number of trailing zero bits (128 for 0).
func (u U128) TrailingZeros() int {
	if u.Lo != 0 {
		return bits.TrailingZeros64(u.Lo)
	}
	if u.Hi != 0 {
		return 64 + bits.TrailingZeros64(u.Hi)
	}
	return 128
}

// LowMask returns 2^n − 1: the n low bits set (all bits for n ≥ 128).
func LowMask(n uint) U128 {
	if n >= 128 {
		return MaxU128
	}
	return U64(1).Lsh(n).Sub64(1)
}

// Big returns u as a new big.Int.
func (u U128) Big() *big.Int {
	b := new(big.Int).SetUint64(u.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(u.Lo))
}

// U128FromBig converts b to a U128; ok is false when b is negative or does
// not fit in 128 bits.
func U128FromBig(b *big.Int) (u U128, ok bool) {
	if b.Sign() < 0 || b.BitLen() > 128 {
		return U128{}, false
	}
	lo := new(big.Int).And(b, new(big.Int).SetUint64(^uint64(0)))
	hi := new(big.Int).Rsh(b, 64)
	return U128{Hi: hi.Uint64(), Lo: lo.Uint64()}, true
}

// String returns u in decimal.
func (u U128) String() string {
	if u.Hi == 0 {
		return big.NewInt(0).SetUint64(u.Lo).String()
	}
	return u.Big().String()
}

// Float64 returns u as the nearest float64.
func (u U128) Float64() float64 {
	return float64(u.Hi)*(1<<64) + float64(u.Lo)
}

// Min128 returns the smaller of a and b.
func Min128(a, b U128) U128 {
	if b.Less(a) {
		return b
	}
	return a
}

// Max128 returns the larger of a and b.
func Max128(a, b U128) U128 {
	if a.Less(b) {
		return b
	}
	return a
}
