package lock

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxNameLen is the longest lock name, in bytes.
const MaxNameLen = 255

// ValidateName reports whether name can name a lock: 1 to MaxNameLen bytes of
// printable UTF-8 in Unicode NFC.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("lock name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("lock name is %d bytes long, the limit is %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("lock name is not valid UTF-8")
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("lock name contains the unprintable character %q", r)
		}
	}
	if !norm.NFC.IsNormalString(name) {
		// Two spellings of one text would be two locks. Normalising
		// here would move the keys of an older distlock's lock.
		nfc := norm.NFC.String(name)
		return fmt.Errorf("lock name %+q is not in Unicode NFC, and another spelling of the same text would be another lock; in NFC it is %q (%+q)", name, nfc, nfc)
	}
	return nil
}

// Escape turns a lock name into one path segment of an etcd key. It keeps
// A-Z, a-z, 0-9, '.', '_' and '-' and writes every other byte as %XX, so no
// name can reach into another name's keys: "foo", "foo/bar" and "foobar"
// become "foo", "foo%2Fbar" and "foobar".
func Escape(name string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isKept(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// Unescape reverses Escape. It returns an error for a segment Escape could
// not have written.
func Unescape(seg string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '%' {
			if !isKept(c) {
				return "", fmt.Errorf("unexpected byte %q in escaped lock name", c)
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(seg) {
			return "", errors.New("truncated escape in lock name")
		}
		hi, ok1 := unhex(seg[i+1])
		lo, ok2 := unhex(seg[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape %q in lock name", seg[i:i+3])
		}
		if isKept(hi<<4 | lo) {
			// Escape writes it as it is: the segment names no lock.
			return "", fmt.Errorf("needless escape %q in lock name", seg[i:i+3])
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func isKept(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
