// Package hcldiag turns the diagnostics of an HCL config file into one
// error an operator can act on: every error on a line of its own (hcl's
// own Error shows the first and "and N other diagnostic(s)"), each naming
// the attribute whose value it is about (hcl names only the value's
// line and columns for "Unsuitable value type"). The controller and the
// agent load their files through it.
package hcldiag

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Error is every error-severity diagnostic of diags, one a line, as
// "path:line,col: attribute: summary; detail". body (the parsed file's,
// nil if it did not parse) names the attributes whose values the
// diagnostics are about; an attribute in a block is named
// block.attribute.
func Error(diags hcl.Diagnostics, body hcl.Body) error {
	b, _ := body.(*hclsyntax.Body)
	var errs []error
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		name := attrAt(b, d.Subject)
		if name == "" {
			errs = append(errs, d)
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s; %s", d.Subject, name, d.Summary, d.Detail))
	}
	return errors.Join(errs...)
}

// attrAt is the name of the attribute of body, or of a block in it, whose
// value holds r; "" if none does.
func attrAt(body *hclsyntax.Body, r *hcl.Range) string {
	if body == nil || r == nil {
		return ""
	}
	for name, a := range body.Attributes {
		if a.Expr.Range().ContainsOffset(r.Start.Byte) {
			return name
		}
	}
	for _, b := range body.Blocks {
		if name := attrAt(b.Body, r); name != "" {
			return b.Type + "." + name
		}
	}
	return ""
}
