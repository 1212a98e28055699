package api

// GlobalMemberID is the id of the CIX member, created at bootstrap. Its users
// with global_active set are global users.
const GlobalMemberID = 1

// Member is a tenant.
type Member struct {
	Meta
	Name        string `json:"name"`
	SelfManaged bool   `json:"self_managed"`
}

// User belongs to one member.
type User struct {
	Meta
	MemberID      uint64 `json:"member_id"`
	Username      string `json:"username"`
	Email         string `json:"email"`
	FirstName     string `json:"first_name"`
	Surname       string `json:"surname"`
	Administrator bool   `json:"administrator"`
	GlobalActive  bool   `json:"global_active"`
}

// IsGlobal reports whether u is a global user: a user of the global member
// with global_active. The API's roles (controller/auth) and the state's
// checks on the actor of a command both go by it.
func (u *User) IsGlobal() bool {
	return u != nil && u.MemberID == GlobalMemberID && u.GlobalActive
}

// Token kinds.
const (
	TokenKindUser  = "user"
	TokenKindRobot = "robot"
)

// Token is an API credential. The secret is shown once, in the create
// response; the store keeps only its SHA-256.
type Token struct {
	Meta
	UserID   uint64 `json:"user_id"`
	MemberID uint64 `json:"member_id"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	RegionID uint64 `json:"region_id,omitempty"`
	ServerID uint64 `json:"server_id,omitempty"`
	Expires  string `json:"expires,omitempty"`
	// Prefix is the first characters of the secret, to tell tokens apart.
	Prefix string `json:"prefix"`
	// Secret is only set in the response to create.
	Secret string `json:"token,omitempty"`
}

// Region is a cloud region and the members that may use it.
type Region struct {
	Meta
	Name      string   `json:"name"`
	Customers []uint64 `json:"customers"`
}

// ClusterMember is one controller node as the operator API reports it.
type ClusterMember struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
	Healthy  bool   `json:"healthy"`
}

// Request bodies of the membership services, shared by the server and the
// SDK. Nil fields are absent: PATCH leaves them alone.

// MemberInput is the body of a member create or update. Nil fields are left
// out: on update (PATCH) they keep their value.
type MemberInput struct {
	Name *string `json:"name,omitempty"`
	// SelfManaged may only be set by global users.
	SelfManaged *bool `json:"self_managed,omitempty"`
}

// UserInput is the body of a user create or update. Nil fields are left out.
type UserInput struct {
	// MemberID defaults to the caller's member; only global users may
	// create users in another member, and a user never moves.
	MemberID  *uint64 `json:"member_id,omitempty"`
	Username  *string `json:"username,omitempty"`
	Email     *string `json:"email,omitempty"`
	FirstName *string `json:"first_name,omitempty"`
	Surname   *string `json:"surname,omitempty"`
	// Administrator may be set by global users and member administrators.
	Administrator *bool `json:"administrator,omitempty"`
	// GlobalActive may be set by global users, on users of the global member.
	GlobalActive *bool `json:"global_active,omitempty"`
}

// TokenInput is the body of a token create. Nil fields are left out.
type TokenInput struct {
	Name *string `json:"name,omitempty"`
	// UserID defaults to the caller; admins may create tokens for users of
	// their member, global users for anyone.
	UserID *uint64 `json:"user_id,omitempty"`
	// Kind is TokenKindUser (default) or TokenKindRobot; robot
	// tokens are bound to RegionID and optionally ServerID.
	Kind     *string `json:"kind,omitempty"`
	RegionID *uint64 `json:"region_id,omitempty"`
	ServerID *uint64 `json:"server_id,omitempty"`
	// Expires is an RFC 3339 time in the future.
	Expires *string `json:"expires,omitempty"`
}

// RegionInput is the body of a region create or update. Nil fields are left
// out; a pointer to an empty slice clears Customers.
type RegionInput struct {
	Name      *string   `json:"name,omitempty"`
	Customers *[]uint64 `json:"customers,omitempty"`
}
