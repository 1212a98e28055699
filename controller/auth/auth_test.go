package auth

import (
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// TestTokenWithUnreadableExpiryIsRefused: a token whose expiry cannot be
// read (no API writes one, but a restored snapshot may carry anything) is
// refused, not taken as a token that never expires. Before the fix it
// authenticated.
func TestTokenWithUnreadableExpiryIsRefused(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		expires string
		ok      bool
	}{
		{"", true},
		{"2030-01-02T04:00:00Z", true},
		{"2030-01-02T03:00:00Z", false},
		{"next tuesday", false},
		{"2030-01-02", false},
	} {
		s := state.New()
		txn := s.Write(1, now)
		secret := "rgt_test" + tc.expires
		if _, err := txn.Bootstrap("CIX", "root", &state.TokenRecord{Token: api.Token{Kind: api.TokenKindUser, Expires: tc.expires}, Hash: Hash(secret)}); err != nil {
			t.Fatal(err)
		}
		txn.Commit()
		p, err := Authenticate(s.Read(), secret, now)
		if got := err == nil; got != tc.ok {
			t.Errorf("expires %q: authenticated %v (%v), want %v", tc.expires, got, err, tc.ok)
		}
		if err == nil && tc.expires != "" && p.Expires.IsZero() {
			t.Errorf("expires %q: the principal carries no expiry", tc.expires)
		}
	}
}

// TestTokenMinterDecidesGlobalAdministrator: a global administrator's
// token minted by another user who was not a global administrator then is
// refused (401 regent_auth_003); one minted by a global administrator, by
// the user itself, or before tokens recorded their minter (MintedBy 0) acts
// as a global administrator.
func TestTokenMinterDecidesGlobalAdministrator(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		mintedBy    uint64 // the root user is 1
		minterAdmin bool
		minter      bool // global
		ok          bool
	}{
		{"older token", 0, false, false, true},
		{"minted by the user", 1, false, false, true},
		{"minted by a global administrator", 7, true, true, true},
		{"minted by another user", 7, false, false, false},
		{"minted by a global user", 7, false, true, false},
	} {
		s := state.New()
		txn := s.Write(1, now)
		if _, err := txn.Bootstrap("CIX", "root", &state.TokenRecord{Token: api.Token{Kind: api.TokenKindUser}, Hash: Hash("rgt_test"),
			MintedBy: tc.mintedBy, MinterGlobalAdmin: tc.minterAdmin, MinterGlobal: tc.minter}); err != nil {
			t.Fatal(err)
		}
		txn.Commit()
		p, err := Authenticate(s.Read(), "rgt_test", now)
		switch {
		case tc.ok && (err != nil || !p.Holds(GlobalAdmin)):
			t.Errorf("%s: %+v, %v; want a global administrator", tc.name, p, err)
		case !tc.ok:
			if e, isAPI := err.(*api.Error); !isAPI || e.Status != 401 || e.ErrorCode != api.CodeAuthMinted {
				t.Errorf("%s: %+v, %v; want 401 %s", tc.name, p, err, api.CodeAuthMinted)
			}
		}
	}
}
