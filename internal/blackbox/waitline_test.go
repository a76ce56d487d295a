package blackbox

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/tinx/distlock/internal/poll"
)

// shown splits what a terminal got into what each carriage return or
// newline began, without the erase-to-end-of-line that ends a live line;
// an erase alone leaves nothing.
func shown(out string) []string {
	var parts []string
	for _, p := range strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if p = strings.TrimSuffix(p, "\x1b[K"); p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

// setColumns makes the terminal cols wide, as a resized window would.
func setColumns(t *testing.T, term *terminal, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(term.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

// TestWaitLineOnTerminal: two waiters on terminals behind a running holder.
// The first, on a wide terminal, shows one live line naming the holder,
// its time going up and 1 ahead; the second, 60 columns wide, shows 2
// ahead and never a line of 60 or more. When the first's window is made
// narrower, its line is cut to the new width. When the holder is done,
// each line is erased before its command runs.
func TestWaitLineOnTerminal(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dir := t.TempDir()
	holder := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=wl", "--reason=nightly backup",
		"--", "sh", "-c", `echo r > held; while [ ! -e go-on ]; do sleep 0.05; done`)
	waitFile(t, filepath.Join(dir, "held"))

	wide, narrow := openTerminal(t), openTerminal(t)
	wide.term, narrow.term = "xterm", "xterm"
	setColumns(t, wide, 200)
	setColumns(t, narrow, 60)
	first := wide.start(t, dir, "distlock", "--lock-name=wl", "--", "echo", "first ran")
	waitKeys(t, client, "wl", 2)
	second := narrow.start(t, dir, "distlock", "--lock-name=wl", "--", "echo", "second ran")
	waitKeys(t, client, "wl", 3)

	host, _ := os.Hostname()
	line := regexp.MustCompile(fmt.Sprintf(
		`^distlock: waiting for lock "wl", 1 ahead; held for (\d+)s by host %s, pid %d, user %s, reason "nightly backup"$`,
		regexp.QuoteMeta(host), holder.cmd.Process.Pid, regexp.QuoteMeta(currentUser())))
	poll.For(t, "the waiting line to count up", 30*time.Second, func() bool {
		spans := map[string]bool{}
		for _, p := range shown(wide.output()) {
			if m := line.FindStringSubmatch(p); m != nil {
				spans[m[1]] = true
			}
		}
		return len(spans) >= 2
	})
	poll.For(t, "the narrow line to count 2 ahead", 30*time.Second, func() bool {
		return strings.Contains(narrow.output(), `distlock: waiting for lock "wl", 2 ahead; held for `)
	})

	// The window of the first is made narrower while it waits: the
	// lines drawn from then on fit the new width.
	mark := len(wide.output())
	setColumns(t, wide, 50)
	poll.For(t, "the wide line to fit 50 columns", 30*time.Second, func() bool {
		for _, p := range shown(wide.output()[mark:]) {
			if strings.HasPrefix(p, "distlock: waiting for lock") && utf8.RuneCountInString(p) == 49 {
				return true
			}
		}
		return false
	})

	if err := os.WriteFile(filepath.Join(dir, "go-on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := holder.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("holder exit %d; stderr:\n%s", got, holder.stderr)
	}
	for _, w := range []struct {
		term *terminal
		cmd  *exec.Cmd
		ran  string
	}{{wide, first, "first ran"}, {narrow, second, "second ran"}} {
		status := waitCmd(t, w.cmd, w.term)
		poll.For(t, "the command's output", 10*time.Second, func() bool { return strings.Contains(w.term.output(), w.ran) })
		out := w.term.output()
		if status != 0 {
			t.Fatalf("exit %d; terminal shows %q", status, out)
		}
		before, _, _ := strings.Cut(out, w.ran)
		if !strings.HasSuffix(before, "\r\x1b[K") || !strings.Contains(before, "distlock: waiting for lock") {
			t.Errorf("the waiting line was not erased before the command ran; terminal shows %q", out)
		}
		if strings.Contains(out, "; waiting") {
			t.Errorf("the single waiting line was said on a terminal too: %q", out)
		}
	}
	for _, p := range shown(narrow.output()) {
		if n := utf8.RuneCountInString(p); n >= 60 {
			t.Errorf("a line of %d columns on a terminal of 60: %q", n, p)
		}
	}
}

// TestWaitLineWithoutTerminal: with stderr a pipe, a wait of seconds says
// today's one waiting line, then gives up in one more, and nothing live.
func TestWaitLineWithoutTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if got := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=wl", "--lock", "--reason=held").wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--lock exit %d", got)
	}
	waiter := startDistlockEnv(t, dir, testEtcd(t).Endpoint(), []string{"TERM=xterm"}, nil, "--lock-name=wl", "--timeout=3.5", "--", "true")
	if got := waiter.wait(t, 30*time.Second); got != exitConflict {
		t.Fatalf("exit %d, want %d; stderr:\n%s", got, exitConflict, waiter.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(waiter.stderr.String(), "\n"), "\n")
	if len(lines) != 2 ||
		!regexp.MustCompile(`^distlock: lock "wl" is held by .*reason "held".*; waiting$`).MatchString(lines[0]) ||
		!strings.HasSuffix(lines[1], "; gave up after 3.5s (--timeout)") ||
		strings.ContainsAny(waiter.stderr.String(), "\r\x1b") {
		t.Errorf("stderr is not the waiting line and the giving up:\n%q", waiter.stderr)
	}
}

// TestWaitLineGivingUpOnTerminal: a wait that times out on a terminal
// erases its live line before it says it gave up; with --quiet there is no
// live line at all, only the giving up; with TERM=dumb, the single line.
func TestWaitLineGivingUpOnTerminal(t *testing.T) {
	t.Parallel()
	gaveUp := `distlock: lock "wl" is held by .*reason "held" \(taken with --lock\); gave up after 2s \(--timeout\)\r\n`
	for _, tc := range []struct {
		name string
		term string
		args []string
		want *regexp.Regexp
	}{
		{"live", "xterm", nil, regexp.MustCompile(`^(\rdistlock: waiting for lock "wl"[^\r\n]*\x1b\[K)+\r\x1b\[K` + gaveUp + `$`)},
		{"quiet", "xterm", []string{"--quiet"}, regexp.MustCompile(`^` + gaveUp + `$`)},
		// A terminal that cannot rewrite a line gets the single line.
		{"dumb", "dumb", nil, regexp.MustCompile(`^distlock: lock "wl" is held by .*reason "held" \(taken with --lock\); waiting\r\n` + gaveUp + `$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if got := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=wl", "--lock", "--reason=held").wait(t, 30*time.Second); got != 0 {
				t.Fatalf("--lock exit %d", got)
			}
			term := openTerminal(t)
			term.term = tc.term
			args := append([]string{"distlock", "--lock-name=wl", "--timeout=2"}, tc.args...)
			cmd := term.start(t, dir, append(args, "--", "true")...)
			if got := waitCmd(t, cmd, term); got != exitConflict {
				t.Fatalf("exit %d, want %d; terminal shows %q", got, exitConflict, term.output())
			}
			// The terminal may hand over a line in pieces: wait for its end.
			poll.For(t, "the giving up", 10*time.Second, func() bool {
				out := term.output()
				return strings.Contains(out, "gave up") && strings.HasSuffix(out, "\n")
			})
			if out := term.output(); !tc.want.MatchString(out) {
				t.Errorf("terminal shows %q, want it to match %q", out, tc.want)
			}
		})
	}
}

// TestWaitLineInBackground: a distlock waiting in the background of a
// terminal (a job of a shell with job control) does not draw over the
// shell's line; it still says that it gave up.
func TestWaitLineInBackground(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if got := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=wl", "--lock", "--reason=held").wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--lock exit %d", got)
	}
	term := openTerminal(t)
	term.term = "xterm"
	cmd := term.start(t, dir, "sh", "-c", `set -m
distlock --lock-name=wl --timeout=2 -- true &
wait $!; echo "status $?"`)
	if got := waitCmd(t, cmd, term); got != 0 {
		t.Fatalf("exit %d; terminal shows %q", got, term.output())
	}
	poll.For(t, "the status", 10*time.Second, func() bool {
		out := term.output()
		return strings.Contains(out, "status") && strings.HasSuffix(out, "\n")
	})
	want := regexp.MustCompile(`^distlock: lock "wl" is held by .*; gave up after 2s \(--timeout\)\r\nstatus 75\r\n$`)
	if out := term.output(); !want.MatchString(out) {
		t.Errorf("terminal shows %q, want it to match %q", out, want)
	}
}

// currentUser is the user name distlock writes into its key, as the tests
// run it.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}

// TestWaitLineEtcdNotAnswering: while etcd does not answer a waiter on a
// terminal, its live line says so, counting up, instead of the holder's
// time, also once its lease is lost; when etcd answers again, the waiter
// queues again and runs its command once the lock is free.
func TestWaitLineEtcdNotAnswering(t *testing.T) {
	t.Parallel()
	client, proxy := testClient(t), testProxy(t)
	dir := t.TempDir()
	if got := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=wq", "--lock").wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--lock exited %d", got)
	}
	term := openTerminal(t)
	term.term = "xterm"
	setColumns(t, term, 200)
	cmd := term.start(t, dir, "distlock", "--endpoints="+proxy.URL(), "--lock-name=wq", "--ttl=6s", "--kill-after=1s", "--dial-timeout=1s", "--", "echo", "waiter ran")
	waitKeys(t, client, "wq", 2)
	poll.For(t, "the waiting line", 30*time.Second, func() bool {
		return strings.Contains(term.output(), `distlock: waiting for lock "wq", 1 ahead; held for `)
	})
	proxy.Partition()
	line := regexp.MustCompile(`^distlock: waiting for lock "wq"; etcd not answering for (\d+)s$`)
	poll.For(t, "the line to count etcd's silence up", 30*time.Second, func() bool {
		spans := map[string]bool{}
		for _, p := range shown(term.output()) {
			if m := line.FindStringSubmatch(p); m != nil {
				spans[m[1]] = true
			}
		}
		return len(spans) >= 2 && strings.Contains(term.output(), `lost the place in the queue for lock "wq"`)
	})
	proxy.Heal()
	poll.For(t, "the waiter to queue again", 60*time.Second, func() bool {
		return strings.Contains(term.output(), `queued again for lock "wq", at the back`)
	})
	if got := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=wq", "--unlock", "--quiet").wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--unlock exited %d", got)
	}
	if status := waitCmd(t, cmd, term); status != 0 {
		t.Fatalf("exit %d; terminal shows %q", status, term.output())
	}
	poll.For(t, "the command's output", 10*time.Second, func() bool { return strings.Contains(term.output(), "waiter ran") })
}
