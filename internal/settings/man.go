package settings

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/tinx/distlock/internal/report"
)

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

// ManPage is distlock(1) in man(7) macros, written from the settings
// table and the exit statuses.
func ManPage() string {
	m := &manWriter{}
	m.line(`.\" distlock(1), written from the settings table (internal/settings) by`)
	m.line(`.\" go generate. Do not edit.`)
	m.line(`.TH DISTLOCK 1 %s distlock "User Commands"`, manPageDate)
	m.line(`.SH NAME`)
	m.line(`distlock \- run a command while holding a named lock in etcd`)
	m.synopsis()
	m.description()
	m.options()
	m.environment()
	m.line(`.SH FILES`)
	m.line(`.TP`)
	m.line(`.I %s`, roff(defaultConfigFile))
	m.line(`%s`, roff("The default config file, which may be absent. YAML: its keys are flag names (endpoints may be a list); "+
		"a key that distlock does not know, or one that only the command line may give, is a usage error. --config or DISTLOCK_CONFIG names another file, which must then exist."))
	m.line(`.SH EXIT STATUS`)
	for _, e := range report.ExitStatuses() {
		m.line(`.TP`)
		m.line(`.B %s`, roff(e.Status))
		m.line(`%s`, roff(e.Meaning))
	}
	m.examples()
	m.line(`.SH SEE ALSO`)
	m.line(`.BR etcdctl (1)`)
	return m.b.String()
}

// manWriter writes the page a line, or a section, at a time.
type manWriter struct{ b bytes.Buffer }

func (m *manWriter) line(format string, args ...any) { fmt.Fprintf(&m.b, format+"\n", args...) }

// paragraph starts a paragraph, unless it is the first of its section.
func (m *manWriter) paragraph() {
	if !bytes.HasPrefix(m.lastLine(), []byte(".SH ")) {
		m.line(`.PP`)
	}
}

func (m *manWriter) lastLine() []byte {
	text := bytes.TrimSuffix(m.b.Bytes(), []byte("\n"))
	return text[bytes.LastIndexByte(text, '\n')+1:]
}

func (m *manWriter) synopsis() {
	m.line(`.SH SYNOPSIS`)
	m.line(`.B distlock`)
	m.line(`.RI [ flags ]`)
	m.line(`.B \-\-`)
	m.line(`.I command`)
	m.line(`.RI [ arg ...]`)
	m.line(`.br`)
	m.line(`.B distlock`)
	m.line(`.RI [ flags ]`)
	m.line(`.B \-c`)
	m.line(`.I string`)
	for _, s := range table {
		if s.mode {
			m.line(`.br`)
			m.line(`.B distlock`)
			m.line(`.RI [ flags ]`)
			m.line(`.B %s`, roff("--"+s.name))
		}
	}
}

func (m *manWriter) description() {
	m.line(`.SH DESCRIPTION`)
	for _, p := range []string{
		"distlock takes a named lock in etcd, runs the command while it holds the lock, and releases the lock when the command ends, however it ends. " +
			"Whoever else asks for the same lock waits in line, or gives up at once with --nowait or after --timeout.",
		"The command is started directly, found through PATH, without a shell. " +
			"Everything after -- belongs to the command, flags included. " +
			"It runs in a process group of its own; signals distlock receives are passed on to it, and its exit status becomes distlock's.",
		"While the command runs, distlock keeps the lock's lease alive. " +
			"If the lock is lost (the lease expired, or someone ran --unlock), the command's process group gets --kill-signal, then SIGKILL after --kill-after, " +
			"before etcd could give the lock to anyone else, and distlock exits 70. " +
			"With --max-runtime the same happens once the command has run that long, and distlock exits 124.",
		"The other modes take the lock and keep it (--lock), release it (--unlock), or show it (--status, --list). " +
			"Exactly one mode per call; --lock-name is needed by every mode but --list and --held.",
		"Locks made by etcdctl lock under the same prefix and name and distlock's exclude each other.",
	} {
		m.paragraph()
		m.line(`%s`, roff(p))
	}
}

func (m *manWriter) options() {
	m.line(`.SH OPTIONS`)
	m.line(`Every flag may be written with one dash or two, and its value after a space or an equals sign.`)
	for _, s := range completedFlags() {
		m.option(s)
	}
}

// option is the entry of one flag.
func (m *manWriter) option(s setting) {
	line := m.line
	line(`.TP`)
	if s.arg != "" {
		line(`.BI %s " %s"`, roff(spelled(s.name)), s.arg)
	} else {
		line(`.B %s`, roff(spelled(s.name)))
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

func (m *manWriter) environment() {
	line := m.line
	line(`.SH ENVIRONMENT`)
	var cmdLineOnly []string
	for _, s := range table {
		if !s.mode && s.from&fromEnvironment == 0 {
			cmdLineOnly = append(cmdLineOnly, spelled(s.name))
		}
	}
	line(`%s`, roff("Every flag but the modes, "+strings.Join(cmdLineOnly, ", ")+" and --help may also be set as DISTLOCK_ and its name in upper case with _ for - (--dial-timeout is DISTLOCK_DIAL_TIMEOUT). "+
		"Precedence: the command line, then the environment, then the config file, then etcdctl's variables where one is named, then the default. An empty variable counts as unset."))
	for _, s := range table {
		if s.from&fromEnvironment == 0 {
			continue
		}
		line(`.TP`)
		line(`.B %s`, roff(envName(s.name)))
		line(`%s`, roff("--"+s.name))
	}
	for _, s := range table {
		if s.etcdctl == "" {
			continue
		}
		line(`.TP`)
		line(`.B %s`, roff(s.etcdctl))
		line(`%s`, roff("--"+s.name+", below DISTLOCK_* and the config file, as etcdctl reads it"))
	}
}

func (m *manWriter) examples() {
	m.line(`.SH EXAMPLES`)
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
		m.paragraph()
		m.line(`%s`, roff(ex.what))
		m.line(`.PP`)
		m.line(`.RS 4`)
		m.line(`.EX`)
		for _, l := range strings.Split(ex.command, "\n") {
			m.line(`%s`, roff(l))
		}
		m.line(`.EE`)
		m.line(`.RE`)
	}
}
