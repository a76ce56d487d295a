// Command distlock takes a named lock in etcd, runs a command while it holds
// the lock, and lets go when the command ends, however it ends.
//
// The contract (flags, environment, config file, exit statuses, keys) is
// in docs/reference.md. The main package is the command's wiring and its
// modes: internal/settings reads what is asked, lock takes the lock,
// supervise runs the command, internal/report says what happened.
package main

// The man page, from the settings table.
//go:generate go run ./internal/settings/mkman docs/distlock.1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/grpclog"

	"github.com/tinx/distlock/internal/dial"
	"github.com/tinx/distlock/internal/locknames"
	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/internal/stamp"
	"github.com/tinx/distlock/signals"
	"github.com/tinx/distlock/supervise"

	// The watchdog's work is its init: it must be linked in, whatever
	// else supervise needs of it.
	_ "github.com/tinx/distlock/supervise/watchdog"
)

// Exit statuses distlock chooses itself. In exec mode every other status is
// the command's own.
const (
	exitOK          = 0
	exitFree        = 1   // --status: the lock is free
	exitUsage       = 64  // bad flag, value, lock name, config file, modes, missing command
	exitUnavailable = 69  // etcd unreachable or refused us before any command ran
	exitLockLost    = 70  // the lock was lost while the command ran
	exitConflict    = 75  // the lock was not acquired in time
	exitOverran     = 124 // --max-runtime passed; the command was stopped
	exitCannotRun   = 126
	exitNotFound    = 127
)

func main() {
	stamp.At("main") // the round trip's phases: the program has started
	// A watchdog (supervise/watchdog) never gets here: it runs in its
	// package's init.
	// gRPC logs to stderr from its own goroutines, around the reporter;
	// what it could say is in distlock's own lines.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	status := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	stamp.Flush() // only a build for the benchmarks has stamps to write
	os.Exit(status)
}

// run is distlock from arguments to exit status: parse, dial, run the mode,
// map what happened to a status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// A stderr nobody reads is no reason to die (and leave a waiter's key
	// queued for a TTL): with SIGPIPE caught, our writes fail with EPIPE.
	// Caught, not ignored: an ignored signal stays ignored across exec,
	// and the command must get SIGPIPE at its default.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	r, err := settings.Parse(args)
	switch r.Mode {
	case settings.ModeHelp:
		fmt.Fprint(stdout, settings.Help())
		return exitOK
	case settings.ModeVersion:
		fmt.Fprint(stdout, versionText(version, buildInfo()))
		return exitOK
	case settings.ModeCompletion:
		fmt.Fprint(stdout, settings.Completion(r.Shell))
		return exitOK
	case settings.ModeLockNames: // for a completion script: no words, no status
		if err == nil {
			locknames.Print(ctx, r, stdout)
		}
		return exitOK
	}
	// A usage error is said, and counted in the metrics file, as far as
	// the settings read before it say how.
	out := report.New(stderr, r.Say)
	// What is still queued when distlock is done gets a moment, not more:
	// the lock is released already, and a stuck stderr must not keep
	// distlock from exiting.
	defer out.Flush(report.FlushTimeout)

	facts := &report.Facts{Shared: r.Lock.Shared}
	if err != nil {
		out.About(report.EventUsage).Fail("%v", err)
	} else {
		err = runMode(ctx, r, stdout, out, facts)
	}
	status := exitStatus(err, r.Lock.ConflictExitCode)
	report.WriteMetrics(r.MetricsFile, r.Lock.Name, facts, outcomeOf(err, facts), status, out)
	return status
}

// job is what every mode works with: etcd, the lock, and where to say
// what happens.
type job struct {
	client *clientv3.Client
	conn   *settings.Conn // to explain etcd's errors
	lock   settings.Lock
	out    *report.Reporter
	sigs   *signals.Caught // exec mode's and --lock's
}

// etcdError says what etcd's err means, and what to do about it.
func (j *job) etcdError(err error) error { return dial.Explain(j.conn, err) }

// runMode dials etcd and runs the mode; the lock is let go when it returns.
func runMode(ctx context.Context, r *settings.Run, stdout io.Writer, out *report.Reporter, facts *report.Facts) error {
	switch r.Mode {
	case settings.ModeHeld: // etcd as the supervising distlock reaches it
		return runHeld(ctx, r, out)
	case settings.ModeExec:
		// A command that cannot run is said now, not after the wait
		// for the lock, and without a word to etcd.
		if err := supervise.Find(r.Exec.Command[0]); err != nil {
			out.About(report.EventNotStarted).Fail("%v", err)
			return err
		}
	}
	client, err := dial.New(&r.Conn, out)
	if err != nil {
		var usage *settings.UsageError
		if errors.As(err, &usage) {
			out.About(report.EventUsage).Fail("%v", err)
			return err
		}
		err = dial.Explain(&r.Conn, err)
		out.About(report.EventEtcdError).Fail("%v", err)
		return err
	}
	// distlock exits once the mode is done, and the connection goes with
	// it: its orderly close (gRPC's goroutines, 0.35 ms here) is not
	// waited for.
	defer func() { go client.Close() }()

	var sigs *signals.Caught
	if r.Mode == settings.ModeExec || r.Mode == settings.ModeLock {
		// Caught while gRPC connects (not before the dial: a signal then
		// must end it, --user's login or --discovery-srv's lookup);
		// until they are, nothing is written to etcd or /tmp.
		sigs = signals.Catch(signals.Forwarded...)
		// Nor is the end of the catching (a trip through Go's signal
		// thread for each signal, 0.3 ms): a signal until then is
		// caught and dropped, and the status stays the mode's.
		defer func() { go sigs.Stop() }()
	}
	j := &job{client: client, conn: &r.Conn, lock: r.Lock, out: out, sigs: sigs}
	if r.Follow {
		return runFollow(ctx, j, stdout, r.Mode == settings.ModeList, r.JSON)
	}
	switch r.Mode {
	case settings.ModeExec:
		return runExec(ctx, j, r.Exec, facts)
	case settings.ModeLock:
		return runLock(ctx, j, stdout, facts)
	case settings.ModeUnlock:
		return runUnlock(ctx, j)
	case settings.ModeStatus:
		return runStatus(ctx, j, stdout, r.JSON)
	case settings.ModeForget:
		return runForget(ctx, j)
	case settings.ModeHistory:
		return runHistory(ctx, j, stdout, r.JSON)
	}
	return runList(ctx, j, stdout, r.JSON)
}

// What a mode can return besides nil (done, 0) and etcd's errors (69). The
// mode has said what there is to say; exitStatus only picks the number.
type (
	// commandEnded: the command ran to its end, and its status is ours.
	commandEnded struct{ status supervise.Status }
	// lockLost: the lock was lost while the command ran; it was stopped.
	lockLost struct{ cause error }
	// signalError: a signal ended the wait, or came before the command
	// started.
	signalError struct{ sig syscall.Signal }
	// overran: the command ran for --max-runtime; it was stopped.
	overran struct{ span time.Duration }
	// lostBeforeStart: the lock was lost after it was acquired, before
	// the command started. No command ran: etcd is the trouble (69).
	lostBeforeStart struct{ cause error }
)

// errFree is --status finding the lock free.
var errFree = errors.New("the lock is free")

func (e commandEnded) Error() string { return "the command ended: " + e.status.String() }
func (e lockLost) Error() string     { return "lost the lock: " + e.cause.Error() }
func (e lockLost) Unwrap() error     { return e.cause }
func (e signalError) Error() string  { return "got SIG" + signals.Name(e.sig) }
func (e overran) Error() string      { return "the command ran for --max-runtime " + e.span.String() }
func (e lostBeforeStart) Error() string {
	return "lost the lock before the command started: " + e.cause.Error()
}
func (e lostBeforeStart) Unwrap() error { return e.cause }
