package membership

import (
	"slices"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

func validateRegion(q *api.Request, in *wire.RegionInput, full bool) error {
	fe := wire.FieldErrors{}
	text(fe, q, "name", in.Name, named(full), 100, 101)
	if in.Customers != nil {
		seen := map[uint64]bool{}
		for _, c := range *in.Customers {
			if seen[c] {
				fe.Add("customers", q.Code(103), "Member %d is listed twice.", c)
			}
			seen[c] = true
		}
	}
	return fe.Err()
}

func registerRegion(a *api.API) {
	api.Register(a, api.Service[*wire.Region]{
		App: "membership", Name: "region", Tables: []string{state.Regions},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"name": query.String, "customers": query.Number}),
			Ordering: []string{"id", "name", "created", "updated"}},
		All: (*state.ReadTxn).RegionList,
		Get: (*state.ReadTxn).Region,
		Visible: func(q *api.Request, r *wire.Region) bool {
			switch q.P.Role {
			case auth.Global:
				return true
			case auth.Robot:
				return r.ID == q.P.RegionID
			}
			for _, c := range r.Customers {
				if c == q.P.MemberID {
					return true
				}
			}
			return false
		},
		// A tenant sees itself among the customers, not the others
		// (global users and the region's robots see them all).
		Redact: func(q *api.Request, r *wire.Region) *wire.Region {
			if q.P.Role == auth.Global || q.P.Role == auth.Robot {
				return r
			}
			c := *r
			c.Customers = []uint64{}
			if slices.Contains(r.Customers, q.P.MemberID) {
				c.Customers = []uint64{q.P.MemberID}
			}
			return &c
		},
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.RegionInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := validateRegion(q, &in, true); err != nil {
				return nil, err
			}
			r := &wire.Region{Name: *in.Name, Customers: []uint64{}}
			api.Set(&r.Customers, in.Customers)
			return q.Command(fsm.RegionCreateType, r)
		},
		Update: func(q *api.Request, cur *wire.Region, partial bool) (*fsm.Command, error) {
			var in wire.RegionInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := validateRegion(q, &in, !partial); err != nil {
				return nil, err
			}
			r := *cur
			if !partial {
				r.Customers = []uint64{}
			}
			api.Set(&r.Name, in.Name)
			api.Set(&r.Customers, in.Customers)
			return q.Command(fsm.RegionUpdateType, &r)
		},
		Delete: func(q *api.Request, cur *wire.Region) (*fsm.Command, error) {
			return q.Command(fsm.RegionDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}
