// Package signals names the signals distlock cares about: which ones it
// forwards to the command, how a name becomes a number, and how a death by
// signal becomes an exit status.
package signals

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Forwarded are the signals distlock passes on to the command's process
// group. The synchronous ones (SEGV, BUS, FPE, ILL) and the ones that cannot
// be caught (KILL, STOP) are left out on purpose.
var Forwarded = []syscall.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
}

// EndsWait reports whether sig, arriving while distlock waits for a lock,
// should end the wait. A window resize should not.
func EndsWait(sig syscall.Signal) bool {
	return sig != unix.SIGWINCH
}

// Parse turns "TERM", "SIGTERM", "term" or "15" into a signal.
func Parse(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal number %d out of range", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// Name returns the short upper-case name of sig without "SIG" ("TERM"), or
// its number when it has no name.
func Name(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return strings.TrimPrefix(name, "SIG")
	}
	return strconv.Itoa(int(sig))
}

// ExitStatus is the shell's convention for a process ended by sig: 128+N.
func ExitStatus(sig syscall.Signal) int {
	return 128 + int(sig)
}

// Ends says whether sig, at its default action, ends a process: SIGSTOP
// and the terminal's stops only stop it, and SIGCONT, SIGCHLD, SIGWINCH
// and SIGURG are ignored. Only a signal that ends the command can stop it
// when its lock is lost.
func Ends(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
		syscall.SIGCONT, syscall.SIGCHLD, syscall.SIGWINCH, syscall.SIGURG:
		return false
	}
	return true
}
