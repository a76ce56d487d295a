package supervise

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Signal sends sig to the command's whole process group.
func (p *Process) Signal(sig syscall.Signal) {
	_ = unix.Kill(-p.pid, sig)
}

// Forward passes sig on to the command's process group. A signal that asks
// it to end is followed by SIGCONT: a stopped process acts on nothing else.
func (p *Process) Forward(sig syscall.Signal) {
	p.Signal(sig)
	if asksToEnd(sig) {
		p.Signal(syscall.SIGCONT)
	}
}

// asksToEnd reports whether sig asks a process to end.
func asksToEnd(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM:
		return true
	}
	return false
}

// ending calls Spec.Ending, if set.
func (p *Process) ending() {
	if p.spec.Ending != nil {
		p.spec.Ending()
	}
}

// Terminate starts the kill sequence: the kill signal to the group (and
// SIGCONT, so that stopped members can act on it), then SIGKILL after the
// grace period if anything in it still runs. It returns at once; Done tells
// when it is over.
func (p *Process) Terminate() {
	p.terminate.Do(func() {
		p.kill(p.spec.KillSignal)
		// A stopped process (SIGSTOP, or reading from the terminal in
		// the background) does not act on the kill signal until it is
		// continued: continue it, or the grace period is spent waiting.
		p.Signal(syscall.SIGCONT)
		grace := p.spec.KillAfter
		if p.spec.KillBy != nil {
			grace = max(min(grace, time.Until(p.spec.KillBy())), 0)
		}
		go func() {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-p.done:
			case <-t.C:
				p.kill(syscall.SIGKILL)
			}
		}()
	})
}

// kill sends a signal of the kill sequence to the group and keeps the
// first refusal for Wait to tell.
func (p *Process) kill(sig syscall.Signal) {
	if err := unix.Kill(-p.pid, sig); errors.Is(err, unix.EPERM) {
		p.refuse.Do(func() { p.refused <- err })
	}
}

// Stopped says whether Wait stopped the command, and why. The first
// reason decides: the kill sequence is one and the same, whichever
// started it, and a second reason changes nothing.
type Stopped int

const (
	NotStopped          Stopped = iota // it ended by itself (or by a signal passed on)
	StoppedByCaller                    // Wait's stop channel ended
	StoppedAtMaxRuntime                // Spec.MaxRuntime passed
)

// Wait is the command's life from distlock's side, as tini's loop is: it
// passes the signals that arrive on sigs on to the command's group, refuses
// Ctrl-Z for distlock itself, starts the kill sequence the moment stop ends
// (and then calls Spec.Stopping) or Spec.MaxRuntime passes (and then calls
// Spec.Overran), and returns how the command ended once nothing is left of
// its group, and whether and why it stopped the command.
func (p *Process) Wait(stop <-chan struct{}, sigs <-chan os.Signal) (st Status, stopped Stopped) {
	var overran <-chan time.Time
	if p.spec.MaxRuntime > 0 {
		t := time.NewTimer(time.Until(p.started.Add(p.spec.MaxRuntime)))
		defer t.Stop()
		overran = t.C
	}
	for {
		select {
		case s := <-sigs:
			sig := s.(syscall.Signal)
			if asksToEnd(sig) {
				p.ending()
			}
			p.Forward(sig)
		case <-p.tstp:
			if p.spec.SuspendRefused != nil {
				p.spec.SuspendRefused()
			}
		case <-stop:
			stopped = p.stopFor(StoppedByCaller)
			stop, overran = nil, nil
		case <-overran:
			overran = nil
			// A command that exited in time keeps its status, even if
			// what it left in its group is still being ended.
			if !p.hasExited() {
				stopped = p.stopFor(StoppedAtMaxRuntime)
				stop = nil
			}
		case err := <-p.refused:
			// The kill signal, or SIGKILL after the grace period,
			// reached nothing: said after Stopping, whichever it was.
			if p.spec.CannotStop != nil {
				p.spec.CannotStop(err)
			}
		case <-p.done:
			return p.status, stopped
		}
	}
}

// Close ends the delivery of Ctrl-Z to Wait (see Start); once caught,
// it stays caught, and never stops distlock. Call it once the lock is
// let go, not on the way there: os/signal's Stop waits for its own
// goroutine, 0.2 ms that the next holder would wait for.
func (p *Process) Close() {
	signal.Stop(p.tstp)
}

// stopFor starts the kill sequence, and then says why: what is said may
// wait (on etcd, to learn why a key went; on stderr), the kill may not.
func (p *Process) stopFor(why Stopped) Stopped {
	p.ending()
	p.Terminate()
	say := p.spec.Stopping
	if why == StoppedAtMaxRuntime {
		say = p.spec.Overran
	}
	if say != nil {
		say()
	}
	return why
}

// hasExited reports whether the main child has exited.
func (p *Process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// groupAlive reports whether any process is left in the process group.
func groupAlive(pgid int) bool {
	return unix.Kill(-pgid, 0) != unix.ESRCH
}

// waitGroupGone returns once the process group is empty. Its members die
// and are reaped (they are orphans of ours), but nothing tells us when the
// last one is gone, so look often. Only the kernel's answer counts: /proc,
// read one process after another, can miss a process that forks as it is
// read, and the lock must not go while anything in the group may run.
func waitGroupGone(pgid int) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for groupAlive(pgid) {
		<-tick.C
	}
}
