package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// filterFixture: member A with four users whose fields the filter tests
// pick apart.
type filterFixture struct {
	c                        *apitest.Client
	root                     string
	member                   uint64
	alice, bob, carol, dave  uint64
	aliceCreated, bobCreated string
	daveCreated              string // the last one made
}

func newFilterFixture(t *testing.T) *filterFixture {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	f := &filterFixture{c: c, root: n.RootToken}
	f.member = c.CreateMember(f.root, "Acme Filters")
	mk := func(username, email, first, surname string, admin bool) (uint64, string) {
		body := map[string]any{"member_id": f.member, "username": username, "first_name": first, "surname": surname, "administrator": admin}
		if email != "" {
			body["email"] = email
		}
		m := c.Do("POST", "/membership/user/", body, f.root).Expect(201).Content()
		return uint64(m["id"].(float64)), m["created"].(string)
	}
	f.alice, f.aliceCreated = mk("alice", "alice@example.com", "Alice", "Anderson", true)
	f.bob, f.bobCreated = mk("bob", "bob@Example.ORG", "Bob", "Brown", false)
	f.carol, _ = mk("carol", "carol@example.com", "Carol", "Clark", false)
	f.dave, f.daveCreated = mk("dave", "", "Dave", "ANDERSON", false)
	return f
}

// users lists member A's users with extra query parameters (raw, so that
// malformed ones can be sent).
func (f *filterFixture) users(t *testing.T, extra string) apitest.List {
	t.Helper()
	q := "search[member_id]=" + strconv.FormatUint(f.member, 10)
	if extra != "" {
		q += "&" + extra
	}
	return f.c.For(t).Do("GET", "/membership/user/?"+q, nil, f.root).Expect(200).List()
}

func enc(params ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		v.Add(params[i], params[i+1])
	}
	return v.Encode()
}

func TestFilters(t *testing.T) {
	f := newFilterFixture(t)
	a, b, c, d := f.alice, f.bob, f.carol, f.dave
	id := func(v uint64) string { return strconv.FormatUint(v, 10) }
	cases := []struct {
		name  string
		query string
		want  []uint64
	}{
		{"no filter", "", []uint64{a, b, c, d}},
		{"exact (bare)", enc("search[username]", "bob"), []uint64{b}},
		{"exact is case-sensitive", enc("search[surname]", "anderson"), nil},
		{"iexact", enc("search[surname__iexact]", "anderson"), []uint64{a, d}},
		{"icontains", enc("search[email__icontains]", "EXAMPLE.COM"), []uint64{a, c}},
		{"istartswith", enc("search[first_name__istartswith]", "ca"), []uint64{c}},
		{"iendswith", enc("search[email__iendswith]", ".org"), []uint64{b}},
		{"in on strings", enc("search[username__in]", "(alice, 'carol')"), []uint64{a, c}},
		{"in on ids", enc("search[id__in]", "["+id(a)+","+id(d)+"]"), []uint64{a, d}},
		{"gt", enc("search[id__gt]", id(b)), []uint64{c, d}},
		{"gte", enc("search[id__gte]", id(b)), []uint64{b, c, d}},
		{"lt", enc("search[id__lt]", id(b)), []uint64{a}},
		{"lte", enc("search[id__lte]", id(b)), []uint64{a, b}},
		{"range", enc("search[id__range]", "("+id(b)+", "+id(c)+")"), []uint64{b, c}},
		{"isnull false", enc("search[id__isnull]", "false"), []uint64{a, b, c, d}},
		{"isnull true", enc("search[id__isnull]", "true"), nil},
		{"bool true", enc("search[administrator]", "true"), []uint64{a}},
		{"bool False", enc("search[administrator]", "False"), []uint64{b, c, d}},
		{"bool isnull", enc("search[administrator__isnull]", "false"), []uint64{a, b, c, d}},
		{"date gte", enc("search[created__gte]", f.bobCreated), []uint64{b, c, d}},
		{"date lt", enc("search[created__lt]", f.bobCreated), []uint64{a}},
		{"date range", enc("search[created__range]", "("+f.aliceCreated+","+f.bobCreated+")"), []uint64{a, b}},
		{"date as a day", enc("search[created__gte]", "2000-01-01"), []uint64{a, b, c, d}},
		{"exclude", enc("exclude[surname__iexact]", "anderson"), []uint64{b, c}},
		{"exclude bool", enc("exclude[administrator]", "true"), []uint64{b, c, d}},
		{"search and exclude", enc("search[email__icontains]", "example", "exclude[username__in]", "(carol)"), []uint64{a, b}},
		{"two filters", enc("search[surname__iexact]", "anderson", "search[administrator]", "false"), []uint64{d}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := f.users(t, tc.query)
			if got := l.IDs(); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("?%s: ids %v, want %v", tc.query, got, tc.want)
			}
			if l.Metadata.TotalRecords != len(tc.want) {
				t.Errorf("?%s: total_records %d, want %d", tc.query, l.Metadata.TotalRecords, len(tc.want))
			}
			if len(l.Metadata.Warnings) != 0 {
				t.Errorf("?%s: unexpected warnings %q", tc.query, l.Metadata.Warnings)
			}
		})
	}

	t.Run("member list", func(t *testing.T) {
		c := f.c.For(t)
		l := c.Do("GET", "/membership/member/?"+enc("search[name__icontains]", "acme"), nil, f.root).Expect(200).List()
		if !slices.Equal(l.IDs(), []uint64{f.member}) {
			t.Errorf("name__icontains: %v, want [%d]", l.IDs(), f.member)
		}
		l = c.Do("GET", "/membership/member/?"+enc("search[self_managed]", "true"), nil, f.root).Expect(200).List()
		if !slices.Equal(l.IDs(), []uint64{1}) {
			t.Errorf("self_managed=true: %v, want [1] (the bootstrap member)", l.IDs())
		}
		l = c.Do("GET", "/membership/member/?"+enc("exclude[id]", "1"), nil, f.root).Expect(200).List()
		if !slices.Equal(l.IDs(), []uint64{f.member}) {
			t.Errorf("exclude[id]=1: %v, want [%d]", l.IDs(), f.member)
		}
	})
}

func TestFilterWarnings(t *testing.T) {
	f := newFilterFixture(t)
	all := []uint64{f.alice, f.bob, f.carol, f.dave}
	cases := []struct {
		name    string
		query   string // raw
		want    []uint64
		warning string // prefix of one warning; "" = no warning
	}{
		{"unknown field", enc("search[nosuch]", "1"), all, "SearchFilterWarning: "},
		{"unknown field with operator", enc("search[nosuch__icontains]", "1"), all, "SearchFilterWarning: "},
		{"unsupported operator", enc("search[username__gt]", "a"), all, "SearchFilterWarning: "},
		{"unknown operator", enc("search[id__regex]", "1"), all, "SearchFilterWarning: "},
		{"exclude unknown field", enc("exclude[nosuch]", "1"), all, "ExcludeFilterWarning: "},
		{"number that is not", enc("search[id__gt]", "abc"), all, "SearchFilterWarning: "},
		{"range of three", enc("search[id__range]", "(1,2,3)"), all, "SearchFilterWarning: "},
		{"in with a bad item", enc("search[id__in]", "(1,x)"), all, "SearchFilterWarning: "},
		{"isnull not a boolean", enc("search[id__isnull]", "maybe"), all, "SearchFilterWarning: "},
		{"boolean not a boolean", enc("search[administrator]", "maybe"), all, "SearchFilterWarning: "},
		{"date not a date", enc("search[created__gt]", "yesterday"), all, "SearchFilterWarning: "},
		{"open bracket", "search%5B=1", all, "SearchFilterWarning: "},
		{"empty brackets", "search%5B%5D=1", all, "SearchFilterWarning: "},
		{"nested brackets", "search%5Ba%5D%5Bb%5D=1", all, "SearchFilterWarning: "},
		{"unclosed", "search%5Bid__gt=1", all, "SearchFilterWarning: "},
		{"exclude open bracket", "exclude%5B=1", all, "ExcludeFilterWarning: "},
		{"raw brackets", "search[id__gt]=0&search[=x", all, "SearchFilterWarning: "},
		{"legacy filter", enc("username__icontains", "bo"), []uint64{f.bob}, "DeprecationWarning: "},
		{"legacy exclude", enc("exclude__username", "bob"), []uint64{f.alice, f.carol, f.dave}, "DeprecationWarning: "},
		{"legacy bare field", enc("username", "dave"), []uint64{f.dave}, "DeprecationWarning: "},
		{"unrelated parameter", enc("format", "json", "include_related", "false", "foo", "bar"), all, ""},
		{"long value", enc("search[username__icontains]", strings.Repeat("x", 10000)), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := f.users(t, tc.query)
			if got := l.IDs(); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("?%s: ids %v, want %v", tc.query, got, tc.want)
			}
			w := l.Metadata.Warnings
			if tc.warning == "" {
				if len(w) != 0 {
					t.Errorf("?%s: unexpected warnings %q", tc.query, w)
				}
				return
			}
			if !slices.ContainsFunc(w, func(s string) bool { return strings.HasPrefix(s, tc.warning) }) {
				t.Errorf("?%s: warnings %q, want one starting %q", tc.query, w, tc.warning)
			}
		})
	}
	// A query string that cannot be decoded is a 400: the pair it holds
	// would otherwise be dropped without a word, and the unfiltered list
	// look like the answer.
	for _, raw := range []string{"search%5Bid%5D=%zz", "search[username__icontains]=%zz", "search[name%zz]=1", "search[id]=1;search[id]=2"} {
		r := f.c.For(t).Do("GET", "/membership/user/?search[member_id]="+strconv.FormatUint(f.member, 10)+"&"+raw, nil, f.root).Expect(400)
		if code := r.ErrorCode(); code != "regent_request_005" {
			t.Errorf("?%s: %q, want regent_request_005", raw, code)
		}
	}
}

func TestPagingAndOrdering(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	member := c.CreateMember(root, "Paging")
	const count = 110
	var ids []uint64
	for i := range count {
		// Usernames sort in the opposite order of ids.
		ids = append(ids, c.CreateUser(root, member, fmt.Sprintf("p%03d", count-i), false))
	}
	list := func(t *testing.T, query string) apitest.List {
		t.Helper()
		q := "search[member_id]=" + strconv.FormatUint(member, 10)
		if query != "" {
			q += "&" + query
		}
		return c.For(t).Do("GET", "/membership/user/?"+q, nil, root).Expect(200).List()
	}
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)

	cases := []struct {
		query       string
		page, limit int
		order       string
		want        []uint64
		warn        string // the one warning (CloudCIX falls back silently; Regent says so)
	}{
		{"", 0, 50, "id", ids[:50], ""},
		{"limit=10", 0, 10, "id", ids[:10], ""},
		{"limit=100", 0, 100, "id", ids[:100], ""},
		{"limit=101", 0, 50, "id", ids[:50], "PagingWarning: limit \"101\" is not a whole number from 1 to 100; the default, 50, was used"},
		{"limit=500", 0, 50, "id", ids[:50], "PagingWarning: limit \"500\" is not a whole number from 1 to 100; the default, 50, was used"},
		{"limit=0", 0, 50, "id", ids[:50], "PagingWarning: limit \"0\" is not a whole number from 1 to 100; the default, 50, was used"},
		{"limit=-5", 0, 50, "id", ids[:50], "PagingWarning: limit \"-5\" is not a whole number from 1 to 100; the default, 50, was used"},
		{"limit=abc", 0, 50, "id", ids[:50], "PagingWarning: limit \"abc\" is not a whole number from 1 to 100; the default, 50, was used"},
		{"limit=1", 0, 1, "id", ids[:1], ""},
		{"page=1", 1, 50, "id", ids[50:100], ""},
		{"page=2", 2, 50, "id", ids[100:], ""},
		{"page=3", 3, 50, "id", nil, ""},
		{"page=1&limit=7", 1, 7, "id", ids[7:14], ""},
		{"page=-1", 0, 50, "id", ids[:50], "PagingWarning: page \"-1\" is not a whole number from 0 (the first page) up; page 0 was used"},
		{"page=abc", 0, 50, "id", ids[:50], "PagingWarning: page \"abc\" is not a whole number from 0 (the first page) up; page 0 was used"},
		{"order=-id&limit=5", 0, 5, "-id", reversed[:5], ""},
		{"order=username&limit=5", 0, 5, "username", reversed[:5], ""},
		{"order=-username&limit=5", 0, 5, "-username", ids[:5], ""},
		{"order=email&limit=5", 0, 5, "id", ids[:5], "OrderingWarning: order \"email\" names no orderable field"}, // not an allowed ordering
		{"order=bogus&limit=5", 0, 5, "id", ids[:5], "OrderingWarning: order \"bogus\" names no orderable field"},
		{"order=-&limit=5", 0, 5, "id", ids[:5], "OrderingWarning: order \"-\" names no orderable field"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			l := list(t, tc.query)
			m := l.Metadata
			if m.Page != tc.page || m.Limit != tc.limit || m.Order != tc.order || m.TotalRecords != count {
				t.Errorf("?%s: _metadata page=%d limit=%d order=%q total_records=%d, want %d %d %q %d",
					tc.query, m.Page, m.Limit, m.Order, m.TotalRecords, tc.page, tc.limit, tc.order, count)
			}
			if tc.warn == "" && len(m.Warnings) != 0 || tc.warn != "" && (len(m.Warnings) != 1 || !strings.HasPrefix(m.Warnings[0], tc.warn)) {
				t.Errorf("?%s: warnings %q, want one starting %q", tc.query, m.Warnings, tc.warn)
			}
			if got := l.IDs(); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("?%s: ids %v, want %v", tc.query, got, tc.want)
			}
		})
	}
	t.Run("every fallback is explained", func(t *testing.T) {
		got := list(t, "limit=500&page=-2&order=-nope").Metadata.Warnings
		want := []string{
			`PagingWarning: limit "500" is not a whole number from 1 to 100; the default, 50, was used`,
			`PagingWarning: page "-2" is not a whole number from 0 (the first page) up; page 0 was used`,
			`OrderingWarning: order "-nope" names no orderable field (id, username, member_id, surname, created, updated, each with - for descending); the default, id, was used`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("warnings %q,\nwant %q", got, want)
		}
	})
	t.Run("pages cover everything once", func(t *testing.T) {
		var seen []uint64
		for page := 0; len(seen) < count && page < 10; page++ {
			l := list(t, fmt.Sprintf("limit=30&page=%d&order=-username", page))
			seen = append(seen, l.IDs()...)
		}
		if !slices.Equal(seen, ids) {
			t.Errorf("paging by -username gave %v, want %v", seen, ids)
		}
	})
	t.Run("filters apply before paging", func(t *testing.T) {
		l := list(t, enc("search[username__istartswith]", "p1", "limit", "3"))
		// p100..p110: 11 users
		if l.Metadata.TotalRecords != 11 || len(l.Content) != 3 {
			t.Errorf("total_records %d, %d items; want 11, 3", l.Metadata.TotalRecords, len(l.Content))
		}
	})
}

// stateOf is everything a caller can see, and the table indexes: a request
// that fails must not change it.
func stateOf(t *testing.T, c *apitest.Client, token string) string {
	t.Helper()
	var b strings.Builder
	for _, svc := range []string{"member", "user", "token", "region"} {
		for page := 0; ; page++ {
			r := c.Do("GET", fmt.Sprintf("/membership/%s/?limit=100&page=%d", svc, page), nil, token).Expect(200)
			l := r.List()
			fmt.Fprintf(&b, "%s page %d index %s: %s\n", svc, page, r.Header.Get("X-Regent-Index"), r.Body)
			if (page+1)*100 >= l.Metadata.TotalRecords {
				break
			}
		}
	}
	return b.String()
}

func TestErrorShapes(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	r := c.Roles()
	region := c.CreateRegion(root, "errors-region", r.MemberA)
	user := c.CreateUser(root, r.MemberA, "shape", false)
	c.Do("POST", "/membership/member/", map[string]any{"name": "Taken"}, root).Expect(201)
	cur := c.Do("GET", apitest.Path("/membership/user/", user), nil, root).Expect(200)
	stale := strings.Trim(cur.Header.Get("ETag"), `"`)
	c.Do("PATCH", apitest.Path("/membership/user/", user), map[string]any{"surname": "Moved"}, root).Expect(200)

	big := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	userPath := apitest.Path("/membership/user/", user)
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		header http.Header
		status int
		code   string // top-level error_code, or "field:code"
	}{
		{"malformed JSON", "POST", "/membership/member/", `{"name":`, nil, 400, "regent_request_002"},
		{"syntax error", "POST", "/membership/member/", `{"name" "x"}`, nil, 400, "regent_request_002"},
		{"not an object", "POST", "/membership/member/", `["x"]`, nil, 400, "regent_request_002"},
		{"a string", "POST", "/membership/member/", `"x"`, nil, 400, "regent_request_002"},
		{"null", "POST", "/membership/member/", `null`, nil, 400, "regent_request_002"},
		{"empty body", "POST", "/membership/member/", ``, nil, 400, "regent_request_002"},
		{"no body on PATCH", "PATCH", userPath, nil, nil, 400, "regent_request_002"},
		{"trailing data", "POST", "/membership/member/", `{"name":"x"} {}`, nil, 400, "regent_request_002"},
		{"trailing garbage", "POST", "/membership/member/", `{"name":"x"}x`, nil, 400, "regent_request_002"},
		{"wrong type: string", "POST", "/membership/member/", `{"name":5}`, nil, 400, "name:regent_request_004"},
		{"wrong type: bool", "PATCH", userPath, `{"administrator":"yes"}`, nil, 400, "administrator:regent_request_004"},
		{"wrong type: id", "POST", "/membership/user/", `{"username":"x","member_id":"1"}`, nil, 400, "member_id:regent_request_004"},
		{"wrong type: negative id", "POST", "/membership/user/", `{"username":"x","member_id":-1}`, nil, 400, "member_id:regent_request_004"},
		{"wrong type: list", "PATCH", apitest.Path("/membership/region/", region), `{"customers":"1"}`, nil, 400, "customers:regent_request_004"},
		{"wrong type: list item", "PATCH", apitest.Path("/membership/region/", region), `{"customers":[1,"a"]}`, nil, 400, "customers[1]:regent_request_004"},
		{"unknown field", "POST", "/membership/member/", `{"name":"x","bogus":1}`, nil, 400, "bogus:regent_request_003"},
		{"unknown field on PATCH", "PATCH", userPath, `{"password":"x"}`, nil, 400, "password:regent_request_003"},
		{"read-only field", "PATCH", userPath, `{"id":7}`, nil, 400, "id:regent_request_003"},
		{"body over 1 MiB", "POST", "/membership/member/", big, nil, 413, "regent_request_001"},
		{"body over 1 MiB on PATCH", "PATCH", userPath, big, nil, 413, "regent_request_001"},
		{"required", "POST", "/membership/member/", `{}`, nil, 400, "name:membership_member_create_101"},
		{"blank", "POST", "/membership/member/", `{"name":"   "}`, nil, 400, "name:membership_member_create_101"},
		{"too long", "POST", "/membership/member/", `{"name":"` + strings.Repeat("x", 101) + `"}`, nil, 400, "name:membership_member_create_101"},
		{"duplicate (checked in the FSM)", "POST", "/membership/member/", `{"name":"Taken"}`, nil, 400, "name:membership_member_create_101"},
		{"bad username", "POST", "/membership/user/", `{"username":"no spaces"}`, nil, 400, "username:membership_user_create_103"},
		{"bad email", "PATCH", userPath, `{"email":"nowhere"}`, nil, 400, "email:membership_user_update_105"},
		{"PUT needs every required field", "PUT", userPath, `{"surname":"x"}`, nil, 400, "username:membership_user_update_103"},
		{"duplicate customer", "PATCH", apitest.Path("/membership/region/", region), `{"customers":[2,2]}`, nil, 400, "customers:membership_region_update_103"},
		{"missing customer", "PATCH", apitest.Path("/membership/region/", region), `{"customers":[999999]}`, nil, 400, "customers:membership_region_update_102"},
		{"bad expiry", "POST", "/membership/token/", `{"expires":"tomorrow"}`, nil, 400, "expires:membership_token_create_106"},
		{"past expiry", "POST", "/membership/token/", `{"expires":"2001-01-01T00:00:00Z"}`, nil, 400, "expires:membership_token_create_106"},
		{"bad kind", "POST", "/membership/token/", `{"kind":"admin"}`, nil, 400, "kind:membership_token_create_104"},
		{"If-Match stale", "PATCH", userPath, `{"surname":"x"}`, http.Header{"If-Match": {`"` + stale + `"`}}, 409, "membership_user_update_002"},
		{"If-Match garbage", "PATCH", userPath, `{"surname":"x"}`, http.Header{"If-Match": {"W/abc"}}, 400, "regent_request_005"},
		{"delete a member with users", "DELETE", apitest.Path("/membership/member/", r.MemberA), nil, nil, 400, "membership_member_delete_102"},
		{"bad index on a list", "GET", "/membership/member/?index=abc", nil, nil, 400, "regent_request_005"},
		{"negative index", "GET", "/membership/member/?index=-1", nil, nil, 400, "regent_request_005"},
		{"bad index on an item", "GET", "/membership/member/1/?index=1.5", nil, nil, 400, "regent_request_005"},
		{"bad wait", "GET", "/membership/member/?index=1&wait=forever", nil, nil, 400, "regent_request_005"},
		{"negative wait", "GET", "/membership/member/?index=1&wait=-1s", nil, nil, 400, "regent_request_005"},
		{"bad wait on an item", "GET", "/membership/user/1/?index=1&wait=10", nil, nil, 400, "regent_request_005"},
		{"unknown route", "GET", "/membership/nothing/", nil, nil, 404, "regent_request_007"},
		{"method not allowed", "DELETE", "/membership/member/", nil, nil, 405, "regent_request_006"},
		{"method not allowed on a write", "POST", "/membership/member/1/", `{"name":"x"}`, nil, 405, "regent_request_006"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c.For(t)
			before := stateOf(t, c, root)
			h := http.Header{"X-Auth-Token": {root}}
			for k, v := range tc.header {
				h[k] = v
			}
			resp := c.DoHeader(tc.method, tc.path, tc.body, h)
			if resp.Status != tc.status {
				t.Fatalf("%s: want %d", resp, tc.status)
			}
			e := resp.Err()
			if field, code, ok := strings.Cut(tc.code, ":"); ok {
				if e.ErrorCode != "" || e.Detail != "Bad request." || e.Errors[field].ErrorCode != code || e.Errors[field].Detail == "" {
					t.Errorf("%s: want {detail: Bad request., errors: {%s: {error_code: %s, detail}}}", resp, field, code)
				}
			} else if e.ErrorCode != tc.code || e.Detail == "" || len(e.Errors) != 0 {
				t.Errorf("%s: want {detail, error_code: %s}", resp, tc.code)
			}
			if after := stateOf(t, c, root); after != before {
				t.Errorf("%s changed the state:\nbefore:\n%s\nafter:\n%s", resp, before, after)
			}
		})
	}

	t.Run("wait without index is ignored", func(t *testing.T) {
		c.For(t).Do("GET", "/membership/member/?wait=forever", nil, root).Expect(200)
	})
}

func TestIndexHeader(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	index := func(r *apitest.Response) uint64 {
		t.Helper()
		v, err := strconv.ParseUint(r.Header.Get("X-Regent-Index"), 10, 64)
		if err != nil {
			t.Fatalf("%s: X-Regent-Index %q: %v", r, r.Header.Get("X-Regent-Index"), err)
		}
		return v
	}
	created := c.Do("POST", "/membership/member/", map[string]any{"name": "Indexed"}, root).Expect(201)
	m := created.Content()
	if got, want := index(created), uint64(m["modified_index"].(float64)); got != want {
		t.Errorf("create: X-Regent-Index %d, modified_index %d", got, want)
	}
	path := apitest.Path("/membership/member/", created.ID())
	c.CreateMember(root, "Later") // moves the table's index past the object's
	read := c.Do("GET", path, nil, root).Expect(200)
	if got, want := read.Header.Get("ETag"), fmt.Sprintf(`"%d"`, index(created)); got != want {
		t.Errorf("read: ETag %s, want the modified_index %s", got, want)
	}
	if index(read) <= index(created) {
		t.Errorf("read: X-Regent-Index %d, want the table's index, past the object's %d (a blocking query must not wake on older writes)", index(read), index(created))
	}
	list := c.Do("GET", "/membership/member/", nil, root).Expect(200)
	if index(list) < index(created) {
		t.Errorf("list: X-Regent-Index %d < the last write %d", index(list), index(created))
	}
	updated := c.Do("PATCH", path, map[string]any{"name": "Reindexed"}, root).Expect(200)
	if index(updated) <= index(created) {
		t.Errorf("update: X-Regent-Index %d, not past %d", index(updated), index(created))
	}
	// Every kind of response carries it (the harness checks each against
	// openapi.yaml, which requires it; this makes it explicit).
	for _, r := range []*apitest.Response{
		c.Do("DELETE", path, nil, root).Expect(204),
		c.Do("GET", path, nil, root).Expect(404),
		c.Do("HEAD", path, nil, root).Expect(404),
		c.Do("GET", "/membership/member/", nil, "").Expect(401),
		c.Do("POST", "/membership/member/", `{`, root).Expect(400),
		c.Do("GET", "/v1/operator/leader", nil, c.Roles().Token(apitest.MemberUser)).Expect(403),
		c.Do("PUT", "/healthz", nil, "").Expect(405),
		c.Do("GET", "/nope", nil, "").Expect(404),
		c.Do("GET", "/healthz", nil, "").Expect(200),
		c.Do("GET", "/metrics", nil, "").Expect(200),
		c.Do("GET", "/openapi.json", nil, "").Expect(200),
		c.Do("GET", "/v1/operator/snapshot", nil, root).Expect(200),
		c.Do("GET", "/membership/member", nil, root).Expect(200),
	} {
		index(r)
	}
}

func TestUpdateSemantics(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	r := c.Roles()

	t.Run("user PATCH keeps what it leaves out, PUT clears it", func(t *testing.T) {
		c := c.For(t)
		id := c.Do("POST", "/membership/user/", map[string]any{"member_id": r.MemberA, "username": "semantics",
			"email": "s@example.com", "first_name": "Sem", "surname": "Antics", "administrator": true}, root).Expect(201).ID()
		path := apitest.Path("/membership/user/", id)
		before := c.Do("GET", path, nil, root).Expect(200).Content()
		got := c.Do("PATCH", path, map[string]any{"surname": "Patched"}, root).Expect(200).Content()
		if got["surname"] != "Patched" || got["email"] != "s@example.com" || got["first_name"] != "Sem" || got["username"] != "semantics" || got["administrator"] != true {
			t.Errorf("PATCH surname: %v", got)
		}
		if got["created_index"] != before["created_index"] || got["created"] != before["created"] || got["modified_index"].(float64) <= before["modified_index"].(float64) {
			t.Errorf("PATCH: indexes/timestamps %v, before %v", got, before)
		}
		got = c.Do("PUT", path, map[string]any{"username": "semantics2"}, root).Expect(200).Content()
		if got["username"] != "semantics2" || got["email"] != "" || got["first_name"] != "" || got["surname"] != "" {
			t.Errorf("PUT username only: %v; want email, first_name and surname cleared", got)
		}
		if read := c.Do("GET", path, nil, root).Expect(200).Content(); fmt.Sprint(read) != fmt.Sprint(got) {
			t.Errorf("read after PUT %v, PUT answered %v", read, got)
		}
		c.Do("PATCH", path, map[string]any{}, root).Expect(200)
		c.Do("PUT", path, map[string]any{}, root).Expect(400)
	})
	t.Run("region PATCH keeps customers, PUT empties them", func(t *testing.T) {
		c := c.For(t)
		id := c.CreateRegion(root, "semantics", r.MemberA, r.MemberB)
		path := apitest.Path("/membership/region/", id)
		got := c.Do("PATCH", path, map[string]any{"name": "semantics-2"}, root).Expect(200).Content()
		if fmt.Sprint(got["customers"]) != fmt.Sprint([]any{float64(r.MemberA), float64(r.MemberB)}) {
			t.Errorf("PATCH name: customers %v", got["customers"])
		}
		got = c.Do("PUT", path, map[string]any{"name": "semantics-3"}, root).Expect(200).Content()
		if fmt.Sprint(got["customers"]) != "[]" {
			t.Errorf("PUT name only: customers %v, want []", got["customers"])
		}
	})
	t.Run("member PUT needs name, PATCH does not", func(t *testing.T) {
		c := c.For(t)
		path := apitest.Path("/membership/member/", r.MemberB)
		if code := c.Do("PUT", path, map[string]any{"self_managed": true}, root).Expect(400).FieldCode("name"); code != "membership_member_update_101" {
			t.Errorf("PUT without name: errors.name.error_code %q", code)
		}
		got := c.Do("PATCH", path, map[string]any{"self_managed": true}, root).Expect(200).Content()
		if got["self_managed"] != true || got["name"] == "" {
			t.Errorf("PATCH self_managed: %v", got)
		}
		// A PATCH may leave a name out, but not blank it (that used to
		// reach the state store and fail there with a 500).
		for _, tc := range []struct{ path, field, code string }{
			{path, "name", "membership_member_update_101"},
			{apitest.Path("/membership/region/", c.CreateRegion(root, "blank-name", r.MemberA)), "name", "membership_region_update_101"},
			{apitest.Path("/membership/user/", r.UserA), "username", "membership_user_update_103"},
		} {
			if code := c.Do("PATCH", tc.path, map[string]any{tc.field: "  "}, root).Expect(400).FieldCode(tc.field); code != tc.code {
				t.Errorf("PATCH %s %s blank: %q, want %s", tc.path, tc.field, code, tc.code)
			}
		}
	})
	t.Run("If-Match", func(t *testing.T) {
		c := c.For(t)
		path := apitest.Path("/membership/user/", r.UserA)
		etag := c.Do("GET", path, nil, root).Expect(200).Header.Get("ETag")
		h := func(v string) http.Header { return http.Header{"X-Auth-Token": {root}, "If-Match": {v}} }
		next := c.DoHeader("PATCH", path, map[string]any{"surname": "One"}, h(etag)).Expect(200)
		newIndex := next.Header.Get("X-Regent-Index")
		if fmt.Sprintf(`"%s"`, newIndex) == etag {
			t.Errorf("update did not move the index past %s", etag)
		}
		before := stateOf(t, c, root)
		e := c.DoHeader("PATCH", path, map[string]any{"surname": "Two"}, h(etag)).Expect(409).Err()
		if e.ErrorCode != "membership_user_update_002" {
			t.Errorf("stale If-Match: error_code %q", e.ErrorCode)
		}
		c.DoHeader("PUT", path, map[string]any{"username": "x"}, h(etag)).Expect(409)
		if after := stateOf(t, c, root); after != before {
			t.Errorf("a refused compare-and-swap changed the state")
		}
		// The bare index works as well as the quoted ETag.
		got := c.DoHeader("PATCH", path, map[string]any{"surname": "Three"}, h(newIndex)).Expect(200).Content()
		if got["surname"] != "Three" {
			t.Errorf("If-Match %s: %v", newIndex, got)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		c := c.For(t)
		path := apitest.Path("/membership/user/", r.UserA)
		get := c.Do("GET", path, nil, root).Expect(200)
		head := c.Do("HEAD", path, nil, root).Expect(200)
		if len(head.Body) != 0 || head.Header.Get("ETag") != get.Header.Get("ETag") {
			t.Errorf("HEAD: body %q, ETag %q; GET ETag %q", head.Body, head.Header.Get("ETag"), get.Header.Get("ETag"))
		}
		c.Do("HEAD", apitest.Path("/membership/user/", 999999), nil, root).Expect(404)
		c.Do("HEAD", path, nil, r.Token(apitest.OtherMember)).Expect(404)
		c.Do("HEAD", path, nil, "").Expect(401)
	})
}

func TestReadModes(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken

	t.Run("stale", func(t *testing.T) {
		r := c.For(t).Do("GET", "/membership/member/?stale=true", nil, root).Expect(200)
		if r.Header.Get("X-Regent-Last-Contact") == "" || r.Header.Get("X-Regent-Known-Leader") != "true" {
			t.Errorf("stale read headers: %v", r.Header)
		}
	})
	t.Run("consistent", func(t *testing.T) {
		c.For(t).Do("GET", "/membership/member/?consistent=true", nil, root).Expect(200)
	})
	// As in Consul and Nomad, ?index= is the last X-Regent-Index seen: the
	// query returns once the data is past it.
	t.Run("blocking query times out", func(t *testing.T) {
		r := c.For(t).Do("GET", "/membership/member/", nil, root).Expect(200)
		idx, _ := strconv.ParseUint(r.Header.Get("X-Regent-Index"), 10, 64)
		start := time.Now()
		r = c.For(t).Do("GET", fmt.Sprintf("/membership/member/?index=%d&wait=300ms", idx), nil, root).Expect(200)
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("blocking query returned after %v, before its wait", d)
		}
		if got := r.Header.Get("X-Regent-Index"); got != strconv.FormatUint(idx, 10) {
			t.Errorf("X-Regent-Index %s after a wait with no write, want %d", got, idx)
		}
	})
	t.Run("blocking query wakes on a write", func(t *testing.T) {
		r := c.For(t).Do("GET", "/membership/member/", nil, root).Expect(200)
		idx, _ := strconv.ParseUint(r.Header.Get("X-Regent-Index"), 10, 64)
		done := make(chan error, 1)
		go func() {
			time.Sleep(100 * time.Millisecond)
			req, _ := http.NewRequest("POST", n.URL+"/membership/member/", bytes.NewReader([]byte(`{"name":"Wakeup"}`)))
			req.Header.Set("X-Auth-Token", root)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 201 {
					err = fmt.Errorf("create: %s", resp.Status)
				}
			}
			done <- err
		}()
		start := time.Now()
		// The wait is long enough that a query not woken by the write
		// cannot be mistaken for one woken late on a loaded machine.
		r = c.For(t).Do("GET", fmt.Sprintf("/membership/member/?index=%d&wait=5m", idx), nil, root).Expect(200)
		if d := time.Since(start); d > 2*time.Minute {
			t.Errorf("blocking query took %v: not woken by the write", d)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got, _ := strconv.ParseUint(r.Header.Get("X-Regent-Index"), 10, 64)
		if got <= idx || !slices.Contains(r.List().Strings("name"), "Wakeup") {
			t.Errorf("woke with X-Regent-Index %d (was %d), names %v", got, idx, r.List().Strings("name"))
		}
	})
}

// TestNoServerErrors sends a spread of odd requests: none may be a 5xx (the
// harness fails any 500 and any response openapi.yaml does not describe).
func TestNoServerErrors(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	bodies := []string{``, `{}`, `{"name":null}`, `{"name":"` + "\xff\xfe" + `"}`, `{"customers":null}`, `{"member_id":0,"username":"z"}`,
		`{"user_id":0}`, `{"expires":""}`, `{"region_id":0,"kind":"robot"}`, `{"name":"x","name":1}`, `{"NAME":"caps"}`,
		`{"customers":[1e400]}`, `{"username":"` + strings.Repeat("é", 151) + `"}`, `[]`, `{"a":{"b":[` + strings.Repeat("[", 5000) + `]}}`}
	for _, svc := range []string{"member", "user", "token", "region"} {
		for _, body := range bodies {
			for _, mp := range [][2]string{{"POST", "/membership/" + svc + "/"}, {"PUT", "/membership/" + svc + "/1/"}, {"PATCH", "/membership/" + svc + "/1/"}} {
				r := c.Do(mp[0], mp[1], body, root)
				if r.Status >= 500 {
					t.Errorf("%s", r)
				}
			}
		}
	}
	c.Do("GET", "/membership/member/?"+enc("search[id__in]", strings.Repeat("1,", 5000)), nil, root).Expect(200)
}
