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
	"runtime/debug"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/supervise"
)

// Exit statuses distlock chooses itself. In exec mode every other status is
// the command's own.
const (
	exitOK          = 0
	exitUsage       = 64 // bad flag, value, lock name, config file, modes, missing command
	exitUnavailable = 69 // etcd unreachable or refused us before any command ran
	exitLockLost    = 70 // the lock was lost while the command ran
	exitConflict    = 75 // the lock was not acquired in time
	exitCannotRun   = 126
	exitNotFound    = 127
)

func main() {
	supervise.RunWatchdogIfAsked()
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is distlock from arguments to exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseConfig(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "distlock: %v\n", err)
		return exitUsage
	}
	if c.version {
		fmt.Fprintf(stdout, "distlock %s\n", version())
		return exitOK
	}
	out := &reporter{w: stderr, quiet: c.quiet, verbose: c.verbose}

	client, err := dial(c)
	if err != nil {
		out.fail("%v", err)
		return exitUsage
	}
	defer client.Close()

	switch c.mode {
	case modeExec:
		return runExec(ctx, c, client, out)
	case modeLock:
		return runLock(ctx, c, client, out)
	case modeUnlock:
		return runUnlock(ctx, c, client, out)
	case modeStatus:
		return runStatus(ctx, c, client, stdout, out)
	default:
		return runList(ctx, c, client, stdout, out)
	}
}

// dial makes an etcd client. It does not talk to etcd yet: the first
// request, bounded by --dial-timeout, finds out whether etcd can be reached.
func dial(c *config) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   c.endpoints,
		DialTimeout: c.dialTimeout,
		Username:    c.user,
		Password:    c.password,
		Logger:      zap.NewNop(),
	}
	tlsConfig, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	cfg.TLS = tlsConfig
	client, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("set up the etcd client: %w", err)
	}
	return client, nil
}

// request describes what this call wants of the lock.
func (c *config) request(mode string, lead time.Duration, out *reporter) lock.Request {
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
		Timeout:    c.timeout,
		TTL:        c.ttl,
		Lead:       lead,
		RPCTimeout: c.dialTimeout,
		Blocked: func(holder lock.Entry) {
			out.info("lock %q is held by %s; waiting", c.lockName, holder.Describe())
		},
	}
}

// acquireFailed reports why the lock was not acquired and picks the status.
func acquireFailed(c *config, err error, out *reporter) int {
	var conflict *lock.ConflictError
	var sig signalError
	switch {
	case errors.As(err, &conflict):
		say := out.fail
		if c.conflictExitCode == 0 {
			say = out.info // "skip if busy": --quiet makes it silent
		}
		if c.timeout == 0 {
			say("%v; not waiting (--nowait)", conflict)
		} else {
			say("%v; gave up after %v (--timeout)", conflict, c.timeout)
		}
		return c.conflictExitCode
	case errors.As(err, &sig):
		out.fail("stopped waiting for lock %q: got SIG%s", c.lockName, sig.name())
		return sig.exitStatus()
	}
	out.fail("%v", etcdError(c, err))
	return exitUnavailable
}

// etcdError says which etcd could not be reached or what it refused.
func etcdError(c *config, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot reach etcd at %s within %v: %w", joinEndpoints(c.endpoints), c.dialTimeout, err)
	}
	return fmt.Errorf("etcd at %s: %w", joinEndpoints(c.endpoints), err)
}

func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// reporter writes distlock's own lines to stderr, prefixed "distlock:".
type reporter struct {
	w              io.Writer
	quiet, verbose bool
}

// fail is the one line that comes with a status distlock chose: always shown.
func (r *reporter) fail(format string, args ...any) {
	fmt.Fprintf(r.w, "distlock: "+format+"\n", args...)
}

// info is worth saying unless --quiet.
func (r *reporter) info(format string, args ...any) {
	if !r.quiet {
		fmt.Fprintf(r.w, "distlock: "+format+"\n", args...)
	}
}

// debug is said only with --verbose.
func (r *reporter) debug(format string, args ...any) {
	if r.verbose {
		fmt.Fprintf(r.w, "distlock: "+format+"\n", args...)
	}
}
