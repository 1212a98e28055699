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
