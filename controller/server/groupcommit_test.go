package server_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// TestGroupCommitKeepsVersionsDistinct: concurrent writes share raft
// entries (group commit), but no two versions of one object ever carry the
// same modified_index, so If-Match stays a real compare-and-swap. Many
// clients PATCH one member at once while others create members; every
// PATCH (none conditional, so none may fail on the race) returns a version
// index of its own, the member ends as the highest of them left it, and
// creates made in one entry are all there.
func TestGroupCommitKeepsVersionsDistinct(t *testing.T) {
	n := apitest.Start(t, apitest.Options{})
	c := n.Client(t)
	root := n.RootToken
	id := c.Do("POST", "/membership/member/", map[string]any{"name": "hot"}, root).Expect(201).ID()
	path := apitest.Path("/membership/member/", id)

	const patches, creates = 24, 120
	type version struct {
		index uint64
		name  string
	}
	var mu sync.Mutex
	var versions []version
	conflicts := 0
	var wg sync.WaitGroup
	for i := range patches + creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i >= patches {
				r := c.Do("POST", "/membership/member/", map[string]any{"name": fmt.Sprintf("m%d", i)}, root)
				if r.Status != http.StatusCreated {
					t.Errorf("create m%d: %s", i, r)
				}
				return
			}
			name := fmt.Sprintf("hot-%d", i)
			r := c.Do("PATCH", path, map[string]any{"name": name}, root)
			mu.Lock()
			defer mu.Unlock()
			switch r.Status {
			case http.StatusOK:
				versions = append(versions, version{uint64(r.Content()["modified_index"].(float64)), name})
			case http.StatusConflict:
				conflicts++
				t.Errorf("PATCH %s without If-Match gave up on conflicts: %s", name, r)
			default:
				t.Errorf("PATCH %s: %s", name, r)
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]string{}
	var last version
	for _, v := range versions {
		if other, ok := seen[v.index]; ok {
			t.Errorf("versions %q and %q both have modified_index %d", other, v.name, v.index)
		}
		seen[v.index] = v.name
		if v.index > last.index {
			last = v
		}
	}
	t.Logf("%d PATCHes succeeded, %d gave up on conflicts", len(versions), conflicts)
	if len(versions) == 0 {
		t.Fatal("no PATCH succeeded")
	}
	got := c.Do("GET", path, nil, root).Expect(200).Content()
	if got["name"] != last.name || uint64(got["modified_index"].(float64)) != last.index {
		t.Errorf("member is %v at %v, want %q at %d (the newest version)", got["name"], got["modified_index"], last.name, last.index)
	}
	list := c.Do("GET", "/membership/member/?limit=1", nil, root).Expect(200).Map()
	if total := list["_metadata"].(map[string]any)["total_records"].(float64); int(total) != creates+2 {
		t.Errorf("%v members, want %d", total, creates+2)
	}
	// The group commit did group: the leader's histogram saw entries of
	// more than one command.
	metrics := string(c.Do("GET", "/metrics", nil, "").Expect(200).Body)
	value := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("no %s in /metrics", name)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return v
	}
	if sum, count := value("regent_raft_entry_commands_sum"), value("regent_raft_entry_commands_count"); count == 0 || sum <= count {
		t.Errorf("regent_raft_entry_commands: %v commands in %v entries, want more commands than entries", sum, count)
	}
}
