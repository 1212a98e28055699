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

// TestStateErrModifiedMeanwhile: an update whose compare-and-swap failed
// inside the FSM (If-Match not the object's modified_index) meets state's
// 409 for the table (ipam_block_update_002 on /iaas/subnet/,
// ipam_asn_update_002 on /iaas/asn/): the answer is the service's own
// <app>_<service>_update_002, with state's detail. A service's own code
// passes as it is, and so do other 409s and a create's or delete's.
func TestStateErrModifiedMeanwhile(t *testing.T) {
	s := &Service[*wire.ASN]{}
	stale := func(code string) error {
		return wire.Errorf(http.StatusConflict, code, "The object was modified by another request (modified_index 9, expected 7).")
	}
	for _, tc := range []struct {
		service string
		action  auth.Action
		in      error
		code    string
	}{
		{"asn", auth.Update, stale("ipam_asn_update_002"), "iaas_asn_update_002"},
		{"subnet", auth.Update, stale("ipam_block_update_002"), "iaas_subnet_update_002"},
		{"project", auth.Update, stale("iaas_cloud_update_002"), "iaas_project_update_002"},
		{"subnet", auth.Update, stale("iaas_subnet_update_002"), "iaas_subnet_update_002"},
		{"subnet", auth.Update, stale("ipam_block_update_107"), "ipam_block_update_107"},
		{"subnet", auth.Delete, stale("ipam_block_update_002"), "ipam_block_update_002"},
		{"subnet", auth.Create, stale("ipam_block_update_002"), "ipam_block_update_002"},
	} {
		q := &Request{App: "iaas", Service: tc.service, Action: tc.action}
		var e *wire.Error
		if !errors.As(s.stateErr(q, tc.in), &e) || e.Status != http.StatusConflict || e.ErrorCode != tc.code ||
			e.Detail != "The object was modified by another request (modified_index 9, expected 7)." {
			t.Errorf("%s %s %v: got %+v, want 409 %s with state's detail", tc.service, tc.action, tc.in, e, tc.code)
		}
	}
}
