package hcldiag

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// TestError: every error of the diagnostics on a line of its own,
// warnings left out; a wrong value names its attribute (in a block as
// block.attribute); a diagnostic about an attribute's name (an unknown
// one) keeps HCL's words, which name it.
func TestError(t *testing.T) {
	two := hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "a"}, {Severity: hcl.DiagWarning, Summary: "w"}, {Severity: hcl.DiagError, Summary: "b"}}
	if err := Error(two, nil); err == nil || err.Error() != two[0].Error()+"\n"+two[2].Error() {
		t.Errorf("two errors and a warning: %q", err)
	}

	var cfg struct {
		LogJSON bool `hcl:"log_json,optional"`
		Place   *struct {
			Factor float64 `hcl:"factor,optional"`
		} `hcl:"place,block"`
	}
	src := "log_json = \"yes\"\nbogus = 1\nplace {\n  factor = \"x\"\n}\n"
	f, diags := hclsyntax.ParseConfig([]byte(src), "c.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	err := Error(gohcl.DecodeBody(f.Body, nil, &cfg), f.Body)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, want := range []string{"c.hcl:1,13-16: log_json: Unsuitable value type;", `c.hcl:2,1-6: Unsupported argument; An argument named "bogus"`} {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, want)
		}
		if !found {
			t.Errorf("no line %q in:\n%s", want, err)
		}
	}
	// gohcl may stop at the first wrong type: the block's on its own.
	f, _ = hclsyntax.ParseConfig([]byte("place {\n  factor = \"x\"\n}\n"), "c.hcl", hcl.InitialPos)
	if err := Error(gohcl.DecodeBody(f.Body, nil, &cfg), f.Body); err == nil || !strings.HasPrefix(err.Error(), "c.hcl:2,13-14: place.factor: Unsuitable value type;") {
		t.Errorf("a block's attribute: %v", err)
	}
}
