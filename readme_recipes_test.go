package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tinx/distlock/internal/settings"
)

// TestREADMERecipesParse holds the examples of the README and the pages
// under docs/ to today's flags: every distlock command line in their code
// blocks (shell, cron, systemd's
// ExecStart, Puppet, Salt, and the JSON arrays of a Dockerfile or a
// Kubernetes manifest) is accepted by distlock's own parser, so a flag
// renamed or a check added later cannot leave a recipe that fails as
// written.
func TestREADMERecipesParse(t *testing.T) {
	clearEnv(t)
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISTLOCK_CONFIG", empty)
	var calls [][]string
	for _, page := range docPages(t) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, readmeCalls(string(text))...)
	}
	seen := map[string]bool{}
	for _, args := range calls {
		for _, a := range args {
			name, _, _ := strings.Cut(a, "=")
			seen[name] = true
		}
		if _, err := settings.Parse(args); err != nil {
			t.Errorf("docs: distlock %s: %v", strings.Join(args, " "), err)
		}
	}
	// The recipes the docs promise, each found at least once.
	for _, flag := range []string{"--min-interval", "--min-hold", "--limit", "--nowait", "--conflict-exit-code", "--lock", "--unlock", "--status"} {
		if !seen[flag] {
			t.Errorf("found no command line in the docs with %s among %d", flag, len(calls))
		}
	}
}

var (
	// A JSON array whose first element is distlock: ENTRYPOINT, command.
	readmeJSONCall = regexp.MustCompile(`\["[^"]*distlock",.*\]`)
	// distlock as a word, followed by a flag.
	readmeShellCall = regexp.MustCompile(`(^|[\s'/(])distlock (--.*)$`)
)

// readmeCalls returns the arguments of every distlock command line in the
// README's fenced code blocks. A call whose arguments end with "--" (the
// command comes from elsewhere, as a Dockerfile's CMD) gets "true".
func readmeCalls(readme string) [][]string {
	var calls [][]string
	inBlock := false
	for _, line := range strings.Split(readme, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock || strings.Contains(line, "etcdctl ") { // etcdctl's role distlock
			continue
		}
		var args []string
		if m := readmeJSONCall.FindString(line); m != "" {
			if err := json.Unmarshal([]byte(m), &args); err != nil || len(args) == 0 {
				continue
			}
			args = args[1:]
		} else if m := readmeShellCall.FindStringSubmatch(line); m != nil {
			args = shellWords(m[2])
		} else {
			continue
		}
		if len(args) > 0 && args[len(args)-1] == "--" {
			args = append(args, "true")
		}
		calls = append(calls, args)
	}
	return calls
}

// shellWords splits s as sh would split a simple command, well enough for
// the README: quotes group, and an unquoted ' (the end of Puppet's
// string), #, >, |, ;, & or ) ends the command.
func shellWords(s string) []string {
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	for _, c := range s {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(c)
		case c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case strings.ContainsRune("'#>|;&)", c):
			if inWord {
				words = append(words, word.String())
			}
			return words
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}
