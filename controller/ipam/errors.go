package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// Sentinel errors; the errors returned by this package wrap one of them, so
// callers test with errors.Is and map them to their dialect's status codes.
//
// Melange mapping (melange-facts §4, §5): ErrOutside → 422 "Address does not
// belong to IpBlock"; ErrInUse and ErrReserved → 409 "Address is already
// allocated"; ErrPolicy → 422 "Block policy does not allow this address";
// ErrFull → 422 "IpBlock is full"; ErrMACRequired → 400 "Required params are
// missing: mac_address".
var (
	ErrOutside      = errors.New("address does not belong to the block")
	ErrInUse        = errors.New("address is already allocated")
	ErrReserved     = errors.New("address is reserved")
	ErrPolicy       = errors.New("block policy does not allow this address")
	ErrFull         = errors.New("block is full")
	ErrNotAllocated = errors.New("address is not allocated")
	ErrReleased     = errors.New("address is already deallocated")
	ErrNotReleased  = errors.New("address is not deallocated")
	ErrMACRequired  = errors.New("a MAC address is required to generate an IPv6 address")
	ErrInvalid      = errors.New("invalid block configuration")

	ErrMACInUse        = errors.New("MAC address is already allocated")
	ErrMACNotAllocated = errors.New("MAC address is not allocated")
	ErrMACOutside      = errors.New("MAC address does not belong to the range")
	ErrNoMoreMACs      = errors.New("no more MAC addresses")
)

// Reason says why an address cannot be handed out.
type Reason uint8

// Reasons, in the order Melange checks them for a specific-address request:
// outside the block; gateway, broadcast or network address, or held (an
// allocated or soft-deallocated row); then the policy.
const (
	ReasonNone        Reason = iota // the address may be allocated
	ReasonOutside                   // not inside the block (or another family)
	ReasonGateway                   // the block's gateway
	ReasonBroadcast                 // the last address, reserved by the dialect
	ReasonNetwork                   // the first address, reserved by the dialect
	ReasonAllocated                 // held by an allocation
	ReasonDeallocated               // soft-deallocated, still held until purged
	ReasonPolicyRange               // inside an unusable range of the policy
	ReasonPolicyOctet               // last octet (IPv6: last 16-bit group) is unusable
)

var reasonNames = [...]string{
	ReasonNone:        "free",
	ReasonOutside:     "outside the block",
	ReasonGateway:     "the gateway",
	ReasonBroadcast:   "the broadcast address",
	ReasonNetwork:     "the network address",
	ReasonAllocated:   "allocated",
	ReasonDeallocated: "deallocated and not yet purged",
	ReasonPolicyRange: "in an unusable range",
	ReasonPolicyOctet: "an unusable octet",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Sentinel returns the sentinel error for r (nil for ReasonNone).
func (r Reason) Sentinel() error {
	switch r {
	case ReasonOutside:
		return ErrOutside
	case ReasonGateway, ReasonBroadcast, ReasonNetwork:
		return ErrReserved
	case ReasonAllocated, ReasonDeallocated:
		return ErrInUse
	case ReasonPolicyRange, ReasonPolicyOctet:
		return ErrPolicy
	}
	return nil
}

// AddrError is the error of an operation on one address.
type AddrError struct {
	Op     string // "allocate", "release", "restore", "load"
	Addr   netip.Addr
	Reason Reason // for allocate: why the address was refused
	Err    error  // the sentinel
}

func (e *AddrError) Error() string {
	if e.Reason != ReasonNone {
		return fmt.Sprintf("ipam: %s %s: %s (%v)", e.Op, e.Addr, e.Err, e.Reason)
	}
	return fmt.Sprintf("ipam: %s %s: %s", e.Op, e.Addr, e.Err)
}

func (e *AddrError) Unwrap() error { return e.Err }

func addrErr(op string, a netip.Addr, r Reason) error {
	return &AddrError{Op: op, Addr: a, Reason: r, Err: r.Sentinel()}
}
