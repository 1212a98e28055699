package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/regentcloud/regent/controller/internal/apitest"
)

// melange-api-spec "Extensions": there are none; the list is empty in
// both formats and any alias is 404 in Melange's error shape.
func TestMelange_Extensions(t *testing.T) {
	e := newMelangeEnv(t)
	for _, role := range []apitest.Role{apitest.Global, apitest.MemberUser, apitest.Robot} {
		r := e.c.Do("GET", "/v0.1/extensions", nil, e.tok(role)).Expect(200)
		isJSON(t, r)
		if l, ok := r.Map()["extensions"].([]any); !ok || len(l) != 0 || len(r.Map()) != 1 {
			t.Errorf("%s: %s, want {\"extensions\": []}", role, r)
		}
	}
	e.c.Do("GET", "/v0.1/extensions.json", nil, e.root).Expect(200)
	for _, r := range []*apitest.Response{
		e.c.Do("GET", "/v0.1/extensions.xml", nil, e.root).Expect(200),
		e.c.DoHeader("GET", "/v0.1/extensions", nil, hdr(e.root, "Accept", "application/xml")).Expect(200),
	} {
		if n := xmlRoot(t, r, "extensions"); len(n.Nodes) != 0 || len(n.Attrs) != 0 {
			t.Errorf("%s: want an empty <extensions/>", r)
		}
	}
	wantFault(t, e.c.Do("GET", "/v0.1/extensions/RAX-PIE", nil, e.root), 404, "NotFound", "Extension RAX-PIE not found")
	wantFault(t, e.c.Do("GET", "/v0.1/extensions/RAX-PIE.json", nil, e.root), 404, "NotFound", "Extension RAX-PIE not found")
	wantXMLFault(t, e.c.Do("GET", "/v0.1/extensions/RAX-PIE.xml", nil, e.root), 404, "NotFound", "Extension RAX-PIE not found")
	e.c.Do("GET", "/v0.1/extensions", nil, "").Expect(401)
}

// melange-api-spec "Get all interface details of an instance" and "Delete
// all interfaces of the instance": a device without interfaces is 404
// (JSON and XML), never an empty 200.
func TestMelange_InstanceWithoutInterfacesIs404(t *testing.T) {
	e := newMelangeEnv(t)
	wantFault(t, e.c.Do("GET", melangeInstance("never-seen"), nil, e.root), 404, "NotFound", "Interface Not Found")
	wantXMLFault(t, e.c.Do("GET", melangeInstance("never-seen")+".xml", nil, e.root), 404, "NotFound", "Interface Not Found")
	// A PUT with no interfaces leaves none: still 404.
	e.c.Do("PUT", melangeInstance("empty-vm"), map[string]any{"instance": map[string]any{"tenant_id": fmt.Sprint(e.r.MemberA), "interfaces": []any{}}}, e.root).Expect(200)
	wantFault(t, e.c.Do("GET", melangeInstance("empty-vm"), nil, e.root), 404, "NotFound", "Interface Not Found")
	// DELETE too, and a second DELETE of a device that had some.
	wantFault(t, e.c.Do("DELETE", melangeInstance("never-seen"), nil, e.root), 404, "NotFound", "Interface Not Found")
	wantXMLFault(t, e.c.Do("DELETE", melangeInstance("empty-vm")+".xml", nil, e.root), 404, "NotFound", "Interface Not Found")
	e.c.Do("PUT", melangeInstance("one-vm"), map[string]any{"instance": map[string]any{"tenant_id": fmt.Sprint(e.r.MemberA),
		"interfaces": []any{map[string]any{"id": "one-vif"}}}}, e.root).Expect(200)
	e.c.Do("DELETE", melangeInstance("one-vm"), nil, e.root).Expect(200)
	wantFault(t, e.c.Do("DELETE", melangeInstance("one-vm"), nil, e.root), 404, "NotFound", "Interface Not Found")
}

// XML request bodies with nested objects and lists, read by the same
// rules the writer uses: an interface's <network>, an instance's
// <interfaces> list and NAT <ip_addresses>.
func TestMelange_XMLNestedBodies(t *testing.T) {
	e := newMelangeEnv(t)
	a := fmt.Sprint(e.r.MemberA)
	xmlCT := func() map[string][]string { return hdr(e.root, "Content-Type", "application/xml") }
	for i := range 2 {
		e.block(t, e.r.MemberA, map[string]any{"cidr": fmt.Sprintf("10.90.%d.0/24", i), "network_id": fmt.Sprintf("x%d", i)})
	}

	t.Run("interface with a network and addresses", func(t *testing.T) {
		body := fmt.Sprintf(`<?xml version="1.0"?><interface id="vif-x1" tenant_id="%s" device_id="dev-x">`+
			`<network id="x0" tenant_id="%s"><addresses><address>10.90.0.9</address></addresses></network></interface>`, a, a)
		got := obj(t, e.c.DoHeader("POST", melangeIfaces, body, xmlCT()).Expect(201), "interface")
		addrs := ifaceAddrs(got)
		if got["id"] != "vif-x1" || got["device_id"] != "dev-x" || len(addrs) != 1 || addrs[0]["address"] != "10.90.0.9" {
			t.Errorf("created %v", got)
		}
		// The network as a child element with child elements of its own.
		body = fmt.Sprintf(`<interface><id>vif-x2</id><tenant_id>%s</tenant_id><network><id>x1</id><tenant_id>%s</tenant_id></network></interface>`, a, a)
		got = obj(t, e.c.DoHeader("POST", melangeIfaces, body, xmlCT()).Expect(201), "interface")
		if addrs := ifaceAddrs(got); len(addrs) != 1 || !strings.HasPrefix(addrs[0]["address"].(string), "10.90.1.") {
			t.Errorf("created %v", got)
		}
	})
	t.Run("instance interfaces list", func(t *testing.T) {
		body := fmt.Sprintf(`<instance tenant_id="%s"><interfaces>`+
			`<interface><network id="x0" tenant_id="%s"/></interface>`+
			`<interface mac_address="aa:bb:cc:dd:ee:01"><network id="x1" tenant_id="%s"/></interface>`+
			`</interfaces></instance>`, a, a, a)
		r := e.c.DoHeader("PUT", melangeInstance("vm-x")+".xml", body, hdr(e.root, "Content-Type", "application/xml")).Expect(200)
		n := xmlRoot(t, r, "instance")
		ifs := n.children("interfaces")
		if len(ifs) != 1 || len(ifs[0].children("interface")) != 2 {
			t.Fatalf("instance %s", r.Body)
		}
		got, _ := obj(t, e.c.Do("GET", melangeInstance("vm-x"), nil, e.root).Expect(200), "instance")["interfaces"].([]any)
		if len(got) != 2 || got[1].(map[string]any)["mac_address"] != "aa:bb:cc:dd:ee:01" {
			t.Errorf("GET %v", got)
		}
		// One interface: still a list.
		body = fmt.Sprintf(`<instance tenant_id="%s"><interfaces><interface><network id="x0" tenant_id="%s"/></interface></interfaces></instance>`, a, a)
		r = e.c.DoHeader("PUT", melangeInstance("vm-x"), body, xmlCT()).Expect(200)
		if l, _ := obj(t, r, "instance")["interfaces"].([]any); len(l) != 1 {
			t.Errorf("one interface: %s", r)
		}
	})
	t.Run("NAT ip_addresses", func(t *testing.T) {
		b := e.block(t, e.r.MemberA, map[string]any{"cidr": "10.91.0.0/24"})
		base := melangeBlock(e.r.MemberA, melangeID(b)) + "/ip_addresses"
		for _, ip := range []string{"10.91.0.5", "10.91.0.6", "10.91.0.7"} {
			e.c.Do("POST", base, map[string]any{"ip_address": map[string]any{"address": ip}}, e.root).Expect(201)
		}
		body := fmt.Sprintf(`<ip_addresses><ip_address ip_block_id="%d" ip_address="10.91.0.6"/><ip_address><ip_block_id>%d</ip_block_id><ip_address>10.91.0.7</ip_address></ip_address></ip_addresses>`,
			melangeID(b), melangeID(b))
		e.c.DoHeader("POST", base+"/10.91.0.5/inside_globals", body, xmlCT()).Expect(200)
		got := strs(items(t, e.c.Do("GET", base+"/10.91.0.5/inside_globals", nil, e.root).Expect(200), "ip_addresses"), "address")
		if strings.Join(got, ",") != "10.91.0.6,10.91.0.7" {
			t.Errorf("inside globals %v", got)
		}
		// An empty list is the same in XML as in JSON: 200, nothing linked.
		for _, empty := range []string{`<ip_addresses/>`, "<ip_addresses>\n</ip_addresses>"} {
			e.c.DoHeader("POST", base+"/10.91.0.6/inside_globals.xml", empty, xmlCT()).Expect(200)
		}
		e.c.Do("POST", base+"/10.91.0.6/inside_globals", map[string]any{"ip_addresses": []any{}}, e.root).Expect(200)
		if got := items(t, e.c.Do("GET", base+"/10.91.0.6/inside_globals", nil, e.root).Expect(200), "ip_addresses"); len(got) != 0 {
			t.Errorf("an empty list linked %v", got)
		}
		wantXMLFault(t, e.c.DoHeader("POST", base+"/10.91.0.5/inside_globals.xml", `<ip_address/>`, xmlCT()), 400, "BadRequest", "Required params are missing: ip_addresses")
		wantXMLFault(t, e.c.DoHeader("POST", base+"/10.91.0.5/inside_globals.xml", `<ip_addresses><ip_address ip_block_id="999999" ip_address="10.91.0.6"/></ip_addresses>`, xmlCT()), 404, "NotFound", "IpBlock Not Found")
	})
	t.Run("bad XML is 400 and changes nothing", func(t *testing.T) {
		before := e.c.Do("GET", melangeAllocAll, nil, e.root).Expect(200).Body
		deep := strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)
		for _, body := range []string{
			`<instance tenant_id="t"><interfaces><interface>`,
			`<interface id="v" tenant_id="t"/><interface id="w" tenant_id="t"/>`,
			`<interface id="v" tenant_id="t">` + deep + `</interface>`,
			`<instance tenant_id="t"><interfaces>text</interfaces></instance>`,
		} {
			path := melangeIfaces
			if strings.HasPrefix(body, "<instance") {
				path = melangeInstance("vm-bad")
			}
			method := "POST"
			if path != melangeIfaces {
				method = "PUT"
			}
			r := e.c.DoHeader(method, path, body, xmlCT())
			if r.Status != 400 {
				t.Errorf("%q: %s, want 400", body, r)
			}
		}
		if after := e.c.Do("GET", melangeAllocAll, nil, e.root).Expect(200).Body; string(after) != string(before) {
			t.Errorf("a refused XML body changed the allocations")
		}
	})
}
