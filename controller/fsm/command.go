// Package fsm defines the replicated commands and the raft finite state
// machine that applies them to the state store. A command is one type byte,
// a binary envelope (time, actor, expected index) and a JSON payload; type
// numbers are append-only. A type with the
// Ignorable bit set may be skipped by an older node that does not know it;
// any other unknown type stops the node rather than let it diverge.
package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/regentcloud/regent/controller/state"
)

// MessageType identifies a command. Never renumber; only append.
type MessageType uint8

// Ignorable marks a command that nodes which do not know it may skip.
const Ignorable MessageType = 0x80

// Command types.
const (
	BootstrapType    MessageType = 1
	MemberCreateType MessageType = 2
	MemberUpdateType MessageType = 3
	MemberDeleteType MessageType = 4
	UserCreateType   MessageType = 5
	UserUpdateType   MessageType = 6
	UserDeleteType   MessageType = 7
	TokenCreateType  MessageType = 8
	TokenDeleteType  MessageType = 9
	RegionCreateType MessageType = 10
	RegionUpdateType MessageType = 11
	RegionDeleteType MessageType = 12
	NodeUpsertType   MessageType = 13
	NodeDeleteType   MessageType = 14
	// BatchType is a coalesced raft entry: several commands the leader
	// received concurrently, applied in order at the entry's index (see
	// EncodeBatch). It is not ignorable: skipping it would skip writes.
	BatchType MessageType = 37
	// NoopType does nothing; a leader applies it to learn its commit index
	// and tests use it. It is ignorable.
	NoopType MessageType = 15 | Ignorable
)

// Actor is who caused a command, recorded for histories and audit.
type Actor struct {
	TokenID  uint64 `json:"token_id,omitempty"`
	UserID   uint64 `json:"user_id,omitempty"`
	MemberID uint64 `json:"member_id,omitempty"`
	// Robot is set when the caller used a robot token (an agent).
	Robot bool `json:"robot,omitempty"`
}

// Command is one replicated write. The leader stamps Time (and any random
// material inside Payload) so that Apply never reads a clock or a random source.
type Command struct {
	Type MessageType `json:"-"`
	Time time.Time   `json:"time"`
	// Actor is the caller.
	Actor Actor `json:"actor"`
	// Expect, on updates, is the modified_index the caller read (compare-and-swap).
	Expect uint64 `json:"expect,omitempty"`
	// Rules is the version of Apply's rules the command is applied under
	// (state.RulesCurrent when the leader made it; state/rules.go).
	Rules   uint32          `json:"rules,omitempty"`
	Payload json.RawMessage `json:"payload"`
}

// IDPayload is the payload of delete commands.
type IDPayload struct {
	ID uint64 `json:"id"`
}

// NewCommand builds a command with payload encoded as JSON.
func NewCommand(t MessageType, now time.Time, actor Actor, payload any) (*Command, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	return &Command{Type: t, Time: now.UTC(), Actor: actor, Rules: state.RulesCurrent, Payload: raw}, nil
}

// envelopeV1 marks the binary envelope (the byte after the type): the
// leader's time, the actor and the expected index as varints, then the JSON
// payload. Entries written before it have a JSON envelope ('{' there),
// which Decode still reads. envelopeV2 adds the rules version after the
// expected index; a node that predates it cannot read it, and refuses the
// entry rather than apply it under rules it does not know.
const (
	envelopeV1 = 0x01
	envelopeV2 = 0x02
)

// Encode renders a command as it is stored in the raft log.
func (c *Command) Encode() ([]byte, error) {
	if len(c.Payload) == 0 {
		return nil, errors.New("fsm: command without payload")
	}
	out := make([]byte, 0, 2+5*binary.MaxVarintLen64+1+len(c.Payload))
	envelope := byte(envelopeV1)
	if c.Rules != state.RulesOriginal {
		envelope = envelopeV2
	}
	out = append(out, byte(c.Type), envelope)
	out = binary.AppendVarint(out, c.Time.Unix())
	out = binary.AppendUvarint(out, uint64(c.Time.Nanosecond()))
	out = binary.AppendUvarint(out, c.Actor.TokenID)
	out = binary.AppendUvarint(out, c.Actor.UserID)
	out = binary.AppendUvarint(out, c.Actor.MemberID)
	robot := byte(0)
	if c.Actor.Robot {
		robot = 1
	}
	out = append(out, robot)
	out = binary.AppendUvarint(out, c.Expect)
	if envelope == envelopeV2 {
		out = binary.AppendUvarint(out, uint64(c.Rules))
	}
	return append(out, c.Payload...), nil
}

// Decode parses a raft log entry.
func Decode(data []byte) (*Command, error) {
	if len(data) < 2 {
		return nil, errors.New("fsm: command too short")
	}
	c := &Command{Type: MessageType(data[0])}
	if data[1] != envelopeV1 && data[1] != envelopeV2 {
		if err := json.Unmarshal(data[1:], c); err != nil {
			return nil, fmt.Errorf("fsm: decode command type %d: %w", c.Type, err)
		}
		return c, nil
	}
	envelope, rest, ok := data[1], data[2:], true
	uvarint := func() uint64 {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			ok = false
			return 0
		}
		rest = rest[n:]
		return v
	}
	sec, n := binary.Varint(rest)
	if n <= 0 {
		return nil, fmt.Errorf("fsm: decode command type %d: bad time", c.Type)
	}
	rest = rest[n:]
	nsec := uvarint()
	c.Actor.TokenID, c.Actor.UserID, c.Actor.MemberID = uvarint(), uvarint(), uvarint()
	if !ok || nsec >= 1e9 || len(rest) == 0 || rest[0] > 1 {
		return nil, fmt.Errorf("fsm: decode command type %d: bad envelope", c.Type)
	}
	c.Time = time.Unix(sec, int64(nsec)).UTC()
	c.Actor.Robot, rest = rest[0] == 1, rest[1:]
	c.Expect = uvarint()
	if envelope == envelopeV2 {
		rules := uvarint()
		if rules > uint64(state.RulesCurrent) {
			return nil, fmt.Errorf("fsm: decode command type %d: made under rules %d, this node knows up to %d: upgrade it", c.Type, rules, state.RulesCurrent)
		}
		c.Rules = uint32(rules)
	}
	if !ok || len(rest) == 0 {
		return nil, fmt.Errorf("fsm: decode command type %d: bad envelope", c.Type)
	}
	c.Payload = rest
	return c, nil
}

// EncodeBatch renders commands (each as Encode returns it) as one raft
// entry: the BatchType byte, then each command as a uvarint length and its
// bytes.
func EncodeBatch(cmds [][]byte) []byte {
	n := 1
	for _, c := range cmds {
		n += binary.MaxVarintLen32 + len(c)
	}
	out := make([]byte, 1, n)
	out[0] = byte(BatchType)
	for _, c := range cmds {
		out = binary.AppendUvarint(out, uint64(len(c)))
		out = append(out, c...)
	}
	return out
}

// DecodeBatch splits an entry made by EncodeBatch into its commands.
func DecodeBatch(data []byte) ([][]byte, error) {
	if len(data) < 1 || MessageType(data[0]) != BatchType {
		return nil, errors.New("fsm: not a batch entry")
	}
	var cmds [][]byte
	for rest := data[1:]; len(rest) > 0; {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return nil, fmt.Errorf("fsm: batch entry: bad length of command %d", len(cmds))
		}
		cmds = append(cmds, rest[w:w+int(n)])
		rest = rest[w+int(n):]
	}
	if len(cmds) == 0 {
		return nil, errors.New("fsm: empty batch entry")
	}
	return cmds, nil
}
