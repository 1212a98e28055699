package iaas

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// scaleFixture is an API over a store holding one member's subnets, 100
// in each /16 allocation, with perSubnet addresses each, and the root
// token's secret.
func scaleFixture(tb testing.TB, subnets, perSubnet int) (http.Handler, string) {
	tb.Helper()
	st := state.New()
	const secret = "rgt_benchmarksecret0000000000000000"
	tx := st.Write(1, time.Unix(1_700_000_000, 0))
	root := &state.TokenRecord{Token: wire.Token{Name: "root", Kind: wire.TokenKindUser, Prefix: auth.Prefix(secret)}, Hash: auth.Hash(secret)}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tx.Abort()
			tb.Fatal(err)
		}
	}
	_, err := tx.Bootstrap("CIX", "root", root)
	must(err)
	m, err := tx.MemberCreate(&wire.Member{Name: "acme"})
	must(err)
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
	tx.Commit()
	a := api.New(api.Config{}, leaderStub{}, st, hclog.NewNullLogger(), prometheus.NewRegistry())
	Register(a, Options{})
	return a.Handler(), secret
}

// BenchmarkScaleLists: CloudCIX lists over 100,000 addresses in 20,000
// subnets (docs/benchmarks.md, "Scale audit"). The lists without a filter
// in id order render only their page; a filter or another order renders
// every view (the filters apply to the views), side by side.
func BenchmarkScaleLists(b *testing.B) {
	h, secret := scaleFixture(b, 20000, 5)
	for _, c := range []struct{ name, path string }{
		{"ip_address", "/iaas/ip_address/?limit=1"},
		{"ip_address/page1000", "/iaas/ip_address/?limit=50&page=1000"},
		{"ip_address/desc", "/iaas/ip_address/?order=-id&limit=1"},
		{"ip_address/order", "/iaas/ip_address/?order=-address&limit=1"},
		{"ip_address/search", "/iaas/ip_address/?search[name__icontains]=x&limit=1"},
		{"ip_address/in", "/iaas/ip_address/?search[subnet_id__in]=5,6,7&limit=1"},
		{"ip_address/exclude", "/iaas/ip_address/?exclude[subnet_id]=5&limit=1"},
		{"subnet", "/iaas/subnet/?limit=1"},
		{"subnet/search", "/iaas/subnet/?search[name]=x&limit=1"},
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
// stored objects, rendering only the page) answers what the generic
// filter path answers with a filter that keeps everything.
func TestListByIDPaging(t *testing.T) {
	h, secret := scaleFixture(t, 150, 3)
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
	for _, list := range []string{"ip_address", "subnet", "allocation", "asn"} {
		for _, qs := range []string{"", "limit=7&page=3", "order=-id&limit=5&page=2", "order=id&limit=100&page=4", "page=1000"} {
			plain := get("/iaas/" + list + "/?" + qs)
			filtered := get("/iaas/" + list + "/?search[id__gte]=0&" + qs)
			if plain != filtered {
				t.Errorf("%s ?%s:\n without filter %s\n with filter    %s", list, qs, plain, filtered)
			}
		}
	}
}
