package state

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/pkg/api"
)

func code(app, service, method string, n int) string {
	return fmt.Sprintf("%s_%s_%s_%03d", app, service, method, n)
}

func fieldErr(field, code, format string, args ...any) error {
	fe := api.FieldErrors{}
	fe.Add(field, code, format, args...)
	return fe.Err()
}

// Member returns the member with id.
func (r *ReadTxn) Member(id uint64) (*api.Member, bool) { return get[*api.Member](r, Members, id) }

// MemberList returns all members ordered by id.
func (r *ReadTxn) MemberList() []*api.Member { return all[*api.Member](r, Members, "id") }

// MemberCreate stores a new member; names are unique, case-insensitively.
func (t *Txn) MemberCreate(m *api.Member) (*api.Member, error) {
	if err := t.memberNameFree(m.Name, 0, "create"); err != nil {
		return nil, err
	}
	return m, insertNew(t, Members, m)
}

// MemberUpdate replaces a member.
func (t *Txn) MemberUpdate(m *api.Member, expect uint64) (*api.Member, error) {
	if err := t.memberNameFree(m.Name, m.ID, "update"); err != nil {
		return nil, err
	}
	return m, replace(t, Members, m, expect, "membership_member_update")
}

func (t *Txn) memberNameFree(name string, self uint64, method string) error {
	raw, _ := t.txn.First(Members, "name", name)
	if raw != nil && raw.(*api.Member).ID != self {
		return fieldErr("name", code("membership", "member", method, 101), "A member named %q already exists.", name)
	}
	return nil
}

// MemberDelete removes a member that has no users, IPAM objects, cloud
// projects, DNS domains or records, is no region's customer and (from
// Rules2) is the Melange tenant of no interface or address.
// The global member can never be deleted.
func (t *Txn) MemberDelete(id uint64) error {
	if id == api.GlobalMemberID {
		return api.Errorf(http.StatusBadRequest, "membership_member_delete_101", "The global member cannot be deleted.")
	}
	if u := all[*api.User](&t.ReadTxn, Users, "member", id); len(u) > 0 {
		return api.Errorf(http.StatusBadRequest, "membership_member_delete_102", "The member still has %d user(s); delete them first.", len(u))
	}
	for _, table := range []string{ASNs, IPPolicies, IPBlocks, IPAddresses} {
		if it, err := t.txn.Get(table, "member", id); err == nil && it.Next() != nil {
			return api.Errorf(http.StatusBadRequest, "membership_member_delete_104", "The member still owns IPAM objects (%s); delete them first.", table)
		}
	}
	if it, err := t.txn.Get(Projects, "member", id); err == nil && it.Next() != nil {
		return api.Errorf(http.StatusBadRequest, "membership_member_delete_105", "The member still has cloud projects.")
	}
	for _, table := range []string{Domains, Records} {
		if !t.since(Rules1) {
			break
		}
		if it, err := t.txn.Get(table, "member", id); err == nil && it.Next() != nil {
			return api.Errorf(http.StatusBadRequest, "membership_member_delete_106", "The member still owns DNS objects (%s); delete them first.", table)
		}
	}
	for _, table := range []string{Interfaces, IPAddresses} {
		if !t.since(Rules2) {
			break
		}
		// Melange tenant ids are stored in the canonical spelling
		// (tenantMember), so the member's is its id in decimal.
		// Released addresses keep their tenant until the purge: they do
		// not count (the caller could not remove them).
		it, err := t.txn.Get(table, "tenant", strconv.FormatUint(id, 10))
		if err != nil {
			continue
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if a, ok := raw.(*api.IPAddress); ok && a.Deallocated {
				continue
			}
			return api.Errorf(http.StatusBadRequest, "membership_member_delete_107", "The member is still the Melange tenant of objects (%s); delete them first.", table)
		}
	}
	for _, r := range t.RegionList() {
		for _, c := range r.Customers {
			if c == id {
				return api.Errorf(http.StatusBadRequest, "membership_member_delete_103", "The member is a customer of region %q; remove it from the region first.", r.Name)
			}
		}
	}
	return remove(t, Members, id, "membership_member_delete")
}

// User returns the user with id.
func (r *ReadTxn) User(id uint64) (*api.User, bool) { return get[*api.User](r, Users, id) }

// UserList returns all users ordered by id.
func (r *ReadTxn) UserList() []*api.User { return all[*api.User](r, Users, "id") }

// UserCreate stores a new user of an existing member; usernames are unique.
func (t *Txn) UserCreate(u *api.User) (*api.User, error) {
	if err := t.userChecks(u, "create"); err != nil {
		return nil, err
	}
	return u, insertNew(t, Users, u)
}

// UserUpdate replaces a user.
func (t *Txn) UserUpdate(u *api.User, expect uint64) (*api.User, error) {
	if err := t.userChecks(u, "update"); err != nil {
		return nil, err
	}
	return u, replace(t, Users, u, expect, "membership_user_update")
}

func (t *Txn) userChecks(u *api.User, method string) error {
	if _, ok := t.Member(u.MemberID); !ok {
		return fieldErr("member_id", code("membership", "user", method, 101), "Member %d does not exist.", u.MemberID)
	}
	raw, _ := t.txn.First(Users, "username", u.Username)
	if raw != nil && raw.(*api.User).ID != u.ID {
		return fieldErr("username", code("membership", "user", method, 102), "The username %q is taken.", u.Username)
	}
	return nil
}

// UserDelete removes a user and revokes all of its tokens. A user who is
// the manager (manager_id, the user emailed about its builds) of an open
// project cannot be deleted: the project would be left without one,
// pointing at nobody; the error names the projects to hand over first.
// Closed projects name nobody once their manager is deleted (manager_id 0),
// in the same transaction: no mail is sent for them any more.
func (t *Txn) UserDelete(id uint64) error {
	if u, ok := t.User(id); ok {
		var open, closed []*api.Project
		for _, p := range all[*api.Project](&t.ReadTxn, Projects, "member", u.MemberID) {
			switch {
			case p.ManagerID != id:
			case p.Closed:
				closed = append(closed, p)
			default:
				open = append(open, p)
			}
		}
		if len(open) > 0 {
			names := make([]string, len(open))
			for i, p := range open {
				names[i] = fmt.Sprintf("%d (%q)", p.ID, p.Name)
			}
			return api.Errorf(http.StatusBadRequest, "membership_user_delete_102",
				"The user is the manager of project(s) %s; give them another manager_id first.", strings.Join(names, ", "))
		}
		for _, p := range closed {
			n := *p
			n.ManagerID = 0
			if err := replace(t, Projects, &n, 0, "iaas_project_update"); err != nil {
				return err
			}
		}
	}
	for _, tok := range all[*TokenRecord](&t.ReadTxn, Tokens, "user", id) {
		if err := remove(t, Tokens, tok.ID, "membership_token_delete"); err != nil {
			return err
		}
	}
	return remove(t, Users, id, "membership_user_delete")
}

// Token returns the token with id.
func (r *ReadTxn) Token(id uint64) (*TokenRecord, bool) { return get[*TokenRecord](r, Tokens, id) }

// TokenList returns all tokens ordered by id.
func (r *ReadTxn) TokenList() []*TokenRecord { return all[*TokenRecord](r, Tokens, "id") }

// TokenByHash finds a token by the SHA-256 of its secret.
func (r *ReadTxn) TokenByHash(hash string) (*TokenRecord, bool) {
	raw, err := r.txn.First(Tokens, "hash", hash)
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*TokenRecord), true
}

// CredentialWatch returns channels that are closed when the token with
// tokenID or the user with userID changes in a later state (deleted, or
// updated: a user's privileges): a blocking query that is in flight
// authenticates again then. Nil channels for rows that do not exist here.
func (r *ReadTxn) CredentialWatch(tokenID, userID uint64) (token, user <-chan struct{}) {
	watch := func(table string, id uint64) <-chan struct{} {
		ch, raw, err := r.txn.FirstWatch(table, "id", id)
		if err != nil || raw == nil {
			return nil
		}
		return ch
	}
	return watch(Tokens, tokenID), watch(Users, userID)
}

// TokenCreate stores a token for an existing user. A robot token must name an
// existing region.
func (t *Txn) TokenCreate(tok *TokenRecord) (*TokenRecord, error) {
	u, ok := t.User(tok.UserID)
	if !ok {
		return nil, fieldErr("user_id", "membership_token_create_101", "User %d does not exist.", tok.UserID)
	}
	tok.MemberID = u.MemberID
	if tok.Kind == api.TokenKindRobot {
		if _, ok := t.Region(tok.RegionID); !ok {
			return nil, fieldErr("region_id", "membership_token_create_102", "Region %d does not exist.", tok.RegionID)
		}
	}
	if _, dup := t.TokenByHash(tok.Hash); dup {
		return nil, api.Errorf(http.StatusConflict, "membership_token_create_103", "A token with this secret already exists.")
	}
	return tok, insertNew(t, Tokens, tok)
}

// TokenDelete revokes a token.
func (t *Txn) TokenDelete(id uint64) error { return remove(t, Tokens, id, "membership_token_delete") }

// Region returns the region with id.
func (r *ReadTxn) Region(id uint64) (*api.Region, bool) { return get[*api.Region](r, Regions, id) }

// RegionList returns all regions ordered by id.
func (r *ReadTxn) RegionList() []*api.Region { return all[*api.Region](r, Regions, "id") }

// RegionCreate stores a region whose customers all exist.
func (t *Txn) RegionCreate(reg *api.Region) (*api.Region, error) {
	if err := t.regionChecks(reg, "create"); err != nil {
		return nil, err
	}
	return reg, insertNew(t, Regions, reg)
}

// RegionUpdate replaces a region.
func (t *Txn) RegionUpdate(reg *api.Region, expect uint64) (*api.Region, error) {
	if err := t.regionChecks(reg, "update"); err != nil {
		return nil, err
	}
	return reg, replace(t, Regions, reg, expect, "membership_region_update")
}

func (t *Txn) regionChecks(reg *api.Region, method string) error {
	raw, _ := t.txn.First(Regions, "name", reg.Name)
	if raw != nil && raw.(*api.Region).ID != reg.ID {
		return fieldErr("name", code("membership", "region", method, 101), "A region named %q already exists.", reg.Name)
	}
	for _, c := range reg.Customers {
		if _, ok := t.Member(c); !ok {
			return fieldErr("customers", code("membership", "region", method, 102), "Member %d does not exist.", c)
		}
	}
	return nil
}

// RegionDelete removes a region that no robot token is bound to, that has
// no projects, servers or routers, and (from Rules2) offers no images.
func (t *Txn) RegionDelete(id uint64) error {
	for _, tok := range t.TokenList() {
		if tok.Kind == api.TokenKindRobot && tok.RegionID == id {
			return api.Errorf(http.StatusBadRequest, "membership_region_delete_101", "Robot token %d is bound to this region; revoke it first.", tok.ID)
		}
	}
	for _, table := range []string{Projects, Servers, Routers} {
		if it, err := t.txn.Get(table, "region", id); err == nil && it.Next() != nil {
			return api.Errorf(http.StatusBadRequest, "membership_region_delete_102", "The region still has %s; remove them first.", table[len("compute_"):])
		}
	}
	if t.since(Rules2) {
		if it, err := t.txn.Get(RegionImages, "region", id); err == nil && it.Next() != nil {
			return api.Errorf(http.StatusBadRequest, "membership_region_delete_103", "The region still has region images; withdraw them first (DELETE /iaas/region_image/).")
		}
	}
	return remove(t, Regions, id, "membership_region_delete")
}

// Bootstrap creates the global member, the root user and the root token. It
// runs once, as the first command of a new cluster.
func (t *Txn) Bootstrap(memberName, username string, root *TokenRecord) (*TokenRecord, error) {
	if _, ok := t.Member(api.GlobalMemberID); ok {
		return nil, api.Errorf(http.StatusConflict, "regent_bootstrap_001", "The cluster is already bootstrapped.")
	}
	m, err := t.MemberCreate(&api.Member{Name: memberName, SelfManaged: true})
	if err != nil {
		return nil, err
	}
	u, err := t.UserCreate(&api.User{MemberID: m.ID, Username: username, FirstName: "Root", Administrator: true, GlobalActive: true})
	if err != nil {
		return nil, err
	}
	root.UserID = u.ID
	return t.TokenCreate(root)
}

// Node returns the controller node with id.
func (r *ReadTxn) Node(id string) (*Node, bool) {
	raw, err := r.txn.First(Nodes, "id", id)
	if err != nil || raw == nil {
		return nil, false
	}
	return raw.(*Node), true
}

// NodeList returns all known controller nodes ordered by id.
func (r *ReadTxn) NodeList() []*Node { return all[*Node](r, Nodes, "id") }

// NodeUpsert records a controller node's addresses.
func (t *Txn) NodeUpsert(n *Node) error {
	if _, err := t.bump(Nodes, false); err != nil {
		return err
	}
	return t.txn.Insert(Nodes, n)
}

// NodeDelete forgets a controller node.
func (t *Txn) NodeDelete(id string) error {
	raw, err := t.txn.First(Nodes, "id", id)
	if err != nil || raw == nil {
		return err
	}
	if _, err := t.bump(Nodes, false); err != nil {
		return err
	}
	return t.txn.Delete(Nodes, raw)
}
