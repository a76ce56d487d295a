// Package untrusted shows text that anyone with write access to the realm
// may have put into etcd (a reason, a host, a user, a key, a lock name)
// without letting it act on the terminal it is shown on: control
// characters, escape sequences, bidi overrides and invalid UTF-8 come out
// escaped, and a long value is cut with a mark that says how much is left
// out.
package untrusted

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// How much of a value is shown, in bytes of the value itself (escaping
// may make what is shown longer).
const (
	MaxReason = 200  // a reason, which people write in sentences
	MaxWord   = 100  // a host name, a user name, a mode, a duration
	MaxKey    = 1024 // an etcd key or a lock name: long enough for any key distlock writes
)

// Cut returns s cut to at most max bytes, never inside a UTF-8 sequence,
// with "…(+N bytes)" added when anything was cut. It escapes nothing: it
// is for output that escapes by itself, as encoding/json does.
func Cut(s string, max int) string {
	kept, left := cut(s, max)
	return kept + mark(left)
}

// Quote returns s cut to max bytes and quoted as Go quotes a string: every
// character that is not printable (unicode.IsPrint) and every byte that is
// not UTF-8 is written as an escape (\x1b, \u202e, \xff). The mark of a cut
// comes after the closing quote, where no value can put it.
func Quote(s string, max int) string {
	kept, left := cut(s, max)
	return strconv.Quote(kept) + mark(left)
}

// Word returns s bare when it is a plain word, as host names, user names
// and keys are: ASCII letters and digits and "._-@:+/%!~", and not empty.
// Anything else is quoted (Quote), so that no value can pass for more
// than one (a host "web1, pid 1" is shown as "web1, pid 1", in quotes).
func Word(s string, max int) string {
	if len(s) == 0 || len(s) > max {
		return Quote(s, max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || isWordPunct(c)) {
			return Quote(s, max)
		}
	}
	return s
}

func isWordPunct(c byte) bool {
	switch c {
	case '.', '_', '-', '@', ':', '+', '/', '%', '!', '~':
		return true
	}
	return false
}

// cut splits s at max bytes, or the start of the UTF-8 sequence that
// byte is in, and says how many bytes are left out.
func cut(s string, max int) (kept string, left int) {
	if len(s) <= max {
		return s, 0
	}
	i := max
	for back := 0; i > 0 && back < utf8.UTFMax-1 && !utf8.RuneStart(s[i]); back++ {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = max // not UTF-8 here anyway: cut at the byte
	}
	return s[:i], len(s) - i
}

func mark(left int) string {
	if left == 0 {
		return ""
	}
	return fmt.Sprintf("…(+%d bytes)", left)
}

// Line returns s as one line that a terminal shows as it is: every
// character that is not printable (a newline, a control, an escape
// sequence's start, a bidi override) and every byte that is not UTF-8
// written as Go writes it in a quoted string (\n, \x1b, \u202e, \xff), the
// rest, tabs and spaces included, as it is. For distlock's own lines,
// which may hold what someone typed or named: a command, a path.
func Line(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (r != '\t' && !unicode.IsPrint(r)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t', unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// JSON returns the encoded JSON b with every character that encoding/json
// leaves as it is but a terminal could act on (DEL, the C1 controls such as
// U+009B, bidi overrides such as U+202E, other unprintable characters)
// written as a \u escape: the same JSON value, safe to show. Such
// characters can only be inside strings, where the escape means the same.
// (encoding/json itself escapes the C0 controls, and writes U+FFFD for
// invalid UTF-8.)
func JSON(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r < 0x7f, unicode.IsPrint(r):
			out = append(out, b[i:i+size]...)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, hi, lo)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	return out
}
