package state

import (
	"testing"

	"github.com/regentcloud/regent/pkg/api"
)

// TestRulesOfTheCommand: a command is applied under the rules it was made
// under. Replaying an entry made before Rules1 (a follower catching up, a
// node restarted after the upgrade) gives what it gave then, so every node
// holds the same state whichever binary first applied it; the same command
// made now follows the new rules.
func TestRulesOfTheCommand(t *testing.T) {
	under := func(rules uint32) (deleted bool, dup bool) {
		f := newFixture(t)
		f.bootstrap()
		m := f.member("acme")
		var d *api.Domain
		f.ok("domain", func(t *Txn) (err error) {
			d, err = t.DomainCreate(&api.Domain{MemberID: m.ID, Name: "acme.example"})
			return
		})
		f.ok("txt", func(t *Txn) error {
			_, err := t.RecordCreate(&api.Record{DomainID: d.ID, MemberID: m.ID, Name: "acme.example", Type: "TXT", Content: "Token", TTL: 3600})
			return err
		})
		dupErr := f.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.RecordCreate(&api.Record{DomainID: d.ID, MemberID: m.ID, Name: "acme.example", Type: "TXT", Content: "token", TTL: 3600})
			return err
		})
		delErr := f.do(func(t *Txn) error {
			t.Rules = rules
			return t.MemberDelete(m.ID)
		})
		return delErr == nil, dupErr != nil
	}
	if deleted, dup := under(RulesOriginal); !deleted || !dup {
		t.Errorf("under the original rules: member deleted %v (want true), TXT differing in case refused %v (want true)", deleted, dup)
	}
	if deleted, dup := under(Rules1); deleted || dup {
		t.Errorf("under Rules1: member deleted %v (want false), TXT differing in case refused %v (want false)", deleted, dup)
	}
}
