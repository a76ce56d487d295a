package main

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// flushTimeout is how long distlock waits, when it is done, for its last
// lines to reach stderr.
const flushTimeout = 2 * time.Second

// reporter writes distlock's own lines to stderr, prefixed "distlock:".
// It never makes its caller wait for stderr: a full pipe (a stalled log
// shipper) or a terminal that stops background writers must not hold up
// distlock, least of all between a lost lock and the kill. Lines are
// queued to one writer goroutine and written in order; flush waits for
// them, but only so long.
type reporter struct {
	w              io.Writer
	quiet, verbose bool

	mu    sync.Mutex
	queue chan message // made, and its writer started, by the first line
}

// message is a line to write, or (with written set) a mark that is passed
// once every line before it has been written.
type message struct {
	line    string
	written chan struct{}
}

// fail is the one line that comes with a status distlock chose: always shown.
func (r *reporter) fail(format string, args ...any) {
	r.say(format, args...)
}

// info is worth saying unless --quiet.
func (r *reporter) info(format string, args ...any) {
	if !r.quiet {
		r.say(format, args...)
	}
}

// debug is said only with --verbose.
func (r *reporter) debug(format string, args ...any) {
	if r.verbose {
		r.say(format, args...)
	}
}

func (r *reporter) say(format string, args ...any) {
	r.mu.Lock()
	if r.queue == nil {
		r.queue = make(chan message, 64)
		go r.write(r.queue)
	}
	queue := r.queue
	r.mu.Unlock()
	select {
	case queue <- message{line: fmt.Sprintf("distlock: "+format+"\n", args...)}:
	default: // stderr has been stuck for 64 lines: drop this one
	}
}

// write is the writer goroutine. Its thread blocks SIGTTOU, so that with
// `stty tostop` a write from the background goes through instead of
// stopping all of distlock; the command's threads are not affected.
func (r *reporter) write(queue <-chan message) {
	runtime.LockOSThread() // for good: the mask belongs to this thread
	var block unix.Sigset_t
	block.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, &block, nil)
	for m := range queue {
		if m.written != nil {
			close(m.written)
			continue
		}
		_, _ = io.WriteString(r.w, m.line)
	}
}

// flush waits until every line said so far is written, or timeout passes.
func (r *reporter) flush(timeout time.Duration) {
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
