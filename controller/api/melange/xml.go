package melange

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/controller/api"
)

// Content negotiation (melange-facts §14) and the XML form of the bodies.
//
// The XML is derived from the JSON of the same views, by one rule set:
//
//   - a body {"<key>": {...}} is the element <key> with the object's
//     scalar fields as attributes, in the order of the view (null fields
//     are left out), and its object fields as child elements;
//   - a list {"<key>s": [...]} is <key>s holding one <key> element per
//     item (ip_blocks/ip_block, ip_addresses/ip_address, policies/policy);
//   - links ("links" and the "<key>_links" of a page) are Atom
//     <link xmlns="http://www.w3.org/2005/Atom" rel="next" href="..."/>
//     elements inside the element they belong to (the list for a page);
//   - an error {"NotFound": {"code", "message", "detail"}} is
//     <NotFound code="404" message="..." detail="..."/>.
//
// Request bodies are read back by the same rules: the root element must be
// the body key; its attributes and the text of its simple child elements
// are the fields, all as strings (Melange's XML had no types either); a
// child element with attributes or children is a nested object, one whose
// children are all its items (interfaces/interface) a list, and an empty
// one null (decodeXML). NAT bodies, whose root is the list itself
// (<ip_addresses>), are read by decodeXMLRaw; an empty root is [] there.

// atomNS is the namespace of link elements.
const atomNS = "http://www.w3.org/2005/Atom"

// ContentTypeXML is the Content-Type of XML responses.
const ContentTypeXML = "application/xml"

// trimFormat strips one .json or .xml suffix from a path value.
func trimFormat(v string) string {
	for _, suf := range []string{".json", ".xml"} {
		if strings.HasSuffix(v, suf) {
			return strings.TrimSuffix(v, suf)
		}
	}
	return v
}

// wantXML reports whether r asks for an XML response: a .xml path suffix,
// else (no .json suffix) an Accept header preferring application/xml (or
// text/xml) over application/json. JSON wins ties and */*.
func wantXML(r *http.Request) bool {
	switch {
	case strings.HasSuffix(r.URL.Path, ".xml"):
		return true
	case strings.HasSuffix(r.URL.Path, ".json"):
		return false
	}
	best, bestQ := "json", -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if raw, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(raw, 64); err == nil {
				q = f
			}
		}
		var kind string
		switch mt {
		case "application/json":
			kind = "json"
		case "application/xml", "text/xml":
			kind = "xml"
		default:
			continue
		}
		if q > bestQ || (q == bestQ && kind == "json") {
			best, bestQ = kind, q
		}
	}
	return best == "xml" && bestQ > 0
}

// xmlBody reports whether the request body of r is XML: its Content-Type
// says so, or it has none and the path ends in .xml.
func xmlBody(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return strings.HasSuffix(r.URL.Path, ".xml")
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/xml" || mt == "text/xml")
}

// render writes v with status, as XML when asXML, else as JSON.
func render(w http.ResponseWriter, asXML bool, status int, v any) {
	if !asXML {
		api.WriteJSON(w, status, v)
		return
	}
	body, err := marshalXML(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(xml.Header + `<InternalServerError code="500" message="The server has either erred or is incapable of performing the requested operation." detail="The response could not be encoded."/>` + "\n")
	}
	w.Header().Set("Content-Type", ContentTypeXML)
	w.WriteHeader(status)
	w.Write(body)
}

// --- an ordered view of the JSON of v ---

type member struct {
	key string
	val any // object, []any, or a scalar (string, json.Number, bool, nil)
}

type object []member

// ordered decodes the JSON of v keeping the order of object members
// (struct field order for views; maps are sorted by encoding/json).
func ordered(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return readValue(dec)
}

func readValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var o object
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := readValue(dec)
				if err != nil {
					return nil, err
				}
				o = append(o, member{key: k.(string), val: v})
			}
			_, err := dec.Token()
			return o, err
		case '[':
			l := []any{}
			for dec.More() {
				v, err := readValue(dec)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token()
			return l, err
		}
		return nil, errors.New("unexpected delimiter")
	}
	return tok, nil
}

// --- the writer ---

func isLinks(key string) bool { return key == "links" || strings.HasSuffix(key, "_links") }

// singular is the element name of an item of list key.
func singular(key string) string {
	switch {
	case strings.HasSuffix(key, "ies"):
		return strings.TrimSuffix(key, "ies") + "y"
	case strings.HasSuffix(key, "sses"):
		return strings.TrimSuffix(key, "es")
	case strings.HasSuffix(key, "s"):
		return strings.TrimSuffix(key, "s")
	}
	return key + "_item"
}

func scalarText(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}

// marshalXML renders a body {"<key>": ..., "<key>_links": [...]} as XML.
func marshalXML(v any) ([]byte, error) {
	tree, err := ordered(v)
	if err != nil {
		return nil, err
	}
	top, ok := tree.(object)
	if !ok {
		return nil, errors.New("xml: the body is not an object")
	}
	var main *member
	var links []any
	for i := range top {
		switch {
		case isLinks(top[i].key):
			if l, ok := top[i].val.([]any); ok {
				links = append(links, l...)
			}
		case main == nil:
			main = &top[i]
		}
	}
	if main == nil {
		return nil, errors.New("xml: the body has no element")
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	if err := writeNode(enc, main.key, main.val, links); err != nil {
		return nil, err
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// writeNode writes value v as element name, with extra Atom links inside.
func writeNode(enc *xml.Encoder, name string, v any, links []any) error {
	start := xml.StartElement{Name: xml.Name{Local: name}}
	switch t := v.(type) {
	case object:
		for _, m := range t {
			if s, ok := scalarText(m.val); ok {
				start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: m.key}, Value: s})
			}
		}
		if err := enc.EncodeToken(start); err != nil {
			return err
		}
		for _, m := range t {
			switch c := m.val.(type) {
			case object:
				if err := writeNode(enc, m.key, c, nil); err != nil {
					return err
				}
			case []any:
				if isLinks(m.key) {
					if err := writeLinks(enc, c); err != nil {
						return err
					}
				} else if err := writeNode(enc, m.key, c, nil); err != nil {
					return err
				}
			}
		}
	case []any:
		if err := enc.EncodeToken(start); err != nil {
			return err
		}
		for _, item := range t {
			if err := writeNode(enc, singular(name), item, nil); err != nil {
				return err
			}
		}
	default:
		if err := enc.EncodeToken(start); err != nil {
			return err
		}
		if s, ok := scalarText(v); ok {
			if err := enc.EncodeToken(xml.CharData(s)); err != nil {
				return err
			}
		}
	}
	if err := writeLinks(enc, links); err != nil {
		return err
	}
	return enc.EncodeToken(start.End())
}

// writeLinks writes {rel, href} objects as Atom link elements.
func writeLinks(enc *xml.Encoder, links []any) error {
	for _, l := range links {
		o, ok := l.(object)
		if !ok {
			continue
		}
		start := xml.StartElement{Name: xml.Name{Space: atomNS, Local: "link"}}
		for _, m := range o {
			if s, ok := scalarText(m.val); ok {
				start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: m.key}, Value: s})
			}
		}
		if err := enc.EncodeToken(start); err != nil {
			return err
		}
		if err := enc.EncodeToken(start.End()); err != nil {
			return err
		}
	}
	return nil
}

// --- the reader ---

// maxXMLDepth bounds the nesting of XML request bodies (the deepest real
// body, instance interfaces, is four levels).
const maxXMLDepth = 32

// xelem is an element of an XML request body.
type xelem struct {
	name     string
	attrs    []xml.Attr
	children []*xelem
	text     strings.Builder
}

// readXML parses an XML document into its root element; nil when the
// document has none.
func readXML(raw []byte) (*xelem, error) {
	malformed := func(err error) error {
		return fault(http.StatusBadRequest, "Malformed request body: %v", err)
	}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	var stack []*xelem
	var root *xelem
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 {
				return nil, malformed(io.ErrUnexpectedEOF)
			}
			return root, nil
		}
		if err != nil {
			return nil, malformed(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, malformed(errors.New("more than one root element"))
			}
			if len(stack) >= maxXMLDepth {
				return nil, malformed(errors.New("elements nested too deep"))
			}
			e := &xelem{name: t.Name.Local}
			for _, a := range t.Attr {
				if a.Name.Space != "xmlns" && a.Name.Local != "xmlns" {
					e.attrs = append(e.attrs, a)
				}
			}
			if len(stack) == 0 {
				root = e
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, e)
			}
			stack = append(stack, e)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
}

// isList: an element without attributes whose children (at least one) are
// all named as an item of it (interfaces/interface, ip_addresses/ip_address,
// addresses/address) is a list, as the writer renders lists.
func (e *xelem) isList() bool {
	if len(e.attrs) > 0 || len(e.children) == 0 {
		return false
	}
	item := singular(e.name)
	for _, c := range e.children {
		if c.name != item {
			return false
		}
	}
	return true
}

// object renders e as a JSON object: its attributes and its child elements
// (later children of one name win).
func (e *xelem) object() map[string]any {
	o := make(map[string]any, len(e.attrs)+len(e.children))
	for _, a := range e.attrs {
		o[a.Name.Local] = a.Value
	}
	for _, c := range e.children {
		o[c.name] = c.value()
	}
	return o
}

// value renders e as JSON: a list (isList), an object when it has
// attributes or children, else its text as a string (fields are strings
// in XML, as they were in Melange's), or null when it is empty.
func (e *xelem) value() any {
	switch {
	case e.isList():
		l := make([]any, 0, len(e.children))
		for _, c := range e.children {
			l = append(l, c.value())
		}
		return l
	case len(e.attrs) > 0 || len(e.children) > 0:
		return e.object()
	case e.text.Len() == 0:
		return nil
	}
	return e.text.String()
}

// toBody converts an object to a body.
func toBody(o map[string]any) (body, error) {
	b := body{}
	for k, v := range o {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b[k] = raw
	}
	return b, nil
}

// decodeXML reads an XML request body <key a="..."><b>...</b></key> into
// the fields of a body: attributes and simple child elements are string
// fields; child elements with attributes or children of their own are
// nested objects (interface <network id=".." tenant_id=".."/>); a child
// element whose children are all its items is a list (instance
// <interfaces><interface>..</interface></interfaces>, network
// <addresses><address>10.0.0.2</address></addresses>); an empty element is
// null. A root element other than key is a 400 (unwrapped), as a JSON body
// with keys but not key is.
func decodeXML(raw []byte, key string) (body, error) {
	root, err := readXML(raw)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return body{}, nil
	}
	if root.name != key {
		return nil, unwrapped(key)
	}
	return toBody(root.object())
}

// decodeXMLRaw reads an XML request body whose root is itself the only
// field, as {"<root>": value} (NAT: <ip_addresses><ip_address
// ip_block_id=".." ip_address=".."/></ip_addresses>). The root is a list,
// so an empty one (<ip_addresses/>) is the empty list, as JSON's
// {"ip_addresses": []}, not null.
func decodeXMLRaw(raw []byte) (map[string]json.RawMessage, error) {
	root, err := readXML(raw)
	if err != nil || root == nil {
		return map[string]json.RawMessage{}, err
	}
	v := root.value()
	if len(root.attrs) == 0 && len(root.children) == 0 && strings.TrimSpace(root.text.String()) == "" {
		v = []any{}
	}
	return toBody(map[string]any{root.name: v})
}
