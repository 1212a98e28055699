package api

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TextFault says why a free-text value (a name, a description; trimmed by
// the caller) is refused, or "" when it is fine: it is not valid UTF-8,
// holds a control character (C0, DEL or C1: names reach lists, logs, the
// routers' DHCP host names and metadata, and consoles, where a newline or
// an escape sequence forges or corrupts lines), or has more than max
// characters. Every text field the services store goes through it, so the
// rule is one.
func TextFault(v string, max int) string {
	switch {
	case !utf8.ValidString(v):
		return "This field is not valid UTF-8."
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return "This field may not contain control characters."
	case utf8.RuneCountInString(v) > max:
		return fmt.Sprintf("Ensure this field has no more than %d characters.", max)
	}
	return ""
}
