package state

import (
	"slices"

	"github.com/hashicorp/go-memdb"
)

// DNSSettingsTable holds the zone apex settings every node serves: one
// record, key "dns".
const DNSSettingsTable = "dns_settings"

// DNSSettings are the apex NS names and the SOA contact of every zone. They
// are replicated rather than read from each node's configuration, so that
// every node serves the same zone content at the same serial, and so that a
// change raises every zone's serial (Index) and secondaries follow it.
type DNSSettings struct {
	Key string `json:"key"` // always "dns"
	// NS are the apex NS names, fully qualified, lower case.
	NS []string `json:"ns"`
	// Hostmaster is the SOA mailbox as a domain name; "" means
	// hostmaster.<zone>.
	Hostmaster string `json:"hostmaster,omitempty"`
	// SetBy is the node whose configuration these are.
	SetBy string `json:"set_by"`
	// Index is the raft index of the last change.
	Index uint64 `json:"index"`
}

const dnsSettingsKey = "dns"

func dnsSettingsSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		DNSSettingsTable: {Name: DNSSettingsTable, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: stringFieldIndex("Key", false)},
		}},
	}
}

// DNSSettings returns the replicated apex settings, false when no node has
// set them yet (the nodes' configuration applies).
func (r *ReadTxn) DNSSettings() (*DNSSettings, bool) {
	raw, err := r.txn.First(DNSSettingsTable, "id", dnsSettingsKey)
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*DNSSettings), true
}

// SameApex reports whether s serves the same apex as ns and hostmaster.
func (s *DNSSettings) SameApex(ns []string, hostmaster string) bool {
	return s != nil && slices.Equal(s.NS, ns) && s.Hostmaster == hostmaster
}

// DNSSettingsSet replaces the apex settings. Settings equal to the stored
// ones change nothing, so no serial moves.
func (t *Txn) DNSSettingsSet(p *DNSSettings) (any, error) {
	if cur, ok := t.DNSSettings(); ok && cur.SameApex(p.NS, p.Hostmaster) {
		return cur, nil
	}
	s := &DNSSettings{Key: dnsSettingsKey, NS: slices.Clone(p.NS), Hostmaster: p.Hostmaster, SetBy: p.SetBy, Index: t.Index}
	if _, err := t.bump(DNSSettingsTable, false); err != nil {
		return nil, err
	}
	return s, t.txn.Insert(DNSSettingsTable, s)
}
