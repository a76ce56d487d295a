package settings

import (
	"fmt"
	"regexp"
	"strings"
)

// The mistakes a person makes on a command line, caught before anyone
// waits: a flag's value that is another flag, a misspelled flag or key,
// and the flag package's messages in distlock's spelling (two dashes).

// closest is the flag nearest to name, for "did you mean", or "" when
// none is near enough: at most two edits away (one for a short name).
func closest(name string) string {
	best, bestDist := "", 2
	if len(name) <= 4 {
		bestDist = 1
	}
	for _, s := range completedFlags() {
		if d := editDistance(name, s.name); d <= bestDist && (best == "" || d < bestDist) {
			best, bestDist = s.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (flag names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean is ": did you mean --NAME?" for the setting nearest name, or
// "".
func didYouMean(name string) string {
	if c := closest(name); c != "" {
		return fmt.Sprintf("; did you mean --%s?", c)
	}
	return ""
}

// didYouMeanKey is didYouMean for a key of the config file, which names
// a setting without dashes.
func didYouMeanKey(key string) string {
	c := closest(key)
	if s, ok := settingNamed(c); c == "" || !ok || s.from&fromFile == 0 {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", c)
}

// The flag package's messages, which spell a flag with one dash.
var (
	flagUnknown   = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	flagOneDash   = regexp.MustCompile(`(flag|for) -([a-z])`)
	flagNeedsArgs = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// commandLineError is the flag package's error err in distlock's words:
// flags with two dashes, the nearest flag to an unknown one, and --help.
func commandLineError(err error) error {
	msg := err.Error()
	if m := flagUnknown.FindStringSubmatch(msg); m != nil {
		return usagef("unknown flag --%s%s (distlock --help lists them)", m[1], didYouMean(m[1]))
	}
	if m := flagNeedsArgs.FindStringSubmatch(msg); m != nil {
		return usagef("flag --%s needs a value", m[1])
	}
	return usagef("%s", flagOneDash.ReplaceAllString(msg, "$1 --$2"))
}

// valueIsAFlag catches a flag that takes a value given as the next word,
// when that word is one of distlock's own flags: "--lock-name --nowait"
// takes a lock named --nowait, and the --nowait that was meant is gone.
// A value that really starts with dashes is written with "=".
func valueIsAFlag(args []string) error {
	for i := 0; i < len(args)-1; i++ {
		arg := args[i]
		if arg == "--" || !strings.HasPrefix(arg, "-") || arg == "-" {
			return nil // the command starts here: the flag package stops too
		}
		name := strings.TrimLeft(arg, "-")
		if strings.Contains(name, "=") {
			continue
		}
		s, ok := settingNamed(name)
		if !ok || !takesValue(s) {
			continue
		}
		next := args[i+1]
		if looksLikeFlag(next) {
			return usagef("--%s got %q as its value, which is one of distlock's flags; if that is the value meant, write --%s=%s",
				s.name, next, s.name, next)
		}
		i++ // the value
	}
	return nil
}

// looksLikeFlag says whether word is one of distlock's flags, with one
// dash or two and a value after = or not.
func looksLikeFlag(word string) bool {
	if !strings.HasPrefix(word, "-") {
		return false
	}
	name, _, _ := strings.Cut(strings.TrimLeft(word, "-"), "=")
	if name == "help" || name == "h" {
		return true
	}
	return isSetting(name)
}
