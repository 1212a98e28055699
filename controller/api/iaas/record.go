package iaas

import (
	"errors"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/dns/rdata"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// RecordInput is the body of record create and update. The TTL may be
// sent as ttl or, as older CloudCIX clients do, time_to_live (not both).
type RecordInput struct {
	DomainID        *uint64 `json:"domain_id"`
	Name            *string `json:"name"`
	Type            *string `json:"type"`
	Content         *string `json:"content"`
	TTL             *int64  `json:"ttl"`
	TimeToLive      *int64  `json:"time_to_live"`
	Priority        *int64  `json:"priority"`
	Failover        *bool   `json:"failover"`
	FailoverContent *string `json:"failover_content"`
	Georegion       *int    `json:"georegion"`
}

// checkTTL validates a TTL (codes n: below the minimum, n-1 out of range).
func checkTTL(fe wire.FieldErrors, q *api.Request, v *int64, n int) uint32 {
	if v == nil {
		return wire.RecordDefaultTTL
	}
	if *v < wire.RecordMinTTL {
		fe.Add("ttl", q.Code(n), "ttl must be at least %d seconds.", wire.RecordMinTTL)
		return 0
	}
	if *v > wire.RecordMaxTTL {
		fe.Add("ttl", q.Code(n-1), "ttl must be at most %d seconds.", wire.RecordMaxTTL)
		return 0
	}
	return uint32(*v)
}

func isRecordType(t string) bool {
	for _, x := range wire.RecordTypes {
		if x == t {
			return true
		}
	}
	return false
}

// Codes (create), in CloudCIX's order: 101 domain_id missing, 103 no such
// domain (or not the caller's), 120 the domain is a reverse zone (its
// records are PTRs, made through ptr_record), 105 type missing, 106 type unknown, 107
// PTR (use ptr_record), 108 name missing or blank, 109 name invalid or outside the
// domain (or an SRV record not at a _service._proto name), 110 content missing, 111 content invalid for the type, 112 ttl
// too large, 113 ttl below 180, 115 priority out of range, 117
// failover_content too long; 118 a CNAME at the apex (on type); state
// adds 118 CNAME conflict, 119 duplicate, 122 a name inside a more
// specific domain (Rules4), 123 an RRset past one DNS message and 111 a
// CNAME loop (Rules8). Update uses the same numbers, plus 106 when type would change.
func registerRecord(a *api.API) {
	api.Register(a, api.Service[*wire.Record]{
		App: App, Name: "record", Tables: []string{state.Records},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"name": query.String, "content": query.String,
			"type": query.String, "ttl": query.Number, "priority": query.Number, "domain_id": query.Number,
			"member_id": query.Number, "failover": query.Bool, "failover_content": query.String,
			"modified_by": query.Number}),
			Ordering: []string{"name", "content", "type", "ttl", "priority", "domain_id", "failover", "id", "created", "updated"},
			Aliases:  cloudcixRecordFields},
		All: func(r *state.ReadTxn) []*wire.Record { return recordsOfKind(r.RecordList(), false) },
		// A member's records from the member index (Visible: dnsOwns).
		AllFor: func(q *api.Request) []*wire.Record {
			if q.P.Global() {
				return recordsOfKind(q.Txn.RecordList(), false)
			}
			return recordsOfKind(q.Txn.RecordListByMember(q.P.MemberID), false)
		},
		Get: func(r *state.ReadTxn, id uint64) (*wire.Record, bool) {
			rec, ok := r.Record(id)
			return rec, ok && rec.Type != "PTR"
		},
		Visible: func(q *api.Request, r *wire.Record) bool { return dnsOwns(q, r.MemberID) },
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in RecordInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			ttl, err := ttlOf(in.TTL, in.TimeToLive)
			if err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			var dom *wire.Domain
			if required(fe, q, "domain_id", in.DomainID != nil, 101) {
				switch d, ok := q.Txn.Domain(*in.DomainID); {
				case !ok || !seesDomain(q, d):
					fe.Add("domain_id", q.Code(103), "Domain with id = '%d' doesn't exist.", *in.DomainID)
				case isReverse(d.Name):
					fe.Add("domain_id", q.Code(120), "%s is a reverse zone: its PTR records are managed with /iaas/ptr_record/.", d.Name)
				default:
					dom = d
				}
			}
			typ := ""
			if required(fe, q, "type", in.Type != nil, 105) {
				typ = strings.ToUpper(strings.TrimSpace(*in.Type))
				switch {
				case typ == "PTR":
					fe.Add("type", q.Code(107), "PTR records are managed through ptr_record.")
					typ = ""
				case !isRecordType(typ):
					fe.Add("type", q.Code(106), "type must be one of %s.", strings.Join(wire.RecordTypes, ", "))
					typ = ""
				}
			}
			rec := &wire.Record{Type: typ}
			if dom != nil {
				rec.DomainID, rec.MemberID = dom.ID, dom.MemberID
			}
			recordFields(fe, q, dom, rec, &in, ttl, false)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.RecordCreateType, rec)
		},
		Update: func(q *api.Request, cur *wire.Record, partial bool) (*fsm.Command, error) {
			var in RecordInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			ttl, err := ttlOf(in.TTL, in.TimeToLive)
			if err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.Type != nil && !strings.EqualFold(strings.TrimSpace(*in.Type), cur.Type) {
				fe.Add("type", q.Code(106), "The type of a record cannot change; delete it and create a %s record.", strings.ToUpper(*in.Type))
			}
			if in.DomainID != nil && *in.DomainID != cur.DomainID {
				fe.Add("domain_id", q.Code(103), "A record cannot move to another domain.")
			}
			dom, _ := q.Txn.Domain(cur.DomainID)
			rec := *cur
			recordFields(fe, q, dom, &rec, &in, ttl, partial)
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

// recordFields validates name, content, ttl, priority and the failover
// fields of in into rec (ttl is in's, from ttlOf). On create and PUT
// (partial false) a missing field takes its default (name and content are
// required); on PATCH it keeps its value.
func recordFields(fe wire.FieldErrors, q *api.Request, dom *wire.Domain, rec *wire.Record, in *RecordInput, ttl *int64, partial bool) {
	if in.Name != nil {
		if strings.TrimSpace(*in.Name) == "" {
			// CloudCIX strips the name and refuses a blank one; the
			// apex is "@", never an empty name.
			fe.Add("name", q.Code(108), "This field may not be blank: give the full name, or @ for the apex.")
		} else if dom != nil {
			if n, err := rdata.Owner(dom.Name, *in.Name); err != nil {
				fe.Add("name", q.Code(109), "%s.", capitalise(err.Error()))
			} else {
				rec.Name = n
			}
		}
	} else if !partial {
		fe.Add("name", q.Code(108), "This field is required.")
	}
	if in.Content != nil {
		rec.Content = strings.TrimSpace(*in.Content)
		if rec.Content == "" {
			fe.Add("content", q.Code(110), "This field may not be blank.")
		}
	} else if !partial {
		fe.Add("content", q.Code(110), "This field is required.")
	}
	if ttl != nil || !partial {
		rec.TTL = checkTTL(fe, q, ttl, 113)
	}
	if in.Priority != nil {
		if *in.Priority < 0 || *in.Priority > 65535 {
			fe.Add("priority", q.Code(115), "priority must be between 0 and 65535.")
		} else {
			rec.Priority = uint32(*in.Priority)
		}
	} else if !partial {
		rec.Priority = wire.RecordDefaultPriority
	}
	if in.Failover != nil || !partial {
		rec.Failover = in.Failover != nil && *in.Failover
	}
	if in.FailoverContent != nil || !partial {
		rec.FailoverContent = ""
		text(fe, q, "failover_content", in.FailoverContent, 255, 117)
		api.Set(&rec.FailoverContent, in.FailoverContent)
	}
	rec.Georegion = 0 // only Global (0) exists
	if dom == nil || rec.Type == "" || rec.Name == "" || rec.Content == "" {
		return
	}
	if _, bad := fe["name"]; bad {
		return
	}
	if _, bad := fe["content"]; bad {
		return
	}
	if rec.Type == "CNAME" && rec.Name == dom.Name {
		// The apex holds the SOA and NS records: a CNAME there would share
		// its name with them, as 118 refuses for any other record.
		fe.Add("type", q.Code(118), "A CNAME record cannot be at the apex of %s: the apex holds its SOA and NS records, and a CNAME cannot share its name with any other record.", dom.Name)
		return
	}
	if err := rdata.Check(dom.Name, rec.Name, rec.Type, rec.Priority, rec.Content); err != nil {
		var ne *rdata.NameError
		if errors.As(err, &ne) {
			fe.Add("name", q.Code(109), "%s.", capitalise(err.Error()))
			return
		}
		fe.Add("content", q.Code(111), "%s.", capitalise(err.Error()))
	}
}

// cloudcixRecordFields are CloudCIX's names of record fields (dns-facts
// §1.2) that Regent names otherwise, for the record and ptr_record lists.
var cloudcixRecordFields = map[string]string{"domain": "domain_id", "time_to_live": "ttl"}

// recordsOfKind keeps the PTR records of recs (ptr) or the others: the
// record and ptr_record services share the records table.
func recordsOfKind(recs []*wire.Record, ptr bool) []*wire.Record {
	var out []*wire.Record
	for _, rec := range recs {
		if (rec.Type == "PTR") == ptr {
			out = append(out, rec)
		}
	}
	return out
}
