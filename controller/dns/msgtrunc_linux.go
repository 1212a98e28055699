//go:build linux

package dns

import "golang.org/x/sys/unix"

const msgTrunc = unix.MSG_TRUNC
