package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// cuttingLeader is a leader whose snapshot breaks off after its first
// 256 KiB (a disk error, say).
type cuttingLeader struct{ Cluster }

func (cuttingLeader) NodeID() string       { return "n1" }
func (cuttingLeader) IsLeader() bool       { return true }
func (cuttingLeader) ReadyForReads() bool  { return true }
func (cuttingLeader) AppliedIndex() uint64 { return 1 }
func (cuttingLeader) SnapshotSave(_ context.Context, w io.Writer) error {
	if _, err := io.WriteString(w, "REGENT-SNAPSHOT 1\n"+strings.Repeat(`{"t":"members","v":{}}`+"\n", 256<<10/23)); err != nil {
		return err
	}
	return errors.New("read snapshot: input/output error")
}

// TestSnapshotDownloadCutOnError: a snapshot download that fails after its
// first byte is cut (the chunked answer never ends), so the client reads an
// error, not a snapshot that looks whole. It used to end the answer
// normally.
func TestSnapshotDownloadCutOnError(t *testing.T) {
	store := state.New()
	const secret = "rgt_test-root-secret"
	txn := store.Write(1, time.Now())
	if _, err := txn.Bootstrap("CIX", "root", &state.TokenRecord{Token: wire.Token{Name: "root", Kind: wire.TokenKindUser}, Hash: auth.Hash(secret)}); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	a := New(Config{}, cuttingLeader{}, store, hclog.NewNullLogger(), prometheus.NewRegistry())
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/operator/snapshot", nil)
	req.Header.Set("X-Auth-Token", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read %d bytes, then %v; want io.ErrUnexpectedEOF", n, err)
	}
}

// follower is a follower of n2, whose HTTP address the state knows.
type follower struct{ Cluster }

func (follower) NodeID() string                { return "n1" }
func (follower) IsLeader() bool                { return false }
func (follower) Leader() (id, raftAddr string) { return "n2", "127.0.0.1:1" }
func (follower) AppliedIndex() uint64          { return 1 }

// TestForwardedAnswerCutOnError: when the leader's answer breaks off, the
// follower cuts the answer it relays too (it used to end it normally: a
// client saw a part of a snapshot, or of a list, as the whole).
func TestForwardedAnswerCutOnError(t *testing.T) {
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 64<<10))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer leader.Close()
	store := state.New()
	txn := store.Write(1, time.Now())
	if err := txn.NodeUpsert(&state.Node{ID: "n2", RaftAddr: "127.0.0.1:1", HTTPAddr: leader.URL}); err != nil {
		t.Fatal(err)
	}
	txn.Commit()
	a := New(Config{}, follower{}, store, hclog.NewNullLogger(), prometheus.NewRegistry())
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/operator/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Regent-Forwarded-To") == "" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read %d bytes, then %v; want io.ErrUnexpectedEOF", n, err)
	}
}
