package lock

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The seeds below are the names escaping must get right; the corpus under
// testdata/fuzz holds more (bytes escaping could fold together, names at
// the length limit) and whatever fuzzing found.

// FuzzEscape: every name escapes to one path segment of kept bytes and %XX,
// which Unescape turns back into the name; and ValidateName answers for any
// bytes, with a one-line error.
func FuzzEscape(f *testing.F) {
	for _, name := range []string{"", "x", "foo", "foo/bar", "foo%2Fbar", ".", "..", "/", "a b", "ü", "\x00", "\xff", "!last-run", "x!stopping:1"} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		seg := Escape(name)
		if err := checkSegment(seg); err != "" {
			t.Fatalf("Escape(%q) = %q: %s", name, seg, err)
		}
		if (seg == "") != (name == "") {
			t.Fatalf("Escape(%q) = %q", name, seg)
		}
		back, err := Unescape(seg)
		if err != nil || back != name {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", name, back, err)
		}

		err = ValidateName(name)
		if err != nil {
			checkOneLine(t, "ValidateName", err)
			return
		}
		if len(name) < 1 || len(name) > MaxNameLen || !utf8.ValidString(name) {
			t.Fatalf("ValidateName accepted %q (%d bytes)", name, len(name))
		}
		for _, r := range name {
			if !unicode.IsPrint(r) {
				t.Fatalf("ValidateName accepted %q, with the unprintable %q", name, r)
			}
		}
	})
}

// FuzzEscapeTwoNames: two different names never share their keys. Neither
// lock's prefix is a prefix of the other's, and no lock's record keys
// (last run, stopping records) fall under another lock's prefix.
func FuzzEscapeTwoNames(f *testing.F) {
	pairs := [][2]string{
		{"foo", "foo/bar"}, {"foo", "foobar"}, {"foo/bar", "foo%2Fbar"}, {"foo%2Fbar", "foo%2fbar"},
		{"a b", "a+b"}, {"Foo", "foo"}, {"x", "x/"}, {"", "/"}, {".", ".."}, {"x!last-run", "x"},
	}
	for _, p := range pairs {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, n, m string) {
		if n == m {
			return
		}
		const realm = "/distlock/"
		pn, pm := Prefix(realm, n), Prefix(realm, m)
		if Escape(n) == Escape(m) {
			t.Fatalf("%q and %q both escape to %q", n, m, Escape(n))
		}
		if strings.HasPrefix(pm, pn) || strings.HasPrefix(pn, pm) {
			t.Fatalf("the prefixes of %q and %q nest: %q, %q", n, m, pn, pm)
		}
		for _, key := range []string{LastRunKey(realm, n), StoppingPrefix(realm, n)} {
			if strings.HasPrefix(key, pm) || strings.HasPrefix(key, pn) {
				t.Fatalf("record key %q of %q is under a lock's prefix (%q or %q)", key, n, pn, pm)
			}
		}
	})
}

// FuzzUnescape: Unescape accepts exactly what Escape writes. A segment it
// accepts escapes back to itself, so two segments never name one lock.
func FuzzUnescape(f *testing.F) {
	for _, seg := range []string{"", "foo", "foo%2Fbar", "foo%2fbar", "%", "%2", "%zz", "%41", "a/b", "a b", "%C3%BC", "%00", "%FF"} {
		f.Add(seg)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		name, err := Unescape(seg)
		if err != nil {
			checkOneLine(t, "Unescape", err)
			return
		}
		if again := Escape(name); again != seg {
			t.Fatalf("Unescape(%q) = %q, which escapes to %q", seg, name, again)
		}
	})
}

// checkSegment says what is wrong with an escaped name, or "": it must be
// kept bytes and %XX (upper-case hex) only, so it holds no "/", and none
// of the "!" and ":" that the record keys beside a lock's prefix use.
func checkSegment(seg string) string {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case isKept(c):
		case c == '%' && i+2 < len(seg) && isUpperHex(seg[i+1]) && isUpperHex(seg[i+2]):
			i += 2
		default:
			return fmt.Sprintf("byte %q at %d is neither kept nor an escape", c, i)
		}
	}
	return ""
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// checkOneLine fails t if err's message is not one line: empty, more
// than one, or with blanks at either end.
func checkOneLine(t *testing.T, what string, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || strings.ContainsAny(msg, "\n\r") || strings.TrimSpace(msg) != msg {
		t.Fatalf("%s: the error is not one line: %q", what, msg)
	}
}
