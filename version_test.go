package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionText: what --version prints for each kind of build.
func TestVersionText(t *testing.T) {
	platform := "built with go1.26.8 for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	checkout := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-11-20T10:11:12Z"},
	}
	tests := []struct {
		name     string
		override string
		info     *debug.BuildInfo
		want     string
	}{
		{"go install of a module version", "",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tinx/distlock", Version: "v1.2.3"}},
			"distlock v1.2.3\n" + platform},
		{"go build in a clean checkout", "",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261120101112-0123456789ab"},
				Settings: append(checkout, debug.BuildSetting{Key: "vcs.modified", Value: "false"})},
			"distlock v0.0.0-20261120101112-0123456789ab\n" +
				"revision 0123456789abcdef0123456789abcdef01234567, committed 2026-11-20T10:11:12Z\n" + platform},
		{"go build in a checkout with changes", "",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
				Settings: append(checkout, debug.BuildSetting{Key: "vcs.modified", Value: "true"})},
			"distlock (devel)\n" +
				"revision 0123456789abcdef0123456789abcdef01234567, committed 2026-11-20T10:11:12Z, with uncommitted changes\n" + platform},
		{"go build without version control", "",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"distlock (devel)\nrevision unknown: built outside a git checkout, or with -buildvcs=false\n" + platform},
		{"a release build's -X main.version", "v2.0.0",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v2.0.0-rc.1"},
				Settings: append(checkout, debug.BuildSetting{Key: "vcs.modified", Value: "false"})},
			"distlock v2.0.0\n" +
				"revision 0123456789abcdef0123456789abcdef01234567, committed 2026-11-20T10:11:12Z\n" + platform},
		{"no build information", "", nil,
			"distlock (devel)\nrevision unknown: built outside a git checkout, or with -buildvcs=false\n" +
				"built with " + runtime.Version() + " for " + runtime.GOOS + "/" + runtime.GOARCH + "\n"},
	}
	for _, tt := range tests {
		if got := versionText(tt.override, tt.info); got != tt.want {
			t.Errorf("%s:\ngot:\n%swant:\n%s", tt.name, got, tt.want)
		}
	}
}

// TestVersionBuilt builds distlock from this checkout as a user would and
// checks that --version names HEAD, the Go version and the platform.
func TestVersionBuilt(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build with")
	}
	bin := filepath.Join(t.TempDir(), "distlock")
	// -buildvcs=true, whatever GOFLAGS says: this is the build that must
	// record the revision.
	build := exec.Command(goCmd, "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("distlock --version: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if !strings.HasPrefix(lines[0], "distlock ") {
		t.Errorf("the first line is %q, want distlock VERSION", lines[0])
	}
	if want := "built with " + runtime.Version() + " for " + runtime.GOOS + "/" + runtime.GOARCH; lines[len(lines)-1] != want {
		t.Errorf("the last line is %q, want %q", lines[len(lines)-1], want)
	}

	git := func(args ...string) string {
		out, err := exec.Command("git", args...).Output()
		if err != nil {
			t.Skipf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git: the revision is not checked")
	}
	// In a linked worktree .git is a file, which the go command does not
	// take for a repository (golang.org/issue/58218): nothing is recorded.
	if info, err := os.Stat(".git"); err != nil || !info.IsDir() {
		t.Skipf("not a git repository's main checkout, where go records no revision; --version says:\n%s", out)
	}
	head := git("rev-parse", "HEAD")
	want := "revision " + head + ", committed "
	if git("status", "--porcelain") != "" {
		if !strings.HasSuffix(lines[1], ", with uncommitted changes") {
			t.Errorf("the tree has changes, but --version does not say so: %q", lines[1])
		}
	} else if strings.Contains(lines[1], "uncommitted") {
		t.Errorf("the tree is clean, but --version says %q", lines[1])
	}
	if len(lines) != 3 || !strings.HasPrefix(lines[1], want) {
		t.Errorf("distlock --version says:\n%swant a second line starting %q", out, want)
	}
}
