package membership

import (
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// validateMember checks a member's input against cur, the member as it is
// (nil on create). Only global users change self_managed: from its current
// value, or on create from the default, false; repeating the value is no
// change.
func validateMember(q *api.Request, in *wire.MemberInput, full bool, cur *wire.Member) error {
	fe := wire.FieldErrors{}
	text(fe, q, "name", in.Name, named(full), 100, 101)
	var was wire.Member
	if cur != nil {
		was = *cur
	}
	if in.SelfManaged != nil && *in.SelfManaged != was.SelfManaged && !q.P.Global() {
		return forbidden(q, 202, "Only global users may change self_managed.")
	}
	return fe.Err()
}

func registerMember(a *api.API) {
	api.Register(a, api.Service[*wire.Member]{
		App: "membership", Name: "member", Tables: []string{state.Members},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"name": query.String, "self_managed": query.Bool}),
			Ordering: []string{"id", "name", "created", "updated"}},
		All: (*state.ReadTxn).MemberList,
		Get: (*state.ReadTxn).Member,
		Visible: func(q *api.Request, m *wire.Member) bool {
			return q.P.Global() || m.ID == q.P.MemberID
		},
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.MemberInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := validateMember(q, &in, true, nil); err != nil {
				return nil, err
			}
			m := &wire.Member{Name: *in.Name}
			api.Set(&m.SelfManaged, in.SelfManaged)
			return q.Command(fsm.MemberCreateType, m)
		},
		Update: func(q *api.Request, cur *wire.Member, partial bool) (*fsm.Command, error) {
			var in wire.MemberInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := validateMember(q, &in, !partial, cur); err != nil {
				return nil, err
			}
			m := *cur
			api.Set(&m.Name, in.Name)
			api.Set(&m.SelfManaged, in.SelfManaged)
			return q.Command(fsm.MemberUpdateType, &m)
		},
		Delete: func(q *api.Request, cur *wire.Member) (*fsm.Command, error) {
			return q.Command(fsm.MemberDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}
