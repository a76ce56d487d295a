package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// terminal is a pseudo-terminal whose slave side is a process's
// controlling terminal, as in an interactive login.
type terminal struct {
	master, slave *os.File
	mu            sync.Mutex
	out           bytes.Buffer
	copied        chan struct{}
}

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

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// run starts argv as a session leader with the terminal as its controlling
// terminal and stdin, stdout and stderr.
func (term *terminal) start(t *testing.T, dir string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DISTLOCK_ENDPOINTS="+testEtcd.Endpoint(), "DISTLOCK_PREFIX="+testRealm(t), "DISTLOCK_CONFIG=")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = term.slave, term.slave, term.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

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
	waitUntil(t, "the prompt", 30*time.Second, func() bool { return strings.Contains(term.output(), "prompt") })
	if _, err := io.WriteString(term.master, "hello there\n"); err != nil {
		t.Fatal(err)
	}
	if got := waitCmd(t, cmd, term); got != 0 {
		t.Fatalf("exit %d; terminal shows:\n%s", got, term.output())
	}
	waitUntil(t, "the shell's last words", 10*time.Second, func() bool { return strings.Contains(term.output(), "terminal") })
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
func TestTerminalCtrlZDoesNotSuspend(t *testing.T) {
	term := openTerminal(t)
	dir := t.TempDir()
	cmd := term.start(t, dir, "distlock", "--lock-name=tty", "--", "sh", "-c",
		`echo r > ready; while [ ! -e go-on ]; do sleep 0.05; done; echo finished > done`)
	waitFile(t, filepath.Join(dir, "ready"))
	if _, err := term.master.Write([]byte{26}); err != nil { // Ctrl-Z
		t.Fatal(err)
	}
	waitUntil(t, "distlock's word", 30*time.Second, func() bool {
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
