package state

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// fired reports whether w's wait ends within d.
func fired(w *Watch, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return w.Wait(ctx) == nil
}

// TestWatch: a watching transaction's Watch fires when what it read
// changes (or is restored over), not when other rows of the same table
// change; a read memdb cannot watch makes it broad.
func TestWatch(t *testing.T) {
	s := New()
	write := func(f func(tx *Txn) error) {
		t.Helper()
		tx := s.Write(1, time.Unix(0, 0))
		if err := f(tx); err != nil {
			tx.Abort()
			t.Fatal(err)
		}
		tx.Commit()
	}
	var a, b *api.Member
	write(func(tx *Txn) (err error) {
		if a, err = tx.MemberCreate(&api.Member{Name: "a"}); err != nil {
			return err
		}
		b, err = tx.MemberCreate(&api.Member{Name: "b"})
		return err
	})

	r, w := s.Read().Watching()
	if _, ok := r.Member(a.ID); !ok {
		t.Fatal("member a not found")
	}
	r.MaxIndex(Members) // table indexes are not watched
	if !w.Precise() {
		t.Fatal("a read by id is not precisely watched")
	}
	write(func(tx *Txn) error { _, err := tx.MemberUpdate(&api.Member{Meta: b.Meta, Name: "b2"}, 0); return err })
	write(func(tx *Txn) error { _, err := tx.MemberCreate(&api.Member{Name: "c"}); return err })
	if fired(w, 50*time.Millisecond) {
		t.Error("the watch of member a fired for changes to other members")
	}
	write(func(tx *Txn) error { _, err := tx.MemberUpdate(&api.Member{Meta: a.Meta, Name: "a2"}, 0); return err })
	if !fired(w, time.Second) {
		t.Error("the watch of member a did not fire when a changed")
	}

	// A restore replaces the state read.
	r, w = s.Read().Watching()
	r.Member(a.ID)
	var snap bytes.Buffer
	if err := s.Read().Persist(&snap); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	if !fired(w, time.Second) {
		t.Error("the watch did not fire at a restore")
	}

	// A scan from a bound cannot be watched.
	r, w = s.Read().Watching()
	if it, err := r.txn.LowerBound(Members, "id", uint64(0)); err != nil || it == nil {
		t.Fatal(err)
	}
	if w.Precise() {
		t.Error("a LowerBound scan left the watch precise")
	}

	// More channels than watchLimit: broad.
	write(func(tx *Txn) error {
		for i := range watchLimit + 1 {
			if _, err := tx.MemberCreate(&api.Member{Name: fmt.Sprintf("m%d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	r, w = s.Read().Watching()
	for id := range uint64(watchLimit + 10) {
		r.Member(id + 1)
	}
	if w.Precise() {
		t.Errorf("%d watched reads left the watch precise", watchLimit+10)
	}
}
