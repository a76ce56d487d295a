package supervise

import (
	"bufio"
	"os"
	"os/signal"
	"strconv"
	"strings"
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
const watchdogEnv = "DISTLOCK_INTERNAL_WATCHDOG"

// watchdogArg is the watchdog's only argument, and how ps shows it.
const watchdogArg = "(watchdog)"

// allClear is what distlock writes once the group is gone.
const allClear = 'k'

// RunWatchdogIfAsked turns this process into a watchdog and never returns
// if it was started as one; otherwise it does nothing. main calls it first.
func RunWatchdogIfAsked() {
	// Both the marker and the argument: a stray variable in someone's
	// environment must not turn distlock into a watchdog.
	if os.Getenv(watchdogEnv) == "" || len(os.Args) != 2 || os.Args[1] != watchdogArg {
		return
	}
	// Signals are for the command; the watchdog only listens to the pipe.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGPIPE)
	// First the group to guard (distlock writes it the moment the command
	// exists), then the all-clear. End of file before the group: distlock
	// died before it started a command.
	pipe := bufio.NewReader(os.NewFile(3, "distlock-watchdog"))
	line, err := pipe.ReadString('\n')
	pgid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil || pgid <= 1 {
		os.Exit(0)
	}
	if b, err := pipe.ReadByte(); err != nil || b != allClear {
		_ = unix.Kill(-pgid, unix.SIGKILL)
	}
	os.Exit(0)
}

// startWatchdog starts a watchdog and returns the pipe to tell it the
// command's group with (guard), and later give it the all-clear. It is
// started before the command, so that a distlock killed the moment after
// the command's start has a watchdog already. Without one (it could not
// start), distlock still works, with only the parent-death signal to rely
// on.
func startWatchdog() *os.File {
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
	_, err = syscall.ForkExec("/proc/self/exe", []string{os.Args[0], watchdogArg}, &syscall.ProcAttr{
		Env:   append(os.Environ(), watchdogEnv+"=1"),
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), r.Fd()}, // holds no caller's pipe open
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		w.Close()
		return nil
	}
	return w
}

// guard tells the watchdog which process group to kill if distlock dies.
func (p *Process) guard() {
	if p.watchdog != nil {
		_, _ = p.watchdog.Write([]byte(strconv.Itoa(p.pid) + "\n"))
	}
}

// dismissWatchdog tells the watchdog the group is gone and it can go.
func (p *Process) dismissWatchdog() {
	if p.watchdog != nil {
		_, _ = p.watchdog.Write([]byte{allClear})
		p.watchdog.Close()
	}
}
