package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/regentcloud/regent/controller/cluster"
	wire "github.com/regentcloud/regent/pkg/api"
)

// TestAsUnavailable: an operator request's cluster error is 503
// regent_cluster_002 when the change may have been made (leadership lost
// while committing, a commit timeout), which a client must not simply
// retry, and regent_cluster_001 (nothing done) otherwise; an API error
// passes as it is.
func TestAsUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("add voter: %w", cluster.ErrLeadershipLost), wire.CodeForwardFailed},
		{cluster.ErrCommitTimeout, wire.CodeForwardFailed},
		{cluster.ErrNoLeader, wire.CodeNoLeader},
		{errors.New("raft is shutting down"), wire.CodeNoLeader},
		{wire.Errorf(http.StatusConflict, "x_101", "no"), "x_101"},
	} {
		var e *wire.Error
		if !errors.As(asUnavailable(c.err), &e) || e.ErrorCode != c.code {
			t.Errorf("%v: %+v, want %s", c.err, e, c.code)
		}
	}
}
