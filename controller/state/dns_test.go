package state

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

// TestDomainOverlap: a domain may not be inside another member's domain,
// nor hold one; a member may nest its own; names that only share a
// textual suffix do not overlap. The check reads the name and suffix
// indexes (it read every domain before), also after a snapshot restore,
// which rebuilds the indexes.
func TestDomainOverlap(t *testing.T) {
	f := newFixture(t)
	f.bootstrap()
	a, b := f.member("a"), f.member("b")
	create := func(member uint64, name string) error {
		return f.do(func(t *Txn) error {
			_, err := t.DomainCreate(&api.Domain{MemberID: member, Name: name})
			return err
		})
	}
	for _, d := range []struct {
		member uint64
		name   string
	}{{a.ID, "example.com"}, {a.ID, "sub.example.com"}, {a.ID, "deep.in.example.org"}, {b.ID, "myexample.com"}, {b.ID, "example.net"}} {
		if err := create(d.member, d.name); err != nil {
			t.Fatalf("create %s: %v", d.name, err)
		}
	}
	check := func(f *fixture) {
		t.Helper()
		for _, c := range []struct {
			member  uint64
			name    string
			overlap string // "" when it may be created
		}{
			{b.ID, "x.example.com", "example.com"},           // inside a's
			{b.ID, "a.b.sub.example.com", "sub.example.com"}, // inside both of a's: the nearest is named
			{b.ID, "in.example.org", "deep.in.example.org"},  // holds a's
			{b.ID, "example.org", "deep.in.example.org"},     // holds a's, two levels down
			{b.ID, "xample.com", ""},                         // a textual suffix only
			{b.ID, "le.org", ""},                             // the same
			{a.ID, "x.myexample.com", "myexample.com"},       // inside b's
			{a.ID, "other.sub.example.com", ""},              // a's own
			{a.ID, "net2.example.net", "example.net"},        // inside b's
			{api.GlobalMemberID, "x.deep.in.example.org", "deep.in.example.org"},
		} {
			err := f.do(func(t *Txn) error {
				_, err := t.DomainCreate(&api.Domain{MemberID: c.member, Name: c.name})
				if err == nil {
					return errAborted // allowed: leave nothing behind
				}
				return err
			})
			switch {
			case c.overlap == "" && err != nil && !errors.Is(err, errAborted):
				t.Errorf("%s for member %d: %v, want it allowed", c.name, c.member, err)
			case c.overlap != "" && (err == nil || errors.Is(err, errAborted) || !strings.Contains(err.Error(), "the domain "+c.overlap+" ")):
				t.Errorf("%s for member %d: %v, want an overlap with %s", c.name, c.member, err, c.overlap)
			}
		}
	}
	check(f)
	var snap bytes.Buffer
	if err := f.s.Read().Persist(&snap); err != nil {
		t.Fatal(err)
	}
	g := newFixture(t)
	if err := g.s.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	check(g)
}

var errAborted = errors.New("aborted: the create was allowed")
