package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/tinx/distlock/internal/report"
)

// TestDevelopmentMap: docs/development.md maps the files (its first code
// block). Every Go file of the command and every package directory has
// its line there, and every path named there exists.
func TestDevelopmentMap(t *testing.T) {
	readme, err := os.ReadFile("docs/development.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, _ := strings.Cut(string(readme), "```\n")
	block, _, ok := strings.Cut(block, "```")
	if !ok {
		t.Fatal("docs/development.md has no map of the files")
	}
	mapped := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^(\S+)`).FindAllStringSubmatch(block, -1) {
		name := strings.TrimSuffix(m[1], "/")
		mapped[name] = true
		if _, err := os.Stat(name); err != nil {
			t.Errorf("docs/development.md's map of the files names %s: %v", m[1], err)
		}
	}

	var want []string
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			want = append(want, f)
		}
	}
	for _, pattern := range []string{"*/*.go", "*/*/*.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			dir := filepath.Dir(f)
			if !strings.HasPrefix(dir, "testdata") && !strings.HasPrefix(dir, "internal/bench/") && !strings.HasPrefix(dir, "internal/torture/") {
				want = append(want, dir)
			}
		}
	}
	for _, name := range want {
		if !mapped[name] {
			t.Errorf("docs/development.md's map of the files has no line for %s", name)
		}
	}
}

// TestExitStatusesInREADME: README.md's table of exit statuses has a row
// for each status --help and the man page list, and no other.
func TestExitStatusesInREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Exit status\n")
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| ") {
			rows = append(rows, strings.TrimSpace(strings.Split(line, "|")[1]))
		} else if len(rows) > 0 {
			break
		}
	}
	var want []string
	for _, e := range report.ExitStatuses() {
		want = append(want, e.Status)
	}
	slices.Sort(want)
	if len(rows) == 0 || rows[0] != "status" {
		t.Fatalf("README.md's Exit status section has no table with a column \"status\"")
	}
	rows = rows[2:] // after the header and its --- line
	slices.Sort(rows)
	if !slices.Equal(rows, want) {
		t.Errorf("README.md's exit statuses %q, --help's %q", rows, want)
	}
}

// docPages are the README and the pages under docs/, the text people read.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages under docs/: %v", err)
	}
	return append([]string{"README.md"}, pages...)
}

// TestDocsLinks: every link from one page to a file of the repository, or
// to a section of a page, leads somewhere: the file exists, and the
// section is one of its headings (as GitHub names its anchors). Text
// moves between pages; its links must move with it.
func TestDocsLinks(t *testing.T) {
	anchors := map[string]map[string]bool{}
	headings := func(page string) map[string]bool {
		if a, ok := anchors[page]; ok {
			return a
		}
		a := map[string]bool{}
		text, _ := os.ReadFile(page)
		inBlock := false
		for _, line := range strings.Split(string(text), "\n") {
			if strings.HasPrefix(line, "```") {
				inBlock = !inBlock
			}
			if title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " "); ok && !inBlock && strings.HasPrefix(line, "#") {
				a[githubAnchor(title)] = true
			}
		}
		anchors[page] = a
		return a
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, page := range docPages(t) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(text), -1) {
			target := m[1]
			if regexp.MustCompile(`^[a-z]+:`).MatchString(target) {
				continue // the web
			}
			path, frag, _ := strings.Cut(target, "#")
			file := page
			if path != "" {
				file = filepath.Join(filepath.Dir(page), path)
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s links to %s: %v", page, target, err)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(file, ".md") && !headings(file)[frag] {
				t.Errorf("%s links to %s: %s has no such section", page, target, file)
			}
		}
	}
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces
// as hyphens, and no punctuation but hyphens and underscores.
func githubAnchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(title)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestREADMEIsAFrontPage: the README stays a front page; the rest lives
// under docs/.
func TestREADMEIsAFrontPage(t *testing.T) {
	text, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(text), "\n"); n > 400 {
		t.Errorf("README.md has %d lines; a front page has at most 400: move the rest under docs/", n)
	}
}

// referencePage is where the flags, the environment, the config file and
// the events are described, for people.
const referencePage = "docs/reference.md"

// clearEnv keeps the DISTLOCK_ and ETCDCTL_ variables of the shell the
// tests run from away from the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "DISTLOCK_") || strings.HasPrefix(name, "ETCDCTL_") {
			t.Setenv(name, "")
		}
	}
}
