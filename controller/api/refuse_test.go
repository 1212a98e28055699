package api

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/regentcloud/regent/controller/cluster"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/auditlog"
)

// refusingLeader is a leader that is shutting down (its write gate refuses)
// and cannot verify its leadership. Only what the forwarder asks of a
// leader is answered; anything else would panic on the nil Cluster.
type refusingLeader struct{ Cluster }

func (refusingLeader) NodeID() string       { return "n1" }
func (refusingLeader) IsLeader() bool       { return true }
func (refusingLeader) ReadyForReads() bool  { return true }
func (refusingLeader) AppliedIndex() uint64 { return 7 }
func (refusingLeader) BeginWrite(context.Context) (func(), error) {
	return nil, cluster.ErrShutdown
}
func (refusingLeader) VerifyLeader(context.Context) error {
	return errors.New("leadership lost while committing log")
}

// TestRefusalsAreCountedAndAudited: a write refused because the leader is
// shutting down, and a consistent read refused because leadership could
// not be verified, answer 503 no_leader, and appear in the request
// histogram and the audit trail under the route they asked for (they used
// to appear in neither: an SRE saw clients' 503s and no 503 on the node).
func TestRefusalsAreCountedAndAudited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	aw, err := auditlog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a := New(Config{Audit: aw}, refusingLeader{}, state.New(), hclog.NewNullLogger(), reg)
	h := a.Handler()
	for _, req := range []*http.Request{
		httptest.NewRequest("DELETE", "/v1/operator/members/n2", nil),
		httptest.NewRequest("GET", "/v1/operator/members?consistent=true", nil),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"`+wire.CodeNoLeader+`"`) ||
			rec.Header().Get("Retry-After") == "" || rec.Header().Get("X-Regent-Index") != "7" {
			t.Errorf("%s %s: %d %v %s", req.Method, req.URL, rec.Code, rec.Header(), rec.Body)
		}
	}
	for _, s := range [][2]string{{"DELETE", "/v1/operator/members/{id}"}, {"GET", "/v1/operator/members"}} {
		var m dto.Metric
		if err := a.metrics.dur.WithLabelValues(s[1], s[0], "503", "false").(prometheus.Metric).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetHistogram().GetSampleCount(); got != 1 {
			t.Errorf("%s %s 503: %d observations, want 1", s[0], s[1], got)
		}
	}
	if err := aw.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	for s := bufio.NewScanner(f); s.Scan(); {
		lines = append(lines, s.Text())
	}
	// Only the write is audited (reads are not).
	if len(lines) != 1 || !strings.Contains(lines[0], `"route":"/v1/operator/members/{id}"`) || !strings.Contains(lines[0], `"status":503`) {
		t.Errorf("audit lines: %q", lines)
	}
}

// newLeader has just won an election: not ready for reads until ready is
// closed (its Barrier returned).
type newLeader struct {
	Cluster
	ready chan struct{}
}

func (newLeader) NodeID() string       { return "n1" }
func (newLeader) IsLeader() bool       { return true }
func (newLeader) AppliedIndex() uint64 { return 7 }
func (l newLeader) ReadyForReads() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}
func (l newLeader) AwaitReadyForReads(ctx context.Context) error {
	select {
	case <-l.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestNewLeaderServesWhenCaughtUp: a leader serves nothing (reads, or a
// write's checks) before its FSM holds the writes committed before its
// term: requests wait for that, and answer 503 no_leader when it does not
// come within the apply timeout.
func TestNewLeaderServesWhenCaughtUp(t *testing.T) {
	l := newLeader{ready: make(chan struct{})}
	a := New(Config{ApplyTimeout: 300 * time.Millisecond}, l, state.New(), hclog.NewNullLogger(), prometheus.NewRegistry())
	h := a.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/operator/members", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not yet applied") {
		t.Fatalf("not caught up: %d %s", rec.Code, rec.Body)
	}
	close(l.ready)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/operator/members", nil))
	if rec.Code != http.StatusUnauthorized { // served: the route asks for a token
		t.Fatalf("caught up: %d %s", rec.Code, rec.Body)
	}
}
