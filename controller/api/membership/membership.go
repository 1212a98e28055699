// Package membership serves the /membership/ services: members (tenants),
// users, tokens and regions, through the generic service path of package api.
package membership

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	wire "github.com/regentcloud/regent/pkg/api"
)

// Register adds the membership services to a.
func Register(a *api.API) {
	registerMember(a)
	registerUser(a)
	registerToken(a)
	registerRegion(a)
}

// text validates a required (on create and PUT) or optional string field.
func text(fe wire.FieldErrors, q *api.Request, field string, v *string, rule textRule, max int, n int) {
	if v == nil {
		if rule == requiredText {
			fe.Add(field, q.Code(n), "This field is required.")
		}
		return
	}
	*v = strings.TrimSpace(*v)
	switch {
	case rule != optionalText && *v == "":
		fe.Add(field, q.Code(n), "This field may not be blank.")
	case api.TextFault(*v, max) != "":
		fe.Add(field, q.Code(n), "%s", api.TextFault(*v, max))
	}
}

// textRule says what text accepts: optionalText may be absent or blank,
// nonBlankText may be absent (a partial update) but not blank, and
// requiredText must be there and not blank.
type textRule int

const (
	optionalText textRule = iota
	nonBlankText
	requiredText
)

// named is the rule of a name-like field: required on create and full
// update, never blank.
func named(full bool) textRule {
	if full {
		return requiredText
	}
	return nonBlankText
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9@.+_-]+$`)

func forbidden(q *api.Request, n int, format string, args ...any) error {
	return wire.Errorf(http.StatusForbidden, q.Code(n), format, args...)
}

// protected reports whether the caller may not change, delete or mint
// tokens for target (or revoke its tokens): a global user, for anyone but a
// global user; an administrator of the global member (who is, or can be
// made, a global administrator), for anyone but a global administrator,
// whether the caller is global or not (an administrator of the global
// member who is not global is a member admin of member 1). Without the
// first rule an administrator of the global member could take over the
// region; without the second a caller who is not a global administrator
// could reach the operator routes that need one (through a token of the
// root user, or of an administrator of the global member once made
// global, or by making such an administrator global).
func protected(q *api.Request, target *wire.User) bool {
	if target.GlobalActive && !q.P.Global() {
		return true
	}
	return target.MemberID == wire.GlobalMemberID && target.Administrator && !q.P.Holds(auth.GlobalAdmin)
}
