package iaas

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/dns/rdata"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// PTRRecordInput is the body of ptr_record create and update (update
// takes content and ttl only).
type PTRRecordInput struct {
	IPAddress  *string `json:"ip_address"`
	Content    *string `json:"content"`
	TTL        *int64  `json:"ttl"`
	TimeToLive *int64  `json:"time_to_live"`
}

// ptrContent validates the host name a PTR record points to (CloudCIX:
// one trailing "/" removed, at most 240 characters, labels at most 63).
func ptrContent(fe wire.FieldErrors, q *api.Request, v string) string {
	c := strings.TrimSuffix(strings.TrimSpace(v), "/")
	if c == "" {
		fe.Add("content", q.Code(104), "This field may not be blank.")
		return ""
	}
	if len(c) > 240 {
		fe.Add("content", q.Code(105), "Ensure this field has no more than 240 characters.")
		return ""
	}
	if err := rdata.Check("", "ptr", "PTR", 0, c); err != nil {
		fe.Add("content", q.Code(106), "%s.", capitalise(err.Error()))
		return ""
	}
	return strings.TrimSuffix(c, ".")
}

// Codes (create): 101 ip_address missing, 102 not an address, 103 not a
// global unicast address, 104 content missing, 105 content too long, 106
// content not a host name, 107 ttl too large, 108 ttl below 180; state
// adds 109 (the member does not hold the address in IPAM) and 110 (the
// address already has a PTR record). Update: 104–108, and 101 when the
// address would change.
func registerPTRRecord(a *api.API) {
	api.Register(a, api.Service[*wire.Record]{
		App: App, Name: "ptr_record", Tables: []string{state.Records},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"name": query.String, "content": query.String,
			"ip_address": query.CIDR, "ttl": query.Number, "member_id": query.Number, "domain_id": query.Number,
			"modified_by": query.Number}),
			Ordering: []string{"name", "content", "ip_address", "ttl", "id", "created", "updated"},
			Aliases:  cloudcixRecordFields},
		All: func(r *state.ReadTxn) []*wire.Record { return recordsOfKind(r.RecordList(), true) },
		// A member's records from the member index (Visible: dnsOwns).
		AllFor: func(q *api.Request) []*wire.Record {
			if q.P.Global() {
				return recordsOfKind(q.Txn.RecordList(), true)
			}
			return recordsOfKind(q.Txn.RecordListByMember(q.P.MemberID), true)
		},
		Get: func(r *state.ReadTxn, id uint64) (*wire.Record, bool) {
			rec, ok := r.Record(id)
			return rec, ok && rec.Type == "PTR"
		},
		// Unlike CloudCIX, the list is scoped to the caller's member.
		Visible: func(q *api.Request, r *wire.Record) bool { return dnsOwns(q, r.MemberID) },
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in PTRRecordInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			var addr netip.Addr
			if required(fe, q, "ip_address", in.IPAddress != nil, 101) {
				a, err := netip.ParseAddr(strings.TrimSpace(*in.IPAddress))
				switch {
				case err != nil || a.Zone() != "":
					fe.Add("ip_address", q.Code(102), "%q is not an IP address.", *in.IPAddress)
				case !globalUnicast(a.Unmap()):
					fe.Add("ip_address", q.Code(103), "%s is not a global unicast address (private, loopback, link-local, multicast and unspecified addresses have no public reverse DNS).", a)
				default:
					addr = a.Unmap()
				}
			}
			content := ""
			if required(fe, q, "content", in.Content != nil, 104) {
				content = ptrContent(fe, q, *in.Content)
			}
			v, err := ttlOf(in.TTL, in.TimeToLive)
			if err != nil {
				return nil, err
			}
			ttl := checkTTL(fe, q, v, 108)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			rec := &wire.Record{Type: "PTR", Name: strings.TrimSuffix(netx.ReverseName(addr), "."), Content: content,
				TTL: ttl, Priority: wire.RecordDefaultPriority, IPAddress: addr.String(), MemberID: q.P.MemberID}
			return q.Command(fsm.PTRCreateType, fsm.PTRPayload{Record: rec, AnyOwner: q.P.Global()})
		},
		Update: func(q *api.Request, cur *wire.Record, partial bool) (*fsm.Command, error) {
			var in PTRRecordInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			rec := *cur
			if in.IPAddress != nil {
				if a, err := netip.ParseAddr(strings.TrimSpace(*in.IPAddress)); err != nil || a.Unmap().String() != cur.IPAddress {
					fe.Add("ip_address", q.Code(101), "The address of a PTR record cannot change; delete it and create another.")
				}
			}
			if in.Content != nil {
				rec.Content = ptrContent(fe, q, *in.Content)
			} else if !partial {
				fe.Add("content", q.Code(104), "This field is required.")
			}
			v, err := ttlOf(in.TTL, in.TimeToLive)
			if err != nil {
				return nil, err
			}
			if v != nil || !partial {
				rec.TTL = checkTTL(fe, q, v, 108)
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.RecordUpdateType, &rec)
		},
		Delete: func(q *api.Request, cur *wire.Record) (*fsm.Command, error) {
			return q.Command(fsm.RecordDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}

// ttlOf is the TTL a body sends as ttl or, CloudCIX's field name,
// time_to_live; both at once is 400 regent_request_005, as two spellings
// of one parameter are elsewhere (ip_validator), rather than one silently
// winning.
func ttlOf(ttl, timeToLive *int64) (*int64, error) {
	if ttl != nil && timeToLive != nil {
		return nil, wire.Errorf(http.StatusBadRequest, wire.CodeBadQuery, "Send the TTL as ttl or as time_to_live, not both.")
	}
	if ttl != nil {
		return ttl, nil
	}
	return timeToLive, nil
}

// globalUnicast is CloudCIX's rule for PTR addresses: a routable unicast
// address, not private, loopback, link-local, multicast or unspecified.
func globalUnicast(a netip.Addr) bool {
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate()
}
