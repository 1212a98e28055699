package iaas

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// storedFixture is a store of a few hundred objects whose fields repeat
// (names, MACs, VLANs, record names and TTLs, timestamps of two writes),
// of two members, and two APIs over it: one with the list shortcuts
// (Service.Stored, the id-order page) and one with api.Config.GenericLists,
// which renders and filters every view. It returns them with the secrets
// of root and of a user of the second member.
func storedFixture(t *testing.T) (fast, generic http.Handler, secrets []string) {
	t.Helper()
	st := state.New()
	const member = "rgt_storedfixturemember000000000000"
	t0 := time.Unix(1_700_000_000, 0)
	var subnets []*wire.IPBlock
	for w := range 2 {
		tx := st.Write(uint64(w+1), t0.Add(time.Duration(w)*time.Hour))
		must := func(err error) {
			t.Helper()
			if err != nil {
				tx.Abort()
				t.Fatal(err)
			}
		}
		var members []*wire.Member
		if w == 0 {
			root := &state.TokenRecord{Token: wire.Token{Name: "root", Kind: wire.TokenKindUser, Prefix: auth.Prefix(benchSecret)}, Hash: auth.Hash(benchSecret)}
			_, err := tx.Bootstrap("CIX", "root", root)
			must(err)
			for _, name := range []string{"acme", "tiny"} {
				m, err := tx.MemberCreate(&wire.Member{Name: name})
				must(err)
				members = append(members, m)
			}
			u, err := tx.UserCreate(&wire.User{MemberID: members[1].ID, Username: "bob"})
			must(err)
			_, err = tx.TokenCreate(&state.TokenRecord{Token: wire.Token{UserID: u.ID, Kind: wire.TokenKindUser, Name: "bob", Prefix: auth.Prefix(member)}, Hash: auth.Hash(member)})
			must(err)
			for mi, m := range members {
				for a := range 2 {
					asn, err := tx.ASNCreate(&wire.ASN{MemberID: m.ID, Number: uint64(65000 + 10*mi + a)})
					must(err)
					alloc, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID,
						CIDR: fmt.Sprintf("10.%d.0.0/16", 2*mi+a), Name: []string{"", "alloc", "Alloc"}[a+mi]})
					must(err)
					for s := range 12 {
						gw := fmt.Sprintf("10.%d.%d.1", 2*mi+a, s)
						if s%5 == 4 {
							gw = ""
						}
						sn, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: alloc.ID,
							CIDR: fmt.Sprintf("10.%d.%d.0/24", 2*mi+a, s), Gateway: gw,
							Name: []string{"", "web", "db", "Web"}[s%4], VLAN: uint32(100 + s%3), VXLAN: uint32(s % 2 * 7)})
						must(err)
						subnets = append(subnets, sn)
					}
				}
			}
			// A child subnet (parent_id set) of one that holds no addresses.
			_, err = tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: subnets[2].ID,
				CIDR: "10.0.2.128/25", Name: "child"})
			must(err)
			d, err := tx.DomainCreate(&wire.Domain{MemberID: members[0].ID, Name: "acme.example"})
			must(err)
			td, err := tx.DomainCreate(&wire.Domain{MemberID: members[1].ID, Name: "tiny.example"})
			must(err)
			for i := range 120 {
				dom, m := d, members[0]
				if i%7 == 0 {
					dom, m = td, members[1]
				}
				_, err := tx.RecordCreate(&wire.Record{DomainID: dom.ID, MemberID: m.ID, Name: fmt.Sprintf("h%d", i%13),
					Type: "A", Content: fmt.Sprintf("192.0.2.%d", i), TTL: uint32(300 + 60*(i%4))})
				must(err)
			}
		}
		// Addresses in both writes: created and updated take two values.
		for i, sn := range subnets {
			if i%3 == 2 {
				continue
			}
			for k := range 4 {
				ip := &wire.IPAddress{BlockID: sn.ID, Name: []string{"", "x1", "X1", "vm", "web"}[(i+k+w)%5]}
				if (i+k)%3 == 0 {
					ip.MACAddress = fmt.Sprintf("52:54:00:00:00:%02x", (i+k)%4)
				}
				_, err := tx.IPAddressCreate(ip)
				must(err)
			}
		}
		tx.Commit()
	}
	handler := func(cfg api.Config) http.Handler {
		a := api.New(cfg, leaderStub{}, st, hclog.NewNullLogger(), prometheus.NewRegistry())
		Register(a, Options{})
		return a.Handler()
	}
	return handler(api.Config{}), handler(api.Config{GenericLists: true}), []string{benchSecret, member}
}

// TestListStoredFields: a list answered from the stored objects (filters
// and order on fields declared Stored, or no filter in id order) answers,
// byte for byte, what the generic path answers by filtering and ordering
// every rendered view: for a fixed table of queries and for seeded random
// ones over the fields, operators, values, orders and pages of the
// address, subnet, allocation, ASN and record lists, as root and as a
// member.
func TestListStoredFields(t *testing.T) {
	fast, generic, secrets := storedFixture(t)
	get := func(h http.Handler, secret, path string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("X-Auth-Token", secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	n, rows := 0, 0
	check := func(path string) {
		t.Helper()
		for _, secret := range secrets {
			fc, fb := get(fast, secret, path)
			gc, gb := get(generic, secret, path)
			n++
			if fc != gc || fb != gb {
				t.Errorf("%s:\n fast    %d %s\n generic %d %s", path, fc, fb, gc, gb)
			} else if fc == http.StatusOK && !strings.Contains(fb, `"content":[]`) {
				rows++
			}
		}
	}
	table := []string{
		"ip_address/?order=-address&limit=1",
		"ip_address/?order=address&limit=100&page=1",
		"ip_address/?search[name__icontains]=x&order=name",
		"ip_address/?search[name__iexact]=x1&order=-name&limit=7&page=2",
		"ip_address/?search[subnet_id__in]=5,6,7,1000&order=-created",
		"ip_address/?exclude[subnet_id]=5&order=updated&limit=3&page=30",
		"ip_address/?search[address__within]=10.1.0.0/16&order=-address",
		"ip_address/?search[address__range]=10.0.1.0,10.2.3.0&order=address&limit=100",
		"ip_address/?search[address__gt]=10.1.5.0&order=address&limit=100",
		"ip_address/?search[mac_address]=&order=name",
		"ip_address/?search[name__isnull]=true",
		"ip_address/?search[modified_by__isnull]=true&order=-name",
		"ip_address/?search[nope]=1&search[name]=vm&order=name&limit=0",
		"ip_address/?search[subnet__virtual_router_id]=0&order=name",
		"ip_address/?search[created__gte]=2023-11-14T23:00:00Z&order=created&limit=100",
		"ip_address/?search[created__hour]=23&order=-updated",
		"ip_address/?search[id__gte]=0&limit=1&page=1000",
		"ip_address/?order=bogus&search[vm_id]=0",
		"subnet/?order=name&limit=100",
		"subnet/?order=-vlan&search[gateway__isnull]=true",
		"subnet/?search[gateway__within]=10.1.0.0/16&order=-name",
		"subnet/?search[address_id]=3&order=vlan",
		"subnet/?search[address_range__contains]=10.0.1.5&order=address_range",
		"subnet/?search[parent_id__isnull]=true&order=name",
		"subnet/?exclude[name__istartswith]=w&order=-created",
		"allocation/?order=-address_range",
		"allocation/?search[address_range__within]=10.0.0.0/15&order=name",
		"allocation/?search[name__iexact]=alloc&order=-name",
		"asn/?order=-number&search[number__range]=65000,65010",
		"asn/?search[is_pseudo]=false&order=member_id",
		"record/?order=-name&limit=5&page=3",
		"record/?search[ttl__in]=300,420&order=ttl",
		"record/?search[name__iendswith]=1&order=content",
	}
	for _, p := range table {
		check("/iaas/" + p)
	}

	// Random queries over each list's declared fields.
	values := map[query.FieldType][]string{
		query.String: {"", "x1", "X1", "web", "h1", "H1", "1", "w", "db", "vm", "a,b", "x1,web"},
		query.Number: {"0", "1", "3", "5", "7", "100", "101", "65001", "300,420", "3,5,9", "-1", "x", "2,8"},
		query.CIDR:   {"10.0.1.0/24", "10.0.1.5", "10.0.0.0/16", "10.1.2.1/24", "10.0.0.0/8", "192.168.1.0/24", "10.0", "::1", "10.0.1.0,10.1.3.0", "10.0.2.0/24,10.1.1.0/24"},
		query.Date:   {"2023-11-14", "2023-11-14T22:13:20Z", "2023-11-14T23:13:20Z", "2020-01-01", "23", "22", "11", "2023", "x"},
		query.Bool:   {"true", "false", "1", "x"},
	}
	ops := map[query.FieldType][]string{
		query.String: {"", "exact", "iexact", "icontains", "istartswith", "iendswith", "in", "gt", "isnull"},
		query.Number: {"", "gt", "gte", "lt", "lte", "in", "range", "isnull", "icontains"},
		query.CIDR:   {"", "in", "contains", "within", "iexact", "icontains", "istartswith", "iendswith", "gt"},
		query.Date:   {"", "gt", "gte", "lt", "lte", "in", "range", "isnull", "year", "month", "day", "week_day", "hour", "minute"},
		query.Bool:   {"", "isnull"},
	}
	specs := map[string]query.Spec{}
	{
		a := api.New(api.Config{}, leaderStub{}, state.New(), hclog.NewNullLogger(), prometheus.NewRegistry())
		Register(a, Options{})
		for _, l := range a.Lists() {
			specs[l.Name] = l.Query
		}
	}
	rng := rand.New(rand.NewPCG(15, 2026))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	for _, list := range []string{"ip_address", "subnet", "allocation", "asn", "record"} {
		spec := specs[list]
		var fields []string
		for f := range spec.Fields {
			fields = append(fields, f)
		}
		fields = append(fields, "nope")
		// Sorted: the map's order is random, the sequence must not be.
		slices.Sort(fields)
		for range 400 {
			v := url.Values{}
			for range rng.IntN(3) {
				f := pick(fields)
				typ := spec.Fields[f]
				op := pick(ops[typ])
				val := pick(values[typ])
				if op == "isnull" {
					val = pick([]string{"true", "false"})
				}
				name := f
				if op != "" {
					name += "__" + op
				}
				kind := "search"
				if rng.IntN(4) == 0 {
					kind = "exclude"
				}
				v.Set(kind+"["+name+"]", val)
			}
			if rng.IntN(5) > 0 {
				o := pick(spec.Ordering)
				if rng.IntN(2) == 0 {
					o = "-" + strings.TrimPrefix(o, "-")
				}
				if rng.IntN(10) == 0 {
					o = "bogus"
				}
				v.Set("order", o)
			}
			if rng.IntN(3) > 0 {
				v.Set("limit", pick([]string{"0", "1", "3", "7", "50", "100", "101"}))
			}
			if rng.IntN(2) > 0 {
				v.Set("page", pick([]string{"0", "1", "2", "5", "1000", "-1"}))
			}
			check("/iaas/" + list + "/?" + v.Encode())
		}
	}
	// Most answers hold rows: the comparison is not of empty pages.
	if rows < n/2 {
		t.Errorf("only %d of %d answers hold rows", rows, n)
	}
	t.Logf("%d answers compared, %d with rows", n, rows)
}
