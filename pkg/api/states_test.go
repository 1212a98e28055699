package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// The transition tables of cloudcix-facts §2.2, written out edge by edge
// independently of RobotMap/UserMap, so that a typo in either shows.
var robotEdges = `1>2 1>3 2>3 2>4 3>1 3>5 3>7 3>8 3>10 3>15 5>12 7>13 8>14 8>17 9>17 10>11
11>3 11>4 12>3 12>6 13>3 13>4 14>3 14>9 15>16 16>3 16>6 17>3 17>99`
var userEdges = `4>5 4>8 4>10 6>7 6>8 6>15 9>7`

// backupUserEdges: the reference's 4>10 4>8, and 3>8: a user deletes a
// failed snapshot or backup (docs/compute-model.md).
var backupUserEdges = `4>10 4>8 3>8`

// backupRobotEdges: §2.4's snapshot / backup flows (1>2>4, 4>10>11>4,
// 4>8>17>99, no delete queue), failures to 3 and the robot's retries
// from 3 that apply to them (1, 8, 10).
var backupRobotEdges = `1>2 1>3 2>3 2>4 3>1 3>8 3>10 8>17 10>11 11>3 11>4 17>3 17>99`

func edges(s string) map[[2]int]bool {
	out := map[[2]int]bool{}
	var from, to int
	for _, f := range strings.Fields(s) {
		if _, err := fmt.Sscanf(f, "%d>%d", &from, &to); err != nil {
			panic(f)
		}
		out[[2]int{from, to}] = true
	}
	return out
}

// TestTransitionEveryTriple covers every (from, to, actor) triple for every
// kind: allowed edges succeed, the same state is a no-op, everything else is
// a 400 with the right code. The domain of "to" includes values outside
// VALID_RANGE (-1, 18, 100).
func TestTransitionEveryTriple(t *testing.T) {
	targets := append(append([]int{}, AllStates...), 18, 100, -5)
	n := 0
	for _, kind := range []string{KindVM, KindVirtualRouter, KindSnapshot, KindBackup} {
		for _, actor := range []string{ActorUser, ActorRobot} {
			allowed := edges(userEdges)
			backup := kind == KindSnapshot || kind == KindBackup
			switch {
			case actor == ActorRobot && backup:
				allowed = edges(backupRobotEdges)
			case actor == ActorRobot:
				allowed = edges(robotEdges)
			case backup:
				allowed = edges(backupUserEdges)
			}
			froms := map[int]bool{}
			for e := range allowed {
				froms[e[0]] = true
			}
			for _, from := range AllStates {
				for _, to := range targets {
					n++
					changed, err := Transition(kind, kind, actor, from, to)
					name := fmt.Sprintf("%s %s %d→%d", kind, actor, from, to)
					switch {
					case !ValidState(to):
						wantCode(t, name, err, fmt.Sprintf("iaas_%s_update_105", kind))
					case from == to:
						if err != nil || changed {
							t.Errorf("%s: same state must be a no-op, got changed=%v err=%v", name, changed, err)
						}
					case allowed[[2]int{from, to}]:
						if err != nil || !changed {
							t.Errorf("%s: allowed, got changed=%v err=%v", name, changed, err)
						}
					case !froms[from]:
						wantCode(t, name, err, fmt.Sprintf("iaas_%s_update_106", kind))
					default:
						wantCode(t, name, err, fmt.Sprintf("iaas_%s_update_107", kind))
					}
				}
			}
		}
	}
	if n != 4*2*len(AllStates)*(len(AllStates)+3) {
		t.Fatalf("covered %d triples", n)
	}
}

func wantCode(t *testing.T, name string, err error, code string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("%s: want 400 %s, got %v", name, code, err)
		return
	}
	if e.Status != 400 || e.Errors["state"].ErrorCode != code {
		t.Errorf("%s: want 400 state:%s, got %d %+v", name, code, e.Status, e.Errors)
	}
}

func TestStateSetsAreValid(t *testing.T) {
	for _, set := range [][]int{RobotProcessStates, StableStates, ScrubStates, SendEmailStates, BOMCreateStates} {
		for _, s := range set {
			if !ValidState(s) {
				t.Errorf("state %d in a set is not valid", s)
			}
		}
	}
	for from, to := range InProgress {
		if _, err := Transition("vm", KindVM, ActorRobot, from, to); err != nil {
			t.Errorf("in-progress %d→%d refused by the robot map: %v", from, to, err)
		}
	}
}

func TestVPNStatusClipFitsTheBounds(t *testing.T) {
	long := strings.Repeat("x", 5000)
	ts := make([]string, 100)
	st := VPNStatus{IKEState: long, LocalHost: long, RemoteHost: long, Time: long, Error: long,
		Children: make([]VPNChildStatus, 100)}
	for i := range st.Children {
		st.Children[i] = VPNChildStatus{Name: long, State: long, LocalTS: ts, RemoteTS: ts}
	}
	st.Clip()
	if len(st.IKEState) != VPNStatusMaxString || len(st.Error) != VPNStatusMaxError || len(st.Children) != VPNStatusMaxChildren ||
		len(st.Children[0].Name) != VPNStatusMaxString || len(st.Children[0].LocalTS) != VPNStatusMaxChildren {
		t.Errorf("clipped: ike_state %d, error %d, children %d, name %d, local_ts %d", len(st.IKEState), len(st.Error),
			len(st.Children), len(st.Children[0].Name), len(st.Children[0].LocalTS))
	}
	// A cut never splits a character: a split one travels as U+FFFD
	// (three bytes) and the error arrived longer than the bound, which got
	// the whole heartbeat refused for good (an error naming IPv6 routes
	// with "→" in it).
	for pad := range 8 { // the cut at every position within the 8-byte pattern
		multi := VPNStatus{IKEState: "CONNECTING", Error: strings.Repeat("x", pad) + strings.Repeat("a → b ", 400)}
		multi.Clip()
		b, err := json.Marshal(multi)
		if err != nil {
			t.Fatal(err)
		}
		var back VPNStatus
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(multi.Error) || len(back.Error) > VPNStatusMaxError {
			t.Errorf("pad %d: clipped error valid %v, %d bytes after a JSON round trip (bound %d)", pad, utf8.ValidString(multi.Error), len(back.Error), VPNStatusMaxError)
		}
	}
	short := VPNStatus{IKEState: "ESTABLISHED", Children: []VPNChildStatus{{Name: "a"}}}
	short.Clip()
	if short.IKEState != "ESTABLISHED" || len(short.Children) != 1 {
		t.Errorf("a report inside the bounds changed: %+v", short)
	}
}
