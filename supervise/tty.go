package supervise

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// foregroundTTY returns distlock's controlling terminal if distlock runs in
// its foreground, and nil otherwise (cron, pipes, containers, background
// jobs), in which case no terminal is touched.
func foregroundTTY() *os.File {
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

// reclaimTTY gives the terminal back to distlock's process group once the
// command has exited.
func (p *Process) reclaimTTY() {
	if p.tty == nil {
		return
	}
	// distlock is in the background now: changing the foreground group
	// would stop it with SIGTTOU unless that is blocked on this thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var block, old unix.Sigset_t
	block.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &block, &old); err == nil {
		_ = unix.IoctlSetPointerInt(int(p.tty.Fd()), unix.TIOCSPGRP, unix.Getpgrp())
		_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	}
	p.closeTTY()
}

func (p *Process) closeTTY() {
	if p.tty != nil {
		p.tty.Close()
		p.tty = nil
	}
}
