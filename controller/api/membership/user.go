package membership

import (
	"net/http"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

func validateUser(q *api.Request, in *wire.UserInput, full bool) error {
	fe := wire.FieldErrors{}
	text(fe, q, "username", in.Username, named(full), 150, 103)
	if in.Username != nil && *in.Username != "" && !usernameRE.MatchString(*in.Username) {
		fe.Add("username", q.Code(103), "Use letters, digits and @.+-_ only.")
	}
	text(fe, q, "email", in.Email, optionalText, 254, 105)
	if in.Email != nil && *in.Email != "" && !strings.Contains(*in.Email, "@") {
		fe.Add("email", q.Code(105), "Enter a valid email address.")
	}
	text(fe, q, "first_name", in.FirstName, optionalText, 100, 106)
	text(fe, q, "surname", in.Surname, optionalText, 100, 107)
	return fe.Err()
}

// userPrivileges enforces who may set the administrator and global_active
// flags. Only a change is checked: from the user's current value (cur), or
// on create (cur nil) from the default, false; a request that repeats the
// value is no change.
func userPrivileges(q *api.Request, in *wire.UserInput, memberID uint64, cur *wire.User) error {
	var was wire.User
	if cur != nil {
		was = *cur
	}
	if in.GlobalActive != nil && *in.GlobalActive != was.GlobalActive {
		if !q.P.Global() {
			return forbidden(q, 203, "Only global users may set global_active.")
		}
		if *in.GlobalActive && memberID != wire.GlobalMemberID {
			fe := wire.FieldErrors{}
			fe.Add("global_active", q.Code(108), "Only users of the global member can be global.")
			return fe.Err()
		}
	}
	if in.Administrator != nil && *in.Administrator != was.Administrator {
		switch {
		case q.P.Role == auth.User:
			return forbidden(q, 204, "Only administrators may set administrator.")
		case memberID == wire.GlobalMemberID && *in.Administrator && !q.P.Holds(auth.GlobalAdmin):
			// an administrator of the global member is, or can be made, a
			// global administrator (see protected); this holds for an
			// administrator of the global member who is not global too
			return forbidden(q, 204, "Only global administrators may make administrators of the global member.")
		}
	}
	return nil
}

func registerUser(a *api.API) {
	api.Register(a, api.Service[*wire.User]{
		App: "membership", Name: "user", Tables: []string{state.Users},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"member_id": query.Number, "username": query.String,
			"email": query.String, "first_name": query.String, "surname": query.String,
			"administrator": query.Bool, "global_active": query.Bool}),
			Ordering: []string{"id", "username", "member_id", "surname", "created", "updated"}},
		All: (*state.ReadTxn).UserList,
		Get: (*state.ReadTxn).User,
		Visible: func(q *api.Request, u *wire.User) bool {
			return q.P.Global() || u.MemberID == q.P.MemberID
		},
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.UserInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := validateUser(q, &in, true); err != nil {
				return nil, err
			}
			memberID := q.P.MemberID
			if in.MemberID != nil {
				memberID = *in.MemberID
			}
			if memberID != q.P.MemberID && !q.P.Global() {
				return nil, forbidden(q, 202, "You may only create users in your own member.")
			}
			if err := userPrivileges(q, &in, memberID, nil); err != nil {
				return nil, err
			}
			u := &wire.User{MemberID: memberID, Username: *in.Username}
			api.Set(&u.Email, in.Email)
			api.Set(&u.FirstName, in.FirstName)
			api.Set(&u.Surname, in.Surname)
			api.Set(&u.Administrator, in.Administrator)
			api.Set(&u.GlobalActive, in.GlobalActive)
			return q.Command(fsm.UserCreateType, u)
		},
		Update: func(q *api.Request, cur *wire.User, partial bool) (*fsm.Command, error) {
			if q.P.Role == auth.User && cur.ID != q.P.UserID {
				return nil, forbidden(q, 202, "You may only update your own user.")
			}
			// A caller's own user is not protected from itself
			// (userPrivileges keeps it from raising its own flags).
			if cur.ID != q.P.UserID && protected(q, cur) {
				return nil, forbidden(q, 205, "Only global users may change a global user, and only global administrators an administrator of the global member.")
			}
			var in wire.UserInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := validateUser(q, &in, !partial); err != nil {
				return nil, err
			}
			if in.MemberID != nil && *in.MemberID != cur.MemberID {
				fe := wire.FieldErrors{}
				fe.Add("member_id", q.Code(101), "A user cannot move to another member.")
				return nil, fe.Err()
			}
			if err := userPrivileges(q, &in, cur.MemberID, cur); err != nil {
				return nil, err
			}
			u := *cur
			if !partial { // PUT: fields left out are cleared
				u.Email, u.FirstName, u.Surname = "", "", ""
			}
			api.Set(&u.Username, in.Username)
			api.Set(&u.Email, in.Email)
			api.Set(&u.FirstName, in.FirstName)
			api.Set(&u.Surname, in.Surname)
			api.Set(&u.Administrator, in.Administrator)
			api.Set(&u.GlobalActive, in.GlobalActive)
			return q.Command(fsm.UserUpdateType, &u)
		},
		Delete: func(q *api.Request, cur *wire.User) (*fsm.Command, error) {
			if cur.ID == q.P.UserID {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(101), "You cannot delete your own user.")
			}
			if protected(q, cur) {
				return nil, forbidden(q, 202, "Only global users may delete a global user, and only global administrators an administrator of the global member.")
			}
			return q.Command(fsm.UserDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}
