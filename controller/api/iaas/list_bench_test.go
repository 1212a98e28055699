package iaas

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// leaderStub is a one-node cluster that always leads, for read benchmarks:
// a write through it panics (the embedded nil interface).
type leaderStub struct{ api.Cluster }

func (leaderStub) NodeID() string             { return "n1" }
func (leaderStub) IsLeader() bool             { return true }
func (leaderStub) ReadyForReads() bool        { return true }
func (leaderStub) Leader() (string, string)   { return "n1", "127.0.0.1:0" }
func (leaderStub) LastContact() time.Duration { return 0 }
func (leaderStub) AppliedIndex() uint64       { return 1 }

// benchSecret is the root token's secret of benchStore's store.
const benchSecret = "rgt_benchmarksecret0000000000000000"

// benchStore opens the first write of a store for the benchmark fixtures:
// the region bootstrapped with a root token of benchSecret and a member
// "acme". must aborts it and fails on an error; handler commits it and
// returns the CloudCIX API over the store.
func benchStore(tb testing.TB) (tx *state.Txn, must func(error), acme *wire.Member, handler func() http.Handler) {
	tb.Helper()
	st := state.New()
	tx = st.Write(1, time.Unix(1_700_000_000, 0))
	must = func(err error) {
		tb.Helper()
		if err != nil {
			tx.Abort()
			tb.Fatal(err)
		}
	}
	root := &state.TokenRecord{Token: wire.Token{Name: "root", Kind: wire.TokenKindUser, Prefix: auth.Prefix(benchSecret)}, Hash: auth.Hash(benchSecret)}
	_, err := tx.Bootstrap("CIX", "root", root)
	must(err)
	acme, err = tx.MemberCreate(&wire.Member{Name: "acme"})
	must(err)
	return tx, must, acme, func() http.Handler {
		tx.Commit()
		a := api.New(api.Config{}, leaderStub{}, st, hclog.NewNullLogger(), prometheus.NewRegistry())
		Register(a, Options{})
		return a.Handler()
	}
}

// listFixture is an API over a store holding subnets × perSubnet
// addresses of one member, and the root token's secret.
func listFixture(tb testing.TB, subnets, perSubnet int) (http.Handler, string) {
	tb.Helper()
	tx, must, m, handler := benchStore(tb)
	asn, err := tx.ASNCreate(&wire.ASN{MemberID: m.ID, Number: 65001})
	must(err)
	alloc, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: "10.0.0.0/8"})
	must(err)
	for i := range subnets {
		sn, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: alloc.ID,
			CIDR: fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), Gateway: fmt.Sprintf("10.%d.%d.1", i/256, i%256)})
		must(err)
		for range perSubnet {
			_, err := tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID})
			must(err)
		}
	}
	return handler(), benchSecret
}

// BenchmarkListViews: GET with limit=1 of the subnet and ip_address lists
// over 5,000 addresses in 200 subnets (docs/benchmarks.md): the lists
// render every view before they filter, so this is the cost of the views.
func BenchmarkListViews(b *testing.B) {
	h, secret := listFixture(b, 200, 25)
	for _, name := range []string{"subnet", "ip_address", "allocation"} {
		path := "/iaas/" + name + "/?limit=1"
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", path, nil)
				req.Header.Set("X-Auth-Token", secret)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", path, w.Code, w.Body)
				}
			}
		})
	}
}

// TestIPAddressListSubnets: the addresses of a list carry their own
// subnet, across subnet boundaries and on later pages (the list reuses the
// nested subnet of consecutive addresses of one subnet).
func TestIPAddressListSubnets(t *testing.T) {
	h, secret := listFixture(t, 3, 4)
	for _, path := range []string{"/iaas/ip_address/?limit=100", "/iaas/ip_address/?limit=5&page=1", "/iaas/ip_address/?order=-address"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("X-Auth-Token", secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var body struct {
			Content []struct {
				Address  string `json:"address"`
				SubnetID uint64 `json:"subnet_id"`
				Subnet   struct {
					ID           uint64 `json:"id"`
					AddressRange string `json:"address_range"`
				} `json:"subnet"`
			} `json:"content"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusOK || len(body.Content) == 0 {
			t.Fatalf("%s: %d %v %s", path, w.Code, err, w.Body)
		}
		for _, ip := range body.Content {
			p := netip.MustParsePrefix(ip.Subnet.AddressRange)
			if ip.Subnet.ID != ip.SubnetID || !p.Contains(netip.MustParseAddr(ip.Address)) {
				t.Errorf("%s: %s in subnet %d shown with subnet %d %s", path, ip.Address, ip.SubnetID, ip.Subnet.ID, ip.Subnet.AddressRange)
			}
		}
	}
}
