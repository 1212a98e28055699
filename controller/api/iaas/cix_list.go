package iaas

import (
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// CIXListInput is the body of POST /iaas/cix_blacklist/ and
// /iaas/cix_whitelist/.
type CIXListInput struct {
	CIDR    *string `json:"cidr"`
	Comment *string `json:"comment"`
}

// registerCIXLists adds the CIX blacklist and whitelist: CIDRs CIX
// recognises as malicious or trustworthy. Every authenticated caller lists
// and reads them, robots included (appliances pull them into firewall
// sets); global users create and delete entries (permission table).
//
// An entry is read, checked (HEAD: 200 or 404) and deleted by its id or by
// its CIDR, in any of three forms: /iaas/cix_blacklist/7/,
// /iaas/cix_blacklist/10.0.0.0%2F8/ (the "/" escaped) and
// /iaas/cix_blacklist/10.0.0.0/8/ (CloudCIX's own form). A CIDR in the path
// is canonicalised as on create, so 10.1.2.3/8 finds 10.0.0.0/8 and
// 192.0.2.1 finds 192.0.2.1/32; it finds the exact record only, not one
// that contains it (search[cidr__contains] does that).
//
// Codes (create): 101 cidr missing or invalid, 102 comment longer than 255
// characters, 103 cidr already in the list.
func registerCIXLists(a *api.API) {
	registerCIXList(a, "cix_blacklist", state.CIXBlacklist, fsm.CIXBlacklistCreateType, fsm.CIXBlacklistDeleteType)
	registerCIXList(a, "cix_whitelist", state.CIXWhitelist, fsm.CIXWhitelistCreateType, fsm.CIXWhitelistDeleteType)
}

func registerCIXList(a *api.API, name, table string, createType, deleteType fsm.MessageType) {
	api.Register(a, api.Service[*wire.CIXListEntry]{
		App: App, Name: name, Tables: []string{table},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"cidr": query.CIDR, "comment": query.String,
			"modified_by": query.Number}),
			Ordering: []string{"id", "cidr", "created", "updated"}},
		All: func(r *state.ReadTxn) []*wire.CIXListEntry { return r.CIXList(table) },
		Get: func(r *state.ReadTxn, id uint64) (*wire.CIXListEntry, bool) { return r.CIXEntry(table, id) },
		Key: func(r *state.ReadTxn, cidr string) (*wire.CIXListEntry, bool) {
			return r.CIXEntryByCIDR(table, cidr)
		},
		SlashKey: true,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in CIXListInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			e := &wire.CIXListEntry{}
			if required(fe, q, "cidr", in.CIDR != nil, 101) {
				if p, ok := state.CanonicalCIDR(*in.CIDR); !ok {
					fe.Add("cidr", q.Code(101), "cidr %q is not a valid CIDR or IP address.", *in.CIDR)
				} else if o, dup := q.Txn.CIXEntryByCIDR(table, p.String()); dup {
					fe.Add("cidr", q.Code(103), "%s is already in the list (id %d).", p, o.ID)
				} else {
					e.CIDR = p.String()
				}
			}
			text(fe, q, "comment", in.Comment, state.MaxCIXComment, 102)
			api.Set(&e.Comment, in.Comment)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(createType, e)
		},
		Delete: func(q *api.Request, cur *wire.CIXListEntry) (*fsm.Command, error) {
			return q.Command(deleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}
