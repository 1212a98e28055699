package dns

import (
	mdns "github.com/miekg/dns"
)

// The journal of a zone: the differences between the versions this node has
// served since it started, so that a secondary asking IXFR from one of them
// gets only what changed (RFC 1995 §4), not the whole zone.

const (
	// journalDeltas bounds how many versions back an IXFR can start.
	journalDeltas = 64
	// journalMinRecords: the journal keeps deltas of up to this many records
	// in all, or the zone's own size if that is larger.
	journalMinRecords = 4096
)

// delta is one change of a zone: the records to delete from the version of
// from.Serial and the ones to add to get the version of to.Serial.
type delta struct {
	from, to *mdns.SOA
	del, add []mdns.RR
}

func (d *delta) records() int { return len(d.del) + len(d.add) }

// nextJournal is the journal of z, the version that follows old: old's
// journal plus the change from old to z, without the oldest deltas beyond
// the bounds. A serial that did not move forward (a restored snapshot)
// starts an empty journal.
func nextJournal(old, z *zone) []*delta {
	if old == nil || old.serial == z.serial || !serialGE(z.serial, old.serial) {
		return nil
	}
	d := &delta{from: old.soa, to: z.soa}
	for _, rr := range z.xfr {
		if !holds(old, rr) {
			d.add = append(d.add, rr)
		}
	}
	for _, rr := range old.xfr {
		if !holds(z, rr) {
			d.del = append(d.del, rr)
		}
	}
	// Keep the newest of old's deltas that fit in the bounds.
	total, limit := d.records(), max(journalMinRecords, len(z.xfr))
	keep := len(old.journal)
	for keep > 0 && len(old.journal)-keep+1 < journalDeltas {
		n := old.journal[keep-1].records()
		if total+n > limit {
			break
		}
		total += n
		keep--
	}
	return append(append(make([]*delta, 0, len(old.journal)-keep+1), old.journal[keep:]...), d)
}

// ixfr returns the body of an incremental transfer from the version with
// serial from to the current one, or nil when the journal does not reach
// back to it or the differences are no smaller than the zone (then a full
// transfer is the better answer).
func (z *zone) ixfr(from uint32) []mdns.RR {
	start := -1
	for i, d := range z.journal {
		if d.from.Serial == from {
			start = i
			break
		}
	}
	if start < 0 {
		return nil
	}
	n := 0
	for _, d := range z.journal[start:] {
		n += d.records() + 2
	}
	if n >= len(z.xfr) {
		return nil
	}
	out := make([]mdns.RR, 0, n+2)
	out = append(out, z.soa)
	for _, d := range z.journal[start:] {
		out = append(out, d.from)
		out = append(out, d.del...)
		out = append(out, d.to)
		out = append(out, d.add...)
	}
	return append(out, z.soa)
}

// holds reports whether zone z has rr, with the same TTL. Its sets never hold
// two records that differ in the TTL alone (buildZone drops duplicates).
func holds(z *zone, rr mdns.RR) bool {
	h := rr.Header()
	n := z.nodes[h.Name]
	if n == nil {
		return false
	}
	for _, o := range n.sets[h.Rrtype] {
		if o.Header().Ttl == h.Ttl && mdns.IsDuplicate(o, rr) {
			return true
		}
	}
	return false
}
