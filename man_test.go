package main

//go:generate go test -run ^TestManPage$ -update

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tinx/distlock/internal/report"
)

// manPagePath is the man page, written from the settings table by
// TestManPage -update and committed, for packages to install.
const manPagePath = "docs/distlock.1"

var update = flag.Bool("update", false, "rewrite "+manPagePath+" from the settings table")

// TestManPage holds docs/distlock.1 to the settings table: with -update it
// writes the page, without it fails if the committed page differs.
func TestManPage(t *testing.T) {
	page := manPage()
	if *update {
		if err := os.WriteFile(manPagePath, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	committed, err := os.ReadFile(manPagePath)
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != page {
		t.Errorf("%s is not what the settings table gives; rewrite it with: go generate (or go test -run '^TestManPage$' -update)", manPagePath)
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

// manPageDate is the date in the page's title line. The formatters want
// one; change it with the page's substance.
const manPageDate = "2026-11-26"

// roff escapes text for the body of a man page: backslashes, hyphens
// (which would print as hyphens, not as the minus of a flag), and a
// leading dot or quote, which would start a request. Flags and
// variables (words with - or _) are never hyphenated.
func roff(text string) string {
	words := strings.Split(text, " ")
	for i, w := range words {
		protect := strings.ContainsAny(w, "-_")
		w = strings.NewReplacer(`\`, `\e`, `-`, `\-`).Replace(w)
		if protect {
			w = `\%` + w
		}
		words[i] = w
	}
	text = strings.Join(words, " ")
	if strings.HasPrefix(text, ".") || strings.HasPrefix(text, "'") {
		text = `\&` + text
	}
	return text
}

// manPage writes distlock(1) in man(7) macros from the settings table and
// the exit statuses.
func manPage() string {
	var b bytes.Buffer
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	line(`.\" distlock(1), written from the settings table in config.go by`)
	line(`.\" go generate (go test -run '^TestManPage$' -update). Do not edit.`)
	line(`.TH DISTLOCK 1 %s distlock "User Commands"`, manPageDate)
	line(`.SH NAME`)
	line(`distlock \- run a command while holding a named lock in etcd`)

	line(`.SH SYNOPSIS`)
	line(`.B distlock`)
	line(`.RI [ flags ]`)
	line(`.B \-\-`)
	line(`.I command`)
	line(`.RI [ arg ...]`)
	for _, s := range settings {
		if s.mode {
			line(`.br`)
			line(`.B distlock`)
			line(`.RI [ flags ]`)
			line(`.B %s`, roff("--"+s.name))
		}
	}

	line(`.SH DESCRIPTION`)
	for _, p := range []string{
		"distlock takes a named lock in etcd, runs the command while it holds the lock, and releases the lock when the command ends, however it ends. " +
			"Whoever else asks for the same lock waits in line, or gives up at once with --nowait or after --timeout.",
		"The command is started directly, found through PATH, without a shell. " +
			"Everything after -- belongs to the command, flags included. " +
			"It runs in a process group of its own; signals distlock receives are passed on to it, and its exit status becomes distlock's.",
		"While the command runs, distlock keeps the lock's lease alive. " +
			"If the lock is lost (the lease expired, or someone ran --unlock), the command's process group gets --kill-signal, then SIGKILL after --kill-after, " +
			"before etcd could give the lock to anyone else, and distlock exits 70.",
		"The other modes take the lock and keep it (--lock), release it (--unlock), or show it (--status, --list). " +
			"Exactly one mode per call; --lock-name is needed by every mode but --list.",
		"Locks made by etcdctl lock under the same prefix and name and distlock's exclude each other.",
	} {
		if !strings.HasSuffix(b.String(), ".SH DESCRIPTION\n") {
			line(`.PP`)
		}
		line(`%s`, roff(p))
	}

	line(`.SH OPTIONS`)
	line(`Every flag may be written with one dash or two, and its value after a space or an equals sign.`)
	for _, s := range completedFlags() {
		line(`.TP`)
		if s.arg != "" {
			line(`.BI %s " %s"`, roff("--"+s.name), s.arg)
		} else {
			line(`.B %s`, roff("--"+s.name))
		}
		line(`%s.`, roff(s.help))
		if s.def != "" {
			line(`Default: %s.`, roff(s.def))
		}
		if s.alias != "" {
			line(`The original tool's name, %s, also works.`, roff("--"+s.alias))
		}
		switch {
		case s.mode || s.name == helpFlag.name:
		case s.from == fromAnywhere:
			env := envName(s.name)
			if s.alias != "" {
				env += " (or " + envName(s.alias) + ")"
			}
			line(`Also %s in the environment and %s in the config file.`, roff(env), roff(s.name+":"))
		default:
			line(`Only from %s.`, roff(s.only()))
		}
		if s.etcdctl != "" {
			line(`Failing those, etcdctl's %s.`, roff(s.etcdctl))
		}
	}

	line(`.SH ENVIRONMENT`)
	var cmdLineOnly []string
	for _, s := range settings {
		if !s.mode && s.from&fromEnvironment == 0 {
			cmdLineOnly = append(cmdLineOnly, "--"+s.name)
		}
	}
	line(`%s`, roff("Every flag but the modes, "+strings.Join(cmdLineOnly, ", ")+" and --help may also be set as DISTLOCK_ and its name in upper case with _ for - (--dial-timeout is DISTLOCK_DIAL_TIMEOUT). "+
		"Precedence: the command line, then the environment, then the config file, then etcdctl's variables where one is named, then the default. An empty variable counts as unset."))
	for _, s := range settings {
		if s.from&fromEnvironment == 0 {
			continue
		}
		line(`.TP`)
		line(`.B %s`, roff(envName(s.name)))
		line(`%s`, roff("--"+s.name))
	}
	for _, s := range settings {
		if s.etcdctl == "" {
			continue
		}
		line(`.TP`)
		line(`.B %s`, roff(s.etcdctl))
		line(`%s`, roff("--"+s.name+", below DISTLOCK_* and the config file, as etcdctl reads it"))
	}

	line(`.SH FILES`)
	line(`.TP`)
	line(`.I %s`, roff(defaultConfigFile))
	line(`%s`, roff("The default config file, which may be absent. YAML: its keys are flag names (endpoints may be a list); "+
		"a key that distlock does not know, or one that only the command line may give, is a usage error. --config or DISTLOCK_CONFIG names another file, which must then exist."))

	line(`.SH EXIT STATUS`)
	for _, e := range report.ExitStatuses() {
		line(`.TP`)
		line(`.B %s`, roff(e.Status))
		line(`%s`, roff(e.Meaning))
	}

	line(`.SH EXAMPLES`)
	for _, ex := range []struct{ what, command string }{
		{"Run a backup on one host at a time; the others give up at once:",
			`distlock --lock-name=backup --nowait -- /usr/local/bin/backup`},
		{"Wait up to five minutes, and say why:",
			`distlock --lock-name=db-migrate --timeout=5m --reason="schema 42" -- ./migrate`},
		{"Take a lock by hand for maintenance, look at it, and release it:",
			"distlock --lock-name=maintenance --reason=\"disk swap\" --lock\n" +
				"distlock --lock-name=maintenance --status\n" +
				"distlock --lock-name=maintenance --unlock"},
		{"Every lock in the realm, as JSON:",
			`distlock --list --json`},
		{"Load bash completion into the running shell:",
			`source <(distlock --completion bash)`},
	} {
		if !strings.HasSuffix(b.String(), ".SH EXAMPLES\n") {
			line(`.PP`)
		}
		line(`%s`, roff(ex.what))
		line(`.PP`)
		line(`.RS 4`)
		line(`.EX`)
		for _, l := range strings.Split(ex.command, "\n") {
			line(`%s`, roff(l))
		}
		line(`.EE`)
		line(`.RE`)
	}

	line(`.SH SEE ALSO`)
	line(`.BR etcdctl (1)`)
	return b.String()
}
