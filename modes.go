package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/tinx/distlock/internal/held"
	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/signals"
	"github.com/tinx/distlock/supervise"
)

// runExec is exec mode: acquire the lock, start the command under it, wait
// for it (stopping it if the lock is lost or --max-runtime passes),
// release the lock. With
// --min-interval a recent success starts nothing, and a success is
// recorded; with --min-hold etcd releases the lock, not distlock.
func runExec(ctx context.Context, j *job, x settings.Exec, facts *report.Facts) (err error) {
	// The watchdog and what the command's start needs (the --held
	// socket, the reaper) are made ready while the lease is granted, the
	// socket once the signals are caught (a signal's default would leave
	// it behind). Start owns the watchdog from there; until then, and if
	// no command starts, it is let go here.
	wd := supervise.StartWatchdog()
	defer wd.Close()
	prepared := make(chan *held.Prepared, 1)
	go func() {
		supervise.Prepare()
		<-j.sigs.Ready()
		prepared <- prepareHandOff(j)
	}()

	facts.Waiting()
	h, err := acquire(ctx, j, lock.ModeExec, x.KillAfter+settings.KillMargin)
	facts.Waited(h)
	pre := <-prepared
	defer pre.Close()
	if err != nil {
		return err
	}
	r := &execRun{job: j, x: x, h: h, facts: facts, acquired: time.Now(), held: true}
	defer func() {
		if r.held {
			h.Ending(outcomeOf(err, facts), exitStatus(err, j.lock.ConflictExitCode))
			letGo(j, x, h, r.holdUntil)
			facts.Released()
		}
	}()
	return r.run(ctx, pre, wd)
}

// execRun is exec mode once the lock is taken.
type execRun struct {
	*job
	x         settings.Exec
	h         *lock.Holder
	facts     *report.Facts
	acquired  time.Time
	holdUntil time.Time // --min-hold, once the command has started
	held      bool      // the lock is still to be let go
}

// run starts the command under the lock, unless --min-interval finds a
// recent success, and waits for it.
func (r *execRun) run(ctx context.Context, pre *held.Prepared, wd *supervise.Watchdog) error {
	j, x, h := r.job, r.x, r.h
	if x.MinInterval != 0 {
		// etcd is asked before the start: the key's watch starts now,
		// so that an --unlock meanwhile keeps the command from starting.
		h.Started()
	}
	skip, err := recentRun(ctx, j, x, h)
	if skip || err != nil {
		r.facts.Skipped = skip
		return err
	}
	j.out.About(report.EventAcquired).With("key", h.Key).With("fencing_token", h.FencingToken).With("shared", j.lock.Shared).
		Step("acquired lock %q as %s (fencing token %d)", j.lock.Name, h.Key, h.FencingToken)

	ho := pre.Hold(h, j.lock.Realm, j.conn) // from now on --held answers about h
	defer ho.Close()                        // before the lock is let go: --held then cannot reach it (69)
	started := time.Now()
	p, err := supervise.Start(commandSpec(j, x, h, ho, wd))
	if err != nil {
		return notStarted(j, h, err)
	}
	defer p.Close()
	h.Started() // the key's watch, from the revision that found it ours
	// The writes that only describe the holding (since when, the begun
	// history record) wait until the command has had its start; one
	// that ends sooner has its record written whole by the release.
	defer time.AfterFunc(beginAfter, h.Begin).Stop()
	r.holdUntil = r.acquired.Add(x.MinHold)

	st, stopped := p.Wait(h.Context().Done(), j.sigs.C)
	switch stopped {
	case supervise.StoppedByCaller:
		return lockLost{h.Err()}
	case supervise.StoppedAtMaxRuntime:
		return overran{x.MaxRuntime}
	}
	return r.ended(st, ho, started)
}

// ended says how the command ended and, unless --min-interval or
// --min-hold has more to do under the lock, lets the lock go at once,
// beside that line: the next holder waits for nothing that is said here.
// The --held socket is closed before the lock goes, and the release's
// own line follows the command's.
func (r *execRun) ended(st supervise.Status, ho *held.Server, started time.Time) error {
	say := func() {
		r.out.About(report.EventEnded).With("exit_status", st.ExitCode()).Step("command ended: %v", st)
	}
	err := commandEnded{st}
	if r.x.MinInterval != 0 || r.x.MinHold != 0 {
		say()
		if st.ExitCode() == 0 {
			recordRun(r.job, r.x, r.h, started)
		}
		return err
	}
	ho.Stop()
	r.h.Ending(outcomeOf(err, r.facts), exitStatus(err, r.lock.ConflictExitCode))
	said := make(chan struct{})
	go func() {
		defer close(said)
		say()
		ho.Close() // its directory goes beside the release (0.5 ms here)
	}()
	released := release(r.job, r.h, false)
	<-said
	released()
	r.facts.Released()
	r.held = false
	return err
}

// beginAfter is how long after the command's start the writes that only
// describe the holding are made (lock.Holder.Begin): a command's start
// takes a few milliseconds, and a busy lock's next holder waits for
// every one of them.
const beginAfter = 20 * time.Millisecond

// commandSpec is how the command runs under h: its arguments and
// environment, the kill sequence and its bounds, and the lines that tell
// what the supervision does.
func commandSpec(j *job, x settings.Exec, h *lock.Holder, ho *held.Server, wd *supervise.Watchdog) supervise.Spec {
	return supervise.Spec{
		Args:       x.Command,
		Env:        commandEnv(h, ho.Env()...),
		Ending:     ho.Ending, // from then on --held answers 70
		Watchdog:   wd,
		KillSignal: x.KillSignal,
		KillAfter:  x.KillAfter,
		MaxRuntime: x.MaxRuntime,
		// SIGKILL never later than the safety rule allows, even if the
		// kill sequence starts late.
		KillBy: func() time.Time { return h.SafeUntil().Add(-settings.KillMargin) },
		// A signal may have come since the lock was taken, and the lease
		// may have gone without the loss being noticed yet: look at
		// both, the deadline itself, last thing before the start.
		Ready: func() error {
			if sig := (signalError{j.sigs.Pending()}); sig.sig != 0 {
				return sig
			}
			return h.Check()
		},
		Stopping: func() {
			j.out.About(report.EventLost).Fail("lost lock %q: %v; stopping the command with SIG%s (SIGKILL after %v)",
				h.LostName(), h.Err(), signals.Name(x.KillSignal), x.KillAfter)
		},
		Overran: func() {
			j.out.About(report.EventOverran).Fail("the command has run for %v (--max-runtime); stopping it with SIG%s (SIGKILL after %v)",
				x.MaxRuntime, signals.Name(x.KillSignal), x.KillAfter)
		},
		CannotStop: func(err error) {
			j.out.About(report.EventCannotStop).Fail("cannot stop the command: %v (it runs as another user); waiting for it to end by itself",
				err)
		},
		SuspendRefused: func() {
			j.out.Info("not suspending the command: it would keep holding lock %q; Ctrl-C stops it", j.lock.Name)
		},
		WaitsForTerminal: func() {
			j.out.Info("the command waits for the terminal, holding lock %q; bring distlock to the foreground (fg)", j.lock.Name)
		},
	}
}

// notStarted says why the command did not start, and returns what
// happened.
func notStarted(j *job, h *lock.Holder, err error) error {
	var notStart *supervise.StartError
	var sig signalError
	switch {
	case errors.As(err, &notStart):
		j.out.About(report.EventNotStarted).Fail("%v", err)
		return err
	case errors.As(err, &sig):
		j.out.About(report.EventSignal).Fail("not starting the command: got SIG%s", signals.Name(sig.sig))
		return err
	default: // Ready said no: no command has run, etcd is the trouble
		j.out.About(report.EventLost).Fail("lost lock %q before the command started: %v", h.LostName(), err)
		return lostBeforeStart{err}
	}
}

// runLock is --lock: wait for the lock, then keep it beyond this process.
func runLock(ctx context.Context, j *job, stdout io.Writer, facts *report.Facts) error {
	facts.Waiting()
	h, err := acquire(ctx, j, lock.ModeLock, 0)
	facts.Waited(h)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, j.lock.RPCTimeout)
	defer cancel()
	expires, err := h.Keep(dctx, j.lock.Expire)
	if err != nil {
		release(j, h, true)()
		facts.Released()
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	}
	// The key, for a script to release exactly this lock later:
	// KEY=$(distlock --lock ...) ... distlock --unlock --holder="$KEY".
	if _, err := fmt.Fprintln(stdout, h.Key); err != nil {
		j.out.About(report.EventAcquired).With("key", h.Key).Warn("holding lock %q as %s, but could not print the key (%v)", j.lock.Name, h.Key, err)
	}
	orExpires := ""
	if !expires.IsZero() {
		orExpires = ", or etcd removes it at " + expires.Local().Format(time.RFC3339) + " or later (--expire)"
	}
	j.out.About(report.EventAcquired).With("key", h.Key).With("fencing_token", h.FencingToken).With("shared", j.lock.Shared).
		Step("holding lock %q as %s until someone runs --unlock%s", j.lock.Name, h.Key, orExpires)
	if j.out.ToTerminal() {
		j.out.Info("holding lock %q until it is released%s: %s", j.lock.Name, orExpires, j.unlockCommand(h.Key))
	}
	return nil
}

// acquire waits for the lock while watching for signals that end the wait,
// and says why if it was not acquired. A signal that came while the lock
// was being taken, even in the instant it became ours, means: do not go
// on; the lock is released again.
func acquire(ctx context.Context, j *job, mode string, lead time.Duration) (*lock.Holder, error) {
	sigs := j.sigs.C
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		for {
			select {
			case s := <-sigs:
				if sig := s.(syscall.Signal); signals.EndsWait(sig) {
					cancel(signalError{sig})
					return
				}
			case <-stop:
				return
			}
		}
	}()
	reqs := j.requests(mode, lead)
	reqs[0].Ready = j.sigs.Ready() // a lease or key written before would outlive a signal's default
	// On a terminal the waiting line stays live, and is gone again before
	// anything else is said or run. (A set of locks says each wait in a
	// line of its own.)
	var line *report.WaitLine
	if len(reqs) == 1 {
		line = report.NewWaitLine(wctx, report.Queue{Client: j.client, Realm: j.lock.Realm, Name: j.lock.Name, Timeout: j.lock.RPCTimeout}, reqs[0].Info, j.out)
	}
	reqs[0].Blocked = j.blockedBy(reqs[0], line)
	reqs[0].Outage = j.out.Outages(j.lock.Name, mode == lock.ModeExec, line)
	h, err := acquireLock(wctx, j.client, reqs)
	line.Stop()
	close(stop)
	<-watching

	var sig signalError
	if h != nil && !errors.As(context.Cause(wctx), &sig) {
		sig = signalError{j.sigs.Pending()}
	}
	switch {
	case h != nil && sig.sig != 0:
		release(j, h, true)()
		j.out.About(report.EventSignal).Fail("got SIG%s just as lock %q was taken; released it again", signals.Name(sig.sig), j.lock.Name)
		return nil, sig
	case h != nil:
		return h, nil
	case errors.As(context.Cause(wctx), &sig):
		j.out.About(report.EventSignal).Fail("stopped waiting for lock %q: got SIG%s", j.lock.Name, signals.Name(sig.sig))
		return nil, sig
	}
	sayNotAcquired(j, err)
	return nil, err
}

// sayNotAcquired says why the lock was not acquired: another --limit, the
// timeout (naming the holder), or etcd.
func sayNotAcquired(j *job, err error) {
	var conflict *lock.ConflictError
	var limit *lock.LimitError
	var outage *lock.OutageError
	switch {
	case errors.As(err, &limit):
		j.out.About(report.EventUsage).Fail("%v", err)
	case errors.As(err, &outage):
		j.out.About(report.EventEtcdError).Fail("%v; gave up after %v (--timeout)", err, j.lock.Timeout)
	case errors.As(err, &conflict):
		about := j.out.About(report.EventConflict)
		if conflict.Holder != nil {
			about = about.Holder(*conflict.Holder)
		}
		say := about.Fail
		if j.lock.ConflictExitCode == 0 {
			say = about.Info // "skip if busy": --quiet makes it silent
		}
		if j.lock.Timeout == 0 {
			say("%v; not waiting (--nowait)", conflict)
		} else {
			say("%v; gave up after %v (--timeout)", conflict, j.lock.Timeout)
		}
	default:
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
	}
}

// acquireLock is lock.AcquireSet; tests replace it to send a signal at
// the worst moment.
var acquireLock = lock.AcquireSet

// release gives the lock back; if etcd cannot be reached the lease expires
// by itself. It returns what says how that went: unless quietly (a line
// that says more follows), a lock that was still ours is said released,
// in JSON a step of the run.
func release(j *job, h *lock.Holder, quietly bool) (say func()) {
	ctx, cancel := context.WithTimeout(context.Background(), j.lock.RPCTimeout)
	defer cancel()
	lost := h.Err() != nil // then it is not ours to say released
	if err := h.Release(ctx); err != nil {
		return func() {
			j.out.About(report.EventReleaseFailed).Fail("could not release lock %q (%v); etcd will expire it within %v", j.lock.Name, err, j.lock.TTL)
		}
	}
	return func() {
		if !lost && !quietly {
			j.out.About(report.EventReleased).With("key", h.Key).Step("released lock %q", j.lock.Name)
		}
	}
}

// requests describe what this call wants of each of its locks.
func (j *job) requests(mode string, lead time.Duration) []lock.Request {
	var reqs []lock.Request
	for _, name := range j.lock.Names {
		reqs = append(reqs, j.request(name, mode, lead))
	}
	return reqs
}

// request describes what this call wants of the lock name.
func (j *job) request(name, mode string, lead time.Duration) lock.Request {
	host, _ := os.Hostname()
	return lock.Request{
		Realm: j.lock.Realm,
		Name:  name,
		Info: lock.Info{
			Reason:  j.lock.Reason,
			Command: j.lock.Command,
			Host:    host,
			PID:     os.Getpid(),
			User:    currentUser(),
			Mode:    mode,
			Shared:  j.lock.Shared,
		},
		Limit:      j.lock.Limit,
		Timeout:    j.lock.Timeout,
		TTL:        j.lock.TTL,
		Lead:       lead,
		RPCTimeout: j.lock.RPCTimeout,
		History:    j.lock.History,
		Deferred:   mode == lock.ModeExec,
		Blocked: func(holder lock.Entry) {
			j.out.About(report.EventWaiting).Holder(holder).Info("lock %q is held by %s; waiting", name, holder.Describe())
		},
	}
}

// sameHolder says, when a --lock finds the lock held with --lock by this
// host and user (taken earlier and forgotten, most likely), that it waits
// behind that one, and how to release it.
func (j *job) sameHolder(me lock.Info, holder lock.Entry) {
	in := holder.Info
	if me.Mode != lock.ModeLock || in == nil || in.Mode != lock.ModeLock || in.Host != me.Host || in.User != me.User {
		return
	}
	j.out.About(report.EventWaiting).Holder(holder).Info("lock %q is held by this host and user already, since %s; this call waits behind it like any other (to release that one: %s)",
		j.lock.Name, holder.Info.Since.UTC().Format(time.RFC3339), j.unlockCommand(holder.Key))
}

// blockedBy is what a request says when it finds the lock taken: on a
// terminal the live line (line), else the one waiting line; both after
// sameHolder.
func (j *job) blockedBy(req lock.Request, line *report.WaitLine) func(lock.Entry) {
	say := req.Blocked
	if line != nil {
		say = line.Blocked
	}
	return func(holder lock.Entry) {
		j.sameHolder(req.Info, holder)
		say(holder)
	}
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}
