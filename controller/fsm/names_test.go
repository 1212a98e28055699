package fsm

import "testing"

// TestEveryHandledTypeHasAName: metrics and logs name commands by type.
func TestEveryHandledTypeHasAName(t *testing.T) {
	for typ := range handlers() {
		if _, ok := typeNames[typ]; !ok {
			t.Errorf("command type %d has a handler but no name in typeNames", typ)
		}
	}
}
