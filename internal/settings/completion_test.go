package settings

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// completionFile writes what distlock --completion shell prints to a file
// and returns its path.
func completionFile(t *testing.T, shell string) string {
	t.Helper()
	r, err := Parse([]string{"--completion", shell})
	if err != nil || r.Mode != ModeCompletion {
		t.Fatalf("--completion %s: %v, mode %q", shell, err, r.Mode)
	}
	path := filepath.Join(t.TempDir(), "distlock."+shell)
	if err := os.WriteFile(path, []byte(Completion(r.Shell)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCompletionNamesEveryFlag: each script offers every flag of the
// table, and every fixed set of values.
func TestCompletionNamesEveryFlag(t *testing.T) {
	flagIn := map[string]string{
		"bash": `['| ]%s[ '|)]`, // in the list of flags and in the case patterns
		"zsh":  `[' )]%s=?\[`,   // an _arguments spec
	}
	for _, shell := range completionShells {
		script := completionScript(shell)
		for _, s := range completedFlags() {
			want := fmt.Sprintf(flagIn[shell], regexp.QuoteMeta(spelled(s.name)))
			switch {
			case shell == "fish" && len(s.name) == 1:
				want = ` -s ` + s.name + `( |$)` // a complete -s
			case shell == "fish":
				want = ` -l ` + regexp.QuoteMeta(s.name) + `( |$)` // a complete -l
			}
			if !regexp.MustCompile(want).MatchString(script) {
				t.Errorf("the %s script never offers %s (no %s)", shell, spelled(s.name), want)
			}
			if len(s.values) > 0 && !strings.Contains(script, strings.Join(s.values, " ")) {
				t.Errorf("the %s script never offers the values of --%s", shell, s.name)
			}
		}
		if strings.Contains(script, "lockname") {
			t.Errorf("the %s script offers the original tool's --lockname", shell)
		}
		// -c is one letter: one dash.
		if strings.Contains(script, "--c ") || strings.Contains(script, "--c[") || strings.Contains(script, "-l c ") {
			t.Errorf("the %s script offers -c as --c", shell)
		}
	}
}

// shellOrSkip returns the path of the shell, or skips the test.
func shellOrSkip(t *testing.T, shell string) string {
	t.Helper()
	path, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("%s is not installed", shell)
	}
	return path
}

// TestBashCompletion loads the script in bash and calls its function as
// bash would on TAB.
func TestBashCompletion(t *testing.T) {
	bash := shellOrSkip(t, "bash")
	script := completionFile(t, "bash")
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.pem")
	if err := os.WriteFile(certs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words []string
		want  []string // all of these, and nothing else if exact
		exact bool
	}{
		{[]string{"distlock", "--lock-n"}, []string{"--lock-name"}, true},
		{[]string{"distlock", "--kill-signal", ""}, []string{"TERM", "INT", "KILL"}, false},
		{[]string{"distlock", "--lock-name", "x", "--kill-signal", "TE"}, []string{"TERM"}, true},
		{[]string{"distlock", "--kill-signal", "=", "TE"}, []string{"TERM"}, true}, // --kill-signal=TE
		{[]string{"distlock", "--completion", ""}, []string{"bash", "zsh", "fish"}, true},
		{[]string{"distlock", "--cacert", filepath.Join(dir, "cer")}, []string{certs}, true},
		{[]string{"distlock", "--lock-name", ""}, nil, true},
		{[]string{"distlock", "--lock-name", "x", "--min-i"}, []string{"--min-interval"}, true},
		// The command and its arguments, after --: no more flags of ours.
		{[]string{"distlock", "--lock-name", "x", "--", "ech"}, []string{"echo"}, false},
		{[]string{"distlock", "--lock-name", "x", "--", "ls", filepath.Join(dir, "cer")}, []string{certs}, true},
		{[]string{"distlock", "--lock-name", "x", "--", "--lock-n"}, nil, true},
	}
	for _, tt := range tests {
		got := bashComplete(t, bash, script, dir, tt.words)
		missing := slices.ContainsFunc(tt.want, func(w string) bool { return !slices.Contains(got, w) })
		if missing || (tt.exact && len(got) != len(tt.want)) {
			t.Errorf("%q<TAB> offers %q, want %q", tt.words, got, tt.want)
		}
	}
}

// bashComplete loads script into bash in dir and calls its function with
// the cursor at the end of the last of words, as bash would on TAB, and
// returns what it offers.
func bashComplete(t *testing.T, bash, script, dir string, words []string) []string {
	t.Helper()
	const driver = `
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
_distlock
printf '%s\n' "${COMPREPLY[@]}"
`
	cmd := exec.Command(bash, append([]string{"-c", driver, "bash", script}, words...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%q: %v", words, err)
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" {
			got = append(got, line)
		}
	}
	return got
}

// fakeDistlock puts a distlock on PATH that answers the completion
// scripts' question (--complete-lock-names LINE) as the real one would
// with the locks "report" and "db backup" held: with their names, when
// the line has --status; and that appends its arguments to the file it
// returns, one a line.
func fakeDistlock(t *testing.T) (calls string) {
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	fake := `#!/bin/sh
printf '%s\n' "$@" >> '` + calls + `'
[ "$#" = 2 ] && [ "$1" = --complete-lock-names ] || exit 64
case $2 in *--status*) printf 'report\ndb backup\n' ;; esac
`
	if err := os.WriteFile(filepath.Join(dir, "distlock"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return calls
}

// TestBashCompletionAsksForLockNames: after --lock-name, the bash script
// asks distlock for the names, with the line typed so far, and offers
// those that start with what is typed, quoted for the shell.
func TestBashCompletionAsksForLockNames(t *testing.T) {
	bash := shellOrSkip(t, "bash")
	script := completionFile(t, "bash")
	calls := fakeDistlock(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		words, want []string
	}{
		{[]string{"distlock", "--status", "--lock-name", ""}, []string{"report", `db\ backup`}},
		{[]string{"distlock", "--status", "--lock-name", "re"}, []string{"report"}},
		{[]string{"distlock", "--prefix=/x/", "--status", "--lock-name", "=", "d"}, []string{`db\ backup`}},
		{[]string{"distlock", "--lock-name", "x", "--status", "-lock-name", "db"}, []string{`db\ backup`}},
		{[]string{"distlock", "--status", "--lock-name", "zz"}, nil},
		{[]string{"distlock", "--lock-name", ""}, nil}, // exec mode: distlock offers none
	} {
		if got := bashComplete(t, bash, script, dir, tt.words); !slices.Equal(got, tt.want) {
			t.Errorf("%q<TAB> offers %q, want %q", tt.words, got, tt.want)
		}
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if want := "--complete-lock-names\ndistlock --prefix=/x/ --status --lock-name = d\n"; !strings.Contains(string(b), want) {
		t.Errorf("distlock was called with:\n%s\nnot with:\n%s", b, want)
	}
	if n := strings.Count(string(b), "--complete-lock-names\n"); n != 6 {
		t.Errorf("distlock was asked %d times, want once a TAB after --lock-name (6)", n)
	}
}

// TestZshCompletion loads the script into an interactive zsh on a
// pseudo-terminal (zsh's zpty) and presses TAB.
func TestZshCompletion(t *testing.T) {
	zsh := shellOrSkip(t, "zsh")
	script := completionFile(t, "zsh")
	fakeDistlock(t)
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// $1 loads the completion; then type $2 and TAB, and read the terminal
	// until what is read matches the pattern $3. zsh prints READ''Y,
	// which its echo of the line cannot match.
	const driver = `
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PS1='> '; $1; print READ''Y"
zpty -r z out '*READY*' || exit 3
zpty -w -n z "$2"$'\t'
zpty -r z out "$3" || exit 4
zpty -d z
`
	// As installed: a file _distlock in a directory of $fpath.
	fpathDir := t.TempDir()
	if err := os.Rename(script, filepath.Join(fpathDir, "_distlock")); err != nil {
		t.Fatal(err)
	}
	script = filepath.Join(fpathDir, "_distlock")
	// compinit reads every completion function on $fpath, a second's
	// work; it does it once per way of loading here, into a dump that
	// each case's compinit -C then reads instead.
	dumps := t.TempDir()
	compinit := func(fpath, dump string) string {
		load := fpath + "autoload -U compinit; compinit -u -d " + filepath.Join(dumps, dump)
		if out, err := exec.Command(zsh, "-f", "-c", load).CombinedOutput(); err != nil {
			t.Fatalf("zsh -c %q: %v\n%s", load, err, out)
		}
		return fpath + "autoload -U compinit; compinit -u -C -d " + filepath.Join(dumps, dump)
	}
	sourced := compinit("", "sourced") + "; source " + script
	autoloaded := compinit("fpath=("+fpathDir+" $fpath); ", "autoloaded")
	for _, tt := range []struct{ load, line, pattern string }{
		{sourced, "distlock --lock-n", "*--lock-name*"},
		{sourced, "distlock --kill-signal T", "*TERM*"},
		{sourced, "distlock --lock-name x --complet", "*--completion*"},
		{sourced, "distlock --lock-name x -- ech", "*echo*"},
		{autoloaded, "distlock --kill-signal T", "*TERM*"},
		// The names distlock finds, quoted for the shell.
		{sourced, "distlock --status --lock-name d", `*--lock-name db\\ backup*`},
		{autoloaded, "distlock --prefix='/a b/' --status --lock-name=re", "*--lock-name=report*"},
	} {
		// At once: each zsh spends a second in compinit.
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, zsh, "-f", "-c", driver, "zsh", tt.load, tt.line, tt.pattern)
			cmd.Dir = t.TempDir()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("zsh, after %s: %s<TAB> offers no %s: %v\n%q", tt.load, tt.line, tt.pattern, err, out)
			}
		})
	}
}

// TestFishCompletion asks fish what it would offer (complete -C).
func TestFishCompletion(t *testing.T) {
	fish := shellOrSkip(t, "fish")
	script := completionFile(t, "fish")
	fakeDistlock(t)
	if out, err := exec.Command(fish, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("fish -n: %v\n%s", err, out)
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs.pem")
	if err := os.WriteFile(certs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		line  string
		want  []string
		exact bool
	}{
		{"distlock --lock-n", []string{"--lock-name"}, true},
		{"distlock --kill-signal TE", []string{"TERM"}, true},
		{"distlock --kill-signal=TE", []string{"--kill-signal=TERM"}, true},
		{"distlock --completion ", []string{"bash", "zsh", "fish"}, true},
		{"distlock --cacert " + filepath.Join(dir, "cer"), []string{certs}, true},
		{"distlock --lock-name x -- ech", []string{"echo"}, false},
		{"distlock --lock-name x -- ls " + filepath.Join(dir, "cer"), []string{certs}, true},
		{"distlock --lock-name x -- --lock-n", nil, true},
		// The names distlock finds.
		{"distlock --status --lock-name ", []string{"report", "db backup"}, true},
		{"distlock --status --lock-name=r", []string{"--lock-name=report"}, true},
		{"distlock --lock-name ", nil, true}, // exec mode: distlock offers none
		{"distlock -", []string{"-c"}, false},
	} {
		cmd := exec.Command(fish, "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", script, tt.line)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		var got []string
		for _, line := range strings.Split(string(out), "\n") {
			if word, _, _ := strings.Cut(line, "\t"); word != "" {
				got = append(got, word)
			}
		}
		missing := slices.ContainsFunc(tt.want, func(w string) bool { return !slices.Contains(got, w) })
		if missing || (tt.exact && len(got) != len(tt.want)) {
			t.Errorf("fish: %q<TAB> offers %q, want %q", tt.line, got, tt.want)
		}
	}
}
