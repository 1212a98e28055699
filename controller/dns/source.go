package dns

import (
	"context"

	mdns "github.com/miekg/dns"
)

// Zone is one zone as the replicated state holds it, ready to serve.
type Zone struct {
	// Name is the zone apex, lower case, fully qualified ("example.com.").
	Name string
	// Serial is the SOA serial: the raft index of the zone's last change,
	// so it only ever grows.
	Serial uint32
	// RRs are the tenant records of the zone with absolute owner names. The
	// apex SOA and NS set are not among them: they come from Config.
	// An apex NS record here is served in addition to the configured set.
	RRs []mdns.RR
	// NS, when set, replaces Config.NS as the zone's apex NS names (fully
	// qualified, lower case), and its first name replaces the SOA MNAME
	// unless Config.MName was given. The controller sets it from the
	// replicated settings, so every node serves the same apex.
	NS []string
	// RName is the SOA mailbox. With NS set it is the zone's whatever
	// Config.RName says ("" is hostmaster.<zone>); without, it replaces
	// Config.RName when set.
	RName string
}

// Source is the node's local state as the DNS server reads it. The server
// never writes; stale reads are fine for DNS.
type Source interface {
	// Serials returns the serial of every zone, keyed by zone name
	// ("example.com."), and the state index they were read at.
	Serials() (index uint64, serials map[string]uint32)
	// Zone returns one zone, or false when it no longer exists.
	Zone(name string) (*Zone, bool)
	// Wait blocks until the DNS state has changed past index or ctx ends,
	// and returns the index it reached.
	Wait(ctx context.Context, index uint64) uint64
}
