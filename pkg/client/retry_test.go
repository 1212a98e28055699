package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/client"
)

// TestWithRetry: WithRetry sends a request again, body and all, after the
// Retry-After of a 503 regent_cluster_001 (no leader: nothing was done) or
// a 429, up to its count; a 503 regent_cluster_002 (outcome unknown) and
// the default client return the first answer; a context that ends during
// the wait returns the last answer's error.
func TestWithRetry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var failFirst atomic.Int32
	var code atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if n <= failFirst.Load() {
			status := http.StatusServiceUnavailable
			if code.Load().(string) == "" {
				status = http.StatusTooManyRequests
			}
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(api.Error{Detail: "No leader.", ErrorCode: code.Load().(string)})
			return
		}
		var in api.MemberInput
		if err := json.Unmarshal(body, &in); err != nil || in.Name == nil || *in.Name != "acme" {
			http.Error(w, "body lost: "+string(body), http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(api.Item[api.Member]{Content: api.Member{Name: *in.Name}})
	}))
	defer ts.Close()
	ctx := context.Background()
	create := func(c *client.Client, ctx context.Context) error {
		_, _, err := c.Members().Create(ctx, &api.MemberInput{Name: new("acme")})
		return err
	}
	try := func(name string, c *client.Client, ctx context.Context, errCode string, fail int32, wantCalls int32, wantStatus int) {
		t.Helper()
		calls.Store(0)
		failFirst.Store(fail)
		code.Store(errCode)
		start := time.Now()
		err := create(c, ctx)
		if calls.Load() != wantCalls || client.StatusCode(err) != wantStatus && !(wantStatus == 200 && err == nil) {
			t.Errorf("%s: %d calls, err %v (status %d); want %d calls, status %d", name, calls.Load(), err, client.StatusCode(err), wantCalls, wantStatus)
		}
		if wantCalls > 1 && time.Since(start) < time.Duration(wantCalls-1)*time.Second {
			t.Errorf("%s: %d calls in %s: Retry-After not waited", name, wantCalls, time.Since(start))
		}
	}
	retrying := client.New(ts.URL, "t", client.WithRetry(2))
	try("no leader, then a leader", retrying, ctx, api.CodeNoLeader, 1, 2, 200)
	try("429, then served", retrying, ctx, "", 1, 2, 200)
	try("no leader thrice", retrying, ctx, api.CodeNoLeader, 5, 3, http.StatusServiceUnavailable)
	try("outcome unknown", retrying, ctx, "regent_cluster_002", 5, 1, http.StatusServiceUnavailable)
	try("default client", client.New(ts.URL, "t"), ctx, api.CodeNoLeader, 1, 1, http.StatusServiceUnavailable)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	try("context ends in the wait", retrying, short, api.CodeNoLeader, 5, 1, http.StatusServiceUnavailable)
}

// TestWithRetryLongRetryAfter: an answer whose Retry-After is longer than
// MaxRetryWait (a proxy's 429 asking for an hour) is returned at once with
// that Retry-After, for the caller to decide; WithRetry waited it out, and
// regentctl (WithRetry(2)) sat silent for two hours.
func TestWithRetryLongRetryAfter(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "rate limited", http.StatusTooManyRequests)
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := client.New(ts.URL, "t", client.WithRetry(2)).Members().List(ctx, nil)
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.RetryAfter != 3600 {
		t.Fatalf("err %v, want the 429 with its Retry-After", err)
	}
	if took := time.Since(start); took > 2*time.Second || calls.Load() != 1 {
		t.Errorf("returned after %s and %d calls: a Retry-After of an hour was waited out", took, calls.Load())
	}
}
