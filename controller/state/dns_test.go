package state

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
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

// TestNestedZones: from Rules4 a domain is not created while its parent
// domain holds records at or below its apex (409 iaas_domain_create_109,
// naming them), except the parent's delegation of it (NS at its apex) and
// their glue; and a forward record of the parent whose name lies inside a
// child domain is refused (400 iaas_record_{create,update}_122 on name,
// naming the child), delegation and glue excepted. Commands made under
// Rules3 replay as they applied: both were allowed.
func TestNestedZones(t *testing.T) {
	setup := func() (*fixture, *api.Domain, uint64) {
		f := newFixture(t)
		f.bootstrap()
		m := f.member("acme")
		var parent *api.Domain
		f.ok("parent", func(t *Txn) (err error) {
			parent, err = t.DomainCreate(&api.Domain{MemberID: m.ID, Name: "yy.example"})
			return err
		})
		rec := func(name, typ, content string) uint64 {
			var r *api.Record
			f.ok(name, func(t *Txn) (err error) {
				r, err = t.RecordCreate(&api.Record{DomainID: parent.ID, Name: name, Type: typ, Content: content, TTL: 3600})
				return err
			})
			return r.ID
		}
		rec("dev.yy.example", "NS", "ns1.dev.yy.example") // delegation
		rec("dev.yy.example", "NS", "ns.other.example")
		rec("ns1.dev.yy.example", "A", "192.0.2.53") // glue
		rec("ns1.dev.yy.example", "AAAA", "2001:db8::53")
		www := rec("www.dev.yy.example", "A", "192.0.2.90")
		return f, parent, www
	}
	child := func(f *fixture, rules uint32) error {
		return f.do(func(t *Txn) error {
			t.Rules = rules
			p, _ := t.DomainByName("yy.example")
			_, err := t.DomainCreate(&api.Domain{MemberID: p.MemberID, Name: "dev.yy.example"})
			return err
		})
	}
	f, _, _ := setup()
	if err := child(f, Rules3); err != nil {
		t.Fatalf("child domain under Rules3: %v, want it created as it was", err)
	}
	f, parent, www := setup()
	err := child(f, Rules4)
	wantErr(t, "child domain over the parent's records", err, 409, "", "iaas_domain_create_109")
	if msg := err.Error(); !strings.Contains(msg, "holds 1 record(s)") || !strings.Contains(msg, "www.dev.yy.example") || strings.Contains(msg, "ns1.dev") {
		t.Errorf("message %q: want the one record named, not the delegation or glue", msg)
	}
	f.ok("delete www", func(t *Txn) error { return t.RecordDelete(www) })
	if err := child(f, Rules4); err != nil {
		t.Fatalf("child domain with only the delegation and glue above it: %v", err)
	}
	d, _ := f.s.Read().DomainByName("dev.yy.example")
	rec := func(rules uint32, name, typ, content string) error {
		return f.do(func(t *Txn) error {
			t.Rules = rules
			_, err := t.RecordCreate(&api.Record{DomainID: parent.ID, Name: name, Type: typ, Content: content, TTL: 3600})
			return err
		})
	}
	if err := rec(Rules3, "ftp.dev.yy.example", "A", "192.0.2.21"); err != nil {
		t.Errorf("record inside the child under Rules3: %v, want it created as it was", err)
	}
	for _, name := range []string{"ftp2.dev.yy.example", "*.dev.yy.example", "a.b.dev.yy.example"} {
		err := rec(Rules4, name, "A", "192.0.2.22")
		wantErr(t, name+" in the parent", err, 400, "name", "iaas_record_create_122")
		if want := "is in domain dev.yy.example (id " + strconv.FormatUint(d.ID, 10) + "): create it there"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q, want %q", name, err, want)
		}
	}
	// Glue before its NS record is refused, and the refusal says the order;
	// other types are not told about glue.
	err = rec(Rules4, "ns3.dev.yy.example", "AAAA", "2001:db8::55")
	wantErr(t, "glue before its NS", err, 400, "name", "iaas_record_create_122")
	if want := "Glue for the delegation of dev.yy.example is accepted here once the NS record at dev.yy.example naming ns3.dev.yy.example exists: create the NS record first."; !strings.Contains(err.Error(), want) {
		t.Errorf("glue before its NS: %q, want %q", err, want)
	}
	if err := rec(Rules4, "txt.dev.yy.example", "TXT", "x"); err == nil || strings.Contains(err.Error(), "Glue") {
		t.Errorf("TXT inside the child: %v, want 122 without the glue hint", err)
	}
	if err := rec(Rules4, "dev.yy.example", "NS", "ns3.dev.yy.example"); err != nil {
		t.Fatalf("NS naming ns3: %v", err)
	}
	if err := rec(Rules4, "ns3.dev.yy.example", "AAAA", "2001:db8::55"); err != nil {
		t.Errorf("glue after its NS: %v", err)
	}
	for _, r := range [][3]string{
		{"dev.yy.example", "NS", "ns2.dev.yy.example"}, // more delegation
		{"ns2.dev.yy.example", "A", "192.0.2.54"},      // and its glue
		{"other.yy.example", "A", "192.0.2.23"},        // the parent's own
		{"yy.example", "MX", "mail.dev.yy.example"},    // a target inside the child is fine
	} {
		if err := rec(Rules4, r[0], r[1], r[2]); err != nil {
			t.Errorf("%v in the parent: %v", r, err)
		}
	}
	// The child's own records are its own.
	f.ok("child record", func(t *Txn) error {
		_, err := t.RecordCreate(&api.Record{DomainID: d.ID, Name: "www.dev.yy.example", Type: "A", Content: "192.0.2.90", TTL: 3600})
		return err
	})
	// An update cannot move a record of the parent into the child.
	var other *api.Record
	for _, r := range f.s.Read().DomainRecords(parent.ID) {
		if r.Name == "other.yy.example" {
			other = r
		}
	}
	moved := *other
	moved.Name = "other.dev.yy.example"
	err = f.do(func(t *Txn) error {
		_, err := t.RecordUpdate(&moved, 0)
		return err
	})
	wantErr(t, "update into the child", err, 400, "name", "iaas_record_update_122")

	// A record stored inside the child before Rules4 keeps its name and can
	// still be changed (its TTL); renaming it within the child cannot.
	var ftp *api.Record
	for _, r := range f.s.Read().DomainRecords(parent.ID) {
		if r.Name == "ftp.dev.yy.example" {
			ftp = r
		}
	}
	ttl := *ftp
	ttl.TTL = 600
	if err := f.do(func(t *Txn) error {
		_, err := t.RecordUpdate(&ttl, 0)
		return err
	}); err != nil {
		t.Errorf("TTL of a record stored inside the child under Rules3: %v, want it updated", err)
	}
	renamed := *ftp
	renamed.Name = "ftp3.dev.yy.example"
	err = f.do(func(t *Txn) error {
		_, err := t.RecordUpdate(&renamed, 0)
		return err
	})
	wantErr(t, "rename inside the child", err, 400, "name", "iaas_record_update_122")
}

// nestedZoneState is a store with the domain yy.example holding
// unrelated A records (host-N.yy.example) besides a few at or below
// dev.yy.example and one under devx.yy.example, built in one transaction.
func nestedZoneState(tb testing.TB, unrelated int) (*Store, *api.Domain) {
	tb.Helper()
	f := newFixture(tb)
	f.bootstrap()
	m := f.member("acme")
	var parent *api.Domain
	f.ok("zone", func(t *Txn) (err error) {
		if parent, err = t.DomainCreate(&api.Domain{MemberID: m.ID, Name: "yy.example"}); err != nil {
			return err
		}
		rec := func(name, typ, content string) error {
			_, err := t.RecordCreate(&api.Record{DomainID: parent.ID, Name: name, Type: typ, Content: content, TTL: 3600})
			return err
		}
		for i := range unrelated {
			if err := rec("host-"+strconv.Itoa(i)+".yy.example", "A", "192.0.2.1"); err != nil {
				return err
			}
		}
		for _, r := range [][3]string{
			{"dev.yy.example", "NS", "ns1.dev.yy.example"},
			{"ns1.dev.yy.example", "A", "192.0.2.53"},
			{"dev.yy.example", "TXT", "apex"},
			{"a.b.dev.yy.example", "A", "192.0.2.2"},
			{"www.devx.yy.example", "A", "192.0.2.3"},
			{"devx.yy.example", "A", "192.0.2.4"},
			{"yy.example", "MX", "mail.dev.yy.example"},
		} {
			if err := rec(r[0], r[1], r[2]); err != nil {
				return err
			}
		}
		return nil
	})
	return f.s, parent
}

// TestRecordsAtOrBelow: the records at or below a would-be child's apex
// are read from the records' suffix index (domain, reversed labels): the
// apex and the names under it, not devx.yy.example's nor the domain's
// others, also after a snapshot restore, which rebuilds the index (the
// nested-zone check's cost: TestNestedDomainCreateAllocation).
func TestRecordsAtOrBelow(t *testing.T) {
	s, parent := nestedZoneState(t, 50)
	check := func(s *Store) {
		t.Helper()
		var got []string
		for _, r := range s.Read().recordsAtOrBelow(parent.ID, "dev.yy.example") {
			got = append(got, r.Name+" "+r.Type)
		}
		want := []string{"dev.yy.example NS", "dev.yy.example TXT", "a.b.dev.yy.example A", "ns1.dev.yy.example A"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("at or below dev.yy.example: %q, want %q", got, want)
		}
	}
	check(s)
	var snap bytes.Buffer
	if err := s.Read().Persist(&snap); err != nil {
		t.Fatal(err)
	}
	g := New()
	if err := g.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	check(g)
}

// TestNestedDomainCreateAllocation: a refused nested domain create costs
// the same with 20,000 unrelated records in the parent as with 10: it
// reads the records at or below the child's apex, not the parent's every
// record. Run without the race detector (make test's NO_RACE_TESTS).
func TestNestedDomainCreateAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector")
	}
	allocs := func(unrelated int) float64 {
		s, parent := nestedZoneState(t, unrelated)
		return testing.AllocsPerRun(20, func() {
			tx := s.Write(1<<20, t0)
			defer tx.Abort()
			if _, err := tx.DomainCreate(&api.Domain{MemberID: parent.MemberID, Name: "dev.yy.example"}); err == nil {
				t.Fatal("dev.yy.example created over the records under it")
			}
		})
	}
	small, large := allocs(10), allocs(20000)
	if large > small+2 {
		t.Errorf("domain create: %.0f allocations with 20000 unrelated records in the parent, %.0f with 10: the check reads the parent's every record", large, small)
	}
}

// BenchmarkNestedDomainCreate: a domain create (refused, aborted) under a
// parent of 100,000 unrelated records besides the few at or below the
// child's apex.
func BenchmarkNestedDomainCreate(b *testing.B) {
	s, parent := nestedZoneState(b, 100000)
	b.ReportAllocs()
	for b.Loop() {
		tx := s.Write(1<<20, t0)
		if _, err := tx.DomainCreate(&api.Domain{MemberID: parent.MemberID, Name: "dev.yy.example"}); err == nil {
			b.Fatal("created")
		}
		tx.Abort()
	}
}

// aliasZone is a domain zz.example with unrelated A records and three
// records that name mail.zz.example as their target, created in this
// order: an SRV, an MX (in mixed case with the final dot) and an NS; and
// an MX of another domain that names it too, created before them all.
type aliasZone struct {
	f           *fixture
	zone        *api.Domain
	srv, mx, ns *api.Record
	alias       *api.Record // a CNAME at alias.zz.example
}

func aliasZoneState(tb testing.TB, unrelated int) *aliasZone {
	tb.Helper()
	z := &aliasZone{f: newFixture(tb)}
	z.f.bootstrap()
	m := z.f.member("acme")
	z.f.ok("zone", func(t *Txn) (err error) {
		other, err := t.DomainCreate(&api.Domain{MemberID: m.ID, Name: "other.example"})
		if err != nil {
			return err
		}
		if z.zone, err = t.DomainCreate(&api.Domain{MemberID: m.ID, Name: "zz.example"}); err != nil {
			return err
		}
		rec := func(domain uint64, name, typ, content string) (*api.Record, error) {
			return t.RecordCreate(&api.Record{DomainID: domain, Name: name, Type: typ, Content: content, TTL: 3600, Priority: 10})
		}
		if _, err := rec(other.ID, "other.example", "MX", "mail.zz.example"); err != nil {
			return err
		}
		for i := range unrelated {
			if _, err := rec(z.zone.ID, "host-"+strconv.Itoa(i)+".zz.example", "A", "192.0.2.1"); err != nil {
				return err
			}
		}
		if z.srv, err = rec(z.zone.ID, "_sip._tcp.zz.example", "SRV", "5 5060 mail.zz.example"); err != nil {
			return err
		}
		if z.mx, err = rec(z.zone.ID, "zz.example", "MX", "Mail.ZZ.example."); err != nil {
			return err
		}
		if z.ns, err = rec(z.zone.ID, "sub.zz.example", "NS", "mail.zz.example"); err != nil {
			return err
		}
		z.alias, err = rec(z.zone.ID, "alias.zz.example", "CNAME", "host-0.zz.example")
		return err
	})
	return z
}

// cnameAtMail tries a CNAME create at mail.zz.example in s and aborts it.
func (z *aliasZone) cnameAtMail(s *Store) error {
	tx := s.Write(1<<20, t0)
	defer tx.Abort()
	_, err := tx.RecordCreate(&api.Record{DomainID: z.zone.ID, Name: "mail.zz.example", Type: "CNAME", Content: "host-0.zz.example", TTL: 3600})
	return err
}

// TestAliasTargetIndex: the RFC 2181 §10.3 check of a CNAME reads the
// records' target index (domain, target of an NS, MX or SRV record), not
// every record of the domain, and refuses exactly as the scan did: the
// record it names is the one with the lowest id that targets the name (the
// scan's first, by id), never another domain's; it follows updates and
// deletes of the targeting records, and works after a snapshot restore,
// which rebuilds the index (its cost: TestCNAMECreateAllocation).
func TestAliasTargetIndex(t *testing.T) {
	z := aliasZoneState(t, 50)
	refused := func(what string, err error, op string, want *api.Record) {
		t.Helper()
		wantErr(t, what, err, http.StatusBadRequest, "type", "iaas_record_"+op+"_121")
		var e *api.Error
		errors.As(err, &e)
		detail := fmt.Sprintf("mail.zz.example is the target of %s record id %d; it cannot be an alias (RFC 2181 section 10.3).", want.Type, want.ID)
		if got := e.Errors["type"].Detail; got != detail {
			t.Fatalf("%s: %q, want %q", what, got, detail)
		}
	}
	refused("create", z.cnameAtMail(z.f.s), "create", z.srv)
	err := z.f.do(func(t *Txn) error {
		a := *z.alias
		a.Name = "mail.zz.example"
		_, err := t.RecordUpdate(&a, 0)
		return err
	})
	refused("update", err, "update", z.srv)

	var snap bytes.Buffer
	if err := z.f.s.Read().Persist(&snap); err != nil {
		t.Fatal(err)
	}
	g := New()
	if err := g.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	refused("create after restore", z.cnameAtMail(g), "create", z.srv)

	z.f.ok("delete srv", func(t *Txn) error { return t.RecordDelete(z.srv.ID) })
	refused("create without the srv", z.cnameAtMail(z.f.s), "create", z.mx)
	z.f.ok("move mx", func(t *Txn) error {
		mx := *z.mx
		mx.Content = "mx.zz.example"
		_, err := t.RecordUpdate(&mx, 0)
		return err
	})
	refused("create with the mx moved", z.cnameAtMail(z.f.s), "create", z.ns)
	z.f.ok("delete ns", func(t *Txn) error { return t.RecordDelete(z.ns.ID) })
	if err := z.cnameAtMail(z.f.s); err != nil {
		t.Fatalf("create with no record in zz.example naming mail.zz.example: %v", err)
	}
}

// TestCNAMECreateAllocation: a refused CNAME create costs the same with
// 20,000 unrelated records in the domain as with 10: the alias check reads
// the target index, not the domain's every record. Run without the race
// detector (make test's NO_RACE_TESTS).
func TestCNAMECreateAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector")
	}
	allocs := func(unrelated int) float64 {
		z := aliasZoneState(t, unrelated)
		return testing.AllocsPerRun(20, func() {
			if z.cnameAtMail(z.f.s) == nil {
				t.Fatal("a CNAME created at an MX target")
			}
		})
	}
	small, large := allocs(10), allocs(20000)
	if large > small+2 {
		t.Errorf("CNAME create: %.0f allocations with 20000 unrelated records in the domain, %.0f with 10: the check reads the domain's every record", large, small)
	}
}

// BenchmarkCNAMECreateLargeZone: a CNAME create at a name an MX record
// targets (refused, aborted) in a domain of 100,000 unrelated records.
func BenchmarkCNAMECreateLargeZone(b *testing.B) {
	z := aliasZoneState(b, 100000)
	b.ReportAllocs()
	for b.Loop() {
		if z.cnameAtMail(z.f.s) == nil {
			b.Fatal("created")
		}
	}
}

// TestRRsetSizeAndCNAMELoops: from Rules8 a record that would take its
// RRset past MaxRRsetOctets is refused (iaas_record_{create,update}_123),
// and a CNAME that would close a loop of the domain's CNAMEs
// (iaas_record_{create,update}_111, naming the chain); nothing is stored.
// Commands made under Rules7 replay as they applied: both were stored.
func TestRRsetSizeAndCNAMELoops(t *testing.T) {
	f := newFixture(t)
	f.bootstrap()
	m := f.member("acme")
	var d *api.Domain
	f.ok("domain", func(t *Txn) (err error) {
		d, err = t.DomainCreate(&api.Domain{MemberID: m.ID, Name: "big.example"})
		return err
	})
	create := func(rules uint32, name, typ, content string) (*api.Record, error) {
		var r *api.Record
		err := f.do(func(t *Txn) (err error) {
			t.Rules = rules
			r, err = t.RecordCreate(&api.Record{DomainID: d.ID, Name: name, Type: typ, Content: content, TTL: 3600})
			return err
		})
		return r, err
	}
	count := func() int { return len(f.s.Read().DomainRecords(d.ID)) }

	// 250-character TXT records take 263 octets each in an answer (a
	// compressed owner, type, class, TTL, length, one string): 243 fit,
	// the 244th does not.
	text := func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("t", 247) }
	var last *api.Record
	for i := range 243 {
		r, err := create(RulesCurrent, "txt.big.example", "TXT", text(i))
		if err != nil {
			t.Fatalf("TXT record %d: %v", i, err)
		}
		last = r
	}
	n := count()
	_, err := create(RulesCurrent, "txt.big.example", "TXT", text(243))
	wantErr(t, "the 244th TXT record", err, 400, "content", "iaas_record_create_123")
	if !strings.Contains(err.Error(), "244 TXT records at txt.big.example would take 64199 octets") {
		t.Errorf("message %q: want the count, type and name", err)
	}
	if count() != n {
		t.Errorf("a refused record was stored")
	}
	// Growing one record past the bound is refused too; another name is
	// another RRset.
	err = f.do(func(t *Txn) error {
		u := *last
		u.Content = strings.Repeat("u", 2000)
		_, err := t.RecordUpdate(&u, last.ModifiedIndex)
		return err
	})
	wantErr(t, "a TXT record grown", err, 400, "content", "iaas_record_update_123")
	if _, err := create(RulesCurrent, "txt2.big.example", "TXT", text(243)); err != nil {
		t.Errorf("another name: %v", err)
	}
	if _, err := create(Rules7, "txt.big.example", "TXT", text(243)); err != nil {
		t.Errorf("the 244th TXT record under Rules7: %v, want it stored as it was", err)
	}
	// That RRset, over the bound from before, stays updatable as long as
	// an update does not grow it.
	update := func(content string, ttl uint32) error {
		return f.do(func(t *Txn) error {
			cur, _ := t.Record(last.ID)
			u := *cur
			u.Content, u.TTL = content, ttl
			_, err := t.RecordUpdate(&u, cur.ModifiedIndex)
			return err
		})
	}
	if err := update(last.Content, 7200); err != nil {
		t.Errorf("a TTL change in an RRset over the bound from before: %v", err)
	}
	if err := update("short", 7200); err != nil {
		t.Errorf("shrinking an RRset over the bound from before: %v", err)
	}
	wantErr(t, "growing an RRset over the bound from before", update(strings.Repeat("g", 300), 7200), 400, "content", "iaas_record_update_123")

	// a → b → c → a.
	if _, err := create(RulesCurrent, "a.big.example", "CNAME", "b.big.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := create(RulesCurrent, "b.big.example", "CNAME", "C.big.example."); err != nil {
		t.Fatal(err)
	}
	n = count()
	_, err = create(RulesCurrent, "c.big.example", "CNAME", "a.big.example")
	wantErr(t, "the CNAME closing a loop", err, 400, "content", "iaas_record_create_111")
	if want := "c.big.example → a.big.example → b.big.example → c.big.example"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q: want the chain %q", err, want)
	}
	if count() != n {
		t.Errorf("a refused CNAME was stored")
	}
	// An update closing it is refused as well; a chain that leaves the
	// loop open is fine.
	c, err := create(RulesCurrent, "c.big.example", "CNAME", "www.other.example")
	if err != nil {
		t.Fatal(err)
	}
	err = f.do(func(t *Txn) error {
		u := *c
		u.Content = "b.big.example"
		_, err := t.RecordUpdate(&u, c.ModifiedIndex)
		return err
	})
	wantErr(t, "an update closing a loop", err, 400, "content", "iaas_record_update_111")
	if _, err := create(Rules7, "d.big.example", "CNAME", "e.big.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := create(Rules7, "e.big.example", "CNAME", "d.big.example"); err != nil {
		t.Errorf("a loop under Rules7: %v, want it stored as it was", err)
	}
}
