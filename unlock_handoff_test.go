package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnlockWaitsForCommandToStop: --unlock deletes the holder's key, and
// the holder's distlock stops its command: SIGTERM, which this one
// ignores, then SIGKILL after --kill-after. The next waiter's command
// starts only once that command is dead, not when the key goes.
func TestUnlockWaitsForCommandToStop(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	ep := testEtcd.Endpoint()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startDistlock(t, dirA, ep, append([]string{"--lock-name=handoff", "--kill-after=4s", "--"}, stampLoop(true)...)...)
	cmdPID := readInt(t, filepath.Join(dirA, "cmd.pid"))
	waitFile(t, filepath.Join(dirA, "last.ns"))
	b := startDistlock(t, dirB, ep, "--lock-name=handoff", "--", "sh", "-c", "date +%s%N > start.ns")
	waitKeys(t, client, "handoff", 2)

	unlock := startDistlock(t, t.TempDir(), ep, "--lock-name=handoff", "--unlock")
	if got := unlock.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--unlock exited %d; stderr:\n%s", got, unlock.stderr)
	}
	unlocked := time.Now()

	// While the command runs on, --status shows its holder as stopping,
	// and another --unlock leaves the waiter alone. (If the command is
	// still alive after they have answered, its lease, and with it the
	// record, was alive throughout.)
	status, statusOut, _ := runHandoff(t, "--lock-name=handoff", "--status")
	again, _, againErr := runHandoff(t, "--lock-name=handoff", "--unlock")
	if alive(int(cmdPID)) {
		if want := `lock "handoff" is held by host `; status != 0 || !strings.HasPrefix(statusOut, want) ||
			!strings.Contains(statusOut, "(unlocked; stopping its command)\n  waiter 1: host ") {
			t.Errorf("--status while the unlocked command stops: exit %d, stdout:\n%s\nwant exit 0, the holder as stopping, then the waiter", status, statusOut)
		}
		if want := `distlock: lock "handoff" was unlocked already; the next holder starts once this one has stopped its command: host `; again != 0 || !strings.HasPrefix(againErr, want) || strings.Count(againErr, "\n") != 1 {
			t.Errorf("--unlock again while the command stops: exit %d, stderr:\n%s\nwant one line starting %q", again, againErr, want)
		}
	} else {
		t.Logf("the command was dead before --status and --unlock answered: not checking what they said")
	}

	if got := a.wait(t, 30*time.Second); got != exitLockLost {
		t.Fatalf("unlocked holder exited %d, want %d; stderr:\n%s", got, exitLockLost, a.stderr)
	}
	if alive(int(cmdPID)) {
		t.Errorf("the unlocked command (pid %d) still runs", cmdPID)
	}
	lastA, startB := nextStartsAfter(t, b, dirA, dirB)
	t.Logf("unlocked at +0; the old command last ran at +%v; the next holder started at +%v (%v later)",
		time.Unix(0, lastA).Sub(unlocked).Round(time.Millisecond),
		time.Unix(0, startB).Sub(unlocked).Round(time.Millisecond),
		time.Duration(startB-lastA).Round(time.Millisecond))

	lines := strings.Split(strings.TrimSpace(unlock.stderr.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `distlock: released lock "handoff", held by host `) ||
		lines[1] != `distlock: its command is being stopped; the next holder of lock "handoff" starts once it has stopped (or once that holder's lease has expired)` {
		t.Errorf("--unlock said:\n%s\nwant the holder released, then that its command is being stopped", unlock.stderr)
	}
}

// runHandoff runs distlock with args in the test's realm and returns its
// exit status, standard output and standard error.
func runHandoff(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("distlock", args...)
	cmd.Env = append(os.Environ(),
		"DISTLOCK_ENDPOINTS="+testEtcd.Endpoint(),
		"DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("distlock %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}
