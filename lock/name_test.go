package lock

import (
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"db_upgrade", "db_upgrade"},
		{"foo", "foo"},
		{"foo/bar", "foo%2Fbar"},
		{"foobar", "foobar"},
		{"a b", "a%20b"},
		{"100%", "100%25"},
		{"v1.2-rc_3", "v1.2-rc_3"},
		{"ü", "%C3%BC"},
		{"..", ".."},
	}
	for _, tt := range tests {
		got := Escape(tt.in)
		if got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := Unescape(got)
		if err != nil || back != tt.in {
			t.Errorf("Unescape(%q) = %q, %v; want %q", got, back, err, tt.in)
		}
		if strings.Contains(got, "/") {
			t.Errorf("Escape(%q) = %q contains a slash", tt.in, got)
		}
	}
}

func TestEscapeIsInjective(t *testing.T) {
	// Names that differ only in what escaping could fold together.
	names := []string{"foo", "foo/bar", "foobar", "foo%2Fbar", "foo%2fbar", "foo bar", "foo+bar", "Foo"}
	seen := map[string]string{}
	for _, n := range names {
		e := Escape(n)
		if other, ok := seen[e]; ok {
			t.Errorf("%q and %q both escape to %q", n, other, e)
		}
		seen[e] = n
	}
}

func TestUnescapeRejectsForeignSegments(t *testing.T) {
	for _, seg := range []string{"a/b", "%2", "%zz", "a b", "%2f"} {
		if _, err := Unescape(seg); err == nil {
			t.Errorf("Unescape(%q) succeeded, want an error", seg)
		}
	}
}

func TestValidateName(t *testing.T) {
	good := []string{"x", "db upgrade", "a/b/c", "ünïcödé", "caf\u00e9", "tab-free: yes!", strings.Repeat("n", 255)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	// "cafe\u0301" is café in NFD: another spelling, so another lock.
	bad := []string{"", strings.Repeat("n", 256), "tab\there", "new\nline", "\x00", "bad\xffutf8", "esc\x1b", "cafe\u0301", "\u212b"}
	for _, n := range bad {
		if err := ValidateName(n); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", n)
		}
	}
}

// TestValidateNameShowsNFC: a name in another normal form is refused with
// the NFC spelling, which is what to type instead.
func TestValidateNameShowsNFC(t *testing.T) {
	err := ValidateName("cafe\u0301")
	if err == nil || !strings.Contains(err.Error(), "NFC") || !strings.Contains(err.Error(), `"caf\u00e9"`) {
		t.Errorf("ValidateName(NFD café) = %v; want it to name NFC and show \"caf\u00e9\"", err)
	}
}
