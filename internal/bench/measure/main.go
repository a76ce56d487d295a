// Command measure runs a command and writes what it cost, for the
// benchmarks in internal/bench:
//
//	measure RESULT -- COMMAND [ARG...]
//
// It writes "WALL_NS CPU_NS MAXRSS_KIB LATE" to the file RESULT: the wall
// time from start until the command was reaped; the user + system CPU and
// the peak RSS of the command and all its descendants, as the kernel
// accounts for reaped children; and how many descendants outlived the
// command (a watchdog, say). measure is a child subreaper, so those come
// back to it and are reaped and counted too. It exits as the command did.
//
// Why not let the benchmark read wait4 itself: Linux counts into a new
// program's peak RSS the RSS of the process it was started from, as Go
// starts processes (vfork: the child shares its parent's memory until it
// executes). Started from the benchmark's test binary, every command would
// show the test binary's size; started from this small program, only its
// own couple of MiB, below anything measured.
//
// With DISTLOCK_STAMPS_FILE set, it also appends the stamps (see
// internal/stamp) "spawn" and "reaped" under the command's pid: the
// moments just before the fork and just after the reap.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tinx/distlock/internal/stamp"
)

// lingerLimit is how long descendants may outlive the command.
const lingerLimit = 30 * time.Second

func main() {
	if len(os.Args) < 4 || os.Args[2] != "--" {
		fmt.Fprintln(os.Stderr, "usage: measure RESULT -- COMMAND [ARG...]")
		os.Exit(2)
	}
	result, argv := os.Args[1], os.Args[3:]
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fail(127, err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fail(1, fmt.Errorf("become a child subreaper: %w", err))
	}

	start, spawned := time.Now(), stamp.Mono()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		fail(126, err)
	}
	var status syscall.WaitStatus
	if err := wait(pid, &status); err != nil {
		fail(1, err)
	}
	wall := time.Since(start)
	if path := os.Getenv(stamp.FileVar); path != "" {
		// The round trip's first and last moments, for the command's
		// own stamps (internal/bench: the round trip's phases).
		lines := stamp.AppendLine(nil, "spawn", pid, spawned, 0)
		if err := stamp.Write(path, stamp.AppendLine(lines, "reaped", pid, stamp.Mono(), 0)); err != nil {
			fail(1, err)
		}
	}

	late := make(chan int, 1)
	go func() {
		n := 0
		for wait(-1, nil) == nil {
			n++
		}
		late <- n // ECHILD: no descendant is left
	}()
	var lingered int
	select {
	case lingered = <-late:
	case <-time.After(lingerLimit):
		fail(1, fmt.Errorf("descendants of %s still run %v after it ended", argv[0], lingerLimit))
	}

	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &usage); err != nil {
		fail(1, err)
	}
	cpu := usage.Utime.Nano() + usage.Stime.Nano()
	line := fmt.Sprintf("%d %d %d %d\n", wall.Nanoseconds(), cpu, usage.Maxrss, lingered)
	if err := os.WriteFile(result, []byte(line), 0o644); err != nil {
		fail(1, err)
	}
	if status.Signaled() {
		os.Exit(128 + int(status.Signal()))
	}
	os.Exit(status.ExitStatus())
}

// wait reaps pid (-1: any child), retrying when a signal interrupts it.
func wait(pid int, status *syscall.WaitStatus) error {
	for {
		_, err := syscall.Wait4(pid, status, 0, nil)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func fail(status int, err error) {
	fmt.Fprintln(os.Stderr, "measure:", err)
	os.Exit(status)
}
