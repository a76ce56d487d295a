// Command distlock takes a named lock in etcd, runs a command while it holds
// the lock, and lets go when the command ends, however it ends.
//
// The contract (flags, environment, config file, exit statuses, keys) is in
// README.md; this file only parses, decides and maps errors to statuses.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/grpclog"

	"github.com/tinx/distlock/internal/report"
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
	exitFree        = 1  // --status: the lock is free
	exitUsage       = 64 // bad flag, value, lock name, config file, modes, missing command
	exitUnavailable = 69 // etcd unreachable or refused us before any command ran
	exitLockLost    = 70 // the lock was lost while the command ran
	exitConflict    = 75 // the lock was not acquired in time
	exitCannotRun   = 126
	exitNotFound    = 127
)

func main() {
	// A watchdog (supervise/watchdog) never gets here: it runs in its
	// package's init.
	// gRPC logs to stderr from its own goroutines, around the reporter;
	// what it could say is in distlock's own lines.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is distlock from arguments to exit status: parse, dial, run the mode,
// map what happened to a status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// A stderr nobody reads is no reason to die (and leave a waiter's key
	// queued for a TTL): with SIGPIPE caught, our writes fail with EPIPE.
	// Caught, not ignored: an ignored signal stays ignored across exec,
	// and the command must get SIGPIPE at its default.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	c, err := parseConfig(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if c == nil { // no settings read at all: say the error as text
		c = &config{}
	}
	if err == nil && c.version {
		fmt.Fprint(stdout, versionText(version, buildInfo()))
		return exitOK
	}
	if err == nil && c.completion != "" {
		fmt.Fprint(stdout, completionScript(c.completion))
		return exitOK
	}
	// A usage error is said, and counted in the metrics file, as far as
	// the settings read before it say how.
	out := report.New(stderr, report.Style{Quiet: c.quiet, Verbose: c.verbose, JSON: c.logFormat == logJSON, Lock: c.lockName})
	// What is still queued when distlock is done gets a moment, not more:
	// the lock is released already, and a stuck stderr must not keep
	// distlock from exiting.
	defer out.Flush(report.FlushTimeout)

	facts := &report.Facts{}
	if err != nil {
		out.About(report.EventUsage).Fail("%v", err)
	} else {
		err = runMode(ctx, c, stdout, out, facts)
	}
	status := exitStatus(err, c.conflictExitCode)
	report.WriteMetrics(c.metricsFile, c.lockName, facts, outcomeOf(err, facts), status, out)
	return status
}

// runMode dials etcd and runs the mode; the lock is let go when it returns.
func runMode(ctx context.Context, c *config, stdout io.Writer, out *report.Reporter, facts *report.Facts) error {
	client, err := dial(c, out)
	if err != nil {
		var usage *usageError
		if errors.As(err, &usage) {
			out.About(report.EventUsage).Fail("%v", err)
			return err
		}
		err = etcdError(c, err)
		out.About(report.EventEtcdError).Fail("%v", err)
		return err
	}
	defer client.Close()

	switch c.mode {
	case modeExec:
		return runExec(ctx, c, client, out, facts)
	case modeLock:
		return runLock(ctx, c, client, out, facts)
	case modeUnlock:
		return runUnlock(ctx, c, client, out)
	case modeStatus:
		return runStatus(ctx, c, client, stdout, out)
	}
	return runList(ctx, c, client, stdout, out)
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
func (e lostBeforeStart) Error() string {
	return "lost the lock before the command started: " + e.cause.Error()
}
func (e lostBeforeStart) Unwrap() error { return e.cause }
