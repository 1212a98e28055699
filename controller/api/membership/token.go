package membership

import (
	"time"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// NewTokenRecord makes a token with a fresh secret; the secret is returned
// separately and never stored.
func NewTokenRecord(t wire.Token) (*state.TokenRecord, string, error) {
	secret, err := auth.NewSecret()
	if err != nil {
		return nil, "", err
	}
	t.Prefix = auth.Prefix(secret)
	return &state.TokenRecord{Token: t, Hash: auth.Hash(secret)}, secret, nil
}

func tokenView(t *state.TokenRecord) any { return &t.Token }

func registerToken(a *api.API) {
	api.Register(a, api.Service[*state.TokenRecord]{
		App: "membership", Name: "token", Tables: []string{state.Tokens},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"user_id": query.Number, "member_id": query.Number,
			"name": query.String, "kind": query.String, "region_id": query.Number, "server_id": query.Number}),
			Ordering: []string{"id", "name", "user_id", "created"},
			// A user token is bound to no region or server, a robot token
			// to no server when it serves the whole region: 0, not shown.
			ZeroIsNull: []string{"region_id", "server_id"}},
		All: (*state.ReadTxn).TokenList,
		Get: (*state.ReadTxn).Token,
		Visible: func(q *api.Request, t *state.TokenRecord) bool {
			switch q.P.Role {
			case auth.Global:
				return true
			case auth.Admin:
				u, ok := q.Txn.User(t.UserID)
				return t.MemberID == q.P.MemberID && (t.UserID == q.P.UserID || (ok && !protected(q, u)))
			}
			return t.UserID == q.P.UserID
		},
		View: tokenView,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.TokenInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			text(fe, q, "name", in.Name, optionalText, 100, 101)
			t := wire.Token{UserID: q.P.UserID, Kind: wire.TokenKindUser}
			api.Set(&t.Name, in.Name)
			api.Set(&t.Kind, in.Kind)
			if t.Kind != wire.TokenKindUser && t.Kind != wire.TokenKindRobot {
				fe.Add("kind", q.Code(104), "Expected %q or %q.", wire.TokenKindUser, wire.TokenKindRobot)
			}
			if in.UserID != nil && *in.UserID != q.P.UserID {
				u, ok := q.Txn.User(*in.UserID)
				switch {
				case q.P.Global() && !(ok && protected(q, u)):
				case q.P.Role == auth.Admin && ok && u.MemberID == q.P.MemberID && !protected(q, u):
				default:
					return nil, forbidden(q, 202, "You may not create tokens for user %d.", *in.UserID)
				}
				t.UserID = *in.UserID
			}
			if t.Kind == wire.TokenKindRobot {
				if !q.P.Holds(auth.GlobalAdmin) {
					return nil, forbidden(q, 203, "Only global users who are administrators may create robot tokens.")
				}
				if in.RegionID == nil {
					fe.Add("region_id", q.Code(102), "A robot token must be bound to a region.")
				} else {
					t.RegionID = *in.RegionID
				}
				api.Set(&t.ServerID, in.ServerID)
				if t.ServerID != 0 {
					if s, ok := q.Txn.Server(t.ServerID); !ok || (in.RegionID != nil && s.RegionID != *in.RegionID) {
						fe.Add("server_id", q.Code(107), "Server %d does not exist in region %d.", t.ServerID, t.RegionID)
					}
				}
			} else if in.RegionID != nil || in.ServerID != nil {
				fe.Add("region_id", q.Code(105), "Only robot tokens are bound to a region or server.")
			}
			if in.Expires != nil {
				exp, err := time.Parse(time.RFC3339, *in.Expires)
				switch {
				case err != nil:
					fe.Add("expires", q.Code(106), "Expected an RFC 3339 time such as 2030-01-02T15:04:05Z.")
				case !exp.After(q.API.Now()):
					fe.Add("expires", q.Code(106), "The expiry must be in the future.")
				default:
					t.Expires = exp.UTC().Format(time.RFC3339)
				}
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			rec, secret, err := NewTokenRecord(t)
			if err != nil {
				return nil, err
			}
			rec.MintedBy, rec.MinterGlobalAdmin, rec.MinterGlobal = q.P.UserID, q.P.Holds(auth.GlobalAdmin), q.P.Holds(auth.Global)
			q.Created = func(v any) any {
				out := v.(*state.TokenRecord).Token
				out.Secret = secret
				return &out
			}
			return q.Command(fsm.TokenCreateType, rec)
		},
		Delete: func(q *api.Request, cur *state.TokenRecord) (*fsm.Command, error) {
			// A global user sees every token, but revokes those of an
			// administrator of the global member (root's, say) only as a
			// global administrator, as it mints them (see protected).
			if u, ok := q.Txn.User(cur.UserID); ok && cur.UserID != q.P.UserID && protected(q, u) {
				return nil, forbidden(q, 202, "Only global administrators may revoke the tokens of an administrator of the global member.")
			}
			return q.Command(fsm.TokenDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}
