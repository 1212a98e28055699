package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/pkg/api"
)

// sealSnapshot wraps record lines in a snapshot header and a trailer with
// the right count and checksum, so that fuzzing reaches the record parsing
// and the rebuild of derived state rather than stopping at the checksum.
func sealSnapshot(lines []byte) []byte {
	var buf bytes.Buffer
	buf.WriteString(snapshotHeader)
	n := 0
	for l := range bytes.SplitSeq(lines, []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		buf.Write(l)
		buf.WriteByte('\n')
		n++
	}
	sum := sha256.Sum256(buf.Bytes())
	trailer, _ := json.Marshal(record{T: "#end", N: n, SHA256: hex.EncodeToString(sum[:])})
	buf.Write(trailer)
	buf.WriteByte('\n')
	return buf.Bytes()
}

// FuzzRestore: any sequence of snapshot records either restores or is
// refused with ErrBadSnapshot, never panics; a refused one leaves the state
// as it was; one that restores persists to a snapshot that restores to the
// same bytes again. Validate agrees with Restore, and so does the general
// record decoder alone (without the short way for Persist's own lines).
func FuzzRestore(f *testing.F) {
	// A real state as the seed: the bootstrap records, a member, DNS settings.
	st := New()
	txn := st.Write(1, t0)
	if _, err := txn.Bootstrap("CIX", "root", &TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser}, Hash: "h"}); err != nil {
		f.Fatal(err)
	}
	if _, err := txn.MemberCreate(&api.Member{Name: "acme"}); err != nil {
		f.Fatal(err)
	}
	if _, err := txn.DNSSettingsSet(&DNSSettings{NS: []string{"ns1.example.net."}, SetBy: "c1"}); err != nil {
		f.Fatal(err)
	}
	txn.Commit()
	var seed bytes.Buffer
	if err := st.Read().Persist(&seed); err != nil {
		f.Fatal(err)
	}
	body := seed.Bytes()[len(snapshotHeader):]
	body = body[:bytes.LastIndex(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))+1] // drop the trailer
	f.Add(body)
	f.Add([]byte(`{"t":"members","v":{"id":1,"name":"a"}}` + "\n" + `{"t":"members","v":{"id":1,"name":"b"}}`))
	f.Add([]byte(`{"t":"ipam_blocks","v":{"id":1,"cidr":"10.0.0.0/8","type":"private"}}`))
	f.Add([]byte(`{"t":"ipam_addresses","v":{"id":1,"address":"10.0.0.1","block_id":7}}`))
	f.Add([]byte(`{"t":"dns_settings","v":{"key":"dns","ns":["a."],"index":3}}`))
	f.Add([]byte(`{"t":"nope","v":{}}`))

	f.Fuzz(func(t *testing.T, lines []byte) {
		if len(lines) > 1<<16 {
			return
		}
		snap := sealSnapshot(lines)
		// A restore that never ends would stop a node: crash with the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("FuzzRestore stuck on %q", lines)) })
		defer watchdog.Stop()
		s := New()
		txn := s.Write(1, t0)
		if _, err := txn.Bootstrap("CIX", "root", &TokenRecord{Token: api.Token{Name: "root", Kind: api.TokenKindUser}, Hash: "h"}); err != nil {
			t.Fatal(err)
		}
		txn.Commit()
		var before bytes.Buffer
		if err := s.Read().Persist(&before); err != nil {
			t.Fatal(err)
		}
		_, verr := Validate(bytes.NewReader(snap))
		err := s.Restore(bytes.NewReader(snap))
		// The short way for the records as Persist writes them accepts and
		// refuses exactly what the general decoder does, with its errors,
		// and loads the same state.
		general, gerr := loadWith(bytes.NewReader(snap), false)
		if fmt.Sprint(gerr) != fmt.Sprint(err) {
			t.Fatalf("the restore says %v, the general decoder alone %v", err, gerr)
		}
		if err == nil {
			var short, long bytes.Buffer
			if err := s.Read().Persist(&short); err != nil {
				t.Fatal(err)
			}
			if err := (&ReadTxn{txn: memTxn{Txn: general.Txn(false)}}).Persist(&long); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(short.Bytes(), long.Bytes()) {
				t.Fatalf("the short way and the general decoder load different states:\n%s\n---\n%s", short.Bytes(), long.Bytes())
			}
		}
		if (verr == nil) != (err == nil) {
			t.Fatalf("Validate says %v, Restore says %v", verr, err)
		}
		if err != nil {
			if !strings.Contains(err.Error(), ErrBadSnapshot.Error()) {
				t.Fatalf("refused without ErrBadSnapshot: %v", err)
			}
			var after bytes.Buffer
			if err := s.Read().Persist(&after); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before.Bytes(), after.Bytes()) {
				t.Fatal("a refused snapshot changed the state")
			}
			return
		}
		var once, twice bytes.Buffer
		if err := s.Read().Persist(&once); err != nil {
			t.Fatal(err)
		}
		again := New()
		if err := again.Restore(bytes.NewReader(once.Bytes())); err != nil {
			t.Fatalf("a persisted restored state does not restore: %v", err)
		}
		if err := again.Read().Persist(&twice); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("persist → restore → persist differs:\n%s\n---\n%s", once.Bytes(), twice.Bytes())
		}
	})
}
