package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/signals"
	"github.com/tinx/distlock/supervise"
)

// runExec is exec mode: acquire the lock, start the command under it, wait
// for it (stopping it if the lock is lost), release the lock. With
// --min-interval a recent success starts nothing, and a success is
// recorded; with --min-hold etcd releases the lock, not distlock.
func runExec(ctx context.Context, c *config, client *clientv3.Client, out *report.Reporter, facts *report.Facts) error {
	sigs := notifySignals()
	defer signal.Stop(sigs)
	// The watchdog starts while the lock is taken, so that its start does
	// not stand between the lock and the command. Start owns it from
	// there; until then, and if no command starts, it is let go here.
	wd := supervise.StartWatchdog()
	defer wd.Close()

	facts.Waiting()
	h, err := acquire(ctx, c, client, lock.ModeExec, c.killAfter+killMargin, sigs, out)
	facts.Waited(h)
	if err != nil {
		return err
	}
	acquired := time.Now()
	var holdUntil time.Time // --min-hold, once the command has started
	defer func() {
		letGo(c, h, holdUntil, out)
		facts.Released()
	}()
	skip, err := recentRun(ctx, h, c, client, out)
	if skip || err != nil {
		facts.Skipped = skip
		return err
	}
	out.About(report.EventAcquired).With("key", h.Key).With("fencing_token", h.FencingToken).
		Debug("acquired lock %q as %s (fencing token %d)", c.lockName, h.Key, h.FencingToken)

	started := time.Now()
	p, err := supervise.Start(commandSpec(c, h, wd, sigs, out))
	if err != nil {
		return notStarted(c, err, out)
	}
	holdUntil = acquired.Add(c.minHold)

	st, stopped := p.Wait(h.Context().Done(), sigs)
	if stopped {
		return lockLost{h.Err()}
	}
	out.About(report.EventEnded).With("exit_status", st.ExitCode()).Debug("command ended: %v", st)
	if st.ExitCode() == 0 {
		recordRun(c, h, started, out)
	}
	return commandEnded{st}
}

// commandSpec is how the command runs under h: its arguments and
// environment, the kill sequence and its bounds, and the lines that tell
// what the supervision does.
func commandSpec(c *config, h *lock.Holder, wd *supervise.Watchdog, sigs <-chan os.Signal, out *report.Reporter) supervise.Spec {
	return supervise.Spec{
		Args:       c.command,
		Env:        commandEnv(h),
		Watchdog:   wd,
		KillSignal: c.killSignal,
		KillAfter:  c.killAfter,
		// SIGKILL never later than the safety rule allows, even if the
		// kill sequence starts late.
		KillBy: func() time.Time { return h.SafeUntil().Add(-killMargin) },
		// A signal may have come since the lock was taken, and the lease
		// may have gone without the loss being noticed yet: look at
		// both, the deadline itself, last thing before the start.
		Ready: func() error {
			if sig := pendingSignal(sigs); sig.sig != 0 {
				return sig
			}
			return h.Check()
		},
		Stopping: func() {
			out.About(report.EventLost).Fail("lost lock %q: %v; stopping the command with SIG%s (SIGKILL after %v)",
				c.lockName, h.Err(), signals.Name(c.killSignal), c.killAfter)
		},
		CannotStop: func(err error) {
			out.About(report.EventCannotStop).Fail("cannot stop the command: %v (it runs as another user); waiting for it to end by itself",
				err)
		},
		SuspendRefused: func() {
			out.Info("not suspending the command: it would keep holding lock %q; Ctrl-C stops it", c.lockName)
		},
		WaitsForTerminal: func() {
			out.Info("the command waits for the terminal, holding lock %q; bring distlock to the foreground (fg)", c.lockName)
		},
	}
}

// notStarted says why the command did not start, and returns what
// happened.
func notStarted(c *config, err error, out *report.Reporter) error {
	var notStart *supervise.StartError
	var sig signalError
	switch {
	case errors.As(err, &notStart):
		out.About(report.EventNotStarted).Fail("%v", err)
		return err
	case errors.As(err, &sig):
		out.About(report.EventSignal).Fail("not starting the command: got SIG%s", signals.Name(sig.sig))
		return err
	default: // Ready said no: no command has run, etcd is the trouble
		out.About(report.EventLost).Fail("lost lock %q before the command started: %v", c.lockName, err)
		return lostBeforeStart{err}
	}
}

// runLock is --lock: wait for the lock, then keep it beyond this process.
func runLock(ctx context.Context, c *config, client *clientv3.Client, out *report.Reporter, facts *report.Facts) error {
	sigs := notifySignals()
	defer signal.Stop(sigs)
	facts.Waiting()
	h, err := acquire(ctx, c, client, lock.ModeLock, 0, sigs, out)
	facts.Waited(h)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	if err := h.Detach(dctx); err != nil {
		release(c, h, out)
		facts.Released()
		out.About(report.EventEtcdError).Fail("%v", etcdError(c, err))
		return err
	}
	out.About(report.EventAcquired).With("key", h.Key).With("fencing_token", h.FencingToken).
		Debug("holding lock %q as %s until someone runs --unlock", c.lockName, h.Key)
	return nil
}

// runUnlock is --unlock: delete the holder's key, whoever holds it. A
// holder that is still running makes way for a record that keeps the lock
// taken until it has stopped its command.
func runUnlock(ctx context.Context, c *config, client *clientv3.Client, out *report.Reporter) error {
	rctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	var done *lock.Unlocked
	var err error
	key := ""
	if c.holder != "" {
		var kerr error
		key, kerr = lock.KeyOf(c.prefix, c.lockName, c.holder)
		if kerr != nil {
			err = usagef("--holder: %v", kerr)
			out.About(report.EventUsage).Fail("%v", err)
			return err
		}
		done, err = lock.UnlockKey(rctx, client, c.prefix, c.lockName, key)
	} else {
		done, err = lock.Unlock(rctx, client, c.prefix, c.lockName)
	}
	switch {
	case err != nil:
		out.About(report.EventEtcdError).Fail("%v", etcdError(c, err))
		return err
	case done.Removed != nil && c.holder != "":
		out.About(report.EventReleased).Holder(*done.Removed).Info("released key %s of lock %q: %s", untrusted.Word(key, untrusted.MaxKey), c.lockName, describeUnlocked(*done.Removed))
		sayStopping(c, done, out)
	case done.Removed != nil:
		out.About(report.EventReleased).Holder(*done.Removed).Info("released lock %q, held by %s", c.lockName, describeUnlocked(*done.Removed))
		sayStopping(c, done, out)
	case len(done.Pending) > 0:
		for _, e := range done.Pending {
			out.About(report.EventStopping).Holder(e).Info("lock %q was unlocked already; the next holder starts once this one has stopped its command: %s", c.lockName, describeUnlocked(e))
		}
	case c.holder != "":
		out.About(report.EventNotHeld).Info("lock %q has no key %s; nothing to unlock", c.lockName, untrusted.Word(key, untrusted.MaxKey))
	default:
		out.About(report.EventNotHeld).Info("lock %q is not held; nothing to unlock", c.lockName)
	}
	return nil
}

// describeUnlocked is who a removed key belonged to, without the note that
// it is stopping: sayStopping says that on a line of its own.
func describeUnlocked(e lock.Entry) string {
	e.Stopping = false
	return e.Describe()
}

// sayStopping tells, after an unlock that left a stopping record, that the
// lock is not free yet, and which lease keeps it: if that holder's
// machine is gone, nobody stops anything, and whoever knows it can revoke
// the lease rather than wait for it to expire.
func sayStopping(c *config, done *lock.Unlocked, out *report.Reporter) {
	if done.Stopping {
		out.About(report.EventStopping).Holder(*done.Removed).Info("its command is being stopped; the next holder of lock %q starts once it has stopped, or its lease %x expires", c.lockName, done.Removed.Lease)
	}
}

// acquire waits for the lock while watching for signals that end the wait,
// and says why if it was not acquired. A signal that came while the lock
// was being taken, even in the instant it became ours, means: do not go
// on; the lock is released again.
func acquire(ctx context.Context, c *config, client *clientv3.Client, mode string, lead time.Duration, sigs <-chan os.Signal, out *report.Reporter) (*lock.Holder, error) {
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
	req := c.request(mode, lead, out)
	// On a terminal the waiting line stays live, and is gone again before
	// anything else is said or run.
	line := report.NewWaitLine(wctx, report.Queue{Client: client, Realm: c.prefix, Name: c.lockName, Timeout: c.dialTimeout}, req.Info, out)
	if line != nil {
		req.Blocked = line.Blocked
	}
	h, err := acquireLock(wctx, client, req)
	line.Stop()
	close(stop)
	<-watching

	var sig signalError
	if h != nil && !errors.As(context.Cause(wctx), &sig) {
		sig = pendingSignal(sigs)
	}
	switch {
	case h != nil && sig.sig != 0:
		release(c, h, out)
		out.About(report.EventSignal).Fail("got SIG%s just as lock %q was taken; released it again", signals.Name(sig.sig), c.lockName)
		return nil, sig
	case h != nil:
		return h, nil
	case errors.As(context.Cause(wctx), &sig):
		out.About(report.EventSignal).Fail("stopped waiting for lock %q: got SIG%s", c.lockName, signals.Name(sig.sig))
		return nil, sig
	}
	sayNotAcquired(c, err, out)
	return nil, err
}

// sayNotAcquired says why the lock was not acquired: another --limit, the
// timeout (naming the holder), or etcd.
func sayNotAcquired(c *config, err error, out *report.Reporter) {
	var conflict *lock.ConflictError
	var limit *lock.LimitError
	switch {
	case errors.As(err, &limit):
		out.About(report.EventUsage).Fail("%v", err)
	case errors.As(err, &conflict):
		about := out.About(report.EventConflict)
		if conflict.Holder != nil {
			about = about.Holder(*conflict.Holder)
		}
		say := about.Fail
		if c.conflictExitCode == 0 {
			say = about.Info // "skip if busy": --quiet makes it silent
		}
		if c.timeout == 0 {
			say("%v; not waiting (--nowait)", conflict)
		} else {
			say("%v; gave up after %v (--timeout)", conflict, c.timeout)
		}
	default:
		out.About(report.EventEtcdError).Fail("%v", etcdError(c, err))
	}
}

// acquireLock is lock.Acquire; tests replace it to send a signal at the
// worst moment.
var acquireLock = lock.Acquire

// pendingSignal returns a signal that ends a wait and is still queued in
// sigs, taking every queued signal out, or a zero signalError.
func pendingSignal(sigs <-chan os.Signal) signalError {
	var found signalError
	for {
		select {
		case s := <-sigs:
			if sig := s.(syscall.Signal); signals.EndsWait(sig) && found.sig == 0 {
				found = signalError{sig}
			}
		default:
			return found
		}
	}
}

// release gives the lock back; if etcd cannot be reached the lease expires
// by itself.
func release(c *config, h *lock.Holder, out *report.Reporter) {
	ctx, cancel := context.WithTimeout(context.Background(), c.dialTimeout)
	defer cancel()
	if err := h.Release(ctx); err != nil {
		out.About(report.EventReleaseFailed).Fail("could not release lock %q (%v); etcd will expire it within %v", c.lockName, err, c.ttl)
	}
}

// request describes what this call wants of the lock.
func (c *config) request(mode string, lead time.Duration, out *report.Reporter) lock.Request {
	host, _ := os.Hostname()
	return lock.Request{
		Realm: c.prefix,
		Name:  c.lockName,
		Info: lock.Info{
			Reason: c.reason,
			Host:   host,
			PID:    os.Getpid(),
			User:   currentUser(),
			Mode:   mode,
		},
		Limit:      c.limit,
		Timeout:    c.timeout,
		TTL:        c.ttl,
		Lead:       lead,
		RPCTimeout: c.dialTimeout,
		Blocked: func(holder lock.Entry) {
			out.About(report.EventWaiting).Holder(holder).Info("lock %q is held by %s; waiting", c.lockName, holder.Describe())
		},
	}
}

// commandEnv is distlock's environment plus what the command may want to
// know about its lock, replacing values an outer distlock set. The etcd
// password is not passed on: see withoutSecrets.
func commandEnv(h *lock.Holder) []string {
	var env []string
	for _, kv := range withoutSecrets(os.Environ()) {
		if !strings.HasPrefix(kv, "DISTLOCK_HELD_KEY=") && !strings.HasPrefix(kv, "DISTLOCK_FENCING_TOKEN=") {
			env = append(env, kv)
		}
	}
	return append(env,
		"DISTLOCK_HELD_KEY="+h.Key,
		"DISTLOCK_FENCING_TOKEN="+strconv.FormatInt(h.FencingToken, 10))
}

// withoutSecrets is env without the variables that may hold the etcd
// password: DISTLOCK_PASSWORD and ETCDCTL_PASSWORD always, DISTLOCK_USER
// and ETCDCTL_USER when they hold NAME:PASSWORD (a user name alone is
// passed on: it tells the command who distlock is to etcd, and lets
// nobody in).
func withoutSecrets(env []string) []string {
	var kept []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		switch {
		case name == "DISTLOCK_PASSWORD", name == "ETCDCTL_PASSWORD":
			continue
		case (name == "DISTLOCK_USER" || name == "ETCDCTL_USER") && strings.Contains(value, ":"):
			continue
		}
		kept = append(kept, kv)
	}
	return kept
}

func notifySignals() chan os.Signal {
	sigs := make(chan os.Signal, 16)
	for _, s := range signals.Forwarded {
		signal.Notify(sigs, s)
	}
	return sigs
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
