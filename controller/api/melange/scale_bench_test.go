package melange

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// leaderStub is a one-node cluster that always leads, for read benchmarks.
type leaderStub struct{ api.Cluster }

func (leaderStub) NodeID() string             { return "n1" }
func (leaderStub) IsLeader() bool             { return true }
func (leaderStub) ReadyForReads() bool        { return true }
func (leaderStub) Leader() (string, string)   { return "n1", "127.0.0.1:0" }
func (leaderStub) LastContact() time.Duration { return 0 }
func (leaderStub) AppliedIndex() uint64       { return 1 }

// scaleFixture is an API over blocks Melange blocks of 50 tenants
// (members 2–51) and 3 of a small tenant (member 52), with the root
// token's secret. With addrs, each block holds that many addresses, used
// by its owner.
func scaleFixture(tb testing.TB, blocks int, addrs ...int) (http.Handler, string) {
	tb.Helper()
	st := state.New()
	const secret = "rgt_benchmarksecret0000000000000000"
	tx := st.Write(1, time.Unix(1_700_000_000, 0))
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tx.Abort()
			tb.Fatal(err)
		}
	}
	_, err := tx.Bootstrap("CIX", "root", &state.TokenRecord{Token: wire.Token{Name: "root", Kind: wire.TokenKindUser, Prefix: auth.Prefix(secret)}, Hash: auth.Hash(secret)})
	must(err)
	var tenants []uint64
	for i := range 51 {
		m, err := tx.MemberCreate(&wire.Member{Name: fmt.Sprintf("tenant-%d", i)})
		must(err)
		tenants = append(tenants, m.ID)
	}
	for i := range blocks + 3 {
		owner := tenants[i%50]
		if i >= blocks {
			owner = tenants[50]
		}
		blk, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectMelange, MemberID: owner,
			CIDR: fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), NetworkID: fmt.Sprintf("net-%d", i)})
		must(err)
		// each on an interface of the owner's: the tenant of an
		// allocated address is its interface's (listAllocated)
		for j := range append(addrs, 0)[0] {
			_, err := tx.IPAddressAllocateOnInterface(wire.Interface{VIF: fmt.Sprintf("vif-%d-%d", i, j), TenantID: fmt.Sprint(owner), DeviceID: "vm"}, blk.ID, "", "")
			must(err)
		}
	}
	tx.Commit()
	a := api.New(api.Config{}, leaderStub{}, st, hclog.NewNullLogger(), prometheus.NewRegistry())
	Register(a, Options{})
	return a.Handler(), secret
}

// get answers GET path with the token secret and checks for a 200 whose
// body names the collection.
func get(tb testing.TB, h http.Handler, secret, path, collection string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("X-Auth-Token", secret)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"`+collection+`"`) {
		tb.Fatalf("%s: %d %s", path, w.Code, w.Body)
	}
	return w
}

// BenchmarkScaleTenantBlocks: a tenant's block list among 20,000 blocks of
// other tenants (docs/benchmarks.md, "Scale audit"): the list reads the
// tenant's blocks from the member index; a tenant of 400 blocks, paged
// with limit and marker, beside it.
func BenchmarkScaleTenantBlocks(b *testing.B) {
	h, secret := scaleFixture(b, 20000)
	for _, c := range []struct{ name, path string }{
		{"small_tenant", "/v0.1/ipam/tenants/52/ip_blocks"},
		{"tenant_400/limit", "/v0.1/ipam/tenants/2/ip_blocks?limit=10"},
		{"tenant_400/marker", "/v0.1/ipam/tenants/2/ip_blocks?limit=10&marker=15000"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				get(b, h, secret, c.path, "ip_blocks")
			}
		})
	}
}

// BenchmarkScaleTenantAllocated: a tenant's allocated addresses among
// 100,000 of 50 other tenants (20,000 blocks of 5), read from the
// used_by_tenant index; the provider's list of all of them beside it.
func BenchmarkScaleTenantAllocated(b *testing.B) {
	h, secret := scaleFixture(b, 20000, 5)
	for _, c := range []struct{ name, path string }{
		{"small_tenant", "/v0.1/ipam/tenants/52/allocated_ip_addresses"},
		{"tenant_2000/limit", "/v0.1/ipam/tenants/2/allocated_ip_addresses?limit=10"},
		{"provider/limit", "/v0.1/ipam/allocated_ip_addresses?limit=10"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				get(b, h, secret, c.path, "ip_addresses")
			}
		})
	}
}

// TestTenantAllocatedFromIndex: a tenant's allocated addresses (read from
// the used_by_tenant index) are its own, all of them, in id order.
func TestTenantAllocatedFromIndex(t *testing.T) {
	h, secret := scaleFixture(t, 100, 2)
	w := get(t, h, secret, "/v0.1/ipam/tenants/52/allocated_ip_addresses", "ip_addresses")
	var out struct {
		IPAddresses []struct {
			ID           string `json:"id"`
			UsedByTenant string `json:"used_by_tenant"`
		} `json:"ip_addresses"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); w.Code != http.StatusOK || err != nil || len(out.IPAddresses) != 6 {
		t.Fatalf("%d %v %s", w.Code, err, w.Body)
	}
	for i, a := range out.IPAddresses {
		if a.UsedByTenant != "52" || i > 0 && a.ID <= out.IPAddresses[i-1].ID {
			t.Errorf("address %d: %+v (after %+v)", i, a, out.IPAddresses[max(i-1, 0)])
		}
	}
}

// TestTenantBlocksFromIndex: a tenant's block list (read from the member
// index) holds its blocks and no other tenant's.
func TestTenantBlocksFromIndex(t *testing.T) {
	h, secret := scaleFixture(t, 100)
	w := get(t, h, secret, "/v0.1/ipam/tenants/52/ip_blocks", "ip_blocks")
	if strings.Count(w.Body.String(), `"tenant_id": "52"`)+strings.Count(w.Body.String(), `"tenant_id":"52"`) != 3 || strings.Count(w.Body.String(), `"cidr"`) != 3 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
