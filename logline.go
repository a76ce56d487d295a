package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// Events say what one of distlock's lines is about, in the "event" field of
// --log-format json. They are part of the interface (docs/reference.md lists
// them): a log query may select on them where it cannot on the wording.
const (
	evMessage       = "message"        // any line without an event of its own
	evUsage         = "usage"          // bad input: exit 64
	evEtcdError     = "etcd_error"     // etcd could not be reached or refused
	evWaiting       = "waiting"        // the lock is taken; waiting for it
	evConflict      = "conflict"       // the lock was not acquired in time
	evAcquired      = "acquired"       // the lock is ours (--verbose)
	evSignal        = "signal"         // a signal ended the wait, or kept the command from starting
	evNotStarted    = "not_started"    // the command could not be started (126, 127)
	evEnded         = "ended"          // the command ended (--verbose)
	evLost          = "lost"           // the lock was lost
	evSkipped       = "skipped"        // --min-interval: a recent run succeeded (--verbose)
	evReleased      = "released"       // --unlock released a holder
	evNotHeld       = "not_held"       // --unlock: nothing to release
	evStopping      = "stopping"       // --unlock: the holder still stops its command
	evCannotStop    = "cannot_stop"    // the command may not be signalled: it became another user
	evReleaseFailed = "release_failed" // etcd will expire the lock instead
	evMetrics       = "metrics"        // the metrics file could not be written
	evSecret        = "secret"         // a password where others can read it
)

// note is one of distlock's lines in the making: what it is about, and
// for JSON the fields beyond the text. The reporter's fail, info and debug
// say a line about nothing in particular; out.about(event) says one about
// something:
//
//	out.about(evWaiting).holder(e).info("lock %q is held by %s; waiting", ...)
type note struct {
	r      *reporter
	event  string
	fields []field
}

// field is a JSON field of a line beyond the ones every line has.
type field struct {
	name  string
	value any
}

// about starts a line about event.
func (r *reporter) about(event string) note {
	return note{r: r, event: event}
}

// with adds a field to the JSON line; text lines do not show it.
func (n note) with(name string, value any) note {
	n.fields = append(n.fields[:len(n.fields):len(n.fields)], field{name, value})
	return n
}

// holder says the line is about the holder (or waiter) e: host/pid, its
// key and its reason.
func (n note) holder(e lock.Entry) note {
	// What etcd holds is cut as --status --json cuts it; logLine escapes.
	if e.Info != nil {
		n = n.with("holder", untrusted.Cut(e.Info.Host, untrusted.MaxWord)+"/"+strconv.Itoa(e.Info.PID))
	}
	n = n.with("holder_key", untrusted.Cut(e.Key, untrusted.MaxKey))
	if e.Info != nil && e.Info.Reason != "" {
		n = n.with("reason", untrusted.Cut(e.Info.Reason, untrusted.MaxReason))
	}
	return n
}

// fail is a line that comes with a status distlock chose: always shown.
func (n note) fail(format string, args ...any) { n.say("error", format, args...) }

// warn is a line about a trouble that changes no status: always shown.
func (n note) warn(format string, args ...any) { n.say("warn", format, args...) }

// info is worth saying unless --quiet.
func (n note) info(format string, args ...any) {
	if !n.r.quiet {
		n.say("info", format, args...)
	}
}

// debug is said only with --verbose.
func (n note) debug(format string, args ...any) {
	if n.r.verbose {
		n.say("debug", format, args...)
	}
}

func (n note) say(level, format string, args ...any) {
	// One line, and nothing in it that a terminal would act on, whatever
	// a value in it held (a command's name, a path).
	text := untrusted.Line(fmt.Sprintf(format, args...))
	if !n.r.json {
		n.r.send(message{line: "distlock: " + text + "\n"})
		return
	}
	n.r.send(message{line: logLine(time.Now(), level, n.r.lock, n.event, text, n.fields)})
}

// logLine is one line of --log-format json: time (RFC 3339, UTC, in
// microseconds), level, lock, event, the fields, msg; in that order, for
// people who read them too.
func logLine(t time.Time, level, lockName, event, msg string, fields []field) string {
	var b strings.Builder
	b.WriteByte('{')
	add := func(name string, value any) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		v, err := json.Marshal(value)
		if err != nil {
			v, _ = json.Marshal(fmt.Sprint(value))
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	add("time", t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	add("level", level)
	add("lock", untrusted.Cut(lockName, untrusted.MaxKey))
	add("event", event)
	for _, f := range fields {
		add(f.name, f.value)
	}
	add("msg", msg)
	b.WriteString("}")
	// encoding/json escapes the C0 controls; the rest (C1, bidi, DEL)
	// is escaped here, in the fields from etcd too.
	return string(untrusted.JSON([]byte(b.String()))) + "\n"
}
