package melange

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	wire "github.com/regentcloud/regent/pkg/api"
)

// Policies (melange-facts §6) and their unusable ip ranges and octets. A
// range or octet is part of its policy in the store (wire.IPPolicy): every
// change to one is an IPPolicyUpdate command carrying the whole policy
// with that entry changed, so state re-applies it to the policy's blocks.

// PolicyView is a Melange policy as the API shows it.
type PolicyView struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	TenantID    string  `json:"tenant_id"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

// RangeView is an unusable ip range, with its own timestamps (entryTimes).
type RangeView struct {
	ID        string `json:"id"`
	Offset    int64  `json:"offset"`
	Length    int64  `json:"length"`
	PolicyID  string `json:"policy_id"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// OctetView is an unusable ip octet.
type OctetView struct {
	ID        string `json:"id"`
	Octet     int64  `json:"octet"`
	PolicyID  string `json:"policy_id"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func policyView(p *wire.IPPolicy) any {
	return &PolicyView{ID: idString(p.ID), Name: p.Name, Description: optional(p.Description), TenantID: idString(p.MemberID),
		CreatedAt: p.Created, UpdatedAt: p.Updated}
}

func policyID(p *wire.IPPolicy) uint64 { return p.ID }

// entryTimes are the created_at and updated_at of a range or octet of p:
// its own, or, for an entry stored before entries had timestamps, its
// policy's.
func entryTimes(p *wire.IPPolicy, created, updated string) (string, string) {
	if created == "" {
		created = p.Created
	}
	if updated == "" {
		updated = p.Updated
	}
	return created, updated
}

func rangeView(p *wire.IPPolicy) func(wire.UnusableRange) any {
	return func(r wire.UnusableRange) any {
		c, u := entryTimes(p, r.Created, r.Updated)
		return &RangeView{ID: idString(r.ID), Offset: r.Offset, Length: r.Length, PolicyID: idString(p.ID), CreatedAt: c, UpdatedAt: u}
	}
}

func octetView(p *wire.IPPolicy) func(wire.UnusableOctet) any {
	return func(o wire.UnusableOctet) any {
		c, u := entryTimes(p, o.Created, o.Updated)
		return &OctetView{ID: idString(o.ID), Octet: o.Octet, PolicyID: idString(p.ID), CreatedAt: c, UpdatedAt: u}
	}
}

func registerPolicies(a *api.API) {
	const policies = "/tenants/{tenant_id}/policies"
	handle(a, "GET", policies, ServicePolicy, auth.List, listPolicies)
	handle(a, "POST", policies, ServicePolicy, auth.Create, createPolicy)
	handle(a, "GET", policies+"/{id}", ServicePolicy, auth.Read, readPolicy)
	handle(a, "PUT", policies+"/{id}", ServicePolicy, auth.Update, updatePolicy)
	handle(a, "DELETE", policies+"/{id}", ServicePolicy, auth.Delete, deletePolicy)

	ranges := policies + "/{policy_id}/unusable_ip_ranges"
	handle(a, "GET", ranges, ServiceIPRange, auth.List, listRanges)
	handle(a, "POST", ranges, ServiceIPRange, auth.Create, createRange)
	handle(a, "GET", ranges+"/{id}", ServiceIPRange, auth.Read, readRange)
	handle(a, "PUT", ranges+"/{id}", ServiceIPRange, auth.Update, updateRange)
	handle(a, "DELETE", ranges+"/{id}", ServiceIPRange, auth.Delete, deleteRange)

	octets := policies + "/{policy_id}/unusable_ip_octets"
	handle(a, "GET", octets, ServiceIPOctet, auth.List, listOctets)
	handle(a, "POST", octets, ServiceIPOctet, auth.Create, createOctet)
	handle(a, "GET", octets+"/{id}", ServiceIPOctet, auth.Read, readOctet)
	handle(a, "PUT", octets+"/{id}", ServiceIPOctet, auth.Update, updateOctet)
	// melange-api-spec documents the octet update as POST on the item
	// ("Update details of a tenant's policy's unusable ip octet"); PUT, as
	// on every other item, is kept.
	handle(a, "POST", octets+"/{id}", ServiceIPOctet, auth.Update, updateOctet)
	handle(a, "DELETE", octets+"/{id}", ServiceIPOctet, auth.Delete, deleteOctet)
}

// policy finds the policy named by the path value of the URL tenant:
// another tenant's policy or a missing one is 404 Policy Not Found.
func (q *request) policy(name string) (*wire.IPPolicy, error) {
	id, err := strconv.ParseUint(q.PathValue(name), 10, 64)
	if err == nil {
		if p, ok := q.Txn.IPPolicy(id); ok && p.MemberID == q.tenant {
			return p, nil
		}
	}
	return nil, fault(http.StatusNotFound, "Policy Not Found")
}

// entryID is the {id} of a range or octet URL (0 when not a number).
func (q *request) entryID() uint64 {
	id, _ := strconv.ParseUint(q.PathValue("id"), 10, 64)
	return id
}

// integer reads field as an integer (a JSON number or a numeric string).
// present is false when the field is absent.
func (b body) integer(field string) (v int64, present bool, err error) {
	s, present, err := b.str(field)
	if err != nil || !present {
		return 0, present, err
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil {
		return 0, true, invalid(field, field+" should be of type integer")
	}
	return n, true, nil
}

// policyEdit replicates the policy update that edit makes to a copy of the
// current policy, retrying when another write got there first. edit may
// return a fault (404, 400), which ends the request.
func policyEdit(q *request, edit func(p *wire.IPPolicy) error) (*wire.IPPolicy, uint64, error) {
	for attempt := 0; ; attempt++ {
		cur, err := q.policy("policy_id")
		if err != nil {
			return nil, 0, err
		}
		in := *cur
		in.UnusableRanges = slices.Clone(cur.UnusableRanges)
		in.UnusableOctets = slices.Clone(cur.UnusableOctets)
		if err := edit(&in); err != nil {
			return nil, 0, err
		}
		v, index, err := apply(q, fsm.IPPolicyUpdateType, &in, cur.ModifiedIndex)
		if err != nil && stale(err) && attempt < api.ConflictRetries {
			q.Txn = q.API.Store().Read()
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return v.(*wire.IPPolicy), index, nil
	}
}

// --- policies ---

func listPolicies(q *request) error {
	var items []*wire.IPPolicy
	for _, p := range q.Txn.IPPolicyList() {
		if p.MemberID == q.tenant {
			items = append(items, p)
		}
	}
	res, err := page(q, "policies", items, policyID, policyView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

func readPolicy(q *request) error {
	p, err := q.policy("id")
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, map[string]any{"policy": policyView(p)})
	return nil
}

// policyFields reads name and description when present; tenant_id in the
// body is ignored (melange-facts §3).
func policyFields(b body, p *wire.IPPolicy) error {
	for _, f := range []struct {
		name string
		dst  *string
	}{{"name", &p.Name}, {"description", &p.Description}} {
		v, present, err := b.str(f.name)
		if err != nil {
			return err
		}
		if present {
			*f.dst = v
		}
	}
	return nil
}

func createPolicy(q *request) error {
	b, err := decode(q, "policy")
	if err != nil {
		return err
	}
	in := &wire.IPPolicy{MemberID: q.tenant}
	if err := policyFields(b, in); err != nil {
		return err
	}
	v, index, err := apply(q, fsm.IPPolicyCreateType, in, 0)
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"policy": policyView(v.(*wire.IPPolicy))})
	return nil
}

func updatePolicy(q *request) error {
	b, err := decode(q, "policy")
	if err != nil {
		return err
	}
	q.SetPathValue("policy_id", q.PathValue("id"))
	v, index, err := policyEdit(q, func(p *wire.IPPolicy) error { return policyFields(b, p) })
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, index, map[string]any{"policy": policyView(v)})
	return nil
}

// deletePolicy: 200 with an empty body; its ranges and octets go with it
// and the blocks using it lose it.
func deletePolicy(q *request) error {
	return deleteObject(q, fsm.IPPolicyDeleteType, func() (wire.Object, error) { return q.policy("id") })
}

// --- unusable ip ranges ---

var errRangeNotFound = fault(http.StatusNotFound, "IpRange Not Found")

// rangeFields reads offset and length (required on create); policy_id in
// the body is ignored. A negative offset counts from the end of the block.
func rangeFields(b body, r *wire.UnusableRange, create bool) error {
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"offset", &r.Offset}, {"length", &r.Length}} {
		v, present, err := b.integer(f.name)
		if err != nil {
			return err
		}
		if create && !present {
			return invalid(f.name, f.name+" should be of type integer")
		}
		if present {
			*f.dst = v
		}
	}
	if r.Length < 0 {
		return invalid("length", "length should be a positive integer")
	}
	return nil
}

func listRanges(q *request) error {
	p, err := q.policy("policy_id")
	if err != nil {
		return err
	}
	res, err := page(q, "ip_ranges", slices.Clone(p.UnusableRanges), func(r wire.UnusableRange) uint64 { return r.ID }, rangeView(p))
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

func findRange(p *wire.IPPolicy, id uint64) int {
	return slices.IndexFunc(p.UnusableRanges, func(r wire.UnusableRange) bool { return id != 0 && r.ID == id })
}

func readRange(q *request) error {
	p, err := q.policy("policy_id")
	if err != nil {
		return err
	}
	i := findRange(p, q.entryID())
	if i < 0 {
		return errRangeNotFound
	}
	reply(q, http.StatusOK, 0, map[string]any{"ip_range": rangeView(p)(p.UnusableRanges[i])})
	return nil
}

func createRange(q *request) error {
	if _, err := q.policy("policy_id"); err != nil {
		return err
	}
	b, err := decode(q, "ip_range")
	if err != nil {
		return err
	}
	var r wire.UnusableRange
	if err := rangeFields(b, &r, true); err != nil {
		return err
	}
	v, index, err := policyEdit(q, func(p *wire.IPPolicy) error {
		p.UnusableRanges = append(p.UnusableRanges, r)
		return nil
	})
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"ip_range": rangeView(v)(v.UnusableRanges[len(v.UnusableRanges)-1])})
	return nil
}

func updateRange(q *request) error {
	b, err := decode(q, "ip_range")
	if err != nil {
		return err
	}
	id := q.entryID()
	v, index, err := policyEdit(q, func(p *wire.IPPolicy) error {
		i := findRange(p, id)
		if i < 0 {
			return errRangeNotFound
		}
		return rangeFields(b, &p.UnusableRanges[i], false)
	})
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, index, map[string]any{"ip_range": rangeView(v)(v.UnusableRanges[findRange(v, id)])})
	return nil
}

func deleteRange(q *request) error {
	id := q.entryID()
	_, index, err := policyEdit(q, func(p *wire.IPPolicy) error {
		i := findRange(p, id)
		if i < 0 {
			return errRangeNotFound
		}
		p.UnusableRanges = slices.Delete(p.UnusableRanges, i, i+1)
		return nil
	})
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}

// --- unusable ip octets ---

var errOctetNotFound = fault(http.StatusNotFound, "IpOctet Not Found")

// octetField reads octet (required on create), an integer 0-255;
// policy_id in the body is ignored.
func octetField(b body, o *wire.UnusableOctet, create bool) error {
	v, present, err := b.integer("octet")
	if err != nil {
		return err
	}
	if create && !present {
		return invalid("octet", "octet should be of type integer")
	}
	if !present {
		return nil
	}
	if v < 0 || v > 255 {
		return invalid("octet", "octet should be between 0 and 255")
	}
	o.Octet = v
	return nil
}

func listOctets(q *request) error {
	p, err := q.policy("policy_id")
	if err != nil {
		return err
	}
	res, err := page(q, "ip_octets", slices.Clone(p.UnusableOctets), func(o wire.UnusableOctet) uint64 { return o.ID }, octetView(p))
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

func findOctet(p *wire.IPPolicy, id uint64) int {
	return slices.IndexFunc(p.UnusableOctets, func(o wire.UnusableOctet) bool { return id != 0 && o.ID == id })
}

func readOctet(q *request) error {
	p, err := q.policy("policy_id")
	if err != nil {
		return err
	}
	i := findOctet(p, q.entryID())
	if i < 0 {
		return errOctetNotFound
	}
	reply(q, http.StatusOK, 0, map[string]any{"ip_octet": octetView(p)(p.UnusableOctets[i])})
	return nil
}

func createOctet(q *request) error {
	if _, err := q.policy("policy_id"); err != nil {
		return err
	}
	b, err := decode(q, "ip_octet")
	if err != nil {
		return err
	}
	var o wire.UnusableOctet
	if err := octetField(b, &o, true); err != nil {
		return err
	}
	v, index, err := policyEdit(q, func(p *wire.IPPolicy) error {
		p.UnusableOctets = append(p.UnusableOctets, o)
		return nil
	})
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"ip_octet": octetView(v)(v.UnusableOctets[len(v.UnusableOctets)-1])})
	return nil
}

func updateOctet(q *request) error {
	b, err := decode(q, "ip_octet")
	if err != nil {
		return err
	}
	id := q.entryID()
	v, index, err := policyEdit(q, func(p *wire.IPPolicy) error {
		i := findOctet(p, id)
		if i < 0 {
			return errOctetNotFound
		}
		return octetField(b, &p.UnusableOctets[i], false)
	})
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, index, map[string]any{"ip_octet": octetView(v)(v.UnusableOctets[findOctet(v, id)])})
	return nil
}

func deleteOctet(q *request) error {
	id := q.entryID()
	_, index, err := policyEdit(q, func(p *wire.IPPolicy) error {
		i := findOctet(p, id)
		if i < 0 {
			return errOctetNotFound
		}
		p.UnusableOctets = slices.Delete(p.UnusableOctets, i, i+1)
		return nil
	})
	if err != nil {
		return err
	}
	empty(q.W, index)
	return nil
}
