package untrusted

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestQuoteWordCut(t *testing.T) {
	for _, tc := range []struct {
		in, quote, word, cut string
		max                  int
	}{
		{in: "web1", quote: `"web1"`, word: "web1", cut: "web1", max: 10},
		{in: "", quote: `""`, word: `""`, cut: "", max: 10},
		{in: "/distlock/db/694d01", quote: `"/distlock/db/694d01"`, word: "/distlock/db/694d01", cut: "/distlock/db/694d01", max: 100},
		{in: "web1, pid 1", quote: `"web1, pid 1"`, word: `"web1, pid 1"`, cut: "web1, pid 1", max: 100},
		{in: "\x1b[31mred\x1b]8;;http://x\a", quote: `"\x1b[31mred\x1b]8;;http://x\a"`, word: `"\x1b[31mred\x1b]8;;http://x\a"`, cut: "\x1b[31mred\x1b]8;;http://x\a", max: 100},
		{in: "a\u009b2Jb\b\r", quote: `"a\u009b2Jb\b\r"`, word: `"a\u009b2Jb\b\r"`, cut: "a\u009b2Jb\b\r", max: 100},
		{in: "abc\u202etxt.exe", quote: `"abc\u202etxt.exe"`, word: `"abc\u202etxt.exe"`, cut: "abc\u202etxt.exe", max: 100},
		{in: "bad\xff\xfe", quote: `"bad\xff\xfe"`, word: `"bad\xff\xfe"`, cut: "bad\xff\xfe", max: 100},
		{in: "ünï", quote: `"ünï"`, word: `"ünï"`, cut: "ünï", max: 100},
		{in: "abcdefgh", quote: `"abcd"…(+4 bytes)`, word: `"abcd"…(+4 bytes)`, cut: "abcd…(+4 bytes)", max: 4},
		// Never inside a UTF-8 sequence: "é" is two bytes.
		{in: "aébc", quote: `"a"…(+4 bytes)`, word: `"a"…(+4 bytes)`, cut: "a…(+4 bytes)", max: 2},
		{in: "\xff\xff\xff\xff\xff\xff", quote: `"\xff\xff"…(+4 bytes)`, word: `"\xff\xff"…(+4 bytes)`, cut: "\xff\xff…(+4 bytes)", max: 2},
	} {
		if got := Quote(tc.in, tc.max); got != tc.quote {
			t.Errorf("Quote(%q, %d) = %s, want %s", tc.in, tc.max, got, tc.quote)
		}
		if got := Word(tc.in, tc.max); got != tc.word {
			t.Errorf("Word(%q, %d) = %s, want %s", tc.in, tc.max, got, tc.word)
		}
		if got := Cut(tc.in, tc.max); got != tc.cut {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.cut)
		}
	}
}

// TestJSON: what encoding/json leaves raw and a terminal could act on is
// escaped, and the JSON means the same.
func TestJSON(t *testing.T) {
	in := map[string]string{"r": "a\x1b[2J\u009b\u202e\x7f\U000e0001ok ünï\xff"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got := JSON(b)
	want := `{"r":"a\u001b[2J\u009b\u202e\u007f\udb40\udc01ok ünï\ufffd"}`
	if string(got) != want {
		t.Errorf("JSON(%s) = %s, want %s", b, got, want)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back["r"] != strings.ToValidUTF8(in["r"], "\ufffd") {
		t.Errorf("read back %q, want %q", back["r"], in["r"])
	}
}

// TestLine: one line, nothing a terminal acts on, the rest as it is.
func TestLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain words, tabs\tand ü…", "plain words, tabs\tand ü…"},
		{"two\nlines\r", `two\nlines\r`},
		{"\x1b[31mred\x7f", `\x1b[31mred\x7f`},
		{"c1 \u009b2J, bidi \u202e", `c1 \u009b2J, bidi \u202e`},
		{"not utf-8 \xff\xfe", `not utf-8 \xff\xfe`},
		{`a \ backslash stays`, `a \ backslash stays`},
	} {
		if got := Line(tc.in); got != tc.want {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
