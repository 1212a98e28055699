package melange

import (
	"net/http"
	"strconv"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// ServiceMACRange is the permission-table service of the MAC address
// ranges: provider routes, not tenant-scoped (melange-facts §9, §15), so
// global callers only.
const ServiceMACRange = "melange_mac_address_range"

// MACRangeView is a Melange mac_address_range as the API shows it.
type MACRangeView struct {
	ID        string `json:"id"`
	CIDR      string `json:"cidr"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func macRangeView(m *wire.MACRange) any {
	return &MACRangeView{ID: idString(m.ID), CIDR: m.CIDR, CreatedAt: m.Created, UpdatedAt: m.Updated}
}

func macRangeID(m *wire.MACRange) uint64 { return m.ID }

func registerMACRanges(a *api.API) {
	const ranges = "/mac_address_ranges"
	handle(a, "GET", ranges, ServiceMACRange, auth.List, listMACRanges)
	handle(a, "POST", ranges, ServiceMACRange, auth.Create, createMACRange)
	handle(a, "GET", ranges+"/{id}", ServiceMACRange, auth.Read, readMACRange)
	handle(a, "DELETE", ranges+"/{id}", ServiceMACRange, auth.Delete, deleteMACRange)
}

// macRange finds the {id} range: 404 MacAddressRange Not Found otherwise.
func (q *request) macRange() (*wire.MACRange, error) {
	id, err := strconv.ParseUint(q.PathValue("id"), 10, 64)
	if err == nil {
		if m, ok := q.Txn.MACRange(id); ok {
			return m, nil
		}
	}
	return nil, fault(http.StatusNotFound, "MacAddressRange Not Found")
}

func listMACRanges(q *request) error {
	res, err := page(q, "mac_address_ranges", q.Txn.MACRangeList(), macRangeID, macRangeView)
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, res)
	return nil
}

func readMACRange(q *request) error {
	m, err := q.macRange()
	if err != nil {
		return err
	}
	reply(q, http.StatusOK, 0, map[string]any{"mac_address_range": macRangeView(m)})
	return nil
}

// createMACRange: body {"mac_address_range": {"cidr": "MAC/length"}}, the
// MAC in any form netx.ParseMACRange reads (colons, dashes, dots; octets
// may drop leading zeros), length 0..48. A missing or malformed cidr is
// Melange's 400 "cidr is invalid", checked before anything is replicated.
func createMACRange(q *request) error {
	b, err := decode(q, "mac_address_range")
	if err != nil {
		return err
	}
	cidr, _, err := b.str("cidr")
	if err != nil {
		return err
	}
	if cidr == "" {
		return invalid("cidr", "cidr should be present")
	}
	if _, err := netx.ParseMACRange(cidr); err != nil {
		return invalid("cidr", "cidr is invalid")
	}
	v, index, err := apply(q, fsm.MACRangeCreateType, &wire.MACRange{CIDR: cidr}, 0)
	if err != nil {
		return err
	}
	reply(q, http.StatusCreated, index, map[string]any{"mac_address_range": macRangeView(v.(*wire.MACRange))})
	return nil
}

// deleteMACRange: 200 with an empty body.
func deleteMACRange(q *request) error {
	return deleteObject(q, fsm.MACRangeDeleteType, func() (wire.Object, error) { return q.macRange() })
}
