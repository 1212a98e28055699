package query

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestInFilterCostGrowsWithItemsAndValuesNotTheirProduct: an `in` filter
// may list as many values as a URL holds (about 150,000 ids in the 1 MiB
// of headers the server takes); it must not cost items × values
// comparisons, or one request makes the node compare for minutes (a
// tenant's list of 4,000 addresses with a 1 MiB `in` took 9.4 s of CPU,
// against 6 ms without it). Here 200,000 items against 200,000 values:
// 4×10^10 comparisons before the fix (minutes), a fraction of a second
// after; the test allows 60 s, which the fixed code never comes near, so
// the load of the machine does not matter.
func TestInFilterCostGrowsWithItemsAndValuesNotTheirProduct(t *testing.T) {
	const n = 200_000
	items := make([]vm, n)
	for i := range items {
		items[i] = vm{meta: meta{ID: uint64(i + 1)}, Name: fmt.Sprintf("vm-%d", i+1)}
	}
	var ids, names []string
	for i := 2; i <= 2*n; i += 2 {
		ids = append(ids, fmt.Sprint(i))
		names = append(names, fmt.Sprintf("vm-%d", i))
	}
	for _, tc := range []struct{ param, list string }{
		{"search[id__in]", strings.Join(ids, ",")},
		{"search[name__in]", strings.Join(names, ",")},
		{"exclude[id__in]", strings.Join(ids, ",")},
	} {
		done := make(chan int, 1)
		go func() {
			q := Parse(vmSpec, url.Values{tc.param: {"(" + tc.list + ")"}})
			_, total := Apply(q, items)
			done <- total
		}()
		select {
		case total := <-done:
			if total != n/2 {
				t.Errorf("%s: %d matches, want %d", tc.param, total, n/2)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s with %d values over %d items did not finish in 60s", tc.param, n, n)
		}
	}
}

// TestInFilterMatchesAsEqual: `in` matches an item exactly when one of its
// values would match it as an exact filter, for every field type.
func TestInFilterMatchesAsEqual(t *testing.T) {
	for _, tc := range []struct {
		field string
		vals  []string
	}{
		{"id", []string{"5", "1", "3", "99", "1"}},
		{"number", []string{"15", "-5", "10.0", "1e1", "20.5"}},
		{"cpu", []string{"1.5", "2", "0.5", "8", "3"}},
		{"name", []string{"beta", "Alpha", "ALPHABET", "gamma ray", "Gamma ray"}},
		{"created", []string{"2024-02-01T12:00:00Z", "2024-01-01", "2024-03-01T00:30:00+01:00"}},
		{"project_id", []string{"8", "7"}},
		{"storage_ids", []string{"3", "2"}},
	} {
		want := map[uint64]bool{}
		for _, v := range tc.vals {
			page, _ := Apply(Parse(vmSpec, url.Values{"search[" + tc.field + "]": {v}, "limit": {"100"}}), fixture())
			for _, it := range page {
				want[it.ID] = true
			}
		}
		page, total := Apply(Parse(vmSpec, url.Values{"search[" + tc.field + "__in]": {"(" + strings.Join(tc.vals, ",") + ")"}, "limit": {"100"}}), fixture())
		got := map[uint64]bool{}
		for _, it := range page {
			got[it.ID] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || total != len(want) {
			t.Errorf("%s__in=%v matches %v, the exact filters %v", tc.field, tc.vals, got, want)
		}
	}
}

// TestEarlyPagesSelectTheSameRows: an early page of many rows is selected
// (a heap of its end first rows) rather than sorted in full; every page,
// early or late, ascending or descending, with many ties in the order
// field, must hold the rows a full stable sort by (order, id, position)
// puts there.
func TestEarlyPagesSelectTheSameRows(t *testing.T) {
	type row struct {
		ID   uint64 `json:"id"`
		Name string `json:"name"`
	}
	spec := Spec{Fields: map[string]FieldType{"id": Number, "name": String}, Ordering: []string{"id", "name"}}
	rng := rand.New(rand.NewPCG(7, 15))
	for _, n := range []int{0, 1, 9, 200, 1500} {
		items := make([]row, n)
		for i := range items {
			// ids repeat (ties on id too: the position decides)
			items[i] = row{ID: uint64(rng.IntN(n/3 + 1)), Name: fmt.Sprintf("n%02d", rng.IntN(20))}
		}
		for _, order := range []string{"name", "-name", "id", "-id"} {
			ref := make([]int, n)
			for i := range ref {
				ref[i] = i
			}
			field, desc := strings.TrimPrefix(order, "-"), strings.HasPrefix(order, "-")
			sort.SliceStable(ref, func(a, b int) bool {
				x, y := items[ref[a]], items[ref[b]]
				var c int
				if field == "name" {
					c = strings.Compare(x.Name, y.Name)
				} else {
					c = cmp.Compare(x.ID, y.ID)
				}
				if desc {
					c = -c
				}
				if c == 0 && field == "name" {
					c = cmp.Compare(x.ID, y.ID)
				}
				return c < 0
			})
			for _, limit := range []int{1, 7, 50, 100} {
				for page := 0; page*limit <= n; page++ {
					// Every page up to past the heap's bound (end < n/8), then
					// only the last ones: the middle pages of a large n sort
					// like the last (and cost 30 s under -race).
					if end := page*limit + limit; end > n/8+2*limit && (page+3)*limit <= n {
						continue
					}
					q := Parse(spec, url.Values{"order": {order}, "limit": {fmt.Sprint(limit)}, "page": {fmt.Sprint(page)}})
					got, total := Apply(q, items)
					if total != n {
						t.Fatalf("total %d, want %d", total, n)
					}
					start, end := min(page*limit, n), min(page*limit+limit, n)
					for k, r := range got {
						if want := items[ref[start+k]]; r != want {
							t.Fatalf("n=%d order=%s limit=%d page=%d: row %d is %+v, want %+v", n, order, limit, page, k, r, want)
						}
					}
					if len(got) != end-start {
						t.Fatalf("n=%d order=%s limit=%d page=%d: %d rows, want %d", n, order, limit, page, len(got), end-start)
					}
				}
			}
		}
	}
}
