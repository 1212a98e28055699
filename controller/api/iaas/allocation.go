package iaas

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// AllocationInput is the body of allocation create and update. On update
// address_range, asn_id and type may be sent only with their current value.
type AllocationInput = wire.AllocationInput

// AllocationView is an allocation as the API shows it.
type AllocationView = wire.AllocationView

func allocationView(r *state.ReadTxn, b *wire.IPBlock) any {
	return &AllocationView{Meta: b.Meta, AddressRange: b.CIDR, ASNID: b.ASNID, MemberID: b.MemberID,
		AddressID: b.MemberID, Name: b.Name, Type: b.Type, SubnetsInUse: len(r.IPBlockChildren(b.ID)),
		Modified: b.Modified}
}

// Codes (create and update): 101 address_range, 102 asn_id, 103 overlap,
// 104 type, 105 name, 106 a field that cannot change, 107 (create)
// address_range is IPv4-mapped IPv6 (::ffff:10.0.0.0/104). Delete: 101 has
// subnets, 102 holds addresses, 103 a project's allocation.
//
// Only global users (the CIX member) create allocations; the administrators
// of the member that owns the ASN update and delete them (the permission
// table), and see only their member's (Visible, 404 otherwise).
func registerAllocation(a *api.API) {
	api.Register(a, api.Service[*wire.IPBlock]{
		App: App, Name: "allocation", Tables: []string{state.IPBlocks},
		FilterView: true,
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"address_range": query.CIDR,
			"asn_id": query.Number, "member_id": query.Number, "address_id": query.Number, "name": query.String,
			"type": query.String, "subnets_in_use": query.Number, "modified_by": query.Number}),
			Ordering: []string{"id", "name", "address_range", "asn_id", "created", "updated"}},
		// The view's fields that are the stored block's (subnets_in_use
		// is counted).
		Stored: api.StoredFields(map[string]string{"address_range": "cidr", "address_id": "member_id"},
			"asn_id", "member_id", "name", "type", "modified_by"),
		All:    func(r *state.ReadTxn) []*wire.IPBlock { return blocks(r, isAllocation) },
		AllFor: memberBlocks(isAllocation),
		Get:    allocation,
		Visible: func(q *api.Request, b *wire.IPBlock) bool {
			return owns(q, b.MemberID)
		},
		Expand: allocationView,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in AllocationInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			b := &wire.IPBlock{Dialect: wire.DialectCloudCIX, Type: wire.BlockPrivate, Generator: wire.GeneratorSequential}
			if required(fe, q, "address_range", in.AddressRange != nil, 101) {
				p, err := netx.ParsePrefixRawUnmapped(*in.AddressRange)
				switch {
				case errors.Is(err, netx.ErrMapped):
					fe.Add("address_range", q.Code(107), "address_range %q is an IPv4-mapped IPv6 network; an allocation is IPv4 or IPv6: write IPv4 ranges in IPv4 notation.", *in.AddressRange)
				case err != nil:
					fe.Add("address_range", q.Code(101), "address_range %q is not a valid CIDR network.", *in.AddressRange)
				case p != p.Masked():
					fe.Add("address_range", q.Code(101), "address_range must be a network address, such as %s.", p.Masked())
				default:
					b.CIDR = p.String()
				}
			}
			if required(fe, q, "asn_id", in.ASNID != nil, 102) {
				asn, ok := q.Txn.ASN(*in.ASNID)
				if !ok || !owns(q, asn.MemberID) {
					fe.Add("asn_id", q.Code(102), "ASN with id = '%d' doesn't exist", *in.ASNID)
				} else {
					b.ASNID, b.MemberID = asn.ID, asn.MemberID
				}
			}
			api.Set(&b.Type, in.Type)
			if b.Type != wire.BlockPublic && b.Type != wire.BlockPrivate {
				fe.Add("type", q.Code(104), "type should be one among public, private")
			}
			text(fe, q, "name", in.Name, 64, 105)
			api.Set(&b.Name, in.Name)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			cidr := netipPrefix(b.CIDR)
			if r := state.ProjectPrivateRange(cidr); r != "" && b.Type == wire.BlockPublic {
				fe.Add("address_range", q.Code(108), "address_range %s is in %s, private address space (RFC 1918) that every project gets as its own allocation: a public allocation there would stop every project create. Use a globally routable range, or type private.", b.CIDR, r)
				return nil, fe.Err()
			}
			for _, o := range blocks(q.Txn, isAllocation) {
				// Private ranges of different ASNs may repeat (RFC 1918 per
				// project); a public range is one member's only.
				if netx.Overlaps(cidr, netipPrefix(o.CIDR)) && (o.ASNID == b.ASNID || o.Type == wire.BlockPublic || b.Type == wire.BlockPublic) {
					fe.Add("address_range", q.Code(103), "address_range overlaps with %s allocation %s", o.Type, o.CIDR)
					return nil, fe.Err()
				}
			}
			return q.Command(fsm.IPBlockCreateType, b)
		},
		Update: func(q *api.Request, cur *wire.IPBlock, partial bool) (*fsm.Command, error) {
			var in AllocationInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.AddressRange != nil {
				if p, err := netx.ParsePrefixRaw(*in.AddressRange); err != nil || p.String() != cur.CIDR {
					fe.Add("address_range", q.Code(106), "The address_range of an allocation cannot be changed.")
				}
			}
			if in.ASNID != nil && *in.ASNID != cur.ASNID {
				fe.Add("asn_id", q.Code(106), "The asn_id of an allocation cannot be changed.")
			}
			if in.Type != nil && *in.Type != cur.Type {
				fe.Add("type", q.Code(106), "The type of an allocation cannot be changed.")
			}
			text(fe, q, "name", in.Name, 64, 105)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			b := *cur
			if !partial {
				b.Name = ""
			}
			api.Set(&b.Name, in.Name)
			return q.Command(fsm.IPBlockUpdateType, &b)
		},
		Delete: func(q *api.Request, cur *wire.IPBlock) (*fsm.Command, error) {
			// A project's private allocations go with the project: its
			// cloud subnets are made in them.
			for _, p := range q.Txn.ProjectList() {
				if slices.Contains(p.AllocationIDs, cur.ID) {
					return nil, wire.Errorf(http.StatusBadRequest, q.Code(103), "The allocation belongs to project %d; it is deleted with the project.", p.ID)
				}
			}
			if n := len(q.Txn.IPBlockChildren(cur.ID)); n > 0 {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(101), "The allocation has %d subnet(s); delete them first.", n)
			}
			if q.Txn.IPBlockHasAddresses(cur.ID) {
				return nil, wire.Errorf(http.StatusBadRequest, q.Code(102), "The allocation holds %d address(es); delete them first.", q.Txn.IPBlockHeld(cur.ID))
			}
			return q.Command(fsm.IPBlockDeleteType, fsm.IDPayload{ID: cur.ID})
		},
		StateErr: allocationStateErr,
	})
}

// allocationStateErr maps state's block errors met inside the FSM (a
// request that lost a race) to the codes of the checks above: an overlap
// (ipam_block_create_114 on cidr) is 103 on address_range, an ASN deleted
// meanwhile 102; delete's 101/102 (subnets, addresses) and update's
// 001/002 keep their numbers. Other errors pass unchanged.
func allocationStateErr(q *api.Request, err error) error {
	var e *wire.Error
	if !errors.As(err, &e) {
		return err
	}
	fe := wire.FieldErrors{}
	switch stateCode(e) {
	case "ipam_block_create_114":
		fe.Add("address_range", q.Code(103), "%s", strings.Replace(e.Errors["cidr"].Detail, "cidr", "address_range", 1))
		return fe.Err()
	case "ipam_block_create_110":
		fe.Add("asn_id", q.Code(102), "%s", e.Errors["asn_id"].Detail)
		return fe.Err()
	}
	if q.Action == auth.Update || q.Action == auth.Delete {
		return renameCodes(e, fmt.Sprintf("ipam_block_%s_", q.Action), fmt.Sprintf("%s_%s_%s_", q.App, q.Service, q.Action))
	}
	return err
}
