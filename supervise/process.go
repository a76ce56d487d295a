package supervise

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tinx/distlock/internal/stamp"
	"github.com/tinx/distlock/signals"
)

// Spec describes the command to run.
type Spec struct {
	Args []string // argv; Args[0] is looked up in PATH unless it has a slash
	Env  []string
	// Watchdog, if set, is a watchdog started earlier (StartWatchdog);
	// Start then owns it. Start starts one itself otherwise.
	Watchdog *Watchdog

	// KillSignal and then, KillAfter later, SIGKILL end the command's
	// process group when it must stop.
	KillSignal syscall.Signal
	KillAfter  time.Duration
	// KillBy, if set, is the latest moment for SIGKILL, whenever the
	// kill sequence starts: a sequence started late (distlock stalled, a
	// slow fork) must not push SIGKILL past it.
	KillBy func() time.Time
	// MaxRuntime, if not 0, is how long the command may run, counted
	// from its start: then Wait starts the kill sequence, as it does
	// when its stop channel ends, and calls Overran.
	MaxRuntime time.Duration
	// Overran, if set, is called right after Wait started the kill
	// sequence because MaxRuntime passed.
	Overran func()

	// SuspendRefused, if set, is called when Ctrl-Z on the terminal
	// stopped the command and it was continued at once (see mainChanged),
	// or reached distlock itself and was ignored (see Wait).
	SuspendRefused func()
	// Stopping, if set, is called right after Wait started the kill
	// sequence because its stop channel closed.
	Stopping func()
	// Ending, if set, is called right before Wait starts the kill
	// sequence, whatever the reason, or passes on a signal that asks the
	// command to end (HUP, INT, QUIT, TERM): before the command can know.
	Ending func()
	// Ready, if set, is asked last thing before the command is started,
	// right before the fork; an error from it starts nothing and is
	// returned by Start.
	Ready func() error
	// CannotStop, if set, is called once when a signal of the kill
	// sequence, the kill signal or SIGKILL, could reach nothing in the
	// command's group (EPERM: what is left of it became another user, as
	// sudo does, maybe under a shell that the kill signal did end).
	// Nothing more can be done; Wait goes on waiting.
	CannotStop func(error)
	// WaitsForTerminal, if set, is called when the command stopped to
	// wait for the terminal while distlock is in the background (see
	// awaitTerminal).
	WaitsForTerminal func()
}

// Status is how the command ended.
type Status struct {
	Code   int            // exit code, if it exited
	Signal syscall.Signal // the signal that killed it, or 0
}

// ExitCode is the shell's number for s: the code, or 128+N for signal N.
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return signals.ExitStatus(s.Signal)
	}
	return s.Code
}

func (s Status) String() string {
	if s.Signal != 0 {
		return fmt.Sprintf("killed by signal %d (%s)", int(s.Signal), unix.SignalName(s.Signal))
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

// StartError means the command never ran: it was not found (NotFound), or
// it was found but could not be run.
type StartError struct {
	Command  string
	NotFound bool
	Err      error
}

func (e *StartError) Error() string {
	if e.NotFound {
		return fmt.Sprintf("command not found: %s", e.Command)
	}
	return fmt.Sprintf("cannot run %s: %v", e.Command, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// Process is a running command and its process group.
type Process struct {
	spec     Spec
	pid      int // also the process group ID
	started  time.Time
	watchdog *Watchdog

	ttyMu       sync.Mutex
	tty         *os.File // the terminal the command's group was given
	ttyDone     bool     // the command exited: give no terminal any more
	awaitingTTY atomic.Bool

	exited chan struct{}  // closed when the main child has been reaped
	done   chan struct{}  // closed when the whole group is gone
	status Status         // how the main child ended, once exited is closed
	tstp   chan os.Signal // Ctrl-Z for distlock itself, while the command runs

	terminate sync.Once
	refuse    sync.Once
	refused   chan error // the first EPERM of the kill sequence; one slot
}

// Start runs the command in a new process group.
func Start(spec Spec) (*Process, error) {
	if len(spec.Args) == 0 {
		return nil, &StartError{NotFound: true, Err: errors.New("no command")}
	}
	path, err := lookPath(spec.Args[0])
	if err != nil {
		return nil, err
	}
	p := &Process{
		spec:    spec,
		tty:     foregroundTTY(),
		exited:  make(chan struct{}),
		done:    make(chan struct{}),
		tstp:    make(chan os.Signal, 1),
		refused: make(chan error, 1),
	}
	attr := p.procAttr()

	// Ctrl-Z reaches distlock itself when the command did not get the
	// terminal (a pipeline): stopped, distlock would keep no deadline
	// while its command runs on. Caught here, it is back at its default
	// for the command.
	signal.Notify(p.tstp, syscall.SIGTSTP)
	r := getReaper()
	started := make(chan error, 1)
	go p.run(r, path, attr, started)
	if err := <-started; err != nil {
		signal.Stop(p.tstp)
		p.closeTTY()
		return nil, err
	}
	return p, nil
}

// procAttr is how the command is started: in a process group of its own,
// killed by the kernel if distlock dies, and in the foreground of the
// terminal if it gets one.
func (p *Process) procAttr() *syscall.ProcAttr {
	sys := &syscall.SysProcAttr{
		Setpgid: true,
		// If distlock dies, even by SIGKILL, the kernel kills the command.
		Pdeathsig: syscall.SIGKILL,
	}
	if p.tty != nil {
		sys.Foreground = true
		sys.Ctty = int(p.tty.Fd())
	}
	return &syscall.ProcAttr{
		Env:   p.spec.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   sys,
	}
}

// run forks the command and, on the same thread, waits for it to exit;
// it says on started whether the command started.
func (p *Process) run(r *reaper, path string, attr *syscall.ProcAttr, started chan<- error) {
	// The parent-death signal fires when the thread that forked the
	// child exits, not the process: keep this goroutine on its
	// thread until the child is gone.
	runtime.LockOSThread()
	r.mu.Lock()
	// The watchdog is running before the command is, so that a
	// distlock killed the moment after the fork has one.
	watchdog := p.spec.Watchdog
	if watchdog == nil {
		watchdog = StartWatchdog()
	}
	watchdog.ready()
	var pid int
	var err error
	// Ready is asked last thing before the fork: nothing slow (the
	// watchdog's start) stands between its answer and the command.
	if p.spec.Ready != nil {
		err = p.spec.Ready()
	}
	if err == nil {
		pid, err = syscall.ForkExec(path, p.spec.Args, attr)
		stamp.At("forked")
		if err != nil {
			err = &StartError{Command: p.spec.Args[0], Err: err}
		}
	}
	if err == nil {
		p.pid, p.watchdog, p.started = pid, watchdog, time.Now()
		p.guard()
		r.watched[pid] = p.mainChanged
	} else {
		watchdog.Close() // end of file, no group: it just goes
	}
	r.mu.Unlock()
	started <- err
	if err == nil {
		// Learn of the exit here, on the thread that forked the
		// command, the moment it happens, and reap at once: the
		// SIGCHLD that the reaper waits for comes through Go's signal
		// delivery, a goroutine or two later, and the next holder
		// waits for every bit of it.
		awaitExit(pid)
		stamp.At("exit-seen")
		r.reap()
		<-p.exited
		runtime.UnlockOSThread()
		// The clean-up goes on here, where the exit was learnt: no
		// goroutine of its own to wait for.
		p.cleanUp()
		return
	}
	runtime.UnlockOSThread()
}

// Prepare makes ready, before the lock is taken, what Start would
// otherwise make on the way to the fork: the reaper (distlock becomes a
// child subreaper, and reaps on SIGCHLD from here on).
func Prepare() { getReaper() }

// Find looks name up as Start will, and returns the *StartError that
// Start would, or nil: a caller can refuse a command that cannot run
// before it waits for anything. Start looks again.
func Find(name string) error {
	_, err := lookPath(name)
	return err
}

// lookPath finds the command the way a shell would and says why it cannot
// be run if it cannot.
func lookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	switch {
	case err == nil:
		return path, nil
	case errors.Is(err, exec.ErrDot):
		return path, nil // PATH names "."; a shell would run it too
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return "", &StartError{Command: name, NotFound: true, Err: err}
	}
	return "", &StartError{Command: name, Err: unwrapExecError(err)}
}

func unwrapExecError(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// mainChanged runs on the reaper's goroutine when the main child exited or
// stopped.
func (p *Process) mainChanged(ws unix.WaitStatus) {
	if ws.Stopped() {
		// Ctrl-Z on the terminal stopped the command. A suspended job
		// would hold the lock for everyone while doing nothing, and
		// distlock cannot keep the lease alive while suspended itself:
		// continue the command and say so. A deliberate SIGSTOP stays.
		switch ws.StopSignal() {
		case syscall.SIGTSTP:
			p.Signal(syscall.SIGCONT)
			if p.spec.SuspendRefused != nil {
				p.spec.SuspendRefused()
			}
		case syscall.SIGTTIN, syscall.SIGTTOU:
			go p.awaitTerminal()
		}
		return
	}
	p.mainExited(ws)
}

// mainExited records the main child's exit; run cleans up after it.
func (p *Process) mainExited(ws unix.WaitStatus) {
	if ws.Signaled() {
		p.status = Status{Signal: ws.Signal()}
	} else {
		p.status = Status{Code: ws.ExitStatus()}
	}
	p.reclaimTTY()
	close(p.exited) // run cleans up
}

// cleanUp ends whatever the command left running in its group, so nothing
// it started outlives the lock, then reports the process done.
func (p *Process) cleanUp() {
	if groupAlive(p.pid) {
		p.Terminate()
	}
	waitGroupGone(p.pid)
	p.dismissWatchdog()
	close(p.done)
}
