package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture applies operations to a store the way the FSM does: one write
// transaction per raft index, committed on success and aborted on error.
type fixture struct {
	t     testing.TB
	s     *Store
	index uint64
}

func newFixture(t testing.TB) *fixture { return &fixture{t: t, s: New()} }

func (f *fixture) do(op func(*Txn) error) error {
	f.index++
	txn := f.s.Write(f.index, t0.Add(time.Duration(f.index)*time.Second))
	if err := op(txn); err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	return nil
}

func (f *fixture) ok(what string, op func(*Txn) error) {
	f.t.Helper()
	if err := f.do(op); err != nil {
		f.t.Fatalf("%s: %v", what, err)
	}
}

// bootstrap creates the global member (1), root user (1) and root token (1).
func (f *fixture) bootstrap() {
	f.t.Helper()
	f.ok("bootstrap", func(t *Txn) error {
		_, err := t.Bootstrap("CIX", "root", &TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser, Prefix: "rgt_root"}, Hash: "hash-root"})
		return err
	})
}

func (f *fixture) member(name string) *api.Member {
	f.t.Helper()
	var m *api.Member
	f.ok("create member "+name, func(t *Txn) (err error) { m, err = t.MemberCreate(&api.Member{Name: name}); return })
	return m
}

func (f *fixture) user(memberID uint64, name string) *api.User {
	f.t.Helper()
	var u *api.User
	f.ok("create user "+name, func(t *Txn) (err error) {
		u, err = t.UserCreate(&api.User{MemberID: memberID, Username: name})
		return
	})
	return u
}

func (f *fixture) token(userID uint64, hash string) *TokenRecord {
	f.t.Helper()
	var tok *TokenRecord
	f.ok("create token "+hash, func(t *Txn) (err error) {
		tok, err = t.TokenCreate(&TokenRecord{Token: api.Token{UserID: userID, Kind: api.TokenKindUser, Name: hash}, Hash: hash})
		return
	})
	return tok
}

func (f *fixture) snapshot() []byte {
	f.t.Helper()
	var buf bytes.Buffer
	if err := f.s.Read().Persist(&buf); err != nil {
		f.t.Fatal(err)
	}
	return buf.Bytes()
}

// wantErr checks that err is an *api.Error with status and code (the
// top-level code or the code of field).
func wantErr(t *testing.T, what string, err error, status int, field, code string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: want *api.Error %d %s, got %v", what, status, code, err)
	}
	got := e.ErrorCode
	if field != "" {
		got = e.Errors[field].ErrorCode
	}
	if e.Status != status || got != code {
		t.Fatalf("%s: want %d %s (field %q), got %d %q: %v", what, status, code, field, e.Status, got, err)
	}
}

func TestBootstrapOnce(t *testing.T) {
	f := newFixture(t)
	f.bootstrap()
	rt := f.s.Read()
	if m, ok := rt.Member(api.GlobalMemberID); !ok || m.Name != "CIX" || !m.SelfManaged {
		t.Fatalf("global member: %+v %v", m, ok)
	}
	if tok, ok := rt.TokenByHash("hash-root"); !ok || tok.UserID != 1 || tok.MemberID != api.GlobalMemberID {
		t.Fatalf("root token: %+v %v", tok, ok)
	}
	err := f.do(func(t *Txn) error {
		_, err := t.Bootstrap("CIX", "root", &TokenRecord{Hash: "other"})
		return err
	})
	wantErr(t, "second bootstrap", err, http.StatusConflict, "", "regent_bootstrap_001")
}

func TestUniqueness(t *testing.T) {
	f := newFixture(t)
	f.bootstrap()
	acme := f.member("Acme")
	other := f.member("Other")

	err := f.do(func(t *Txn) error { _, err := t.MemberCreate(&api.Member{Name: "ACME"}); return err })
	wantErr(t, "member name taken (case-insensitive)", err, 400, "name", "membership_member_create_101")
	err = f.do(func(t *Txn) error {
		m := *other
		m.Name = "acme"
		_, err := t.MemberUpdate(&m, 0)
		return err
	})
	wantErr(t, "rename member onto another's name", err, 400, "name", "membership_member_update_101")
	f.ok("rename member to its own name in another case", func(t *Txn) error {
		m := *acme
		m.Name = "ACME"
		_, err := t.MemberUpdate(&m, 0)
		return err
	})

	f.user(acme.ID, "alice")
	err = f.do(func(t *Txn) error {
		_, err := t.UserCreate(&api.User{MemberID: other.ID, Username: "Alice"})
		return err
	})
	wantErr(t, "username taken", err, 400, "username", "membership_user_create_102")
	err = f.do(func(t *Txn) error { _, err := t.UserCreate(&api.User{MemberID: 99, Username: "bob"}); return err })
	wantErr(t, "user of a missing member", err, 400, "member_id", "membership_user_create_101")

	f.ok("region", func(t *Txn) error {
		_, err := t.RegionCreate(&api.Region{Name: "eu-1", Customers: []uint64{acme.ID}})
		return err
	})
	err = f.do(func(t *Txn) error { _, err := t.RegionCreate(&api.Region{Name: "EU-1"}); return err })
	wantErr(t, "region name taken", err, 400, "name", "membership_region_create_101")
	err = f.do(func(t *Txn) error {
		_, err := t.RegionCreate(&api.Region{Name: "eu-2", Customers: []uint64{42}})
		return err
	})
	wantErr(t, "region with a missing customer", err, 400, "customers", "membership_region_create_102")

	f.token(1, "h1")
	err = f.do(func(t *Txn) error {
		_, err := t.TokenCreate(&TokenRecord{Token: api.Token{UserID: 1, Kind: api.TokenKindUser}, Hash: "h1"})
		return err
	})
	wantErr(t, "token with a duplicate secret", err, 409, "", "membership_token_create_103")
	err = f.do(func(t *Txn) error {
		_, err := t.TokenCreate(&TokenRecord{Token: api.Token{UserID: 77, Kind: api.TokenKindUser}, Hash: "h2"})
		return err
	})
	wantErr(t, "token of a missing user", err, 400, "user_id", "membership_token_create_101")
	err = f.do(func(t *Txn) error {
		_, err := t.TokenCreate(&TokenRecord{Token: api.Token{UserID: 1, Kind: api.TokenKindRobot, RegionID: 9}, Hash: "h3"})
		return err
	})
	wantErr(t, "robot token of a missing region", err, 400, "region_id", "membership_token_create_102")

	// Failed commands leave no trace: ids are not consumed.
	m := f.member("Third")
	if m.ID != other.ID+1 {
		t.Errorf("id after failed creates: %d, want %d", m.ID, other.ID+1)
	}
}

func TestMemberDeleteRules(t *testing.T) {
	f := newFixture(t)
	f.bootstrap()
	m := f.member("Acme")
	u := f.user(m.ID, "alice")
	var reg *api.Region
	f.ok("region", func(t *Txn) (err error) {
		reg, err = t.RegionCreate(&api.Region{Name: "eu-1", Customers: []uint64{m.ID}})
		return
	})

	del := func(id uint64) error { return f.do(func(t *Txn) error { return t.MemberDelete(id) }) }
	wantErr(t, "delete the global member", del(api.GlobalMemberID), 400, "", "membership_member_delete_101")
	wantErr(t, "delete a member with users", del(m.ID), 400, "", "membership_member_delete_102")
	f.ok("delete user", func(t *Txn) error { return t.UserDelete(u.ID) })
	wantErr(t, "delete a region's customer", del(m.ID), 400, "", "membership_member_delete_103")
	f.ok("drop customer", func(t *Txn) error {
		r := *reg
		r.Customers = []uint64{}
		_, err := t.RegionUpdate(&r, 0)
		return err
	})
	if err := del(m.ID); err != nil {
		t.Fatalf("delete a free member: %v", err)
	}
	wantErr(t, "delete a missing member", del(m.ID), 404, "", "membership_member_delete_001")
	if _, ok := f.s.Read().Member(m.ID); ok {
		t.Fatal("member still there")
	}
}

func TestUserDeleteRevokesTokens(t *testing.T) {
	f := newFixture(t)
	f.bootstrap()
	m := f.member("Acme")
	alice, bob := f.user(m.ID, "alice"), f.user(m.ID, "bob")
	a1, a2, b1 := f.token(alice.ID, "ha1"), f.token(alice.ID, "ha2"), f.token(bob.ID, "hb1")
	if a1.MemberID != m.ID {
		t.Errorf("token member_id %d, want %d", a1.MemberID, m.ID)
	}
	before := f.s.Read().TableIndex(Tokens)
	f.ok("delete alice", func(t *Txn) error { return t.UserDelete(alice.ID) })
	rt := f.s.Read()
	for _, tok := range []*TokenRecord{a1, a2} {
		if _, ok := rt.Token(tok.ID); ok {
			t.Errorf("token %d of the deleted user survives", tok.ID)
		}
		if _, ok := rt.TokenByHash(tok.Hash); ok {
			t.Errorf("token hash %s of the deleted user still resolves", tok.Hash)
		}
	}
	if _, ok := rt.Token(b1.ID); !ok {
		t.Error("another user's token was revoked")
	}
	if rt.TableIndex(Tokens) <= before {
		t.Error("revoking tokens did not bump the tokens table index (blocking queries would miss it)")
	}
	if _, ok := rt.User(alice.ID); ok {
		t.Error("user still there")
	}
	wantErr(t, "delete a missing user", f.do(func(t *Txn) error { return t.UserDelete(alice.ID) }), 404, "", "membership_user_delete_001")

	// A region a robot token is bound to cannot be deleted.
	var reg *api.Region
	f.ok("region", func(t *Txn) (err error) { reg, err = t.RegionCreate(&api.Region{Name: "eu-1"}); return })
	f.ok("robot token", func(t *Txn) error {
		_, err := t.TokenCreate(&TokenRecord{Token: api.Token{UserID: 1, Kind: api.TokenKindRobot, RegionID: reg.ID}, Hash: "robot"})
		return err
	})
	wantErr(t, "delete a region with a robot token", f.do(func(t *Txn) error { return t.RegionDelete(reg.ID) }), 400, "", "membership_region_delete_101")
}

func TestCompareAndSwap(t *testing.T) {
	f := newFixture(t)
	f.bootstrap()
	m := f.member("Acme")
	created := m.ModifiedIndex
	if m.CreatedIndex != created || m.Created == "" || m.Created != m.Updated {
		t.Fatalf("fresh member meta: %+v", m.Meta)
	}
	upd := func(name string, expect uint64) (*api.Member, error) {
		var out *api.Member
		err := f.do(func(t *Txn) (err error) {
			cur, _ := t.Member(m.ID)
			c := *cur
			c.Name = name
			out, err = t.MemberUpdate(&c, expect)
			return
		})
		return out, err
	}
	v1, err := upd("Acme 1", created)
	if err != nil {
		t.Fatalf("update with the current index: %v", err)
	}
	if v1.ModifiedIndex != f.index || v1.CreatedIndex != created || v1.Created != m.Created || v1.Updated == m.Created {
		t.Fatalf("meta after update: %+v (index %d)", v1.Meta, f.index)
	}
	_, err = upd("Acme 2", created) // stale: the object moved on
	wantErr(t, "update with a stale expect index", err, http.StatusConflict, "", "membership_member_update_002")
	if cur, _ := f.s.Read().Member(m.ID); cur.Name != "Acme 1" {
		t.Fatalf("a refused update changed the member: %+v", cur)
	}
	if _, err := upd("Acme 3", 0); err != nil {
		t.Fatalf("update without expect: %v", err)
	}
	// The same for users and regions.
	u := f.user(m.ID, "alice")
	err = f.do(func(t *Txn) error {
		c := *u
		c.Surname = "X"
		_, err := t.UserUpdate(&c, u.ModifiedIndex+1000)
		return err
	})
	wantErr(t, "user update with a wrong expect index", err, http.StatusConflict, "", "membership_user_update_002")
	err = f.do(func(t *Txn) error {
		_, err := t.RegionUpdate(&api.Region{Meta: api.Meta{ID: 12}, Name: "x"}, 0)
		return err
	})
	wantErr(t, "update of a missing region", err, http.StatusNotFound, "", "membership_region_update_001")
}

// populated returns a store with a bit of everything, and its snapshot.
func populated(t *testing.T) (*fixture, []byte) {
	f := newFixture(t)
	f.bootstrap()
	for i := range 5 {
		m := f.member(fmt.Sprintf("member-%d", i))
		u := f.user(m.ID, fmt.Sprintf("user-%d", i))
		f.token(u.ID, fmt.Sprintf("hash-%d", i))
	}
	f.ok("region", func(t *Txn) error {
		_, err := t.RegionCreate(&api.Region{Name: "eu-1", Customers: []uint64{2, 3}})
		return err
	})
	f.ok("node", func(t *Txn) error {
		return t.NodeUpsert(&Node{ID: "node1", RaftAddr: "127.0.0.1:8300", HTTPAddr: "http://127.0.0.1:8080"})
	})
	f.ok("delete", func(t *Txn) error { return t.UserDelete(4) })
	return f, f.snapshot()
}

func TestSnapshotRoundTrip(t *testing.T) {
	f, snap := populated(t)
	if again := f.snapshot(); !bytes.Equal(snap, again) {
		t.Fatal("two snapshots of the same state differ")
	}
	idx, err := Validate(bytes.NewReader(snap))
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if idx != f.index {
		t.Errorf("Validate: index %d, want %d (the last write)", idx, f.index)
	}
	s2 := New()
	if err := s2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	var buf bytes.Buffer
	if err := s2.Read().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, buf.Bytes()) {
		t.Fatalf("restored state persists differently:\n%s\nvs\n%s", snap, buf.Bytes())
	}
	// The restored store continues where the original left off (ids).
	f2 := &fixture{t: t, s: s2, index: f.index}
	if m := f2.member("after"); m.ID != 7 {
		t.Errorf("next member id after restore: %d, want 7", m.ID)
	}
}

// A restore that moves a table past a blocking query's index wakes it.
func TestRestoreWakesBlockingQueries(t *testing.T) {
	_, snap := populated(t) // members at index 11
	f := newFixture(t)
	f.bootstrap()
	min := f.s.Read().TableIndex(Members)
	done := make(chan uint64)
	go func() { done <- f.s.Wait(t.Context(), min, Members) }()
	time.Sleep(20 * time.Millisecond)
	if err := f.s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got <= min {
			t.Errorf("Wait returned %d, want > %d", got, min)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a blocking query was not woken by a restore past its index")
	}
}

// Restores counts the restores that replaced the state, and only those: a
// refused snapshot leaves it as it was (the leader's agent memory starts
// afresh on a change of it).
func TestRestoresCounted(t *testing.T) {
	_, snap := populated(t)
	s := New()
	if n := s.Restores(); n != 0 {
		t.Errorf("a new store: %d restores", n)
	}
	if err := s.Restore(bytes.NewReader(snap[:len(snap)/2])); err == nil {
		t.Fatal("a truncated snapshot restored")
	}
	if n := s.Restores(); n != 0 {
		t.Errorf("after a refused restore: %d restores", n)
	}
	for want := uint64(1); want <= 2; want++ {
		if err := s.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatal(err)
		}
		if n := s.Restores(); n != want {
			t.Errorf("after restore %d: Restores %d", want, n)
		}
	}
}

// snapParts splits a snapshot into header, record lines and trailer.
func snapParts(t *testing.T, snap []byte) (header string, records []string, trailer string) {
	lines := strings.SplitAfter(string(snap), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) < 3 {
		t.Fatalf("snapshot too short: %q", snap)
	}
	return lines[0], lines[1 : len(lines)-1], lines[len(lines)-1]
}

// seal builds a snapshot with a correct trailer over header and records,
// counting n records (-1: the real count).
func seal(header string, records []string, n int) []byte {
	body := header + strings.Join(records, "")
	if n < 0 {
		n = len(records)
	}
	sum := sha256.Sum256([]byte(body))
	trailer, _ := json.Marshal(struct {
		T      string `json:"t"`
		N      int    `json:"n"`
		SHA256 string `json:"sha256"`
	}{"#end", n, hex.EncodeToString(sum[:])})
	return []byte(body + string(trailer) + "\n")
}

func TestSnapshotLoadRejectsCorruptInput(t *testing.T) {
	_, snap := populated(t)
	header, records, trailer := snapParts(t, snap)
	if !bytes.Equal(seal(header, records, -1), snap) {
		t.Fatal("test helper seal does not reproduce the snapshot's trailer")
	}
	memberLine := -1
	for i, r := range records {
		if strings.HasPrefix(r, `{"t":"members"`) {
			memberLine = i
			break
		}
	}
	if memberLine < 0 {
		t.Fatal("no member record")
	}
	with := func(i int, line string) []string {
		out := append([]string(nil), records...)
		out[i] = line
		return out
	}
	insert := func(i int, line string) []string {
		out := append([]string(nil), records[:i]...)
		out = append(out, line)
		return append(out, records[i:]...)
	}
	badSum := strings.Replace(trailer, `"sha256":"`, `"sha256":"00`, 1)

	cases := []struct {
		name string
		in   []byte
		want string // substring of the error
	}{
		{"empty", nil, "missing header"},
		{"wrong header version", []byte(strings.Replace(string(snap), "REGENT-SNAPSHOT 1", "REGENT-SNAPSHOT 2", 1)), "missing header"},
		{"no header", []byte(strings.Join(records, "") + trailer), "missing header"},
		{"header only", []byte(header), "truncated"},
		{"truncated mid-record", snap[:len(snap)/2], "truncated"},
		{"truncated before the trailer", []byte(header + strings.Join(records, "")), "truncated"},
		{"trailer without its newline", snap[:len(snap)-1], "truncated"},
		{"bad checksum", []byte(header + strings.Join(records, "") + badSum), "checksum mismatch"},
		{"record changed after sealing", []byte(header + strings.Join(with(memberLine, strings.Replace(records[memberLine], "CIX", "CIY", 1)), "") + trailer), "checksum mismatch"},
		{"record dropped", []byte(header + strings.Join(records[1:], "") + trailer), "trailer counts"},
		{"wrong record count", seal(header, records, len(records)+1), "trailer counts"},
		{"unknown table", seal(header, insert(1, `{"t":"bogus","v":{"id":1}}`+"\n"), -1), "unknown table"},
		{"unknown envelope field", seal(header, insert(1, `{"t":"members","v":{"id":77,"name":"x"},"x":1}`+"\n"), -1), "line 3"},
		{"record of the wrong shape", seal(header, with(memberLine, `{"t":"members","v":[1,2,3]}`+"\n"), -1), "line"},
		{"record that is not JSON", seal(header, insert(0, "not json\n"), -1), "line 2"},
		{"trailing data", append(bytes.Clone(snap), "x"...), "data after trailer"},
		{"trailing newline", append(bytes.Clone(snap), '\n'), "data after trailer"},
		{"two snapshots back to back", append(bytes.Clone(snap), snap...), "data after trailer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(bytes.NewReader(tc.in))
			if err == nil {
				t.Fatalf("Validate accepted it")
			}
			if !errors.Is(err, ErrBadSnapshot) {
				t.Errorf("Validate error does not wrap ErrBadSnapshot: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate error %q, want it to mention %q", err, tc.want)
			}
			// Restore refuses it too and leaves the live state alone.
			f, _ := populated(t)
			before := f.snapshot()
			if err := f.s.Restore(bytes.NewReader(tc.in)); err == nil {
				t.Fatal("Restore accepted it")
			}
			if after := f.snapshot(); !bytes.Equal(before, after) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
}

// A restore to a younger state (table indexes below a blocking query's
// minIndex) must still wake the query, reporting the restored index, rather
// than leave it waiting for an index the new state may never reach.
func TestRestoreOfYoungerStateWakesBlockingQueries(t *testing.T) {
	young := newFixture(t)
	young.bootstrap()
	young.member("Acme")
	snap := young.snapshot()
	want := young.s.Read().TableIndex(Members)

	f, _ := populated(t)
	min := f.s.Read().TableIndex(Members)
	if want >= min {
		t.Fatalf("test setup: younger state's members index %d is not below %d", want, min)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan uint64, 1)
	go func() { done <- f.s.Wait(ctx, min, Members) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case got := <-done:
		t.Fatalf("Wait returned %d before anything changed", got)
	default:
	}
	if err := f.s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got != want {
			t.Errorf("Wait returned %d after the restore, want the restored index %d", got, want)
		}
	case <-time.After(time.Second):
		t.Fatal("a blocking query was not woken by a restore to a younger state")
	}
}

// A snapshot with a valid checksum whose records collide (the same id twice
// in a table, or the same value of a unique index) is refused: loading it
// would silently drop records or break uniqueness.
func TestSnapshotLoadRejectsDuplicates(t *testing.T) {
	_, snap := populated(t)
	header, records, _ := snapParts(t, snap)
	find := func(prefix string) int {
		t.Helper()
		for i, r := range records {
			if strings.HasPrefix(r, prefix) {
				return i
			}
		}
		t.Fatalf("no record starting with %s", prefix)
		return -1
	}
	// after returns the records with line inserted right after records[i].
	after := func(i int, line string) []string {
		out := append([]string(nil), records[:i+1]...)
		out = append(out, line)
		return append(out, records[i+1:]...)
	}
	// variant re-encodes records[i] with change applied to its value.
	variant := func(i int, change func(v map[string]any)) string {
		t.Helper()
		var rec struct {
			T string         `json:"t"`
			V map[string]any `json:"v"`
		}
		if err := json.Unmarshal([]byte(records[i]), &rec); err != nil {
			t.Fatal(err)
		}
		change(rec.V)
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	member := find(`{"t":"members","v":{"id":2,`) // member-0
	user := find(`{"t":"users"`)
	token := find(`{"t":"tokens"`)
	region := find(`{"t":"regions"`)
	node := find(`{"t":"nodes"`)
	lastMember := find(`{"t":"users"`) - 1

	cases := []struct {
		name    string
		records []string
	}{
		{"member id twice", after(member, variant(member, func(v map[string]any) { v["name"] = "someone else" }))},
		{"member id twice, identical records", after(member, records[member])},
		{"member name twice, other case", after(lastMember, variant(member, func(v map[string]any) {
			v["id"] = 99
			v["name"] = strings.ToUpper(v["name"].(string))
		}))},
		{"member name twice, same case", after(lastMember, variant(member, func(v map[string]any) { v["id"] = 99 }))},
		{"user id twice", after(user, variant(user, func(v map[string]any) { v["username"] = "another" }))},
		{"username twice", after(user, variant(user, func(v map[string]any) {
			v["id"] = 99
			v["username"] = strings.ToUpper(v["username"].(string))
		}))},
		{"token id twice", after(token, variant(token, func(v map[string]any) { v["hash"] = "another" }))},
		{"token hash twice", after(token, variant(token, func(v map[string]any) { v["id"] = 99 }))},
		{"region name twice", after(region, variant(region, func(v map[string]any) { v["id"] = 99 }))},
		{"node id twice", after(node, variant(node, func(v map[string]any) { v["http_addr"] = "http://10.0.0.1:8080" }))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := seal(header, tc.records, -1)
			_, err := Validate(bytes.NewReader(in))
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			if !errors.Is(err, ErrBadSnapshot) {
				t.Errorf("Validate error does not wrap ErrBadSnapshot: %v", err)
			}
			f, _ := populated(t)
			before := f.snapshot()
			if err := f.s.Restore(bytes.NewReader(in)); err == nil {
				t.Fatal("Restore accepted it")
			} else if !errors.Is(err, ErrBadSnapshot) {
				t.Errorf("Restore error does not wrap ErrBadSnapshot: %v", err)
			}
			if after := f.snapshot(); !bytes.Equal(before, after) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
	// The helpers themselves produce a snapshot that loads.
	if _, err := Validate(bytes.NewReader(seal(header, after(lastMember, variant(member, func(v map[string]any) {
		v["id"] = 99
		v["name"] = "unique"
	})), -1))); err != nil {
		t.Fatalf("a snapshot with an extra, distinct member was refused: %v", err)
	}
}
