package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/signals"
	"github.com/tinx/distlock/supervise"
)

// runExec is exec mode: wait for the lock, run the command under it, stop
// the command if the lock is lost, release the lock when it is over.
func runExec(ctx context.Context, c *config, client *clientv3.Client, out *reporter) int {
	sigs := notifySignals()
	defer signal.Stop(sigs)

	h, status := acquire(ctx, c, client, lock.ModeExec, c.killAfter+killMargin, sigs, out)
	if h == nil {
		return status
	}
	defer release(c, h, out)
	out.debug("acquired lock %q as %s (fencing token %d)", c.lockName, h.Key, h.FencingToken)

	// A signal that came while the lock was being taken still means: do
	// not start.
	for pending := true; pending; {
		select {
		case s := <-sigs:
			if sig := s.(syscall.Signal); signals.EndsWait(sig) {
				out.fail("not starting the command: got SIG%s", signals.Name(sig))
				return signals.ExitStatus(sig)
			}
		default:
			pending = false
		}
	}
	// Ctrl-Z reaches distlock itself when the command did not get the
	// terminal (a pipeline): stopped, distlock would keep no deadline
	// while its command runs on. Caught, it is back at its default for
	// the command.
	tstp := make(chan os.Signal, 1)
	signal.Notify(tstp, syscall.SIGTSTP)
	defer signal.Stop(tstp)
	refuseSuspend := func() {
		out.info("not suspending the command: it would keep holding lock %q; Ctrl-C stops it", c.lockName)
	}
	p, err := supervise.Start(supervise.Spec{
		Args:           c.command,
		Env:            commandEnv(h),
		KillSignal:     c.killSignal,
		KillAfter:      c.killAfter,
		SuspendRefused: refuseSuspend,
		// The lease may have gone while the lock was being taken, and
		// the loss not been noticed yet: look at the deadline itself,
		// last thing before the start.
		Ready: h.Check,
		WaitsForTerminal: func() {
			out.info("the command waits for the terminal, holding lock %q; bring distlock to the foreground (fg)", c.lockName)
		},
	})
	if err != nil {
		var se *supervise.StartError
		if errors.As(err, &se) {
			out.fail("%v", se)
			return se.ExitCode
		}
		if h.Err() != nil { // Ready said no: no command has run, etcd is the trouble
			out.fail("lost lock %q before the command started: %v", c.lockName, err)
			return exitUnavailable
		}
		out.fail("%v", err)
		return exitCannotRun
	}

	lost := h.Lost()
	lockLost := false
	for {
		select {
		case s := <-sigs:
			p.Forward(s.(syscall.Signal))
		case <-tstp:
			refuseSuspend()
		case <-lost:
			// Kill first, then speak: a stalled stderr must not stand
			// between a lost lock and the kill.
			p.Terminate()
			lost, lockLost = nil, true
			out.fail("lost lock %q: %v; stopping the command with SIG%s (SIGKILL after %v)",
				c.lockName, h.Err(), signals.Name(c.killSignal), c.killAfter)
		case <-p.Done():
			if lockLost {
				return exitLockLost
			}
			st := p.Status()
			out.debug("command ended: %v", st)
			return st.ExitCode()
		}
	}
}

// runLock is --lock: wait for the lock, then keep it beyond this process.
func runLock(ctx context.Context, c *config, client *clientv3.Client, out *reporter) int {
	sigs := notifySignals()
	defer signal.Stop(sigs)
	h, status := acquire(ctx, c, client, lock.ModeLock, 0, sigs, out)
	if h == nil {
		return status
	}
	dctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	if err := h.Detach(dctx); err != nil {
		release(c, h, out)
		out.fail("%v", etcdError(c, err))
		return exitUnavailable
	}
	out.debug("holding lock %q as %s until someone runs --unlock", c.lockName, h.Key)
	return exitOK
}

// runUnlock is --unlock: delete the holder's key, whoever holds it.
func runUnlock(ctx context.Context, c *config, client *clientv3.Client, out *reporter) int {
	rctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	holder, err := lock.Unlock(rctx, client, c.prefix, c.lockName)
	switch {
	case err != nil:
		out.fail("%v", etcdError(c, err))
		return exitUnavailable
	case holder == nil:
		out.info("lock %q is not held; nothing to unlock", c.lockName)
	default:
		out.info("released lock %q, held by %s", c.lockName, holder.Describe())
	}
	return exitOK
}

// acquire waits for the lock while watching for signals that end the wait.
// It returns the holder, or nil and the exit status.
func acquire(ctx context.Context, c *config, client *clientv3.Client, mode string, lead time.Duration, sigs <-chan os.Signal, out *reporter) (*lock.Holder, int) {
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
	h, err := acquireLock(wctx, client, req)
	close(stop)
	<-watching
	// The watcher may have taken a signal after the lock was ours: it
	// still means stop, and the lock goes back.
	var sig signalError
	if errors.As(context.Cause(wctx), &sig) {
		if h != nil {
			release(c, h, out)
			out.fail("got SIG%s just as lock %q was taken; released it again", sig.name(), c.lockName)
			return nil, sig.exitStatus()
		}
		err = sig
	}
	if err != nil {
		return nil, acquireFailed(c, err, out)
	}
	return h, exitOK
}

// acquireLock is lock.Acquire; tests replace it to send a signal at the
// worst moment.
var acquireLock = lock.Acquire

// release gives the lock back; if etcd cannot be reached the lease expires
// by itself.
func release(c *config, h *lock.Holder, out *reporter) {
	ctx, cancel := context.WithTimeout(context.Background(), c.dialTimeout)
	defer cancel()
	if err := h.Release(ctx); err != nil {
		out.fail("could not release lock %q (%v); etcd will expire it within %v", c.lockName, err, c.ttl)
	}
}

// commandEnv is distlock's environment plus what the command may want to
// know about its lock, replacing values an outer distlock set.
func commandEnv(h *lock.Holder) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISTLOCK_HELD_KEY=") && !strings.HasPrefix(kv, "DISTLOCK_FENCING_TOKEN=") {
			env = append(env, kv)
		}
	}
	return append(env,
		"DISTLOCK_HELD_KEY="+h.Key,
		"DISTLOCK_FENCING_TOKEN="+strconv.FormatInt(h.FencingToken, 10))
}

func notifySignals() chan os.Signal {
	sigs := make(chan os.Signal, 16)
	for _, s := range signals.Forwarded {
		signal.Notify(sigs, s)
	}
	return sigs
}

// signalError ends a wait because a signal arrived.
type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string   { return "got SIG" + e.name() }
func (e signalError) name() string    { return signals.Name(e.sig) }
func (e signalError) exitStatus() int { return signals.ExitStatus(e.sig) }

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}

func joinEndpoints(e []string) string { return strings.Join(e, ",") }

// tlsConfig builds the client's TLS settings from etcdctl's flags, or nil
// for plain http endpoints and no TLS flags.
func (c *config) tlsConfig() (*tls.Config, error) {
	https := false
	for _, e := range c.endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if c.cacert == "" && c.cert == "" && c.key == "" && !c.insecureSkipTLSVerify {
		if !https {
			return nil, nil
		}
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	if (c.cert == "") != (c.key == "") {
		return nil, usagef("--cert and --key go together")
	}
	info := transport.TLSInfo{
		CertFile:           c.cert,
		KeyFile:            c.key,
		TrustedCAFile:      c.cacert,
		InsecureSkipVerify: c.insecureSkipTLSVerify,
	}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, usagef("TLS: %v", err)
	}
	return cfg, nil
}

// runStatus is --status: the holder and the waiters of one lock.
func runStatus(ctx context.Context, c *config, client *clientv3.Client, stdout io.Writer, out *reporter) int {
	rctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	entries, err := lock.Entries(rctx, client, c.prefix, c.lockName)
	if err != nil {
		out.fail("%v", etcdError(c, err))
		return exitUnavailable
	}
	if c.json {
		writeJSON(stdout, lockStatus(c.lockName, entries))
	} else if len(entries) == 0 {
		fmt.Fprintf(stdout, "lock %q is free\n", c.lockName)
	} else {
		fmt.Fprintf(stdout, "lock %q is held by %s\n", c.lockName, entries[0].Describe())
		for i, e := range entries[1:] {
			fmt.Fprintf(stdout, "  waiter %d: %s\n", i+1, e.Describe())
		}
	}
	if len(entries) == 0 {
		return 1
	}
	return exitOK
}

// runList is --list: every lock in the realm that has a holder.
func runList(ctx context.Context, c *config, client *clientv3.Client, stdout io.Writer, out *reporter) int {
	rctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	locks, err := lock.List(rctx, client, c.prefix)
	if err != nil {
		out.fail("%v", etcdError(c, err))
		return exitUnavailable
	}
	if c.json {
		all := []statusJSON{}
		for _, l := range locks {
			all = append(all, lockStatus(l.Name, l.Entries))
		}
		writeJSON(stdout, all)
		return exitOK
	}
	for _, l := range locks {
		fmt.Fprintf(stdout, "%s\t%s\t%d waiting\n", l.Name, l.Entries[0].Describe(), len(l.Entries)-1)
	}
	return exitOK
}

type statusJSON struct {
	Name    string      `json:"name"`
	Held    bool        `json:"held"`
	Holder  *entryJSON  `json:"holder"`
	Waiters []entryJSON `json:"waiters"`
}

type entryJSON struct {
	Key            string     `json:"key"`
	CreateRevision int64      `json:"create_revision"`
	Info           *lock.Info `json:"info"`
}

func lockStatus(name string, entries []lock.Entry) statusJSON {
	s := statusJSON{Name: name, Waiters: []entryJSON{}}
	for i, e := range entries {
		j := entryJSON{Key: e.Key, CreateRevision: e.CreateRevision, Info: e.Info}
		if i == 0 {
			s.Held, s.Holder = true, &j
			continue
		}
		s.Waiters = append(s.Waiters, j)
	}
	return s
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
