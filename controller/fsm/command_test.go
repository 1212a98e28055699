package fsm_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
)

func TestCommandEnvelopeRoundTrip(t *testing.T) {
	for _, c := range []*fsm.Command{
		{Type: fsm.MemberUpdateType, Time: time.Date(2031, 2, 3, 4, 5, 6, 789012345, time.UTC),
			Actor: fsm.Actor{TokenID: 1 << 40, UserID: 7, MemberID: 3, Robot: true}, Expect: 99, Payload: json.RawMessage(`{"id":2,"name":"x"}`)},
		{Type: fsm.NoopType, Time: time.Unix(-5, 1).UTC(), Payload: json.RawMessage(`null`)},
		{Type: fsm.BootstrapType, Payload: json.RawMessage(`{}`)}, // zero time
		{Type: fsm.MemberDeleteType, Time: time.Unix(1, 0).UTC(), Rules: state.Rules1, Payload: json.RawMessage(`{"id":5}`)},
	} {
		data, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := fsm.Decode(data)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if got.Type != c.Type || !got.Time.Equal(c.Time) || got.Actor != c.Actor || got.Expect != c.Expect || got.Rules != c.Rules || !bytes.Equal(got.Payload, c.Payload) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
		}
	}
	// Entries written with the JSON envelope (before the binary one) still
	// decode.
	legacy := append([]byte{byte(fsm.MemberCreateType)}, `{"time":"2030-01-01T00:00:00Z","actor":{"user_id":4},"expect":3,"payload":{"name":"a"}}`...)
	c, err := fsm.Decode(legacy)
	if err != nil || c.Actor.UserID != 4 || c.Expect != 3 || string(c.Payload) != `{"name":"a"}` || c.Time.Year() != 2030 {
		t.Fatalf("legacy entry: %+v, %v", c, err)
	}
	if _, err := (&fsm.Command{Type: fsm.NoopType}).Encode(); err == nil {
		t.Fatal("a command without payload was encoded")
	}
	// The leader stamps the current rules; a command of rules this node
	// does not know is refused, not applied under other rules.
	now, err := fsm.NewCommand(fsm.MemberDeleteType, time.Now(), fsm.Actor{}, fsm.IDPayload{ID: 1})
	if err != nil || now.Rules != state.RulesCurrent {
		t.Fatalf("NewCommand: rules %d, %v", now.Rules, err)
	}
	future := *now
	future.Rules = state.RulesCurrent + 1
	data, err := future.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsm.Decode(data); err == nil || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("a command of future rules: %v", err)
	}
}

// FuzzDecode: no entry makes Decode panic, and what it accepts in the
// binary envelope encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	c := &fsm.Command{Type: fsm.MemberCreateType, Time: time.Date(2030, 1, 1, 0, 0, 0, 5, time.UTC), Actor: fsm.Actor{UserID: 1}, Payload: json.RawMessage(`{"name":"a"}`)}
	data, _ := c.Encode()
	f.Add(data)
	f.Add([]byte{2, 1, 0x80})
	f.Add(append([]byte{2}, `{"payload":{}}`...))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := fsm.Decode(data)
		if err != nil || len(data) < 2 || data[1] != 1 {
			return
		}
		again, err := c.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := fsm.Decode(again)
		if err != nil || !back.Time.Equal(c.Time) || back.Actor != c.Actor || back.Expect != c.Expect || !bytes.Equal(back.Payload, c.Payload) {
			t.Fatalf("decode(encode(decode(x))) differs: %+v / %+v, %v", c, back, err)
		}
	})
}
