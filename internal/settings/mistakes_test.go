package settings

import (
	"slices"
	"strings"
	"testing"
)

// TestClosest: a misspelling names the nearest flag, and nothing is
// guessed for what is far from every flag.
func TestClosest(t *testing.T) {
	for name, want := range map[string]string{
		"nowiat":       "nowait",
		"endpoint":     "endpoints",
		"lock-nam":     "lock-name",
		"lockname":     "lock-name", // the alias, were it unknown
		"time-out":     "timeout",
		"verbos":       "verbose",
		"hepl":         "help",
		"lsit":         "list",
		"uesr":         "user",
		"LOCK-NAME":    "lock-name",
		"nolock":       "", // a mode: --lock would do the opposite
		"relock":       "",
		"zzz":          "",
		"unlcok":       "unlock",
		"kill-signals": "kill-signal",
		"x":            "",
	} {
		if got := closest(name); got != want {
			t.Errorf("closest(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestValueIsAFlag: only a flag of distlock's, as the next word after a
// flag that takes a value, is refused; "=" and "--" end the question.
func TestValueIsAFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		bad  bool
	}{
		{[]string{"--lock-name", "--nowait", "--", "true"}, true},
		{[]string{"-lock-name", "-nowait", "--", "true"}, true},
		{[]string{"--reason", "--timeout=5", "--lock-name=x"}, true},
		{[]string{"--reason", "-h"}, true},
		{[]string{"--lock-name=--nowait", "--", "true"}, false},
		{[]string{"--reason", "--no-such-flag", "--lock-name=x"}, false},
		{[]string{"--nowait", "--lock-name", "x", "--", "--reason", "--nowait"}, false},
		{[]string{"--lock-name", "x", "--reason", "-"}, false},
		{[]string{"--lock", "--lock-name", "x"}, false},
		{[]string{"--lock-name", "--", "make"}, true},
		{[]string{"--lockname", "--nowait", "--", "make"}, true},
		{[]string{"--reason", "-5", "--lock-name=x"}, false},
		{[]string{"--timeout", "-1", "--lock-name=x"}, false},
	} {
		_, err := valueIsAFlag(tc.args)
		if (err != nil) != tc.bad {
			t.Errorf("valueIsAFlag(%q) = %v, want an error: %v", tc.args, err, tc.bad)
		}
	}
}

// TestBoolWords: one set of words for a switch, from every source.
func TestBoolWords(t *testing.T) {
	for _, word := range []string{"true", "TRUE", "yes", "Yes", "on", "1", "t", "y"} {
		if b, err := parseBool(word); err != nil || !b {
			t.Errorf("parseBool(%q) = %v, %v; want true", word, b, err)
		}
	}
	for _, word := range []string{"false", "no", "OFF", "0", "f", "n"} {
		if b, err := parseBool(word); err != nil || b {
			t.Errorf("parseBool(%q) = %v, %v; want false", word, b, err)
		}
	}
	for _, word := range []string{"", "maybe", "2", "yess"} {
		if _, err := parseBool(word); err == nil {
			t.Errorf("parseBool(%q) accepted", word)
		}
	}
}

// TestKillSignalsOffered: completion offers only signals that end a
// process, and --kill-signal takes only those.
func TestKillSignalsOffered(t *testing.T) {
	names := signalNames()
	for _, stop := range []string{"STOP", "TSTP", "TTIN", "TTOU", "CONT", "CHLD", "WINCH", "URG"} {
		if slices.Contains(names, stop) {
			t.Errorf("completion offers %s", stop)
		}
		var v signalValue
		if err := v.Set(stop); err == nil || !strings.Contains(err.Error(), "does not end a process") {
			t.Errorf("--kill-signal %s: %v", stop, err)
		}
	}
	for _, ends := range []string{"TERM", "INT", "HUP", "QUIT", "KILL", "USR1"} {
		if !slices.Contains(names, ends) {
			t.Errorf("completion does not offer %s", ends)
		}
	}
}
