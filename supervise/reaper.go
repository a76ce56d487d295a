package supervise

import (
	"errors"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper is the one place that calls wait4. os/exec's Wait and a
// wait4(-1) loop would race for the same child, so the main child is
// started with ForkExec and its status handed over from here.
type reaper struct {
	mu      sync.Mutex // held while forking, so a fast exit finds its watcher
	watched map[int]func(unix.WaitStatus)
}

var (
	theReaper     *reaper
	startReaperMu sync.Once
)

// getReaper makes distlock a child subreaper, so the command's orphans come
// back to it rather than to init, and starts reaping on SIGCHLD.
func getReaper() *reaper {
	startReaperMu.Do(func() {
		// Best effort: without it orphans go to init, which reaps them too.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
		theReaper = &reaper{watched: map[int]func(unix.WaitStatus){}}
		sigchld := make(chan os.Signal, 1)
		signal.Notify(sigchld, unix.SIGCHLD)
		go func() {
			for range sigchld {
				theReaper.reap()
			}
		}()
	})
	return theReaper
}

// reap collects every child that has exited, the main one and orphans
// alike, and tells the main one's watcher when it exited or stopped.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WUNTRACED, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		watcher, ok := r.watched[pid]
		if !ok {
			continue // an orphan: reaped, nothing more to do
		}
		if !ws.Stopped() {
			delete(r.watched, pid)
		}
		watcher(ws)
	}
}

// awaitExit returns once the child pid has exited, or is gone already,
// without reaping it (WNOWAIT): reaping stays the reaper's alone.
func awaitExit(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}
