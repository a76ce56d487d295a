package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDevelopmentMap: README.md's Development section maps the files. Every
// Go file of the command and every package directory has its line there,
// and every path named there exists.
func TestDevelopmentMap(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Development\n")
	_, block, _ := strings.Cut(section, "```\n")
	block, _, ok := strings.Cut(block, "```")
	if !ok {
		t.Fatal("README.md's Development section has no map of the files")
	}
	mapped := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^(\S+)`).FindAllStringSubmatch(block, -1) {
		name := strings.TrimSuffix(m[1], "/")
		mapped[name] = true
		if _, err := os.Stat(name); err != nil {
			t.Errorf("README.md's map of the files names %s: %v", m[1], err)
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
			t.Errorf("README.md's map of the files (Development) has no line for %s", name)
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
	_, section, _ := strings.Cut(string(readme), "\n### Exit status\n")
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| ") {
			rows = append(rows, strings.TrimSpace(strings.Split(line, "|")[1]))
		} else if len(rows) > 0 {
			break
		}
	}
	var want []string
	for _, e := range exitStatuses {
		want = append(want, e.status)
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
