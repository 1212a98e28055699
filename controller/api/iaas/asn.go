package iaas

import (
	"net/http"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// ASNInput is the body of POST /iaas/asn/.
type ASNInput struct {
	MemberID *uint64 `json:"member_id"`
	Number   *uint64 `json:"number"`
}

// ASNView is an ASN as the API shows it.
type ASNView struct {
	wire.Meta
	MemberID uint64 `json:"member_id"`
	Number   uint64 `json:"number"`
	IsPseudo bool   `json:"is_pseudo"`
}

func asnView(a *wire.ASN) any {
	return &ASNView{Meta: a.Meta, MemberID: a.MemberID, Number: a.Number, IsPseudo: a.IsPseudo()}
}

// ASNs have no update: the state model has no ASN update command (an ASN
// is a number owned by a member; to change either, delete and recreate it).
func registerASN(a *api.API) {
	api.Register(a, api.Service[*wire.ASN]{
		App: App, Name: "asn", Tables: []string{state.ASNs},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"member_id": query.Number, "number": query.Number}),
			Ordering: []string{"id", "number", "member_id", "created"}},
		All: (*state.ReadTxn).ASNList,
		Get: (*state.ReadTxn).ASN,
		Visible: func(q *api.Request, v *wire.ASN) bool {
			return owns(q, v.MemberID)
		},
		View: asnView,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in ASNInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if required(fe, q, "member_id", in.MemberID != nil, 101) {
				if _, ok := q.Txn.Member(*in.MemberID); !ok {
					fe.Add("member_id", q.Code(101), "Member %d does not exist.", *in.MemberID)
				}
			}
			if required(fe, q, "number", in.Number != nil, 102) {
				if *in.Number == 0 {
					fe.Add("number", q.Code(102), "number should be a positive integer")
				}
				for _, o := range q.Txn.ASNList() {
					if o.Number == *in.Number {
						fe.Add("number", q.Code(103), "ASN %d already exists.", *in.Number)
						break
					}
				}
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.ASNCreateType, &wire.ASN{MemberID: *in.MemberID, Number: *in.Number})
		},
		Delete: func(q *api.Request, cur *wire.ASN) (*fsm.Command, error) {
			n := 0
			for _, b := range q.Txn.IPBlockList() {
				if b.ASNID == cur.ID {
					n++
				}
			}
			if n > 0 {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(101), "The ASN has %d allocation(s) or subnet(s); delete them first.", n)
			}
			return q.Command(fsm.ASNDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}
