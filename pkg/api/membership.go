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
