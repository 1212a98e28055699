package api

import (
	"errors"
	"net/http"
	"testing"

	"github.com/regentcloud/regent/controller/auth"
	wire "github.com/regentcloud/regent/pkg/api"
)

// TestStateErrObjectGoneMeanwhile: an update or delete that lost a race
// with a delete meets its object gone inside the FSM, with state's code
// for the table (ipam_asn_delete_001 for /iaas/asn/): the answer is the
// service's own 404. A service's own codes and other errors pass as they
// are, and so does a create's 404 (about something else the body names).
func TestStateErrObjectGoneMeanwhile(t *testing.T) {
	s := &Service[*wire.ASN]{}
	for _, tc := range []struct {
		action auth.Action
		in     error
		status int
		code   string
	}{
		{auth.Delete, wire.NotFound("ipam_asn_delete_001"), 404, "iaas_asn_delete_001"},
		{auth.Update, wire.NotFound("ipam_asn_update_001"), 404, "iaas_asn_update_001"},
		{auth.Delete, wire.NotFound("iaas_asn_delete_001"), 404, "iaas_asn_delete_001"},
		{auth.Delete, wire.Errorf(http.StatusBadRequest, "ipam_asn_delete_101", "in use"), 400, "ipam_asn_delete_101"},
		{auth.Create, wire.NotFound("ipam_block_create_001"), 404, "ipam_block_create_001"},
	} {
		q := &Request{App: "iaas", Service: "asn", Action: tc.action}
		var e *wire.Error
		if !errors.As(s.stateErr(q, tc.in), &e) || e.Status != tc.status || e.ErrorCode != tc.code {
			t.Errorf("%s %v: got %+v, want %d %s", tc.action, tc.in, e, tc.status, tc.code)
		}
	}
}
