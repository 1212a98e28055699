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
	if rev == "" {
		return fmt.Sprintf("%s %s (%s)", binary, Version, runtime.Version())
	}
	return fmt.Sprintf("%s %s (%s, %s)", binary, Version, rev, runtime.Version())
}
