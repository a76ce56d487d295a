package supervise

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/tinx/distlock/supervise/watchdog"
)

// Watchdog is a started watchdog (see package watchdog), waiting to be told
// the command's group.
type Watchdog struct {
	pipe  *os.File // the write end; the watchdog holds the read end
	close sync.Once
}

// StartWatchdog starts a watchdog. Start one early (while the lock is being
// taken) and give it to Start in Spec.Watchdog, and its start costs the
// command's start nothing; Start starts one itself otherwise. Without one
// (it could not start: nil), distlock still works, with only the
// parent-death signal to rely on. Close it if no command is started.
func StartWatchdog() *Watchdog {
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
	return &Watchdog{pipe: w}
}

// Close lets the watchdog go without a group to guard (end of file before
// a group: it just exits), or, once it guards one, after the all-clear.
func (w *Watchdog) Close() {
	if w != nil {
		w.close.Do(func() { w.pipe.Close() })
	}
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
		_, _ = p.watchdog.pipe.Write([]byte(strconv.Itoa(p.pid) + "\n"))
	}
}

// dismissWatchdog tells the watchdog the group is gone and it can go.
func (p *Process) dismissWatchdog() {
	if p.watchdog != nil {
		_, _ = p.watchdog.pipe.Write([]byte{watchdog.AllClear})
		p.watchdog.Close()
	}
}
