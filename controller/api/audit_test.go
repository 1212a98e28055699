package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/regentcloud/regent/pkg/auditlog"
)

// TestAuditPanickingHandler: a request whose handler panics is recorded
// with status 500 (what the forwarder's recover answers), not the 200 of a
// response never written, and the panic goes on up.
func TestAuditPanickingHandler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := auditlog.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m := newHTTPMetrics(nil, hclog.NewNullLogger())
	m.audit = &auditor{w: w, node: func() string { return "n1" }}
	h := m.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	var repanicked any
	func() {
		defer func() { repanicked = recover() }()
		h.ServeHTTP(&respWriter{ResponseWriter: httptest.NewRecorder()}, httptest.NewRequest("POST", "/iaas/vm/", nil))
	}()
	if repanicked != "boom" {
		t.Errorf("the panic did not go on up: %v", repanicked)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec AuditRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("audit line %q: %v", b, err)
	}
	if rec.Status != http.StatusInternalServerError || rec.Method != "POST" || rec.Path != "/iaas/vm/" || rec.Role != "none" {
		t.Errorf("record %+v", rec)
	}
}
