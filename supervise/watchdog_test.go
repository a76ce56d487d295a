package supervise

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/poll"
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
			t.Setenv("DISTLOCK_PASSWORD", "watchdog-sees-this")
			group := startGroup(t)
			wd := StartWatchdog()
			if wd.ready() == nil {
				t.Fatal("no watchdog started")
			}
			// It gets none of distlock's environment: no password.
			if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", wd.pid)); err != nil {
				t.Fatal(err)
			} else if bytes.Contains(env, []byte("watchdog-sees-this")) {
				t.Errorf("the watchdog's environment holds distlock's password: %q", env)
			}
			p := &Process{pid: group.Process.Pid, watchdog: wd}
			p.guard()
			p.watchdog.Close()
			if !gone(group.Process.Pid, 10*time.Second) {
				t.Fatal("the group's process still runs; want it killed")
			}

			// The all-clear: the group is left alone.
			group = startGroup(t)
			p = &Process{pid: group.Process.Pid, watchdog: StartWatchdog()}
			p.guard()
			p.dismissWatchdog()
			// Given a moment to do wrong, the watchdog leaves it be.
			if gone(group.Process.Pid, 500*time.Millisecond) {
				t.Fatal("the group's process ended after the all-clear")
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

// gone waits up to d for process pid to die: no such process, or a zombie
// (whoever reaps it: this package's reaper reaps every child once it runs).
func gone(pid int, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return poll.Until(ctx, func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// The state follows the command name in parentheses.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		return len(rest) > 1 && rest[1] == 'Z'
	}) == nil
}
