// Package report is what a run of distlock says: its lines on stderr (text,
// or JSON with an event each), the live waiting line on a terminal, the
// metrics file, and the one table of the ways a run can end, which maps
// each to its exit status, its outcome, its event and its line in --help.
package report

import (
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/sys/unix"
)

// FlushTimeout is how long distlock waits, when it is done, for its last
// lines to reach stderr.
const FlushTimeout = 2 * time.Second

// Reporter writes distlock's own lines to stderr, prefixed "distlock:",
// or with --log-format json as one JSON object a line (see logLine).
// It never makes its caller wait for stderr: a full pipe (a stalled log
// shipper) or a terminal that stops background writers must not hold up
// distlock, least of all between a lost lock and the kill. Lines are
// queued to one writer goroutine and written in order; flush waits for
// them, but only so long.
//
// On a terminal it can also keep one live line (the waiting line) at the
// bottom, rewritten in place. The writer owns it as it owns every write:
// a line said while it is shown first erases it, and it is drawn again
// below. JSON lines have no live line.
type Reporter struct {
	w              io.Writer
	quiet, verbose bool
	json           bool   // --log-format json
	lock           string // the lock's name, for JSON lines

	mu    sync.Mutex
	queue chan message // made, and its writer started, by the first line
	live  string       // the live line the writer is to show, "" for none
}

// Style is how a Reporter says its lines: which it leaves out (Quiet,
// Verbose), whether as JSON, and the lock's name that JSON lines carry.
type Style struct {
	Quiet, Verbose bool
	JSON           bool
	Lock           string
}

// New returns a Reporter that writes to w in style s. Its writer starts
// with the first line; Flush waits for what is queued.
func New(w io.Writer, s Style) *Reporter {
	return &Reporter{w: w, quiet: s.Quiet, verbose: s.Verbose, json: s.JSON, lock: s.Lock}
}

// message is a line to write, or (with written set) a mark that is passed
// once every line before it has been written. An empty message only tells
// the writer to bring the live line up to date.
type message struct {
	line    string
	written chan struct{}
}

// Fail is the one line that comes with a status distlock chose: always shown.
func (r *Reporter) Fail(format string, args ...any) {
	r.About(EventMessage).Fail(format, args...)
}

// Info is worth saying unless --quiet.
func (r *Reporter) Info(format string, args ...any) {
	r.About(EventMessage).Info(format, args...)
}

// Debug is said only with --verbose.
func (r *Reporter) Debug(format string, args ...any) {
	r.About(EventMessage).Debug(format, args...)
}

// send queues m for the writer, starting it with the first message.
func (r *Reporter) send(m message) {
	r.mu.Lock()
	if r.queue == nil {
		r.queue = make(chan message, 64)
		go r.write(r.queue)
	}
	queue := r.queue
	r.mu.Unlock()
	select {
	case queue <- m:
	default: // stderr has been stuck for 64 lines: drop this one
	}
}

// IsTerminal says whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	ok := false
	withTerminal(w, func(fd int) {
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		ok = err == nil
	})
	return ok
}

// ToTerminal says whether the lines go to a terminal as text: a person
// reads them, rather than a log.
func (r *Reporter) ToTerminal() bool { return !r.json && IsTerminal(r.w) }

// CanShowLive says whether a live line may be shown: stderr is a terminal
// that can rewrite a line, and not --quiet. Elsewhere (cron, CI, a pipe, a
// test's buffer) distlock says things once, line by line.
func (r *Reporter) CanShowLive() bool {
	if r.quiet || r.json || os.Getenv("TERM") == "dumb" {
		return false
	}
	return IsTerminal(r.w)
}

// ShowLive makes text the live line, in place of the one shown. It never
// waits: should the wake-up be dropped, the writer looks at the live line
// after every message anyway.
func (r *Reporter) ShowLive(text string) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	r.live = text
	r.mu.Unlock()
	r.send(message{})
}

// EndLive erases the live line and waits until that reached the terminal,
// or timeout passed: what comes next (the command's output) must not be
// written over it.
func (r *Reporter) EndLive(timeout time.Duration) {
	r.mu.Lock()
	shown := r.live != ""
	r.live = ""
	r.mu.Unlock()
	if shown {
		r.send(message{})
		r.Flush(timeout)
	}
}

// write is the writer goroutine. Its thread blocks SIGTTOU, so that with
// `stty tostop` a write from the background goes through instead of
// stopping all of distlock; the command's threads are not affected.
func (r *Reporter) write(queue <-chan message) {
	runtime.LockOSThread() // for good: the mask belongs to this thread
	var block unix.Sigset_t
	block.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, &block, nil)
	shown := "" // the live line on the terminal now, "" for none
	for m := range queue {
		if m.line != "" {
			if shown != "" {
				if _, foreground := terminalState(r.w); foreground {
					r.eraseLive()
				}
				shown = ""
			}
			_, _ = io.WriteString(r.w, m.line)
		}
		shown = r.drawLive(shown)
		if m.written != nil {
			close(m.written)
		}
	}
}

// drawLive brings the live line on the terminal up to date, given what it
// shows now, and returns what it shows then.
func (r *Reporter) drawLive(shown string) string {
	r.mu.Lock()
	want := r.live
	r.mu.Unlock()
	if want == shown {
		return shown
	}
	cols, foreground := terminalState(r.w)
	switch {
	case !foreground:
		// In the background (Ctrl-Z, bg) the line the cursor is on
		// is the shell's, not ours: draw nothing and erase nothing.
		// Back in the foreground the next update draws afresh.
		return ""
	case want == "":
		r.eraseLive()
	default:
		// One column is left free: a line that filled the last one
		// would leave the cursor waiting to wrap, and some terminals
		// then wrap or clear that column.
		_, _ = io.WriteString(r.w, "\r"+fitColumns(want, cols-1)+"\x1b[K")
	}
	return want
}

// eraseLive clears the line the cursor is on, the live line.
func (r *Reporter) eraseLive() {
	_, _ = io.WriteString(r.w, "\r\x1b[K")
}

// fitColumns cuts s to at most n runes and makes each unprintable rune a
// '?', so that the live line is one line. It counts runes, not display
// cells: a wide character (CJK, emoji) in a reason can make the line
// longer than it counts.
func fitColumns(s string, n int) string {
	var b strings.Builder
	for _, c := range s {
		if n <= 0 {
			break
		}
		if !unicode.IsPrint(c) {
			c = '?'
		}
		b.WriteRune(c)
		n--
	}
	return b.String()
}

// terminalState returns the width of the terminal w (80 if it does not
// say) and whether this process is in its foreground process group.
func terminalState(w io.Writer) (cols int, foreground bool) {
	cols, foreground = 80, true
	withTerminal(w, func(fd int) {
		if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			cols = int(ws.Col)
		}
		if pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil {
			foreground = pgrp == unix.Getpgrp()
		}
	})
	return cols, foreground
}

// withTerminal calls f with w's file descriptor, if w is a file. (Through
// SyscallConn: File.Fd would switch the file to blocking mode.)
func withTerminal(w io.Writer, f func(fd int)) {
	file, ok := w.(*os.File)
	if !ok {
		return
	}
	if rc, err := file.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { f(int(fd)) })
	}
}

// Flush waits until every line said so far is written, or timeout passes.
func (r *Reporter) Flush(timeout time.Duration) {
	r.mu.Lock()
	queue := r.queue
	r.mu.Unlock()
	if queue == nil {
		return // nothing was ever said
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	mark := message{written: make(chan struct{})}
	select {
	case queue <- mark:
	case <-t.C:
		return
	}
	select {
	case <-mark.written:
	case <-t.C:
	}
}
