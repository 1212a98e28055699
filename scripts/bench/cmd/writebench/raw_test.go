package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRawConn: the benchmark's own HTTP client sends what net/http's server
// reads (method, path, token, body), reuses one connection, reads
// Content-Length and chunked responses, reports a wrong status with the body,
// and reconnects after "Connection: close" or a dropped connection.
func TestRawConn(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/membership/member/" || r.Header.Get("X-Auth-Token") != "tok" ||
			r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request line or headers", http.StatusTeapot)
			return
		}
		switch string(body) {
		case `{"name":"ok"}`:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"content":{}}`)
		case `{"name":"chunked"}`:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "part one,")
			w.(http.Flusher).Flush() // forces chunked encoding
			io.WriteString(w, strings.Repeat("x", 40000))
		case `{"name":"bad"}`:
			http.Error(w, `{"detail":"no","error_code":"x_001"}`, http.StatusBadRequest)
		case `{"name":"close"}`:
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusCreated)
		case `{"name":"drop"}`:
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		default:
			http.Error(w, "unexpected body "+string(body), http.StatusTeapot)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c, err := newRawConn(srv.URL+"/membership/member/", "tok", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	post := func(name string, want int) error { return c.post([]byte(`{"name":"`+name+`"}`), want) }
	for i := range 3 {
		if err := post("ok", 201); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if err := post("chunked", 201); err != nil {
		t.Fatalf("chunked: %v", err)
	}
	if err := post("ok", 201); err != nil {
		t.Fatalf("after the chunked response: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 5 keep-alive requests, want 1", n)
	}
	err = post("bad", 201)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "x_001") {
		t.Fatalf("wrong status: %v", err)
	}
	if err := post("close", 201); err != nil {
		t.Fatalf("Connection: close: %v", err)
	}
	if err := post("ok", 201); err != nil {
		t.Fatalf("after Connection: close: %v", err)
	}
	if err := post("drop", 201); err == nil {
		t.Fatal("a dropped connection was not an error")
	}
	if err := post("ok", 201); err != nil {
		t.Fatalf("after a dropped connection: %v", err)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (first, after close, after drop)", n)
	}
	if _, err := newRawConn("https://example.test/", "", time.Second); err == nil {
		t.Fatal("https accepted")
	}
}
