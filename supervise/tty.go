package supervise

import (
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// foregroundTTY returns distlock's controlling terminal if the command
// should get it, as it would if run directly, and nil otherwise (cron,
// pipes, containers, background jobs, pipelines), in which case no terminal
// is touched. It must run before any child is started.
func foregroundTTY() *os.File {
	tty := ttyIfForeground()
	if tty != nil && !aloneInGroup() {
		tty.Close()
		return nil
	}
	return tty
}

// ttyIfForeground returns distlock's controlling terminal if distlock's
// process group is its foreground group, and nil otherwise.
func ttyIfForeground() *os.File {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	pgrp, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	if err != nil || pgrp != unix.Getpgrp() {
		tty.Close()
		return nil
	}
	return tty
}

// aloneInGroup reports whether no one but distlock and those who started
// it (a shell without job control waits in our group, as it would for the
// command) is in distlock's process group. A shell puts a whole pipeline
// in one group: its other members would be sent to the background.
func aloneInGroup() bool {
	procs := map[int]procStat{}
	everyProcess(func(st procStat) {
		if st.state != 'Z' { // the dead use no terminal
			procs[st.pid] = st
		}
	})
	pgrp := unix.Getpgrp()
	ours := map[int]bool{}
	for pid := os.Getpid(); pid > 0 && !ours[pid]; pid = procs[pid].ppid {
		ours[pid] = true
	}
	for pid, p := range procs {
		if p.pgrp == pgrp && !ours[pid] {
			return false
		}
	}
	return true
}

// reclaimTTY gives the terminal back to distlock's process group once the
// command has exited, unless someone else has taken it meanwhile.
func (p *Process) reclaimTTY() {
	p.ttyMu.Lock()
	defer p.ttyMu.Unlock()
	p.ttyDone = true
	if p.tty == nil {
		return
	}
	fd := int(p.tty.Fd())
	if pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err != nil || pgrp != p.pid {
		p.closeTTY()
		return
	}
	_ = setForeground(fd, unix.Getpgrp())
	p.closeTTY()
}

// setForeground makes pgrp the foreground group of the terminal fd. From
// the background (distlock after handing the terminal over, or if its job
// was moved there meanwhile) that would stop all of distlock with SIGTTOU
// unless it is blocked on the calling thread, so it is, for the call.
func setForeground(fd, pgrp int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var block, old unix.Sigset_t
	block.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &block, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, pgrp)
}

func (p *Process) closeTTY() {
	if p.tty != nil {
		p.tty.Close()
		p.tty = nil
	}
}

// awaitTerminal runs when the command stopped because it wants the terminal
// it was not given at the start (SIGTTIN, SIGTTOU: a pipeline's member, or
// the terminal read for a password). Run directly, it would have had the
// terminal if its job was in the foreground: so it gets it as soon as
// distlock's group is in the foreground (at once, or after `fg`), and is
// continued. Until then it waits, as a background job does, and
// Spec.WaitsForTerminal is told once.
func (p *Process) awaitTerminal() {
	if !p.awaitingTTY.CompareAndSwap(false, true) {
		return
	}
	defer p.awaitingTTY.Store(false)
	told := false
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if tty := ttyIfForeground(); tty != nil {
			if p.giveTTY(tty) {
				p.Signal(unix.SIGCONT)
			}
			return
		}
		if !told && p.spec.WaitsForTerminal != nil {
			told = true
			p.spec.WaitsForTerminal()
		}
		select {
		case <-p.exited:
			return
		case <-tick.C:
		}
		if !stopped(p.pid) {
			return // continued by someone else
		}
	}
}

// giveTTY makes the command's group the foreground of tty, unless the
// command has exited meanwhile, and keeps tty to take it back at the end.
func (p *Process) giveTTY(tty *os.File) bool {
	p.ttyMu.Lock()
	defer p.ttyMu.Unlock()
	if p.ttyDone {
		tty.Close()
		return false
	}
	if p.tty != nil {
		p.tty.Close()
	}
	p.tty = tty
	return setForeground(int(tty.Fd()), p.pid) == nil
}
