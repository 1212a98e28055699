package apitest

import (
	"fmt"
	"net/http"

	wire "github.com/regentcloud/regent/pkg/api"
)

// Role is a kind of caller of the auth matrix.
type Role string

// The callers every route is tried with.
const (
	Global      Role = "global"       // the root user: global_active administrator of member 1
	GlobalUser  Role = "global user"  // global_active user of member 1, not an administrator
	MemberAdmin Role = "member admin" // administrator of member A
	MemberUser  Role = "member user"  // plain user of member A
	OtherMember Role = "other member" // administrator of member B
	Robot       Role = "robot"        // robot token bound to the robot region
	NoToken     Role = "no token"
)

// AllRoles lists the roles in matrix order.
func AllRoles() []Role {
	return []Role{Global, GlobalUser, MemberAdmin, MemberUser, OtherMember, Robot, NoToken}
}

// Roles is a fixture with one caller of each Role: member A holds the member
// admin and the member user, member B the other member's admin; the robot
// token is bound to RobotRegion, a region without customers.
type Roles struct {
	MemberA, MemberB uint64
	// User ids.
	Root, GlobalU, AdminA, UserA, AdminB uint64
	RobotRegion                          uint64
	tokens                               map[Role]string
}

// Token is the secret of role's token ("" for NoToken).
func (r *Roles) Token(role Role) string { return r.tokens[role] }

// Roles creates a fresh Roles fixture (new members, users, tokens and region).
func (c *Client) Roles() *Roles {
	c.t.Helper()
	root := c.n.RootToken
	r := &Roles{tokens: map[Role]string{Global: root}}
	users := c.Do(http.MethodGet, "/membership/user/?search[username]=root", nil, root).Expect(http.StatusOK).List()
	if len(users.Content) != 1 {
		c.t.Fatalf("apitest: no root user: %+v", users)
	}
	r.Root = c.num(users.Content[0]["id"])
	r.MemberA = c.CreateMember(root, c.n.Unique("member-a"))
	r.MemberB = c.CreateMember(root, c.n.Unique("member-b"))
	gu := c.n.Unique("global-user")
	r.GlobalU = c.Do(http.MethodPost, "/membership/user/", map[string]any{"member_id": wire.GlobalMemberID, "username": gu,
		"administrator": false, "global_active": true, "email": gu + "@example.com"}, root).Expect(http.StatusCreated).ID()
	_, r.tokens[GlobalUser] = c.CreateToken(root, r.GlobalU)
	r.AdminA = c.CreateUser(root, r.MemberA, c.n.Unique("admin-a"), true)
	r.UserA = c.CreateUser(root, r.MemberA, c.n.Unique("user-a"), false)
	r.AdminB = c.CreateUser(root, r.MemberB, c.n.Unique("admin-b"), true)
	_, r.tokens[MemberAdmin] = c.CreateToken(root, r.AdminA)
	_, r.tokens[MemberUser] = c.CreateToken(root, r.UserA)
	_, r.tokens[OtherMember] = c.CreateToken(root, r.AdminB)
	r.RobotRegion = c.CreateRegion(root, c.n.Unique("robot-region"))
	_, r.tokens[Robot] = c.CreateRobotToken(root, r.RobotRegion)
	return r
}

func (c *Client) num(v any) uint64 {
	c.t.Helper()
	f, ok := v.(float64)
	if !ok {
		c.t.Fatalf("apitest: %v (%T) is not a number", v, v)
	}
	return uint64(f)
}

// CreateMember creates a member and returns its id.
func (c *Client) CreateMember(token, name string) uint64 {
	c.t.Helper()
	return c.Do(http.MethodPost, "/membership/member/", map[string]any{"name": name}, token).Expect(http.StatusCreated).ID()
}

// CreateUser creates a user of member and returns its id.
func (c *Client) CreateUser(token string, member uint64, username string, admin bool) uint64 {
	c.t.Helper()
	body := map[string]any{"member_id": member, "username": username, "administrator": admin,
		"email": username + "@example.com"}
	return c.Do(http.MethodPost, "/membership/user/", body, token).Expect(http.StatusCreated).ID()
}

// CreateToken creates a user token for user and returns its id and secret.
func (c *Client) CreateToken(token string, user uint64) (uint64, string) {
	c.t.Helper()
	body := map[string]any{"user_id": user, "name": c.n.Unique("token")}
	return c.created(c.Do(http.MethodPost, "/membership/token/", body, token).Expect(http.StatusCreated))
}

// CreateRobotToken creates a robot token (for the caller) bound to region.
func (c *Client) CreateRobotToken(token string, region uint64) (uint64, string) {
	c.t.Helper()
	body := map[string]any{"kind": "robot", "region_id": region, "name": c.n.Unique("robot")}
	return c.created(c.Do(http.MethodPost, "/membership/token/", body, token).Expect(http.StatusCreated))
}

func (c *Client) created(r *Response) (uint64, string) {
	c.t.Helper()
	m := r.Content()
	secret, _ := m["token"].(string)
	if secret == "" {
		c.t.Fatalf("apitest: %s: no secret in the create response", r)
	}
	return c.num(m["id"]), secret
}

// CreateRegion creates a region and returns its id.
func (c *Client) CreateRegion(token, name string, customers ...uint64) uint64 {
	c.t.Helper()
	if customers == nil {
		customers = []uint64{}
	}
	body := map[string]any{"name": name, "customers": customers}
	return c.Do(http.MethodPost, "/membership/region/", body, token).Expect(http.StatusCreated).ID()
}

// Path formats an item path: Path("/membership/user/", 5) = "/membership/user/5/".
func Path(base string, id uint64) string { return fmt.Sprintf("%s%d/", base, id) }
