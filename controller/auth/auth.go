// Package auth turns an API token into a Principal and decides what a
// principal may do. Tokens are random secrets; the store keeps only their
// SHA-256. Permissions are a table (see Table) keyed by service and action,
// plus per-object visibility rules: another member's object is not found,
// never forbidden with details.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// Role is what a principal is, for the permission table.
type Role int

// Roles, from most to least powerful. A member admin and a member user of
// another member than an object's owner see that object as missing.
const (
	None Role = iota
	Global
	Admin
	User
	Robot
	// GlobalAdmin is not the Role of any principal but a requirement the
	// permission table can name: a Global principal who is also an
	// administrator (the user's administrator flag), as the root user is.
	// The operator routes that change the cluster or hand out its secrets
	// need it; every GlobalAdmin is also Global, so a cell that lists
	// Global admits global administrators too. See Principal.Holds.
	GlobalAdmin
)

func (r Role) String() string {
	switch r {
	case Global:
		return "global"
	case Admin:
		return "admin"
	case User:
		return "user"
	case Robot:
		return "robot"
	case GlobalAdmin:
		return "global admin"
	}
	return "none"
}

// Principal is the authenticated caller.
type Principal struct {
	Role     Role
	TokenID  uint64
	UserID   uint64
	MemberID uint64
	// Administrator is the user's administrator flag (false for robots).
	Administrator bool
	// RegionID and ServerID bind robot tokens.
	RegionID uint64
	ServerID uint64
	// Expires is when the token expires (zero: never).
	Expires time.Time
}

// Global reports whether the caller acts for the whole region.
func (p *Principal) Global() bool { return p != nil && p.Role == Global }

// Holds reports whether the permission table's role r admits p: p's own
// role, or GlobalAdmin for a global user who is an administrator.
func (p *Principal) Holds(r Role) bool {
	if p == nil {
		return false
	}
	if r == GlobalAdmin {
		return p.Role == Global && p.Administrator
	}
	return r == p.Role
}

// SecretPrefix starts every token secret, so that leaked tokens are easy to grep for.
const SecretPrefix = "rgt_"

// NewSecret returns a fresh random token secret (160 bits).
func NewSecret() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return SecretPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// Hash is the stored form of a secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Prefix is the part of a secret shown in listings.
func Prefix(secret string) string {
	if len(secret) > len(SecretPrefix)+4 {
		return secret[:len(SecretPrefix)+4]
	}
	return secret
}

// FromRequest extracts the token from X-Auth-Token or Authorization: Bearer.
func FromRequest(r *http.Request) string {
	if t := r.Header.Get("X-Auth-Token"); t != "" {
		return strings.TrimSpace(t)
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// mintedBefore refuses a token that would act as a global administrator
// (or a global user: what) but was minted for its user by another user,
// minter, who was not one: the user has been made one since, and the
// minter must not hold such a token through it.
func mintedBefore(minter uint64, what string) error {
	return &api.Error{Status: http.StatusUnauthorized, ErrorCode: api.CodeAuthMinted,
		Detail: fmt.Sprintf("The token was minted by user %d before this user became a %s; mint a new token.", minter, what)}
}

// Authenticate resolves a secret against the state. A token minted for its
// user by someone who was not a global administrator (or a global user)
// then does not act as one: it is refused (401 regent_auth_003) once its
// user is one.
func Authenticate(rt *state.ReadTxn, secret string, now time.Time) (*Principal, error) {
	if secret == "" {
		return nil, &api.Error{Status: http.StatusUnauthorized, ErrorCode: api.CodeAuthMissing,
			Detail: "Authentication credentials were not provided: send X-Auth-Token or Authorization: Bearer."}
	}
	invalid := &api.Error{Status: http.StatusUnauthorized, ErrorCode: api.CodeAuthInvalid,
		Detail: "The token is invalid, revoked or expired."}
	tok, ok := rt.TokenByHash(Hash(secret))
	if !ok {
		return nil, invalid
	}
	var expires time.Time
	if tok.Expires != "" {
		// An expiry that cannot be read (the API writes none, a restored
		// snapshot might) fails closed: it is not "never".
		exp, err := time.Parse(time.RFC3339, tok.Expires)
		if err != nil || now.After(exp) {
			return nil, invalid
		}
		expires = exp
	}
	u, ok := rt.User(tok.UserID)
	if !ok {
		return nil, invalid
	}
	p := &Principal{TokenID: tok.ID, UserID: u.ID, MemberID: u.MemberID, Expires: expires}
	switch {
	case tok.Kind == api.TokenKindRobot:
		p.Role, p.RegionID, p.ServerID = Robot, tok.RegionID, tok.ServerID
	case u.IsGlobal():
		if tok.MintedBy != 0 && tok.MintedBy != u.ID {
			switch {
			case u.Administrator && !tok.MinterGlobalAdmin:
				return nil, mintedBefore(tok.MintedBy, "global administrator")
			case !tok.MinterGlobal && !tok.MinterGlobalAdmin:
				return nil, mintedBefore(tok.MintedBy, "global user")
			}
		}
		p.Role, p.Administrator = Global, u.Administrator
	case u.Administrator:
		p.Role, p.Administrator = Admin, true
	default:
		p.Role = User
	}
	return p, nil
}
