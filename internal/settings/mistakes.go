package settings

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// The mistakes a person makes on a command line, caught before anyone
// waits: a flag's value that is another flag, a misspelled flag or key,
// and the flag package's messages in distlock's spelling (two dashes).

// closest is the flag nearest to name, for "did you mean", or "" when
// none is near enough: at most two edits away (one for a short name, and
// for a mode, where a wrong guess would do the opposite of what was
// meant: --nolock is not --lock). Case does not count, a swap of two
// letters is one edit, and the original tool's names lead to today's.
func closest(name string) string {
	name = strings.ToLower(name)
	best, bestDist := "", 3
	for _, s := range completedFlags() {
		limit := 2
		if len(name) <= 4 || s.mode {
			limit = 1
		}
		for _, candidate := range []string{s.name, s.alias} {
			if len(candidate) < 2 { // -c is no guess for a one-letter typo
				continue
			}
			if d := editDistance(name, candidate); d <= limit && d < bestDist {
				best, bestDist = s.name, d
			}
		}
	}
	return best
}

// editDistance is the edit distance between a and b, in bytes (flag
// names are ASCII): insertions, deletions, substitutions, and swaps of
// two neighbours, one each.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
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

// flagMessages are the flag package's messages, which spell a flag with
// one dash; compiled when one is met, not by every run's start.
var flagMessages = sync.OnceValue(func() (m struct{ unknown, oneDash, needsArgs *regexp.Regexp }) {
	m.unknown = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	m.oneDash = regexp.MustCompile(`^(invalid (?:boolean )?value "(?:[^"\\]|\\.)*" for (?:flag )?)-+([a-z][a-z0-9-]*):`)
	m.needsArgs = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	return m
})

// commandLineError is the flag package's error err in distlock's words:
// flags with two dashes, the nearest flag to an unknown one, and --help.
func commandLineError(err error) error {
	msg, re := err.Error(), flagMessages()
	if m := re.unknown.FindStringSubmatch(msg); m != nil {
		return usagef("unknown flag --%s%s (distlock --help lists them)", m[1], didYouMean(m[1]))
	}
	if m := re.needsArgs.FindStringSubmatch(msg); m != nil {
		return usagef("flag %s needs a value", spelled(m[1]))
	}
	return usagef("%s", re.oneDash.ReplaceAllString(msg, "${1}--${2}:"))
}

// valueIsAFlag catches a flag that takes a value given as the next word,
// when that word is one of distlock's own flags, or the -- that starts
// the command: "--lock-name --nowait" takes a lock named --nowait, and
// the --nowait that was meant is gone; "--lock-name $EMPTY -- make" takes
// a lock named --. A value that really starts with dashes is written
// with "=". It returns the index of the flag in args, for the caller to
// read no further, or -1.
func valueIsAFlag(args []string) (int, error) {
	for i := 0; i < len(args)-1; i++ {
		arg := args[i]
		if arg == "--" || !strings.HasPrefix(arg, "-") || arg == "-" {
			return -1, nil // the command starts here: the flag package stops too
		}
		name := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		s, ok := settingNamed(name)
		if !ok || !takesValue(s) {
			continue
		}
		next := args[i+1]
		switch {
		case next == "--":
			return i, usagef("%s has no value: the word after it is the -- that starts the command", spelled(s.name))
		case looksLikeFlag(next) && s.secret:
			return i, usagef("%s got one of distlock's flags as its value; if that is the value meant, write %s=VALUE", spelled(s.name), spelled(s.name))
		case looksLikeFlag(next):
			return i, usagef("%s got %q as its value, which is one of distlock's flags; if that is the value meant, write %s=%s",
				spelled(s.name), next, spelled(s.name), next)
		}
		i++ // the value
	}
	return -1, nil
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
