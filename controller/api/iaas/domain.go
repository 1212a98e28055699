package iaas

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/dns/rdata"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// DomainInput is the body of POST /iaas/domain/.
type DomainInput struct {
	Name *string `json:"name"`
}

// dnsOwns: DNS objects are visible to their member and to global users
// (robots have no business with DNS).
func dnsOwns(q *api.Request, member uint64) bool { return q.P.Global() || member == q.P.MemberID }

// seesDomain: a domain is visible to its member and to global users; a
// reverse zone is the region's (the PTR records of every member go in it):
// it is owned by the global member, but only global users see it, not
// every user of member 1.
func seesDomain(q *api.Request, d *wire.Domain) bool {
	if isReverse(d.Name) {
		return q.P.Global()
	}
	return dnsOwns(q, d.MemberID)
}

// isReverse reports whether a zone name is under in-addr.arpa or ip6.arpa.
func isReverse(name string) bool {
	return strings.HasSuffix(name, ".in-addr.arpa") || strings.HasSuffix(name, ".ip6.arpa") ||
		name == "in-addr.arpa" || name == "ip6.arpa"
}

// Codes (create), CloudCIX's first (dns-facts §1.1): 101 name missing or
// blank, 102 longer than 240 characters, 103 a label longer than 63; then
// Regent's: 104 unknown member, 105 name taken, 106 overlaps another
// member's domain, 107 reverse zones are the region's (PTR records create
// them), 108 not a domain name otherwise (an empty label, a character
// other than a letter, digit or hyphen, a single label); 201 the member is
// not self-managed; state adds 409 109, the parent domain holds records
// at or below the new apex (Rules4). A domain is immutable: no update. Delete removes its
// records too.
func registerDomain(a *api.API) {
	api.Register(a, api.Service[*wire.Domain]{
		App: App, Name: "domain", Tables: []string{state.Domains},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"name": query.String, "member_id": query.Number,
			"serial": query.Number, "modified_by": query.Number}),
			Ordering: []string{"name", "id", "created", "updated"}},
		All:     (*state.ReadTxn).DomainList,
		Get:     (*state.ReadTxn).Domain,
		Visible: seesDomain,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in DomainInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if !q.P.Global() {
				if m, ok := q.Txn.Member(q.P.MemberID); !ok || !m.SelfManaged {
					return nil, wire.Errorf(http.StatusForbidden, q.Code(201), "Only self-managed members may create domains: a global user sets self_managed on the member (PATCH /membership/member/{id}/).")
				}
			}
			fe := wire.FieldErrors{}
			if !required(fe, q, "name", in.Name != nil, 101) {
				return nil, fe.Err()
			}
			if code, msg := domainNameLimits(*in.Name); code != 0 {
				fe.Add("name", q.Code(code), "%s", msg)
				return nil, fe.Err()
			}
			name, err := rdata.Zone(*in.Name)
			if err != nil {
				fe.Add("name", q.Code(108), "%s.", capitalise(err.Error()))
				return nil, fe.Err()
			}
			if isReverse(name) && !q.P.Global() {
				fe.Add("name", q.Code(107), "Reverse zones belong to the region; create PTR records through ptr_record instead.")
				return nil, fe.Err()
			}
			if _, ok := q.Txn.DomainByName(name); ok {
				fe.Add("name", q.Code(105), "The domain %s already exists.", name)
				return nil, fe.Err()
			}
			return q.Command(fsm.DomainCreateType, &wire.Domain{MemberID: q.P.MemberID, Name: name})
		},
		Delete: func(q *api.Request, cur *wire.Domain) (*fsm.Command, error) {
			return q.Command(fsm.DomainDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}

// domainNameLimits applies CloudCIX's checks of a domain name, in its
// order and with its codes: stripped and not blank (101), one trailing "/"
// removed, at most 240 characters (102), every dot-separated label at most
// 63 (103). It returns 0 when they pass; rdata.Zone checks the rest.
func domainNameLimits(s string) (code int, msg string) {
	n := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "/"), ".")
	if n == "" {
		return 101, "This field may not be blank."
	}
	if len(n) > 240 {
		return 102, fmt.Sprintf("The domain name is %d characters long; the limit is 240.", len(n))
	}
	for _, l := range strings.Split(n, ".") {
		if len(l) > 63 {
			return 103, fmt.Sprintf("The label %q is %d characters long; the limit is 63.", l, len(l))
		}
	}
	return 0, ""
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
