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
// an escape sequence forges or corrupts lines) or a line separator or
// bidirectional control (lineOrBidi), or has more than max
// characters. Every text field the services store goes through it, so the
// rule is one.
func TextFault(v string, max int) string {
	switch {
	case !utf8.ValidString(v):
		return "This field is not valid UTF-8."
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return "This field may not contain control characters."
	case strings.IndexFunc(v, lineOrBidi) >= 0:
		return "This field may not contain line or paragraph separators or bidirectional text controls."
	case utf8.RuneCountInString(v) > max:
		return fmt.Sprintf("Ensure this field has no more than %d characters.", max)
	}
	return ""
}

// LinesFault is TextFault for text kept in lines (a project's note): tabs
// and line ends (\t, \n, \r) are allowed, every other control character,
// line separator and bidirectional control is refused as there.
func LinesFault(v string, max int) string {
	return TextFault(strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, v), max)
}

// lineOrBidi reports the format characters that act like control
// characters where text is shown: U+2028 and U+2029 break lines, and the
// bidirectional embeddings, overrides and isolates (U+202A–U+202E,
// U+2066–U+2069) reorder what follows them on a line, so a name could show
// as another. Other format characters (a zero-width joiner in an emoji, a
// soft hyphen) are left alone.
func lineOrBidi(r rune) bool {
	return r == 0x2028 || r == 0x2029 || r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069
}
