package blackbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"

	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/lock"
)

// TestSIGPIPEDoesNotKillWaiter: a waiter whose stderr nobody reads any more
// keeps waiting, runs its command once the lock is free, and that command
// gets SIGPIPE at its default, not ignored.
func TestSIGPIPEDoesNotKillWaiter(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	holder := startDistlock(t, dirA, testEtcd(t).Endpoint(), "--lock-name=p", "--",
		"sh", "-c", "while [ ! -e go-on ]; do sleep 0.05; done")
	waitKeys(t, client, "p", 1)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader has gone before distlock says a word
	waiter := startDistlockStderr(t, dirB, testEtcd(t).Endpoint(), w, "--lock-name=p", "--",
		"sh", "-c", `while read -r k v; do [ "$k" = SigIgn: ] && echo "$v" > sigign; done < /proc/self/status; [ -s sigign ]`)
	w.Close()
	waitKeys(t, client, "p", 2)

	if err := os.WriteFile(filepath.Join(dirA, "go-on"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := holder.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("holder exited %d; stderr:\n%s", got, holder.stderr)
	}
	if got := waiter.wait(t, 30*time.Second); got != 0 {
		entries, _ := lock.Entries(context.Background(), client, testRealm(t), "p")
		t.Fatalf("waiter with a closed stderr exited %d, want 0; %d key(s) left for the lock", got, len(entries))
	}
	sigign, err := strconv.ParseUint(waitFile(t, filepath.Join(dirB, "sigign")), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	if sigign&(1<<(syscall.SIGPIPE-1)) != 0 {
		t.Errorf("the command runs with SIGPIPE ignored (SigIgn %x)", sigign)
	}
	waitKeys(t, client, "p", 0)
}

// TestStoppedCommandGetsKillSignal: a command stopped by SIGSTOP is
// continued after the kill signal, so it can act on it within the grace
// period instead of waiting stopped for SIGKILL. The shell waits in a
// builtin, on a FIFO nobody opens, and starts no program: a SIGSTOP to a
// group whose shell is starting one can stop the new process and not the
// shell (the test waited 30s for the shell to stop, once in CI under load).
func TestStoppedCommandGetsKillSignal(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "never"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=s", "--kill-after=5s", "--",
		"sh", "-c", `trap "echo term > got; exit 0" TERM; echo $$ > cmd.pid; read -r x < never`)
	pid := int(readInt(t, filepath.Join(dir, "cmd.pid")))
	// The command leads its own process group: stop all of it.
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	poll.For(t, "the command to stop", 30*time.Second, func() bool { return procState(strconv.Itoa(pid)) == "T" })

	entries := waitKeys(t, client, "s", 1)
	revoked := time.Now()
	if _, err := client.Revoke(context.Background(), clientv3.LeaseID(entries[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if got := a.wait(t, 30*time.Second); got != exitLockLost {
		t.Fatalf("exit %d, want %d; stderr:\n%s", got, exitLockLost, a.stderr)
	}
	took := time.Since(revoked)
	if _, err := os.Stat(filepath.Join(dir, "got")); err != nil {
		t.Errorf("the stopped command never ran its TERM trap (%v); distlock ended %v after the revoke", err, took.Round(time.Millisecond))
	}
	if took > 4*time.Second {
		t.Errorf("distlock ended %v after the revoke; the command should have ended on TERM well within --kill-after=5s", took.Round(time.Millisecond))
	}
	if alive(pid) {
		t.Errorf("the command (pid %d) still runs", pid)
	}
}

// TestFullStderrDoesNotDelayKill: with distlock's stderr a pipe that is full
// and never read (a stalled log shipper), a lost lock still kills the
// command at once, and distlock still exits and releases the lock.
func TestFullStderrDoesNotDelayKill(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Shrink the pipe to one page and fill it: every later write blocks.
	size, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	a := startDistlockStderr(t, dir, testEtcd(t).Endpoint(), w, append([]string{"--lock-name=full", "--kill-after=1s", "--"}, stampLoop(true)...)...)
	w.Close()
	pid := int(readInt(t, filepath.Join(dir, "cmd.pid")))
	revokeAndWaitDead(t, client, "full", pid, 3*time.Second)
	if got := a.wait(t, 30*time.Second); got != exitLockLost {
		t.Errorf("exit %d, want %d", got, exitLockLost)
	}
	waitKeys(t, client, "full", 0)
}

// TestTostopTerminalDoesNotStopDistlock: run in the background of a
// terminal with `stty tostop`, distlock's "lost lock" line would stop all
// of distlock with SIGTTOU. It must kill the command first, and its own
// lines must go through without stopping it.
func TestTostopTerminalDoesNotStopDistlock(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	term := openTerminal(t)
	dir := t.TempDir()
	loop := stampLoop(true)
	sh := term.start(t, dir, "sh", "-c", `stty tostop; set -m
distlock --lock-name=tostop --kill-after=1s -- `+loop[0]+` -c '`+loop[2]+`' &
wait $!; echo $? > status`)
	pid := int(readInt(t, filepath.Join(dir, "cmd.pid")))
	revokeAndWaitDead(t, client, "tostop", pid, 3*time.Second)
	if got := waitCmd(t, sh, term); got != 0 {
		t.Errorf("the shell exited %d", got)
	}
	if status := readInt(t, filepath.Join(dir, "status")); status != exitLockLost {
		t.Errorf("distlock exited %d, want %d; terminal shows:\n%s", status, exitLockLost, term.output())
	}
	if out := term.output(); !strings.Contains(out, `distlock: lost lock "tostop"`) {
		t.Errorf("the terminal does not show the lost lock:\n%s", out)
	}
}

// revokeAndWaitDead revokes the lease of lock name's holder and waits until
// process pid is gone, which must be within the given time.
func revokeAndWaitDead(t *testing.T, client *clientv3.Client, name string, pid int, within time.Duration) {
	t.Helper()
	entries := waitKeys(t, client, name, 1)
	revoked := time.Now()
	if _, err := client.Revoke(context.Background(), clientv3.LeaseID(entries[0].Lease)); err != nil {
		t.Fatal(err)
	}
	poll.For(t, "the command to die", 30*time.Second, func() bool { return !alive(pid) })
	if took := time.Since(revoked); took > within {
		t.Errorf("the command died %v after the lease was revoked; want within %v", took.Round(time.Millisecond), within)
	}
}

// TestLateSignalOrLossStartsNothing: between taking the lock and starting
// the command distlock may still wait on etcd (--min-interval reads the
// last run), after the wait for the lock is over. A SIGTERM, or the loss of
// the lease, in that moment still starts nothing: the last look before the
// start sees both.
func TestLateSignalOrLossStartsNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		hold   time.Duration // the read of the last run, and all after it, held back so long
		signal bool          // SIGTERM to distlock as that read goes out
		status int
		said   string
	}{
		{"signal", time.Second, true, 128 + int(syscall.SIGTERM),
			`distlock: not starting the command: got SIGTERM`},
		// The lease's deadline is 2s (ttl - kill-after - 1s) after the
		// last answered keepalive; the read's answer comes at 3.5s,
		// well before its timeout.
		{"lease lost", 3500 * time.Millisecond, false, exitUnavailable,
			`distlock: lost lock "late" before the command started: etcd has not confirmed the lease in time`},
		// No answer before --dial-timeout: the read ends with the lease,
		// not at its own timeout, and says so.
		{"lease lost, no answer", 20 * time.Second, false, exitUnavailable,
			`distlock: lost lock "late" before the command started: etcd has not confirmed the lease in time`},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			client, proxy := testClient(t), testProxy(t)
			dir := t.TempDir()
			pid := make(chan int, 1)
			var hold sync.Once
			held := make(chan struct{})
			proxy.ModifyTx(func(b []byte) []byte {
				if bytes.Contains(b, []byte("!last-run")) {
					hold.Do(func() {
						proxy.DelayTx(tt.hold, 0)
						if tt.signal {
							_ = syscall.Kill(<-pid, syscall.SIGTERM)
						}
						close(held)
					})
				}
				return b
			})
			j := startDistlock(t, dir, proxy.URL(), "--lock-name=late", "--min-interval=1h",
				"--ttl=6s", "--kill-after=3s", "--dial-timeout=5s", "--", "sh", "-c", "echo ran > ran")
			pid <- j.cmd.Process.Pid
			got := j.wait(t, 30*time.Second)
			select {
			case <-held:
			default:
				t.Fatalf("distlock never read the last run; it exited %d; stderr:\n%s", got, j.stderr)
			}
			if got != tt.status {
				t.Errorf("exit %d, want %d; stderr:\n%s", got, tt.status, j.stderr)
			}
			if !strings.Contains(j.stderr.String(), tt.said) {
				t.Errorf("stderr does not say %q:\n%s", tt.said, j.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
				t.Error("the command ran")
			}
			waitKeys(t, client, "late", 0)
		})
	}
}
