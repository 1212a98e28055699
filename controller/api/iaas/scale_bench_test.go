package iaas

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// scaleFixture is an API over a store holding one member's subnets, 100
// in each /16 allocation, with perSubnet addresses each, and records A
// records in its domain; and a small member's subnet of 5 addresses and
// domain of 5 records. It returns the root token's secret and that of a
// user of the small member.
func scaleFixture(tb testing.TB, subnets, perSubnet, records int) (h http.Handler, rootSecret, memberSecret string) {
	tb.Helper()
	tx, must, m, handler := benchStore(tb)
	var alloc *wire.IPBlock
	for i := range subnets {
		if i%100 == 0 {
			asn, err := tx.ASNCreate(&wire.ASN{MemberID: m.ID, Number: uint64(65000 + i/100)})
			must(err)
			alloc, err = tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: fmt.Sprintf("10.%d.0.0/16", i/100)})
			must(err)
		}
		sn, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: alloc.ID,
			CIDR: fmt.Sprintf("10.%d.%d.0/24", i/100, i%100), Gateway: fmt.Sprintf("10.%d.%d.1", i/100, i%100)})
		must(err)
		for range perSubnet {
			_, err := tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID})
			must(err)
		}
	}
	d, err := tx.DomainCreate(&wire.Domain{MemberID: m.ID, Name: "acme.example"})
	must(err)
	for i := range records {
		_, err := tx.RecordCreate(&wire.Record{DomainID: d.ID, MemberID: m.ID, Name: fmt.Sprintf("h%d", i), Type: "A", Content: "192.0.2.1", TTL: 300})
		must(err)
	}
	const small = "rgt_benchmarkmember0000000000000000"
	tiny, err := tx.MemberCreate(&wire.Member{Name: "tiny"})
	must(err)
	u, err := tx.UserCreate(&wire.User{MemberID: tiny.ID, Username: "bob"})
	must(err)
	_, err = tx.TokenCreate(&state.TokenRecord{Token: wire.Token{UserID: u.ID, Kind: wire.TokenKindUser, Name: "bob", Prefix: auth.Prefix(small)}, Hash: auth.Hash(small)})
	must(err)
	asn, err := tx.ASNCreate(&wire.ASN{MemberID: tiny.ID, Number: 64999})
	must(err)
	alloc, err = tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: tiny.ID, ASNID: asn.ID, CIDR: "192.168.0.0/16"})
	must(err)
	sn, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: alloc.ID, CIDR: "192.168.1.0/24", Gateway: "192.168.1.1"})
	must(err)
	td, err := tx.DomainCreate(&wire.Domain{MemberID: tiny.ID, Name: "tiny.example"})
	must(err)
	for i := range 5 {
		_, err := tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID})
		must(err)
		_, err = tx.RecordCreate(&wire.Record{DomainID: td.ID, MemberID: tiny.ID, Name: fmt.Sprintf("h%d", i), Type: "A", Content: "192.0.2.1", TTL: 300})
		must(err)
	}
	return handler(), benchSecret, small
}

// BenchmarkScaleLists: CloudCIX lists over 100,000 addresses in 20,000
// subnets (docs/benchmarks.md, "Scale audit"). The lists without a filter
// in id order, and those whose filters and order name fields declared
// Stored, render only their page; a filter or an order on a field the
// view derives (subnet__virtual_router_id) renders every view.
func BenchmarkScaleLists(b *testing.B) {
	h, secret, _ := scaleFixture(b, 20000, 5, 0)
	for _, c := range []struct{ name, path string }{
		{"ip_address", "/iaas/ip_address/?limit=1"},
		// A filter that keeps every row: the generic path before the
		// fourteenth session; filtered from the stored objects since the
		// fifteenth (id is Stored).
		{"ip_address/generic", "/iaas/ip_address/?search[id__gte]=0&limit=1"},
		{"ip_address/page1000", "/iaas/ip_address/?limit=50&page=1000"},
		{"ip_address/page1000/generic", "/iaas/ip_address/?search[id__gte]=0&limit=50&page=1000"},
		{"ip_address/desc", "/iaas/ip_address/?order=-id&limit=1"},
		{"ip_address/order", "/iaas/ip_address/?order=-address&limit=1"},
		{"ip_address/search", "/iaas/ip_address/?search[name__icontains]=x&limit=1"},
		{"ip_address/in", "/iaas/ip_address/?search[subnet_id__in]=5,6,7&limit=1"},
		{"ip_address/exclude", "/iaas/ip_address/?exclude[subnet_id]=5&limit=1"},
		{"subnet", "/iaas/subnet/?limit=1"},
		{"subnet/generic", "/iaas/subnet/?search[id__gte]=0&limit=1"},
		{"subnet/search", "/iaas/subnet/?search[name]=x&limit=1"},
		{"ip_address/name", "/iaas/ip_address/?order=name&limit=50&page=10"},
		{"ip_address/within", "/iaas/ip_address/?search[address__within]=10.3.0.0/16&order=-address&limit=10"},
		{"ip_address/derived", "/iaas/ip_address/?search[subnet__virtual_router_id]=0&limit=1"},
		{"subnet/order", "/iaas/subnet/?order=-vlan&limit=1"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", c.path, nil)
				req.Header.Set("X-Auth-Token", secret)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", c.path, w.Code, w.Body)
				}
			}
		})
	}
}

// TestListByIDPaging: a list without a filter in id order (paged from the
// stored objects, rendering only the page) answers what it answers with a
// filter that keeps everything. That filter names a Stored field, so it
// too is answered from the stored objects where the service declares
// Stored; TestListStoredFields compares both with the generic path
// (api.Config.GenericLists).
func TestListByIDPaging(t *testing.T) {
	h, secret, _ := scaleFixture(t, 150, 3, 10)
	get := func(path string) string {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("X-Auth-Token", secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		return w.Body.String()
	}
	for _, list := range []string{"ip_address", "subnet", "allocation", "asn", "record"} {
		for _, qs := range []string{"", "limit=7&page=3", "order=-id&limit=5&page=2", "order=id&limit=100&page=4", "page=1000"} {
			plain := get("/iaas/" + list + "/?" + qs)
			filtered := get("/iaas/" + list + "/?search[id__gte]=0&" + qs)
			if plain != filtered {
				t.Errorf("%s ?%s:\n without filter %s\n with filter    %s", list, qs, plain, filtered)
			}
		}
	}
}

// BenchmarkScaleMemberLists: a member with 5 addresses and 5 records lists
// them in a region of 100,000 addresses and 50,000 records of another
// member (docs/benchmarks.md, "Scale audit"): the list reads the member's
// rows from the member index; root's list of the region, side by side.
func BenchmarkScaleMemberLists(b *testing.B) {
	h, root, member := scaleFixture(b, 20000, 5, 50000)
	for _, c := range []struct{ name, path, secret string }{
		{"member/ip_address", "/iaas/ip_address/?limit=1", member},
		{"member/subnet", "/iaas/subnet/?limit=1", member},
		{"member/allocation", "/iaas/allocation/?limit=1", member},
		{"member/record", "/iaas/record/?limit=1", member},
		{"member/record/search", "/iaas/record/?search[name]=h1", member},
		{"root/ip_address", "/iaas/ip_address/?limit=1", root},
		{"root/record", "/iaas/record/?limit=1", root},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", c.path, nil)
				req.Header.Set("X-Auth-Token", c.secret)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"total_records"`) {
					b.Fatalf("%s: %d %s", c.path, w.Code, w.Body)
				}
			}
		})
	}
}

// TestMemberListsFromIndex: a member's address and record lists (read
// from the member index) hold exactly its own rows.
func TestMemberListsFromIndex(t *testing.T) {
	h, _, member := scaleFixture(t, 150, 3, 10)
	for _, path := range []string{"/iaas/ip_address/?limit=100", "/iaas/record/?limit=100", "/iaas/ptr_record/", "/iaas/subnet/", "/iaas/allocation/"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("X-Auth-Token", member)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var body struct {
			Content []struct {
				MemberID uint64 `json:"member_id"`
			} `json:"content"`
			Metadata struct {
				TotalRecords int `json:"total_records"`
			} `json:"_metadata"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusOK {
			t.Fatalf("%s: %d %v %s", path, w.Code, err, w.Body)
		}
		want := map[string]int{"/iaas/ptr_record/": 0, "/iaas/subnet/": 1, "/iaas/allocation/": 1}[path]
		if strings.Contains(path, "limit=100") {
			want = 5
		}
		if body.Metadata.TotalRecords != want || len(body.Content) != want {
			t.Errorf("%s: %d of %d records, want %d", path, len(body.Content), body.Metadata.TotalRecords, want)
		}
		for _, c := range body.Content {
			if c.MemberID != 3 {
				t.Errorf("%s: a row of member %d", path, c.MemberID)
			}
		}
	}
}
