package iaas

import (
	"net/http"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// ASNInput is the body of ASN create and update.
type ASNInput = wire.ASNInput

// ASNView is an ASN as the API shows it.
type ASNView = wire.ASNView

func asnView(a *wire.ASN) any {
	return &ASNView{Meta: a.Meta, MemberID: a.MemberID, Number: a.Number, IsPseudo: a.IsPseudo()}
}

// Codes (create and update): 101 member_id, 102 number, 103 number taken,
// 105 number in the pseudo-ASN range (above wire.PseudoASNBase: projects'
// own, PseudoASNBase + project id; an update may keep a pseudo number);
// update also 104: an ASN with allocations cannot move to another member
// (its allocations, subnets and addresses are owned through it), and 106:
// a project's pseudo-ASN keeps its number and member. Delete:
// 101 the ASN has allocations.
func registerASN(a *api.API) {
	api.Register(a, api.Service[*wire.ASN]{
		App: App, Name: "asn", Tables: []string{state.ASNs},
		FilterView: true,
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"member_id": query.Number, "number": query.Number,
			"is_pseudo": query.Bool}),
			Ordering: []string{"id", "number", "member_id", "created"}},
		// is_pseudo is derived from the number.
		Stored: api.StoredFields(nil, "member_id", "number"),
		All:    (*state.ReadTxn).ASNList,
		Get:    (*state.ReadTxn).ASN,
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
				} else if *in.Number > wire.PseudoASNBase {
					fe.Add("number", q.Code(105), "ASN %d is in the pseudo-ASN range (above %d: %d + project id), which projects get with their create.", *in.Number, uint64(wire.PseudoASNBase), uint64(wire.PseudoASNBase))
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
		Update: func(q *api.Request, cur *wire.ASN, partial bool) (*fsm.Command, error) {
			var in ASNInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			n := *cur
			if in.MemberID != nil || !partial {
				if required(fe, q, "member_id", in.MemberID != nil, 101) && *in.MemberID != cur.MemberID {
					if _, ok := q.Txn.Member(*in.MemberID); !ok {
						fe.Add("member_id", q.Code(101), "Member %d does not exist.", *in.MemberID)
					} else if k := q.Txn.ASNAllocations(cur.ID); k > 0 {
						fe.Add("member_id", q.Code(104), "The ASN has %d allocation(s); it cannot move to another member.", k)
					}
					n.MemberID = *in.MemberID
				}
			}
			if in.Number != nil || !partial {
				if required(fe, q, "number", in.Number != nil, 102) {
					if *in.Number == 0 {
						fe.Add("number", q.Code(102), "number should be a positive integer")
					} else if *in.Number > wire.PseudoASNBase && *in.Number != cur.Number {
						fe.Add("number", q.Code(105), "ASN %d is in the pseudo-ASN range (above %d: %d + project id), which projects get with their create.", *in.Number, uint64(wire.PseudoASNBase), uint64(wire.PseudoASNBase))
					}
					for _, o := range q.Txn.ASNList() {
						if o.Number == *in.Number && o.ID != cur.ID {
							fe.Add("number", q.Code(103), "ASN %d already exists.", *in.Number)
							break
						}
					}
					n.Number = *in.Number
				}
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			if cur.IsPseudo() && (n.Number != cur.Number || n.MemberID != cur.MemberID) {
				fe.Add("number", q.Code(106), "ASN %d is the pseudo-ASN of project %d: its number and member cannot change.", cur.Number, cur.Number-wire.PseudoASNBase)
				return nil, fe.Err()
			}
			return q.Command(fsm.ASNUpdateType, &n)
		},
		Delete: func(q *api.Request, cur *wire.ASN) (*fsm.Command, error) {
			if n := q.Txn.ASNAllocations(cur.ID); n > 0 {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(101), "The ASN has %d allocation(s); delete them first.", n)
			}
			return q.Command(fsm.ASNDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}
