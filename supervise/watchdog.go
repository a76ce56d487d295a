package supervise

import (
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/tinx/distlock/supervise/watchdog"
)

// Watchdog is a watchdog (see package watchdog) waiting to be told the
// command's group.
type Watchdog struct {
	started chan struct{} // closed once the start is over
	pid     int           // the watchdog's, once started
	pipe    *os.File      // the write end, or nil if it could not start
	close   sync.Once
}

// StartWatchdog starts a watchdog, in the background: the caller goes on
// at once. Start one early (while the lock is being taken) and give it to
// Start in Spec.Watchdog, and its start costs the command's start
// nothing; Start starts one itself otherwise. If it cannot start, distlock
// still works, with only the parent-death signal to rely on. Close it if
// no command is started.
func StartWatchdog() *Watchdog {
	w := &Watchdog{started: make(chan struct{})}
	go func() {
		w.pipe, w.pid = startWatchdog()
		close(w.started)
	}()
	return w
}

// ready waits for the start to be over, and returns the pipe to the
// watchdog, or nil.
func (w *Watchdog) ready() *os.File {
	if w == nil {
		return nil
	}
	<-w.started
	return w.pipe
}

// startWatchdog starts the watchdog process, the shell's if there is one,
// distlock itself otherwise, and returns the write end of its pipe and its
// pid, or nil.
func startWatchdog() (*os.File, int) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, 0
	}
	defer r.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return nil, 0
	}
	defer null.Close()
	attr := &syscall.ProcAttr{
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), r.Fd()}, // holds no caller's pipe open
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	// The shell starts in a quarter of the time distlock itself takes;
	// distlock is the watchdog where there is no shell (a container built
	// from scratch). Either shows "distlock (watchdog)" in ps. The shell's
	// own name stays "sh": busybox picks what to run by it.
	pid, err := syscall.ForkExec(shell, []string{"sh", "-c", shellWatchdog, watchdog.Arg0}, attr)
	if err != nil {
		// /proc/self/exe is this very binary, even if a package upgrade
		// has replaced the file since distlock started.
		// Its environment is the marker alone: distlock's holds the
		// etcd password, perhaps, and the watchdog needs nothing else.
		attr.Env = []string{watchdog.Env + "=1"}
		if libs, ok := os.LookupEnv("LD_LIBRARY_PATH"); ok {
			// A build with cgo may need it to start at all.
			attr.Env = append(attr.Env, "LD_LIBRARY_PATH="+libs)
		}
		pid, err = syscall.ForkExec("/proc/self/exe", []string{os.Args[0], watchdog.Arg}, attr)
	}
	if err != nil {
		w.Close()
		return nil, 0
	}
	return w, pid
}

// shell runs shellWatchdog (a variable for the tests of the fallback).
var shell = "/bin/sh"

// shellWatchdog is the watchdog in the shell's words, with the same pipe on
// descriptor 3 (see package watchdog): the group, then the all-clear, or
// end of file first. Its words are the shell's own (read, kill, trap), so
// it needs no PATH and gets no environment.
const shellWatchdog = `trap '' HUP INT QUIT TERM USR1 USR2 WINCH PIPE
read -r g <&3 || exit 0
read -r ok <&3
[ "$ok" = ` + string(watchdog.AllClear) + ` ] || kill -s KILL -- "-$g"`

// Close lets the watchdog go without a group to guard (end of file before
// a group: it just exits), or, once it guards one, after the all-clear.
func (w *Watchdog) Close() {
	if w != nil {
		w.close.Do(func() {
			if pipe := w.ready(); pipe != nil {
				pipe.Close()
			}
		})
	}
}

// guard tells the watchdog which process group to kill if distlock dies.
func (p *Process) guard() {
	if pipe := p.watchdog.ready(); pipe != nil {
		_, _ = pipe.Write([]byte(strconv.Itoa(p.pid) + "\n"))
	}
}

// dismissWatchdog tells the watchdog the group is gone and it can go.
func (p *Process) dismissWatchdog() {
	if pipe := p.watchdog.ready(); pipe != nil {
		_, _ = pipe.Write([]byte{watchdog.AllClear, '\n'})
		p.watchdog.Close()
	}
}
