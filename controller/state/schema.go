package state

import (
	"github.com/hashicorp/go-memdb"
	"github.com/regentcloud/regent/pkg/api"
)

// Table names. The order of Tables is the order of records in a snapshot.
const (
	tableIndex = "index"
	Members    = "members"
	Users      = "users"
	Tokens     = "tokens"
	Regions    = "regions"
	Nodes      = "nodes"

	ASNs        = "ipam_asns"
	IPPolicies  = "ipam_policies"
	IPBlocks    = "ipam_blocks"
	IPAddresses = "ipam_addresses"
	MACRanges   = "ipam_mac_ranges"
	IPRoutes    = "ipam_routes"
	Interfaces  = "ipam_interfaces"
	IPNats      = "ipam_nats"
	AllowedIPs  = "ipam_allowed_ips"
)

// IndexEntry tracks, per table, the raft index of its last change and the
// last id handed out.
type IndexEntry struct {
	Key    string `json:"key"`
	Index  uint64 `json:"index"`
	LastID uint64 `json:"last_id"`
}

// TokenRecord is a stored token: the API view plus the hash of its secret
// and who minted it.
type TokenRecord struct {
	api.Token
	Hash string `json:"hash"`
	// MintedBy is the user who created the token (the API fills it in
	// the create command; 0 in tokens made before it did, and in the
	// bootstrap's root token). MinterGlobalAdmin and MinterGlobal say
	// whether that user was a global administrator, or a global user,
	// then. A token minted for someone else by a user who was not never
	// acts as one (see auth.Authenticate): its user may have been made one
	// since.
	MintedBy          uint64 `json:"minted_by,omitempty"`
	MinterGlobalAdmin bool   `json:"minter_global_admin,omitempty"`
	MinterGlobal      bool   `json:"minter_global,omitempty"`
}

// Node is a controller node known to the cluster: its raft identity and the
// HTTP address followers forward requests to.
type Node struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

func idIndex() *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: uintFieldIndex("ID")}
}

func schema() *memdb.DBSchema {
	db := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableIndex: {Name: tableIndex, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: stringFieldIndex("Key", false)},
		}},
		Members: {Name: Members, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex(),
			"name": {Name: "name", Unique: true, Indexer: stringFieldIndex("Name", true)},
		}},
		Users: {Name: Users, Indexes: map[string]*memdb.IndexSchema{
			"id":       idIndex(),
			"username": {Name: "username", Unique: true, Indexer: stringFieldIndex("Username", true)},
			"member":   {Name: "member", Indexer: uintFieldIndex("MemberID")},
		}},
		Tokens: {Name: Tokens, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex(),
			"hash": {Name: "hash", Unique: true, Indexer: stringFieldIndex("Hash", false)},
			"user": {Name: "user", Indexer: uintFieldIndex("UserID")},
		}},
		Regions: {Name: Regions, Indexes: map[string]*memdb.IndexSchema{
			"id":   idIndex(),
			"name": {Name: "name", Unique: true, Indexer: stringFieldIndex("Name", true)},
		}},
		Nodes: {Name: Nodes, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: stringFieldIndex("ID", false)},
		}},
	}}
	for _, extra := range []map[string]*memdb.TableSchema{ipamSchema(), dnsSchema(), computeSchema(), vpnSchema(), snapshotSchema(), dnsSettingsSchema()} {
		for name, ts := range extra {
			db.Tables[name] = ts
		}
	}
	for name, ts := range interfaceSchema() {
		db.Tables[name] = ts
	}
	for name, ts := range natSchema() {
		db.Tables[name] = ts
	}
	for name, ts := range cixListSchema() {
		db.Tables[name] = ts
	}
	return db
}
