package settings

import (
	"strings"
	"sync"

	"github.com/tinx/distlock/internal/report"
)

// usage is the text of --help, written when first asked for: building it
// allocates about 180 KiB, which every run would carry for nothing (see
// docs/performance.md, peak RSS).
var usage = sync.OnceValue(helpText)

// The --help layout: a mode's or a flag's text starts in its column and
// wraps before helpWidth.
const (
	usageColumn = 41
	flagColumn  = 30
	helpWidth   = 80
)

const helpIntro = `distlock: run a command while holding a named lock in etcd

Usage:
`

const flagsIntro = `
Flags (also DISTLOCK_<NAME> in the environment and NAME: in the config file,
unless said otherwise; the modes above come from the command line only;
precedence: command line > environment > config file > etcdctl's variable,
where one is named > default):
`

// helpText writes the modes and the flags from the settings table, in its
// order, with each flag's default and where it may come from.
func helpText() string {
	var b strings.Builder
	b.WriteString(helpIntro)
	writeEntry(&b, usageColumn, "distlock [flags] -- COMMAND [ARG...]", strings.Fields("run COMMAND while holding the lock"))
	writeEntry(&b, usageColumn, "distlock [flags] -c STRING", strings.Fields("run STRING with /bin/sh -c while holding the lock"))
	for _, s := range table {
		if s.mode {
			writeEntry(&b, usageColumn, "distlock [flags] --"+s.name, strings.Fields(s.help))
		}
	}
	b.WriteString(flagsIntro)
	for _, s := range table {
		if s.mode {
			continue
		}
		flag, words := spelled(s.name), strings.Fields(s.help)
		if s.arg != "" {
			flag += " " + s.arg
		}
		if s.def != "" {
			// One word, so that a wrap cannot part a default from its name.
			words = append(words, "(default "+s.def+")")
		}
		if s.etcdctl != "" {
			words = append(words, "(etcdctl's: "+s.etcdctl+")")
		}
		if only := s.only(); only != "" {
			words[len(words)-1] += ";"
			words = append(words, strings.Fields("only from "+only)...)
		}
		writeEntry(&b, flagColumn, flag, words)
	}
	b.WriteString("\nExit status:\n")
	b.WriteString(exitStatusHelp())
	return b.String()
}

// writeEntry writes "  left", then words from column on, wrapped.
func writeEntry(b *strings.Builder, column int, left string, words []string) {
	line := "  " + left
	if len(line)+2 > column { // no room: the text starts on the next line
		b.WriteString(line + "\n")
		line = ""
	}
	indent := strings.Repeat(" ", column)
	line += indent[len(line):]
	fresh := true // nothing after the indent yet
	for _, word := range words {
		if !fresh && len(line)+1+len(word) > helpWidth {
			b.WriteString(line + "\n")
			line, fresh = indent, true
		}
		if !fresh {
			line += " "
		}
		line += word
		fresh = false
	}
	b.WriteString(line + "\n")
}

// exitStatusHelp is the block of --help that lists the exit statuses.
func exitStatusHelp() string {
	var b strings.Builder
	for _, e := range report.ExitStatuses() {
		writeEntry(&b, 9, e.Status, strings.Fields(e.Meaning))
	}
	return b.String()
}
