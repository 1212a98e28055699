package client

import (
	"context"
	"strconv"

	"github.com/regentcloud/regent/pkg/api"
)

// Paths of the membership services.
const (
	MemberPath = "/membership/member/"
	UserPath   = "/membership/user/"
	TokenPath  = "/membership/token/"
	RegionPath = "/membership/region/"
)

// Members is the member (tenant) service.
func (c *Client) Members() *Service[*api.Member, api.MemberInput] {
	return NewService[*api.Member, api.MemberInput](c, MemberPath)
}

// Users is the user service.
func (c *Client) Users() *Service[*api.User, api.UserInput] {
	return NewService[*api.User, api.UserInput](c, UserPath)
}

// Regions is the region service.
func (c *Client) Regions() *Service[*api.Region, api.RegionInput] {
	return NewService[*api.Region, api.RegionInput](c, RegionPath)
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
func (s *TokenService) Create(ctx context.Context, in *api.TokenInput) (*api.Token, *Meta, error) {
	if in == nil {
		in = &api.TokenInput{}
	}
	return Create[*api.Token](ctx, s.c, TokenPath, in)
}

// Delete revokes a token.
func (s *TokenService) Delete(ctx context.Context, id uint64) (*Meta, error) {
	return Delete(ctx, s.c, TokenPath+strconv.FormatUint(id, 10)+"/")
}
