package main

import (
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	const a, b = "/t/mutex/694d", "/t/mutex2/694d"
	tests := []struct {
		name, lock       string
		token, key       string
		tokens, keys     string
		want, errContain string
	}{
		{"one lock", "mutex", "7", a, "7", a, "7", ""},
		{"a set", "mutex+mutex2", "7", a, "7 9", a + "\n" + b, "7,9", ""},
		{"a token short", "mutex+mutex2", "7", a, "7", a + "\n" + b, "", "2 lock(s)"},
		{"a key short", "mutex+mutex2", "7", a, "7 9", a, "", "2 lock(s)"},
		{"no variables", "mutex", "", "", "", "", "", "1 lock(s)"},
		{"another tool's lock", "-", "", "", "", "", "", ""},
		{"no number", "mutex", "x", a, "x", a, "", "no fencing token"},
		{"the first token differs", "mutex+mutex2", "9", a, "7 9", a + "\n" + b, "", "DISTLOCK_FENCING_TOKEN="},
		{"the first key differs", "mutex+mutex2", "7", b, "7 9", a + "\n" + b, "", "DISTLOCK_HELD_KEY="},
		{"two leases", "mutex+mutex2", "7", a, "7 9", a + "\n/t/mutex2/694e", "", "one lease"},
		{"out of order", "mutex2+mutex", "7", b, "7 9", b + "\n" + a, "", "canonical order"},
		{"the same lock twice", "mutex+mutex", "7", a, "7 9", a + "\n" + a, "", "canonical order"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{
				"DISTLOCK_FENCING_TOKEN": tc.token, "DISTLOCK_HELD_KEY": tc.key,
				"DISTLOCK_FENCING_TOKENS": tc.tokens, "DISTLOCK_HELD_KEYS": tc.keys,
			}
			got, err := tokens(tc.lock, func(k string) string { return env[k] })
			if tc.errContain == "" && (err != nil || got != tc.want) {
				t.Errorf("tokens: %q, %v; want %q", got, err, tc.want)
			}
			if tc.errContain != "" && (err == nil || !strings.Contains(err.Error(), tc.errContain)) {
				t.Errorf("tokens: %q, %v; want an error that says %q", got, err, tc.errContain)
			}
		})
	}
}
