package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// TestWithHeaderIsSentOnEveryAgentCall: a client made WithHeader sends the
// header (an agent's instance id) on registration, heartbeats, work
// fetches and state reports, besides its token; without the option none
// is sent.
func TestWithHeaderIsSentOnEveryAgentCall(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path] = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/agent/register":
			_, _ = w.Write([]byte(`{"content":{"server_id":5}}`))
		case "/v1/agent/work":
			w.Header().Set("X-Regent-Index", "1")
			_, _ = w.Write([]byte(`{"content":{"index":1,"vms":[],"routers":[]}}`))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	calls := func(c *client.Client) {
		t.Helper()
		if _, err := c.Agent().Register(ctx, api.AgentRegistration{Hostname: "hv1"}); err != nil {
			t.Fatal(err)
		}
		if err := c.Agent().Heartbeat(ctx, api.Heartbeat{ServerID: 5}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Agent().Work(ctx, 5, 0, 0, 0, ""); err != nil {
			t.Fatal(err)
		}
		if err := c.Agent().SetVMState(ctx, 7, client.StateReport{State: 4, Expected: 3}); err != nil {
			t.Fatal(err)
		}
	}
	calls(client.New(srv.URL, "robot-token", client.WithHeader(api.HeaderAgentID, "0123abcd")))
	if len(seen) != 4 {
		t.Fatalf("calls seen: %v", seen)
	}
	for call, h := range seen {
		if got := h.Get(api.HeaderAgentID); got != "0123abcd" {
			t.Errorf("%s: %s = %q, want 0123abcd", call, api.HeaderAgentID, got)
		}
		if got := h.Get(client.HeaderAuthToken); got != "robot-token" {
			t.Errorf("%s: token = %q", call, got)
		}
	}
	clear(seen)
	calls(client.New(srv.URL, "robot-token"))
	for call, h := range seen {
		if _, ok := h[http.CanonicalHeaderKey(api.HeaderAgentID)]; ok {
			t.Errorf("%s: %s sent without WithHeader", call, api.HeaderAgentID)
		}
	}
}
