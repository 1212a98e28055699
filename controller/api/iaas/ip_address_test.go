package iaas

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// TestIPAddressStateErrors provokes the failures of state's address
// commands that the handlers' pre-checks normally catch first (as a request
// that lost a race meets them inside the FSM: two creates of one address in
// one raft batch, a next-free on a subnet filled meanwhile, an address
// deleted meanwhile) and checks that the iaas service answers them with its
// own codes, not state's ipam_… ones.
func TestIPAddressStateErrors(t *testing.T) {
	st := state.New()
	var index uint64
	write := func(op func(*state.Txn) error) error {
		index++
		txn := st.Write(index, time.Unix(1_700_000_000+int64(index), 0))
		if err := op(txn); err != nil {
			txn.Abort()
			return err
		}
		txn.Commit()
		return nil
	}
	var sn *wire.IPBlock
	if err := write(func(tx *state.Txn) error {
		m, err := tx.MemberCreate(&wire.Member{Name: "acme"})
		if err != nil {
			return err
		}
		asn, err := tx.ASNCreate(&wire.ASN{MemberID: m.ID, Number: 65001})
		if err != nil {
			return err
		}
		alloc, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: "10.1.4.0/24"})
		if err != nil {
			return err
		}
		// 10.1.4.48/28 with gateway .49: .50 is the first free address.
		sn, err = tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, ParentID: alloc.ID, CIDR: "10.1.4.48/28", Gateway: "10.1.4.49"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	q := func(action auth.Action) *api.Request {
		return &api.Request{App: App, Service: "ip_address", Action: action}
	}
	want := func(what string, err error, status int, field, code string) {
		t.Helper()
		var e *wire.Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: %v is not an API error", what, err)
		}
		got := e.ErrorCode
		if field != "" {
			got = e.Errors[field].ErrorCode
		}
		if e.Status != status || got != code {
			t.Errorf("%s: %d %q (%v), want %d %s %q", what, e.Status, got, e, status, field, code)
		}
	}

	// Two creates of 10.1.4.50 in one batch: both passed the pre-check
	// against the same read view; the second is refused inside the FSM.
	var first *wire.IPAddress
	var raced error
	if err := write(func(tx *state.Txn) (err error) {
		if first, err = tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID, Address: "10.1.4.50"}); err != nil {
			return err
		}
		_, raced = tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID, Address: "10.1.4.50"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want("state's own code", raced, http.StatusConflict, "", "ipam_ip_address_create_107")
	want("address taken in the FSM", ipAddressStateErr(q(auth.Create), raced), http.StatusConflict, "", "iaas_ip_address_create_108")

	// Next free on a subnet filled meanwhile.
	var full error
	if err := write(func(tx *state.Txn) error {
		for {
			if _, err := tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID}); err != nil {
				full = err
				return nil
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	want("state's own code", full, http.StatusUnprocessableEntity, "", "ipam_ip_address_create_104")
	want("subnet full in the FSM", ipAddressStateErr(q(auth.Create), full), http.StatusUnprocessableEntity, "", "iaas_ip_address_create_107")

	// The public IP deleted meanwhile (a field error of state).
	gone := write(func(tx *state.Txn) error {
		_, err := tx.IPAddressCreate(&wire.IPAddress{BlockID: sn.ID, PublicIPID: 999})
		return err
	})
	want("public IP gone in the FSM", ipAddressStateErr(q(auth.Create), gone), http.StatusBadRequest, "public_ip_id", "iaas_ip_address_create_105")

	// Update and delete of an address deleted meanwhile, and an update
	// refused on a field: state's numbers, the iaas prefix.
	if err := write(func(tx *state.Txn) error { return tx.IPAddressDelete(state.IPRef{ID: first.ID}) }); err != nil {
		t.Fatal(err)
	}
	upd := write(func(tx *state.Txn) error {
		_, err := tx.IPAddressUpdate(&wire.IPAddress{Meta: first.Meta, Name: "x"}, 0)
		return err
	})
	want("update of a deleted address", ipAddressStateErr(q(auth.Update), upd), http.StatusNotFound, "", "iaas_ip_address_update_001")
	del := write(func(tx *state.Txn) error { return tx.IPAddressDelete(state.IPRef{ID: first.ID}) })
	want("delete of a deleted address", ipAddressStateErr(q(auth.Delete), del), http.StatusNotFound, "", "iaas_ip_address_delete_001")
	var live *wire.IPAddress
	for _, ip := range st.Read().IPAddressList(sn.ID) {
		live = ip
	}
	self := write(func(tx *state.Txn) error {
		_, err := tx.IPAddressUpdate(&wire.IPAddress{Meta: live.Meta, PublicIPID: live.ID}, 0)
		return err
	})
	want("update refused on a field", ipAddressStateErr(q(auth.Update), self), http.StatusBadRequest, "public_ip_id", "iaas_ip_address_update_105")
}

// TestAllocationStateErrors: an allocation that passed the overlap check
// against its read view and meets an overlapping one inside the FSM (two
// creates in one batch) gets iaas_allocation_create_103 on address_range.
func TestAllocationStateErrors(t *testing.T) {
	st := state.New()
	tx := st.Write(1, time.Unix(1_700_000_000, 0))
	defer tx.Abort()
	m, err := tx.MemberCreate(&wire.Member{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	asn, err := tx.ASNCreate(&wire.ASN{MemberID: m.ID, Number: 65001})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: "8.8.8.0/24", Type: wire.BlockPublic}); err != nil {
		t.Fatal(err)
	}
	_, raced := tx.IPBlockCreate(&wire.IPBlock{Dialect: wire.DialectCloudCIX, MemberID: m.ID, ASNID: asn.ID, CIDR: "8.8.8.0/25"})
	var e *wire.Error
	if !errors.As(allocationStateErr(&api.Request{App: App, Service: "allocation", Action: auth.Create}, raced), &e) ||
		e.Status != http.StatusBadRequest || e.Errors["address_range"].ErrorCode != "iaas_allocation_create_103" {
		t.Fatalf("overlap in the FSM: %v (state: %v)", e, raced)
	}
}

// TestSubnetDeleteStateErrors: a subnet delete that loses a race (a child
// subnet, an address or a router's floating_subnet_ids gained between the
// handler's checks and Apply) answers with the subnet's own codes, as the
// handler's checks do, not state's ipam_block_delete_… ones.
func TestSubnetDeleteStateErrors(t *testing.T) {
	q := &api.Request{App: App, Service: "subnet", Action: auth.Delete}
	for _, n := range []int{101, 102, 104} {
		raced := wire.Errorf(http.StatusBadRequest, fmt.Sprintf("ipam_block_delete_%d", n), "refused %d", n)
		var e *wire.Error
		if !errors.As(subnetStateErr(q, raced), &e) || e.Status != http.StatusBadRequest ||
			e.ErrorCode != fmt.Sprintf("iaas_subnet_delete_%d", n) || !strings.Contains(e.Detail, "The subnet") ||
			!strings.Contains(e.Detail, "meanwhile") {
			t.Errorf("state's %d in the FSM: %+v", n, e)
		}
	}
}
