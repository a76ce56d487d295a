package supervise

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The parent-death signal reaches only the command itself. If distlock is
// killed (SIGKILL, the OOM killer), what the command started in its process
// group would run on outside the lock. A watchdog, a second distlock process
// in a session of its own, holds the read end of a pipe whose write end only
// distlock holds: end of file without distlock's all-clear means distlock
// died, and the watchdog kills the whole group.

// watchdogEnv marks a distlock process started as a watchdog; its value is
// the process group to guard.
const watchdogEnv = "DISTLOCK_INTERNAL_WATCHDOG_PGID"

// allClear is what distlock writes once the group is gone.
const allClear = 'k'

// RunWatchdogIfAsked turns this process into a watchdog and never returns
// if it was started as one; otherwise it does nothing. main calls it first.
func RunWatchdogIfAsked() {
	v := os.Getenv(watchdogEnv)
	if v == "" {
		return
	}
	pgid, err := strconv.Atoi(v)
	if err != nil || pgid <= 1 {
		os.Exit(2)
	}
	// Signals are for the command; the watchdog only listens to the pipe.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGPIPE)
	pipe := os.NewFile(3, "distlock-watchdog")
	buf := make([]byte, 1)
	n, _ := pipe.Read(buf)
	if n == 0 || buf[0] != allClear {
		_ = unix.Kill(-pgid, unix.SIGKILL)
	}
	os.Exit(0)
}

// startWatchdog starts a watchdog for process group pgid and returns the
// pipe to give it the all-clear with. Without one (it could not start),
// distlock still works, with only the parent-death signal to rely on.
func startWatchdog(pgid int) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	defer r.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return nil
	}
	defer null.Close()
	// /proc/self/exe is this very binary, even if a package upgrade has
	// replaced the file since distlock started.
	_, err = syscall.ForkExec("/proc/self/exe", []string{os.Args[0], "(watchdog)"}, &syscall.ProcAttr{
		Env:   append(os.Environ(), watchdogEnv+"="+strconv.Itoa(pgid)),
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), r.Fd()}, // holds no caller's pipe open
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		w.Close()
		return nil
	}
	return w
}

// dismissWatchdog tells the watchdog the group is gone and it can go.
func (p *Process) dismissWatchdog() {
	if p.watchdog != nil {
		_, _ = p.watchdog.Write([]byte{allClear})
		p.watchdog.Close()
	}
}
