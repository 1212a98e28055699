package api

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release of the controller, the agent and the SDK.
const Version = "0.1.0"

// VersionString is what `regent-controller version` and `regent-agent
// -version` print: the release, the VCS revision the binary was built from
// (when the build recorded one) and the Go version.
func VersionString(binary string) string {
	if rev := Revision(); rev != "" {
		return fmt.Sprintf("%s %s (%s, %s)", binary, Version, rev, runtime.Version())
	}
	return fmt.Sprintf("%s %s (%s)", binary, Version, runtime.Version())
}

// Revision is the VCS revision the binary was built from, its first 12
// hex digits with "+dirty" for a modified work tree; "" when the build
// recorded none.
func Revision() string {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && modified {
			rev += "+dirty"
		}
	}
	return rev
}
