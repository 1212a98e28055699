package api

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/pkg/auditlog"
)

// BenchmarkAuditRecord is the audit trail's cost per audited request on
// the serving node: the line built and queued, and its share of the
// background writer's batched writes to a real file.
func BenchmarkAuditRecord(b *testing.B) {
	w, err := auditlog.Open(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(context.Background())
	au := &auditor{w: w, node: func() string { return "node1" }}
	r := httptest.NewRequest("POST", "/membership/member/", nil)
	r.RemoteAddr = "127.0.0.1:50000"
	rec := httptest.NewRecorder()
	rec.Header().Set("X-Regent-Index", "123456")
	p := &auth.Principal{Role: auth.Global, Administrator: true, TokenID: 1, UserID: 1, MemberID: 1}
	start := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r2, slot := au.begin(r)
			notePrincipal(r2, p)
			au.record(r2, slot, rec, "/membership/member/{$}", 201, start, time.Millisecond)
		}
	})
	w.Sync()
}
