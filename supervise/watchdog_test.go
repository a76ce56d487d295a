package supervise

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestWatchdog: both watchdogs, the shell and distlock itself (where there
// is no shell), kill the group they were told of when the pipe ends without
// the all-clear, as when distlock is killed, and leave it alone after the
// all-clear.
func TestWatchdog(t *testing.T) {
	shells := []struct{ name, shell string }{
		{"shell", "/bin/sh"},
		{"distlock itself", "/nonexistent/sh"},
	}
	// busybox picks what to run by the name it is started with.
	if bb, err := exec.LookPath("busybox"); err == nil {
		sh := filepath.Join(t.TempDir(), "sh")
		if err := os.Symlink(bb, sh); err != nil {
			t.Fatal(err)
		}
		shells = append(shells, struct{ name, shell string }{"busybox", sh})
	}
	for _, tc := range shells {
		t.Run(tc.name, func(t *testing.T) {
			defer func(old string) { shell = old }(shell)
			shell = tc.shell

			// distlock dies: the pipe ends after the group, without the
			// all-clear.
			group := startGroup(t)
			wd := StartWatchdog()
			if wd.ready() == nil {
				t.Fatal("no watchdog started")
			}
			p := &Process{pid: group.Process.Pid, watchdog: wd}
			p.guard()
			p.watchdog.Close()
			if sig, err := waitKilled(group, 10*time.Second); err != nil || sig != syscall.SIGKILL {
				t.Fatalf("the group's process: %v, signal %v; want killed by SIGKILL", err, sig)
			}

			// The all-clear: the group is left alone.
			group = startGroup(t)
			p = &Process{pid: group.Process.Pid, watchdog: StartWatchdog()}
			p.guard()
			p.dismissWatchdog()
			// Given a moment to do wrong, the watchdog leaves it be.
			if sig, err := waitKilled(group, 500*time.Millisecond); err != errStillRunning {
				t.Fatalf("the group's process ended after the all-clear: %v, signal %v", err, sig)
			}
		})
	}
}

// startGroup starts a process in a process group of its own, killed when
// the test ends.
func startGroup(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

var errStillRunning = errors.New("still running")

// waitKilled waits up to d for cmd to end, and returns the signal that
// killed it (0 if it exited), or errStillRunning.
func waitKilled(cmd *exec.Cmd, d time.Duration) (syscall.Signal, error) {
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal(), nil
		}
		return 0, nil
	case <-time.After(d):
		return 0, errStillRunning
	}
}
