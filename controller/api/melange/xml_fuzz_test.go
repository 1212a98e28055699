package melange

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// FuzzDecodeXML: any XML request body either decodes into fields that are
// each valid JSON, or is refused with a Melange 400; never a panic or
// another status.
func FuzzDecodeXML(f *testing.F) {
	for _, seed := range []string{
		`<ip_block cidr="10.0.0.0/24" type="private"/>`,
		`<ip_block><cidr>10.0.0.0/24</cidr><network_id>n1</network_id></ip_block>`,
		`<instance><interfaces><interface><network id="n1" tenant_id="t1"/><mac_address>aa:bb:cc:dd:ee:ff</mac_address></interface></interfaces></instance>`,
		`<network><addresses><address>10.0.0.2</address><address>10.0.0.3</address></addresses></network>`,
		`<ip_addresses><ip_address ip_block_id="b1" ip_address="10.0.0.2"/></ip_addresses>`,
		`<?xml version="1.0"?><ip_block xmlns="http://openstack.org/melange/api/v0.1" cidr="::/64"/>`,
		`<a><b><c><d><e/></d></c></b></a>`,
		`<ip_block>`, `</x>`, `<a/><b/>`, `&amp;`, ``,
	} {
		f.Add([]byte(seed), "ip_block")
	}
	f.Fuzz(func(t *testing.T, raw []byte, key string) {
		check := func(what string, b map[string]json.RawMessage, err error) {
			if err != nil {
				var fe *faultError
				if !errors.As(err, &fe) || fe.status != http.StatusBadRequest {
					t.Fatalf("%s(%q): error %v is not a Melange 400", what, raw, err)
				}
				return
			}
			for k, v := range b {
				if !json.Valid(v) {
					t.Fatalf("%s(%q): field %q is not JSON: %s", what, raw, k, v)
				}
			}
		}
		b, err := decodeXML(raw, key)
		check("decodeXML", b, err)
		r, err := decodeXMLRaw(raw)
		check("decodeXMLRaw", r, err)
	})
}
