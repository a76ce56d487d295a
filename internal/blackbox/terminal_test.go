package blackbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tinx/distlock/internal/poll"
)

// terminal is a pseudo-terminal whose slave side is a process's
// controlling terminal, as in an interactive login.
type terminal struct {
	master, slave *os.File
	term          string // TERM for what start starts; "" leaves the tests' own
	mu            sync.Mutex
	out           bytes.Buffer
	copied        chan struct{}
}

// openTerminal opens a pseudo-terminal and copies what is written to it
// into the buffer output reads; it skips the test where there are none.
func openTerminal(t *testing.T) *terminal {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{master: m, slave: s, copied: make(chan struct{})}
	go func() {
		defer close(term.copied)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		m.Close()
		select {
		case <-term.copied:
		case <-time.After(5 * time.Second): // a stray process holds the terminal
		}
	})
	return term
}

// output is all the terminal has shown so far.
func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// start starts argv in dir, against the test etcd in the test's realm, as a
// session leader with the terminal as its controlling terminal and its
// stdin, stdout and stderr.
func (term *terminal) start(t *testing.T, dir string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DISTLOCK_ENDPOINTS="+testEtcd(t).Endpoint(), "DISTLOCK_PREFIX="+testRealm(t), "DISTLOCK_CONFIG=/dev/null")
	if term.term != "" {
		cmd.Env = append(cmd.Env, "TERM="+term.term)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = term.slave, term.slave, term.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// waitCmd waits up to 30s for cmd to end and returns its exit status.
func waitCmd(t *testing.T, cmd *exec.Cmd, term *terminal) int {
	t.Helper()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		// Kill the session leader's group (distlock is in it when run by
		// the shell); the kernel then kills distlock's command.
		_ = unix.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%q did not end; terminal shows:\n%s", cmd.Args, term.output())
		return -1
	}
}

// TestTerminalCtrlCReachesEachProcessOnce: the command's group gets the
// terminal, so Ctrl-C goes to it from the terminal, once, and not a second
// time through distlock.
func TestTerminalCtrlCReachesEachProcessOnce(t *testing.T) {
	term := openTerminal(t)
	dir := t.TempDir()
	cmd := term.start(t, dir, "distlock", "--lock-name=tty", "--", "sh", "-c",
		`trap 'echo INT >> got' INT; echo r > ready; while [ ! -e go-on ]; do sleep 0.05; done; exit 0`)
	waitFile(t, filepath.Join(dir, "ready"))
	if _, err := term.master.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "got"))
	if err := os.WriteFile(filepath.Join(dir, "go-on"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := waitCmd(t, cmd, term); got != 0 {
		t.Fatalf("exit %d; terminal shows:\n%s", got, term.output())
	}
	got, _ := os.ReadFile(filepath.Join(dir, "got"))
	if n := strings.Count(string(got), "INT"); n != 1 {
		t.Errorf("the command saw SIGINT %d times, want once", n)
	}
}

// TestTerminalInteractiveCommand: the command can read the terminal (it
// would be stopped with SIGTTIN in the background), and the terminal is
// back with the caller's group when distlock is done.
func TestTerminalInteractiveCommand(t *testing.T) {
	term := openTerminal(t)
	dir := t.TempDir()
	shell := `distlock --lock-name=tty -- sh -c 'echo prompt; read -r line; echo "read: $line"'
st=$?
read -r pid comm state ppid pgrp session tty tpgid rest < /proc/$$/stat
[ "$tpgid" = "$pgrp" ] && echo "terminal back" || echo "terminal left with group $tpgid, not $pgrp"
exit $st`
	cmd := term.start(t, dir, "sh", "-c", shell)
	poll.For(t, "the prompt", 30*time.Second, func() bool { return strings.Contains(term.output(), "prompt") })
	if _, err := io.WriteString(term.master, "hello there\n"); err != nil {
		t.Fatal(err)
	}
	if got := waitCmd(t, cmd, term); got != 0 {
		t.Fatalf("exit %d; terminal shows:\n%s", got, term.output())
	}
	poll.For(t, "the shell's last words", 10*time.Second, func() bool {
		out := term.output() // which may come in pieces: wait for the line's end
		return strings.Contains(out, "terminal") && strings.HasSuffix(out, "\n")
	})
	out := term.output()
	if !strings.Contains(out, "read: hello there") {
		t.Errorf("the command did not read the terminal:\n%s", out)
	}
	if !strings.Contains(out, "terminal back") {
		t.Errorf("the terminal was not given back:\n%s", out)
	}
}

// TestTerminalCtrlZDoesNotSuspend: a suspended job would hold the lock for
// everyone while doing nothing, so Ctrl-Z is answered by continuing the
// command, with a word on the terminal.
//
// The command waits in a builtin, on a FIFO: a shell that starts programs
// in a loop (sleep) can take Ctrl-Z while it forks, which stops the child
// before it runs while the shell waits on it, unstopped (docs/how-it-works.md, "The
// command's life"); one run in six failed so on a loaded machine.
func TestTerminalCtrlZDoesNotSuspend(t *testing.T) {
	term := openTerminal(t)
	dir := t.TempDir()
	goOn := filepath.Join(dir, "go-on")
	if err := unix.Mkfifo(goOn, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := term.start(t, dir, "distlock", "--lock-name=tty", "--", "sh", "-c",
		`echo r > ready; read -r x < go-on; echo finished > done`)
	waitFile(t, filepath.Join(dir, "ready"))
	if _, err := term.master.Write([]byte{26}); err != nil { // Ctrl-Z
		t.Fatal(err)
	}
	poll.For(t, "distlock's word", 30*time.Second, func() bool {
		return strings.Contains(term.output(), `distlock: not suspending the command: it would keep holding lock "tty"; Ctrl-C stops it`)
	})
	if err := os.WriteFile(filepath.Join(dir, "go-on"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := waitCmd(t, cmd, term); got != 0 {
		t.Fatalf("exit %d; terminal shows:\n%s", got, term.output())
	}
	waitFile(t, filepath.Join(dir, "done"))
}

// TestTerminalPipelineKeepsTerminal: in `distlock ... | reader` the whole
// pipeline is the foreground job, so distlock must not hand the terminal to
// its command: the reader of /dev/tty would be stopped in the background
// (or, under a shell without job control, read nothing).
func TestTerminalPipelineKeepsTerminal(t *testing.T) {
	for name, jobControl := range map[string]string{"job control": "set -m\n", "no job control": ""} {
		t.Run(name, func(t *testing.T) {
			term := openTerminal(t)
			dir := t.TempDir()
			// The reader reads once the command has started, and the
			// command runs until the reader has read (5s at most).
			shell := jobControl + `{ distlock --lock-name=tty-pipe -- sh -c 'echo r > started
i=0; while [ ! -e got ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; echo done'
echo $? > status; } | sh -c 'while [ ! -e started ]; do sleep 0.02; done
echo $$ > ready; read -r x < /dev/tty; echo "got $x" > got; cat > out'`
			cmd := term.start(t, dir, "sh", "-c", shell)
			defer func() { _ = unix.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
			reader := waitFile(t, filepath.Join(dir, "ready"))
			if _, err := io.WriteString(term.master, "hello\n"); err != nil {
				t.Fatal(err)
			}
			gotFile := filepath.Join(dir, "got")
			poll.For(t, "the reader's line", 30*time.Second, func() bool {
				if _, err := os.Stat(gotFile); err == nil {
					return true
				}
				// Stopped, or dead without a word: its shell may give
				// up on a stopped job, and the kernel then hangs it up.
				if state := procState(reader); state == "T" || state == "Z" || state == "" {
					if _, err := os.Stat(gotFile); err == nil {
						return true
					}
					_ = unix.Kill(-procPgrp(reader), syscall.SIGKILL)
					t.Fatalf("the reader of /dev/tty was stopped or died (state %q); terminal shows:\n%s", state, term.output())
				}
				return false
			})
			if got := waitCmd(t, cmd, term); got != 0 {
				t.Fatalf("pipeline exit %d; terminal shows:\n%s", got, term.output())
			}
			for file, want := range map[string]string{"got": "got hello", "out": "done", "status": "0"} {
				if got := waitFile(t, filepath.Join(dir, file)); got != want {
					t.Errorf("%s: %q, want %q", file, got, want)
				}
			}
		})
	}
}

// TestTerminalNotTakenBack: when the command has exited, distlock takes the
// terminal back only from the command's group, never from whoever holds it
// now. Here the command, a shell with job control, gave it to a job of its
// own and was killed while that job ran.
func TestTerminalNotTakenBack(t *testing.T) {
	term := openTerminal(t)
	dir := t.TempDir()
	scripts := map[string]string{
		"command.sh": "set -m\nsh job.sh\n",
		"job.sh": `kill -9 $PPID
while [ ! -e status ]; do sleep 0.02; done
read -r pid comm state ppid pgrp session tty tpgid rest < /proc/$$/stat
[ "$tpgid" = "$pgrp" ] && echo kept > checked || echo "taken by group $tpgid" > checked
`,
	}
	for name, text := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := term.start(t, dir, "sh", "-c",
		`distlock --lock-name=tty -- sh command.sh; echo $? > status; while [ ! -e checked ]; do sleep 0.02; done`)
	if got := waitCmd(t, cmd, term); got != 0 {
		t.Fatalf("exit %d; terminal shows:\n%s", got, term.output())
	}
	if got := waitFile(t, filepath.Join(dir, "status")); got != "137" {
		t.Errorf("distlock exited %s, want 137 (the command was killed)", got)
	}
	if got := waitFile(t, filepath.Join(dir, "checked")); got != "kept" {
		t.Errorf("the job lost the terminal: %s", got)
	}
}

// TestTerminalCtrlZInPipelineDoesNotStopDistlock: in a pipeline the command
// does not get the terminal, so Ctrl-Z reaches distlock's own group.
// Stopped, distlock would keep no deadline while its command runs on with
// the lock: it refuses, says so, and goes on.
func TestTerminalCtrlZInPipelineDoesNotStopDistlock(t *testing.T) {
	term := openTerminal(t)
	dir := t.TempDir()
	cmd := term.start(t, dir, "sh", "-c", `set -m
distlock --lock-name=tstp -- sh -c 'echo $PPID > distlock.pid; while [ ! -e go-on ]; do sleep 0.05; done' | cat`)
	defer func() { _ = unix.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
	distlock := waitFile(t, filepath.Join(dir, "distlock.pid"))
	if _, err := io.WriteString(term.master, "\x1a"); err != nil { // Ctrl-Z
		t.Fatal(err)
	}
	poll.For(t, "distlock to refuse Ctrl-Z", 30*time.Second, func() bool {
		// Stopped, distlock may soon be hung up too (its shell moves
		// on from a stopped job): either way it is not running on.
		if state := procState(distlock); state == "T" || state == "Z" || state == "" {
			t.Fatalf("Ctrl-Z stopped distlock (state %q); terminal shows:\n%s", state, term.output())
		}
		return strings.Contains(term.output(), `distlock: not suspending the command: it would keep holding lock "tstp"`)
	})
	if err := os.WriteFile(filepath.Join(dir, "go-on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	poll.For(t, "distlock to finish", 30*time.Second, func() bool { return procState(distlock) == "" })
}

// TestTerminalCommandGetsTerminalWhenItAsks: a command in a pipeline that
// reads the terminal after all (a password prompt) is stopped by the
// kernel; distlock, in the foreground, hands it the terminal and lets it go
// on, as it would have had it if run directly.
func TestTerminalCommandGetsTerminalWhenItAsks(t *testing.T) {
	term := openTerminal(t)
	dir := t.TempDir()
	cmd := term.start(t, dir, "sh", "-c", `set -m
distlock --lock-name=ttin -- sh -c 'echo r > started; read -r x < /dev/tty; echo "got $x" > got; echo done' | cat > out`)
	waitFile(t, filepath.Join(dir, "started"))
	if _, err := io.WriteString(term.master, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if got := waitCmd(t, cmd, term); got != 0 {
		t.Fatalf("exit %d; terminal shows:\n%s", got, term.output())
	}
	for file, want := range map[string]string{"got": "got hello", "out": "done"} {
		if got := waitFile(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s: %q, want %q; terminal shows:\n%s", file, got, want, term.output())
		}
	}
}

// TestTerminalManualLock: on a terminal, --list says when no lock is held
// (a script reads nothing), and --lock shows its key and how to release
// exactly that lock.
func TestTerminalManualLock(t *testing.T) {
	dir := t.TempDir()
	term := openTerminal(t)
	if got := waitCmd(t, term.start(t, dir, "distlock", "--list"), term); got != 0 {
		t.Fatalf("--list: exit %d; terminal shows %q", got, term.output())
	}
	want := "no lock is held in the realm " + testRealm(t) + "\r\n"
	poll.For(t, "--list to say that no lock is held", 10*time.Second, func() bool { return term.output() == want })

	term = openTerminal(t)
	if got := waitCmd(t, term.start(t, dir, "distlock", "--lock-name=manual", "--lock"), term); got != 0 {
		t.Fatalf("--lock: exit %d; terminal shows %q", got, term.output())
	}
	// The realm is not the default here, so the command names it.
	shows := regexp.MustCompile(`^` + regexp.QuoteMeta(testRealm(t)) + `manual/([0-9a-f]+)\r\n` +
		`distlock: holding lock "manual" until it is released: distlock --prefix=` + regexp.QuoteMeta(testRealm(t)) +
		` --lock-name=manual --unlock --holder=([0-9a-f]+)\r\n$`)
	poll.For(t, "--lock to show its key and how to release it", 10*time.Second, func() bool {
		m := shows.FindStringSubmatch(term.output())
		return m != nil && m[1] == m[2]
	})
	lease := shows.FindStringSubmatch(term.output())[1]
	// Run as shown, through a shell, it releases that lock.
	unlock := regexp.MustCompile(`distlock --prefix=.*`).FindString(term.output())
	unlock = strings.TrimRight(unlock, "\r")
	cmd := exec.Command("sh", "-c", unlock)
	cmd.Env = append(os.Environ(), "DISTLOCK_ENDPOINTS="+testEtcd(t).Endpoint(), "DISTLOCK_CONFIG=/dev/null", "DISTLOCK_PREFIX=/elsewhere/")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "/manual/"+lease) {
		t.Fatalf("%s: %v\n%s", unlock, err, out)
	}
	if keys := realmKeys(t, testClient(t)); len(keys) != 0 {
		t.Fatalf("after the shown --unlock, keys are left: %q", keys)
	}
}
