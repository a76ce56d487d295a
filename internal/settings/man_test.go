package settings

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// manPagePath is the man page, written from the settings table by go
// generate (in the module's root: see main.go) and committed, for the
// packages to install.
const manPagePath = "../../docs/distlock.1"

// TestManPage holds docs/distlock.1 to the settings table: it fails while
// the committed page differs from what the table gives.
func TestManPage(t *testing.T) {
	page := ManPage()
	committed, err := os.ReadFile(manPagePath)
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != page {
		t.Errorf("%s is not what the settings table gives; rewrite it with: go generate (in the module's root)", manPagePath)
	}
}

// TestManPageRenders runs the page through the formatters that are
// installed: neither may warn.
func TestManPageRenders(t *testing.T) {
	checks := [][]string{
		{"mandoc", "-T", "lint", "-W", "warning", manPagePath},
		{"groff", "-man", "-Tutf8", "-ww", "-z", manPagePath},
	}
	ran := 0
	for _, args := range checks {
		if _, err := exec.LookPath(args[0]); err != nil {
			continue
		}
		ran++
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if ran == 0 {
		t.Skip("neither mandoc nor groff is installed")
	}
	// What a reader sees: every flag, and the sections.
	if _, err := exec.LookPath("groff"); err == nil {
		out, err := exec.Command("groff", "-man", "-Tutf8", "-P-c", "-P-b", "-P-u", manPagePath).Output()
		if err != nil {
			t.Fatal(err)
		}
		text := string(out)
		for _, s := range completedFlags() {
			if !strings.Contains(text, "--"+s.name) {
				t.Errorf("the rendered page never shows --%s", s.name)
			}
		}
		for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"} {
			if !strings.Contains(text, "\n"+section+"\n") {
				t.Errorf("the rendered page has no section %s", section)
			}
		}
	}
}
