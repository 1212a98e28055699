package systest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFullClusterRestart kills every node with SIGKILL at once and starts
// them again on their data dirs: the state is intact on every node, a
// leader is elected, writes are accepted, and tokens made before the crash
// still authenticate.
func TestFullClusterRestart(t *testing.T) {
	c := startCluster(t, 3)
	leader := c.leader(30 * time.Second)
	member := c.create(leader, "member", map[string]any{"name": "full-restart"})
	user := c.create(leader, "user", map[string]any{"username": "full-restart-user", "member_id": member})
	r := c.must(c.do(leader, http.MethodPost, "/membership/token/", map[string]any{"user_id": user, "name": "before-crash"}), http.StatusCreated, "token")
	var tok struct {
		Content struct {
			Token string `json:"token"`
		} `json:"content"`
	}
	if err := json.Unmarshal(r.Body, &tok); err != nil || tok.Content.Token == "" {
		t.Fatalf("token: %v %s", err, r.Body)
	}
	for i := range 20 {
		c.create(c.nodes[i%3], "member", map[string]any{"name": fmt.Sprintf("full-restart-%02d", i)})
	}
	want := c.listings(leader, c.token, "")

	for _, n := range c.nodes {
		n.kill()
	}
	start := time.Now()
	for _, n := range c.nodes {
		n.start()
	}
	leader = c.leader(60 * time.Second)
	err := waitFor(60*time.Second, func() error {
		r := c.do(c.nodes[1], http.MethodPost, "/membership/member/", map[string]any{"name": "full-restart-after"})
		if r.Err != nil || r.Status != http.StatusCreated {
			return fmt.Errorf("write after the restart: %s", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all three nodes SIGKILLed and started again: leader %s, first write accepted %s after the start",
		leader.name, time.Since(start).Round(time.Millisecond))
	for _, n := range c.nodes {
		c.waitLocalReady(n, 60*time.Second)
		r := c.doAs(n, tok.Content.Token, http.MethodGet, fmt.Sprintf("/membership/member/%d/?stale=true", member), nil)
		if r.Err != nil || r.Status != http.StatusOK || !strings.Contains(string(r.Body), "full-restart") {
			t.Errorf("%s: the token made before the crash: %s", n.name, r)
		}
	}
	got := c.listings(leader, c.token, "")
	for _, svc := range []string{"member", "user"} { // tokens record their last use
		if !strings.Contains(got[svc], strings.TrimSuffix(strings.TrimPrefix(want[svc], "["), "]")) {
			t.Errorf("%s listing after the restart lost objects of before", svc)
		}
	}
}
