package client

import (
	"context"
	"strconv"

	"github.com/regentcloud/regent/pkg/api"
)

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
	// Kind is api.TokenKindUser (default) or api.TokenKindRobot; robot
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

// Paths of the membership services.
const (
	MemberPath = "/membership/member/"
	UserPath   = "/membership/user/"
	TokenPath  = "/membership/token/"
	RegionPath = "/membership/region/"
)

// Members is the member (tenant) service.
func (c *Client) Members() *Service[*api.Member, MemberInput] {
	return NewService[*api.Member, MemberInput](c, MemberPath)
}

// Users is the user service.
func (c *Client) Users() *Service[*api.User, UserInput] {
	return NewService[*api.User, UserInput](c, UserPath)
}

// Regions is the region service.
func (c *Client) Regions() *Service[*api.Region, RegionInput] {
	return NewService[*api.Region, RegionInput](c, RegionPath)
}

// TokenService is the token service. Tokens cannot be updated: delete and
// create another.
type TokenService struct{ c *Client }

// Tokens is the token service.
func (c *Client) Tokens() *TokenService { return &TokenService{c: c} }

// List fetches one page of tokens.
func (s *TokenService) List(ctx context.Context, opts *ListOptions) (*api.List[*api.Token], *Meta, error) {
	return List[*api.Token](ctx, s.c, TokenPath, opts)
}

// ListAll fetches every page of tokens.
func (s *TokenService) ListAll(ctx context.Context, opts *ListOptions) ([]*api.Token, *Meta, error) {
	return ListAll[*api.Token](ctx, s.c, TokenPath, opts)
}

// Get reads one token (without its secret).
func (s *TokenService) Get(ctx context.Context, id uint64, opts *QueryOptions) (*api.Token, *Meta, error) {
	return Get[*api.Token](ctx, s.c, TokenPath+strconv.FormatUint(id, 10)+"/", opts)
}

// Create creates a token. The returned token's Secret is the credential;
// this is the only time it is shown.
func (s *TokenService) Create(ctx context.Context, in *TokenInput) (*api.Token, *Meta, error) {
	if in == nil {
		in = &TokenInput{}
	}
	return Create[*api.Token](ctx, s.c, TokenPath, in)
}

// Delete revokes a token.
func (s *TokenService) Delete(ctx context.Context, id uint64) (*Meta, error) {
	return Delete(ctx, s.c, TokenPath+strconv.FormatUint(id, 10)+"/")
}
