package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	wire "github.com/regentcloud/regent/pkg/api"
)

// Spec is pkg/api/openapi.yaml, loaded, validated and ready to check
// responses with.
type Spec struct {
	Doc    *openapi3.T
	router routers.Router
	errors *openapi3.Schema
}

var (
	specOnce sync.Once
	spec     *Spec
	specErr  error
)

// LoadSpec loads and validates pkg/api/openapi.yaml (once per process).
func LoadSpec() (*Spec, error) {
	specOnce.Do(func() { spec, specErr = loadSpec() })
	return spec, specErr
}

func loadSpec() (*Spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(wire.OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.yaml: validate: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: router: %w", err)
	}
	ref := doc.Components.Schemas["Error"]
	if ref == nil || ref.Value == nil {
		return nil, errors.New("openapi.yaml: no components.schemas.Error")
	}
	return &Spec{Doc: doc, router: router, errors: ref.Value}, nil
}

// Operation is one method of one path of the document.
type Operation struct {
	Method, Path string
	Op           *openapi3.Operation
}

// Operations lists every operation of the document, sorted by path and method.
func (s *Spec) Operations() []Operation {
	var out []Operation
	for path, item := range s.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, Operation{Method: method, Path: path, Op: op})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// FindRoute finds the operation a request is for. A path without its
// trailing slash finds the operation of the slashed path (the server
// serves both); HEAD falls back to GET where the document lists no HEAD.
func (s *Spec) FindRoute(method string, u *url.URL) (*routers.Route, map[string]string, error) {
	try := func(method, path string) (*routers.Route, map[string]string, error) {
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: u.RawQuery}}
		return s.router.FindRoute(r)
	}
	// The escaped path: a "/" escaped inside a path value (a Melange
	// network id may be any string) stays inside its segment.
	path := u.EscapedPath()
	paths := []string{path}
	if !strings.HasSuffix(path, "/") {
		paths = append(paths, path+"/")
	}
	var firstErr error
	for _, m := range []string{method, http.MethodGet} {
		for _, p := range paths {
			route, params, err := try(m, p)
			if err == nil && strings.HasSuffix(p, "/") && !strings.HasSuffix(route.Path, "/") {
				// The router ignores a trailing slash the server does not.
				err = fmt.Errorf("%s %s: no such path (%s has no trailing slash)", m, p, route.Path)
			}
			if err == nil && emptyParam(params) {
				err = fmt.Errorf("%s %s: empty path parameter", m, p)
			}
			if err == nil {
				return route, params, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		if method != http.MethodHead {
			break
		}
	}
	return nil, nil, firstErr
}

// emptyParam reports a path parameter matched by an empty segment: the
// router matches /x/{id}/ on /x//, the server does not.
func emptyParam(params map[string]string) bool {
	for _, v := range params {
		if v == "" {
			return true
		}
	}
	return false
}

// CheckResponse checks a response to a request against the document: its
// status must be documented for the operation, its headers and body must
// match. Responses to requests the document has no operation for must be
// the generic 404 or 405 error (components.schemas.Error; under /v0.1
// Melange's, which may also be XML).
func (s *Spec) CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	if header.Get("X-Regent-Index") == "" {
		return errors.New("no X-Regent-Index header")
	}
	route, params, err := s.FindRoute(req.Method, req.URL)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("the document has no operation %s %s (%v), yet the server answered %d", req.Method, req.URL.Path, err, status)
		}
		if req.Method == http.MethodHead {
			return expectEmpty(body)
		}
		if isXMLContent(header) && melangePath(req.URL.Path) {
			// The Melange dialect answers requests no route of it serves
			// in its own shape, in XML when XML was asked for.
			return checkXML(nil, status, body)
		}
		return s.checkError(header, body)
	}
	if req.Method == http.MethodHead {
		// openapi3filter does not check HEAD; do the part that applies.
		op := route.Operation
		if route.Method != http.MethodHead {
			op = route.PathItem.GetOperation(http.MethodHead)
			if op == nil {
				op = route.Operation
			}
		}
		if op.Responses.Status(status) == nil {
			return fmt.Errorf("status %d is not documented for HEAD %s", status, route.Path)
		}
		return expectEmpty(body)
	}
	// kin-openapi has no XML body decoder: for an XML response (the Melange
	// routes) the status and headers are checked as for any other, the
	// body only for being well-formed XML of a documented content type.
	isXML := isXMLContent(header)
	if isXML {
		if err := checkXML(route, status, body); err != nil {
			return fmt.Errorf("%s %s: %w", route.Method, route.Path, err)
		}
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options: &openapi3filter.Options{ExcludeRequestBody: true, ExcludeRequestQueryParams: true,
				AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: isXML,
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s: %w", route.Method, route.Path, err)
	}
	if status >= 400 && !isXML && !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		return fmt.Errorf("error response with Content-Type %q", header.Get("Content-Type"))
	}
	return nil
}

// checkError checks a body against the generic error schema.
func (s *Spec) checkError(header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("error response with Content-Type %q", ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("error body is not JSON: %v", err)
	}
	if err := s.errors.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("error body does not match components.schemas.Error: %w", err)
	}
	return nil
}

// isXMLContent reports an application/xml response.
func isXMLContent(header http.Header) bool {
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	return err == nil && mt == "application/xml"
}

// checkXML checks what can be checked of an XML response body: the
// document lists application/xml for the status, and the body is one
// well-formed XML element.
func checkXML(route *routers.Route, status int, body []byte) error {
	if route != nil { // nil: no operation, only the body is checked
		if ref := route.Operation.Responses.Status(status); ref != nil && ref.Value != nil {
			if ref.Value.Content.Get("application/xml") == nil {
				return fmt.Errorf("status %d: application/xml is not documented", status)
			}
		}
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	roots := 0
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("the body is not well-formed XML: %v", err)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if roots != 1 {
		return fmt.Errorf("the XML body has %d root elements", roots)
	}
	return nil
}

// melangePath reports a path of the Melange dialect (/v0.1 and below).
func melangePath(p string) bool {
	return p == "/v0.1" || p == "/v0.1.json" || p == "/v0.1.xml" || strings.HasPrefix(p, "/v0.1/")
}

func expectEmpty(body []byte) error {
	if len(body) != 0 {
		return fmt.Errorf("HEAD response with a %d-byte body", len(body))
	}
	return nil
}
