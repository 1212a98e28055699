package main

import (
	"flag"
	"reflect"
	"testing"

	"github.com/regentcloud/regent/controller/server"
)

// TestEveryServerFlagOverridesTheFile: each flag of "server" that is
// given on the command line changes the configuration (overlay copies it
// over what the -config file said); a flag overlay forgot would be
// silently ignored next to a config file.
func TestEveryServerFlagOverridesTheFile(t *testing.T) {
	fs, flags, _ := serverFlags()
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		n++
		set := false
		for _, v := range []string{"7s", "true", "127.0.0.9:1", "x.example."} {
			if f.Value.Set(v) == nil && f.Value.String() != f.DefValue {
				set = true
				break
			}
		}
		if !set {
			t.Errorf("-%s: no test value sets it", f.Name)
			return
		}
		cfg := server.Defaults()
		overlay(&cfg, flags, f.Name)
		if reflect.DeepEqual(cfg, server.Defaults()) {
			t.Errorf("-%s: given on the command line, it does not change the configuration (overlay misses it)", f.Name)
		}
	})
	if n < 30 {
		t.Errorf("only %d flags seen", n)
	}
}
