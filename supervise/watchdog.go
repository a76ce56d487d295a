package supervise

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/tinx/distlock/supervise/watchdog"
)

// startWatchdog starts a watchdog (see package watchdog) and returns the
// pipe to tell it the command's group with (guard), and later give it the
// all-clear. It is
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
	_, err = syscall.ForkExec("/proc/self/exe", []string{os.Args[0], watchdog.Arg}, &syscall.ProcAttr{
		Env:   append(withoutVar(os.Environ(), watchdog.Env), watchdog.Env+"=1"),
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), r.Fd()}, // holds no caller's pipe open
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		w.Close()
		return nil
	}
	return w
}

// withoutVar is env without any setting of the variable name: the first of
// several settings is the one a program sees.
func withoutVar(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
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
		_, _ = p.watchdog.Write([]byte{watchdog.AllClear})
		p.watchdog.Close()
	}
}
