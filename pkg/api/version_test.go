package api

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	v := VersionString("regent-agent")
	if !strings.HasPrefix(v, "regent-agent "+Version+" (") || !strings.Contains(v, runtime.Version()) {
		t.Errorf("VersionString = %q", v)
	}
}
