package report

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tinx/distlock/lock"
)

// TestWaitLineReporter: the writer erases the live line before a line and
// draws it again below, and endLive erases it.
func TestWaitLineReporter(t *testing.T) {
	var buf syncBuffer
	r := New(&buf, Style{})
	if r.CanShowLive() {
		t.Errorf("a buffer was taken for a terminal")
	}
	r.ShowLive("waiting \x07for\tit")
	r.Flush(10 * time.Second)
	r.Fail("a line")
	r.Flush(10 * time.Second)
	r.EndLive(10 * time.Second)
	r.EndLive(10 * time.Second) // nothing shown: nothing written
	want := "\rwaiting ?for?it\x1b[K" + "\r\x1b[K" + "distlock: a line\n" + "\rwaiting ?for?it\x1b[K" + "\r\x1b[K"
	if got := buf.String(); got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

// TestWaitLineText: the pure parts, the cut, the spans, finding our key.
func TestWaitLineText(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"äöü€x", 4, "äöü€"},
		{"a\nb", 3, "a?b"},
		{"abc", 0, ""},
	} {
		if got := fitColumns(tc.s, tc.n); got != tc.want {
			t.Errorf("fitColumns(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
	for d, want := range map[time.Duration]string{
		-5 * time.Second: "0s", 1500 * time.Millisecond: "1s", 59 * time.Second: "59s",
		65 * time.Second: "1m05s", 3*time.Hour + 7*time.Minute + 9*time.Second: "3h07m",
		50 * time.Hour: "2d02h",
	} {
		if got := waitedFor(d); got != want {
			t.Errorf("waitedFor(%v) = %q, want %q", d, got, want)
		}
	}

	me := lock.Info{Host: "h", PID: 7, User: "u", Mode: lock.ModeExec}
	other := &lock.Info{Host: "h", PID: 8, User: "u", Mode: lock.ModeExec}
	stale := me // an earlier process with our pid, left by --lock
	w := &WaitLine{me: me, q: Queue{Name: "q"}}
	entries := []lock.Entry{{Key: "a", Info: &stale, CreateRevision: 10}, {Key: "b", Info: other, CreateRevision: 11},
		{Key: "c", CreateRevision: 12}, {Key: "d", Info: &me, CreateRevision: 13}, {Key: "e", Info: other, CreateRevision: 14}}
	if v := w.find(entries, nil); !v.ok || v.ahead != 3 || v.holder.Key != "a" {
		t.Errorf("find = %+v, want ours 4th: 3 ahead, held by a", v)
	}
	if v := w.find(entries[:1], nil); v.ok {
		t.Errorf("find with ours first = %+v, want not ok", v)
	}
	if v := w.find(entries[1:3], nil); v.ok {
		t.Errorf("find without ours = %+v, want not ok", v)
	}
	// A holder that --unlock removed and that is still stopping its
	// command holds the lock, and counts as ahead; a record of a key that
	// queued after ours does not.
	stopping := []lock.Entry{{Key: "rec-5", Info: other, CreateRevision: 5, Stopping: true}, {Key: "rec-20", Info: other, CreateRevision: 20, Stopping: true}}
	if v := w.find(entries[3:], stopping); !v.ok || v.ahead != 1 || v.holder.Key != "rec-5" || !v.holder.Stopping {
		t.Errorf("find behind a holder being stopped = %+v, want held by rec-5, stopping, 1 ahead", v)
	}
	if v := w.find(entries[3:], stopping[1:]); v.ok {
		t.Errorf("find with ours first and a record of a later key = %+v, want not ok", v)
	}
	limited := lock.Info{Host: "h", PID: 8, User: "u", Mode: lock.ModeExec, Limit: 2}
	mine2 := me
	mine2.Limit = 2
	sem := []lock.Entry{{Key: "s1", Info: &limited, CreateRevision: 30}, {Key: "s2", Info: &mine2, CreateRevision: 31}}
	if v := w.find(sem, nil); v.ok {
		t.Errorf("find holding a slot of a semaphore = %+v, want not ok", v)
	}
	if v := w.find(sem, stopping[:1]); !v.ok || v.ahead != 2 || v.holder.Key != "rec-5" {
		t.Errorf("find behind a holder and one being stopped of a semaphore = %+v, want held by rec-5, 2 ahead", v)
	}
	since := time.Date(2026, 11, 25, 18, 20, 48, 0, time.UTC)
	held := lock.Entry{Info: &lock.Info{Host: "node-3", PID: 4711, User: "root", Mode: lock.ModeLock, Since: since, Reason: "patching"}}
	stoppingHeld := lock.Entry{Info: &lock.Info{Host: "node-3", PID: 4711, User: "root", Mode: lock.ModeExec, Since: since, Reason: "patching"}, Stopping: true}
	for _, tc := range []struct {
		v    queueView
		want string
	}{
		{queueView{holder: held, ahead: 2}, `distlock: waiting for lock "q", 2 ahead; held for 1m05s by host node-3, pid 4711, user root, reason "patching" (taken with --lock)`},
		{queueView{holder: held, ahead: -1}, `distlock: waiting for lock "q"; held for 1m05s by host node-3, pid 4711, user root, reason "patching" (taken with --lock)`},
		{queueView{holder: lock.Entry{Key: "/d/q/1"}, ahead: 1}, `distlock: waiting for lock "q", 1 ahead; held by key /d/q/1 (no details: not written by distlock)`},
		{queueView{holder: stoppingHeld, ahead: 1}, `distlock: waiting for lock "q", 1 ahead; held for 1m05s by host node-3, pid 4711, user root, reason "patching" (unlocked; stopping its command)`},
	} {
		if got := w.text(tc.v, since.Add(65*time.Second)); got != tc.want {
			t.Errorf("text = %q\nwant   %q", got, tc.want)
		}
	}
	// While etcd does not answer, the line says so, and for how long.
	if !w.Quiet(since) {
		w.started = true
	} else {
		t.Error("Quiet on a line not started says it shows it")
	}
	if !w.Quiet(since) {
		t.Error("Quiet on a started line says it does not show it")
	}
	want := `distlock: waiting for lock "q"; etcd not answering for 6s`
	if got := w.text(queueView{holder: held, ahead: 2}, since.Add(6500*time.Millisecond)); got != want {
		t.Errorf("text while etcd is quiet = %q\nwant   %q", got, want)
	}
	w.Quiet(time.Time{})
	if got := w.text(queueView{holder: held, ahead: 2}, since.Add(65*time.Second)); !strings.Contains(got, "2 ahead; held for 1m05s") {
		t.Errorf("text once etcd answers = %q", got)
	}
}

// TestWaitLineHostile: the live waiting line shows what the holder's key
// says escaped and cut, as the other lines do.
func TestWaitLineHostile(t *testing.T) {
	w := &WaitLine{q: Queue{Name: "q"}}
	since := time.Date(2026, 11, 25, 18, 20, 48, 0, time.UTC)
	held := lock.Entry{Info: &lock.Info{Host: "\x1b[2Jnode", PID: 1, User: "r\u202eoot", Mode: lock.ModeExec, Since: since, Reason: hostileReason}}
	got := w.text(queueView{holder: held, ahead: 1}, since.Add(5*time.Second))
	want := `distlock: waiting for lock "q", 1 ahead; held for 5s by host "\x1b[2Jnode", pid 1, user "r\u202eoot", reason "\x1b[31mred`
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, `x"`+reasonMark) {
		t.Errorf("text = %.500q\nwant it to start with %q and end with the mark", got, want)
	}
	if bad := terminalUnsafe(got); bad != "" {
		t.Errorf("text shows %s: %.500q", bad, got)
	}
}

// terminalUnsafe says what in s a terminal could act on, or "" if
// nothing: a control character other than newline and tab, DEL, a C1
// control, a bidi or other invisible format character, or bytes that
// are not UTF-8.
func terminalUnsafe(s string) string {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\ufffd"):
			return "invalid UTF-8 at byte " + strconv.Itoa(i)
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || !unicode.IsPrint(r) && r != ' ':
			return "the character " + strconv.QuoteRune(r) + " at byte " + strconv.Itoa(i)
		}
	}
	return ""
}

// hostileReason is a reason that tries everything on the terminal: colour,
// an OSC 8 hyperlink, a C1 CSI that clears the screen, a bell, backspaces
// and a carriage return that would overwrite what came before, a bidi
// override, and a megabyte more. (Bytes that are not UTF-8 cannot be in
// a reason: JSON's decoder makes them U+FFFD. They can be in keys.)
var hostileReason = "\x1b[31mred\x1b[0m \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ \u009b2J\a\b\b\rfake \u202eexe.txt " + strings.Repeat("x", 1<<20)

// reasonMark is the mark of hostileReason cut at 200 bytes.
var reasonMark = fmt.Sprintf("…(+%d bytes)", len(hostileReason)-200)

// syncBuffer is a bytes.Buffer for a writer goroutine and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
