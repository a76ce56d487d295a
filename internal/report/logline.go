package report

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// An Event says what one of distlock's lines is about, in the "event"
// field of --log-format json.
type Event string

// The events are part of the interface (docs/reference.md lists them): a
// log query may select on them where it cannot on the wording.
const (
	EventMessage       Event = "message"        // any line without an event of its own
	EventUsage         Event = "usage"          // bad input: exit 64
	EventEtcdError     Event = "etcd_error"     // etcd could not be reached or refused
	EventWaiting       Event = "waiting"        // the lock is taken; waiting for it
	EventConflict      Event = "conflict"       // the lock was not acquired in time
	EventAcquired      Event = "acquired"       // the lock is ours (--verbose)
	EventSignal        Event = "signal"         // a signal ended the wait, or kept the command from starting
	EventNotStarted    Event = "not_started"    // the command could not be started (126, 127)
	EventEnded         Event = "ended"          // the command ended (--verbose)
	EventLost          Event = "lost"           // the lock was lost
	EventOverran       Event = "overran"        // --max-runtime passed: the command is being stopped
	EventSkipped       Event = "skipped"        // --min-interval: a recent run succeeded (--verbose)
	EventReleased      Event = "released"       // --unlock released a holder, or this run let the lock go
	EventNotHeld       Event = "not_held"       // --unlock: nothing to release
	EventStopping      Event = "stopping"       // --unlock: the holder still stops its command
	EventForgotten     Event = "forgotten"      // --forget-last-run deleted the record of the last run
	EventCannotStop    Event = "cannot_stop"    // the command may not be signalled: it became another user
	EventReleaseFailed Event = "release_failed" // etcd will expire the lock instead
	EventMetrics       Event = "metrics"        // the metrics file could not be written
	EventSecret        Event = "secret"         // a password where others can read it
	EventEtcdQuiet     Event = "etcd_quiet"     // etcd has left the lease unconfirmed a third of its TTL, or is still out of reach
	EventEtcdBack      Event = "etcd_back"      // etcd confirms the lease again
	EventPlaceLost     Event = "place_lost"     // a waiter lost its lease to etcd's silence; it queues again
	EventRequeued      Event = "requeued"       // etcd answers again: the waiter queued again, at the back
)

// Note is one of distlock's lines in the making: what it is about, and
// for JSON the fields beyond the text. The Reporter's Fail, Info and Debug
// say a line about nothing in particular; out.About(event) says one about
// something:
//
//	out.About(EventWaiting).Holder(e).Info("lock %q is held by %s; waiting", ...)
type Note struct {
	r      *Reporter
	event  Event
	fields []field
}

// field is a JSON field of a line beyond the ones every line has.
type field struct {
	name  string
	value any
}

// About starts a line about event.
func (r *Reporter) About(event Event) Note {
	return Note{r: r, event: event}
}

// With adds a field to the JSON line; text lines do not show it.
func (n Note) With(name string, value any) Note {
	n.fields = append(n.fields[:len(n.fields):len(n.fields)], field{name, value})
	return n
}

// Holder says the line is about the holder (or waiter) e: host/pid, its
// key and its reason.
func (n Note) Holder(e lock.Entry) Note {
	// What etcd holds is cut as --status --json cuts it; logLine escapes.
	if e.Info != nil {
		n = n.With("holder", untrusted.Cut(e.Info.Host, untrusted.MaxWord)+"/"+strconv.Itoa(e.Info.PID))
	}
	n = n.With("holder_key", untrusted.Cut(e.Key, untrusted.MaxKey))
	if e.Info != nil && e.Info.Shared {
		n = n.With("holder_shared", true)
	}
	if e.Info != nil && e.Info.Reason != "" {
		n = n.With("reason", untrusted.Cut(e.Info.Reason, untrusted.MaxReason))
	}
	return n
}

// Fail is a line that comes with a status distlock chose: always shown.
func (n Note) Fail(format string, args ...any) { n.say("error", format, args...) }

// Warn is a line about a trouble that changes no status: always shown.
func (n Note) Warn(format string, args ...any) { n.say("warn", format, args...) }

// Info is worth saying unless --quiet.
func (n Note) Info(format string, args ...any) {
	if !n.r.quiet {
		n.say("info", format, args...)
	}
}

// Step is a step of the run (acquired, ended, released, skipped): in
// JSON at info, so that a log shipper sees every run, and in text at
// debug, so that a run that went well says nothing.
func (n Note) Step(format string, args ...any) {
	if n.r.json {
		n.Info(format, args...)
		return
	}
	n.Debug(format, args...)
}

// Debug is said only with --verbose.
func (n Note) Debug(format string, args ...any) {
	if n.r.verbose {
		n.say("debug", format, args...)
	}
}

func (n Note) say(level, format string, args ...any) {
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
func logLine(t time.Time, level, lockName string, event Event, msg string, fields []field) string {
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
