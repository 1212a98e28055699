//go:build !linux

package dns

const msgTrunc = 0
