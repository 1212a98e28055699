package iaas

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/ipam"
	wire "github.com/regentcloud/regent/pkg/api"
)

// RangeDetails are the details of a valid address range; BroadcastAddress
// is null for ranges with fewer than two host bits.
type RangeDetails struct {
	IPv4             bool    `json:"ipv4"`
	IPv6             bool    `json:"ipv6"`
	NetworkAddress   string  `json:"network_address"`
	NetmaskAddress   string  `json:"netmask_address"`
	HostmaskAddress  string  `json:"hostmask_address"`
	BroadcastAddress *string `json:"broadcast_address"`
	CIDR             string  `json:"cidr"`
	Reference        string  `json:"reference"`
	PresentUse       string  `json:"present_use"`
}

// AddressDetails are the details of a valid address; ParentNetwork is null
// when no range of the request contains it.
type AddressDetails struct {
	IPv4          bool    `json:"ipv4"`
	IPv6          bool    `json:"ipv6"`
	IsPrivate     bool    `json:"is_private"`
	IsReserved    bool    `json:"is_reserved"`
	IsLoopback    bool    `json:"is_loopback"`
	ParentNetwork *string `json:"parent_network"`
}

// ValidatorItem is the result for one range or address: details when
// valid, error when not.
type ValidatorItem struct {
	Valid   bool                 `json:"valid"`
	Error   *ipam.ValidatorError `json:"error"`
	Details any                  `json:"details"`
}

// ordered is a JSON object that keeps its keys in input order.
type ordered struct {
	keys []string
	vals []ValidatorItem
}

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// ValidatorResponse is the body of ip_validator: not wrapped in content,
// keyed by the input strings in first-occurrence order.
type ValidatorResponse struct {
	AddressRanges ordered `json:"address_ranges"`
	IPAddresses   ordered `json:"ip_addresses"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// registerIPValidator serves GET /iaas/ip_validator/?address_ranges=…&ip_addresses=…
// (comma-separated; the services document's addressRanges and ipAddresses
// are accepted too, but not both spellings of one parameter). Neither parameter, or no item at all, is 400
// iaas_ip_validator_001; items that are all invalid are 400 with the
// per-item errors keyed address_ranges.<input> and ip_addresses.<input>;
// otherwise 200 with every item.
func registerIPValidator(a *api.API) {
	handle(a, "GET /iaas/ip_validator/{$}", "ip_validator", auth.List, func(q *api.Request) error {
		ranges, err := validatorParam(q, "address_ranges", "addressRanges")
		if err != nil {
			return err
		}
		addrs, err := validatorParam(q, "ip_addresses", "ipAddresses")
		if err != nil {
			return err
		}
		res, err := ipam.ValidateIPs(ranges, addrs)
		if err != nil || len(res.AddressRanges)+len(res.IPAddresses) == 0 {
			return wire.Errorf(http.StatusBadRequest, ipam.CodeValidatorNoParams, "%s", ipam.ValidatorMessage(ipam.CodeValidatorNoParams))
		}
		var out ValidatorResponse
		fe := wire.FieldErrors{}
		valid := 0
		for _, r := range res.AddressRanges {
			item := ValidatorItem{Valid: r.Valid, Error: r.Error}
			if r.Valid {
				valid++
				d := r.Details
				item.Details = &RangeDetails{IPv4: d.IPv4, IPv6: d.IPv6, NetworkAddress: d.NetworkAddress,
					NetmaskAddress: d.NetmaskAddress, HostmaskAddress: d.HostmaskAddress,
					BroadcastAddress: optional(d.BroadcastAddress), CIDR: d.CIDR, Reference: d.Reference, PresentUse: d.PresentUse}
			} else if r.Error != nil {
				fe.Add("address_ranges."+r.Input, r.Error.Code, "%s", r.Error.Detail)
			}
			out.AddressRanges.keys = append(out.AddressRanges.keys, r.Input)
			out.AddressRanges.vals = append(out.AddressRanges.vals, item)
		}
		for _, r := range res.IPAddresses {
			item := ValidatorItem{Valid: r.Valid, Error: r.Error}
			if r.Valid {
				valid++
				d := r.Details
				item.Details = &AddressDetails{IPv4: d.IPv4, IPv6: d.IPv6, IsPrivate: d.IsPrivate, IsReserved: d.IsReserved,
					IsLoopback: d.IsLoopback, ParentNetwork: optional(d.ParentNetwork)}
			} else if r.Error != nil {
				fe.Add("ip_addresses."+r.Input, r.Error.Code, "%s", r.Error.Detail)
			}
			out.IPAddresses.keys = append(out.IPAddresses.keys, r.Input)
			out.IPAddresses.vals = append(out.IPAddresses.vals, item)
		}
		if valid == 0 {
			return fe.Err()
		}
		api.WriteJSON(q.W, http.StatusOK, &out)
		return nil
	})
}

// validatorParam is the last value of the ip_validator parameter snake, also
// spelt camel (the CloudCIX services document's spelling); nil when neither
// is sent. Both spellings at once are ambiguous: 400.
func validatorParam(q *api.Request, snake, camel string) (*string, error) {
	v, err := q.ParseQuery()
	if err != nil {
		return nil, err
	}
	s, hasSnake := v[snake]
	c, hasCamel := v[camel]
	switch {
	case hasSnake && hasCamel:
		return nil, wire.Errorf(http.StatusBadRequest, wire.CodeBadQuery,
			"%s and %s are two spellings of one parameter; send only one of them.", snake, camel)
	case hasCamel:
		s = c
	case !hasSnake:
		return nil, nil
	}
	last := s[len(s)-1]
	if n := strings.Count(last, ",") + 1; n > maxValidatorItems {
		return nil, wire.Errorf(http.StatusBadRequest, wire.CodeBadQuery,
			"%s lists %d items; at most %d are validated per request.", snake, n, maxValidatorItems)
	}
	return &last, nil
}

// maxValidatorItems bounds each parameter's list: every address is looked
// up in every range, so one request must not name tens of thousands of
// each (a URL of 1 MB could).
const maxValidatorItems = 1000
