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
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/grpclog"

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

// flushTimeout is how long distlock waits, when it is done, for its last
// lines to reach stderr.
const flushTimeout = 2 * time.Second

func main() {
	supervise.RunWatchdogIfAsked()
	// gRPC logs to stderr from its own goroutines, around the reporter;
	// what it could say is in distlock's own lines.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is distlock from arguments to exit status.
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
	if err != nil {
		fmt.Fprintf(stderr, "distlock: %v\n", err)
		return exitUsage
	}
	if c.version {
		fmt.Fprintf(stdout, "distlock %s\n", version())
		return exitOK
	}
	out := &reporter{w: stderr, quiet: c.quiet, verbose: c.verbose}
	// What is still queued when distlock is done gets a moment, not more:
	// the lock is released already, and a stuck stderr must not keep
	// distlock from exiting.
	defer out.flush(flushTimeout)

	client, err := dial(c)
	if err != nil {
		var usage *usageError
		if errors.As(err, &usage) {
			out.fail("%v", err)
			return exitUsage
		}
		out.fail("%v", etcdError(c, err))
		return exitUnavailable
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

// dial makes an etcd client. Without --user it does not talk to etcd yet:
// the first request, bounded by --dial-timeout, finds out whether etcd can
// be reached. With --user the client logs in at once, bounded by
// --dial-timeout, so etcd's answers (unreachable, wrong password) come from
// here. Errors found before any request (TLS files) are usage errors.
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
	return clientv3.New(cfg)
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
// It never makes its caller wait for stderr: a full pipe (a stalled log
// shipper) or a terminal that stops background writers must not hold up
// distlock, least of all between a lost lock and the kill. Lines are
// queued to one writer goroutine and written in order; flush waits for
// them, but only so long.
type reporter struct {
	w              io.Writer
	quiet, verbose bool

	mu    sync.Mutex
	queue chan message // made, and its writer started, by the first line
}

// message is a line to write, or (with written set) a mark that is passed
// once every line before it has been written.
type message struct {
	line    string
	written chan struct{}
}

// fail is the one line that comes with a status distlock chose: always shown.
func (r *reporter) fail(format string, args ...any) {
	r.say(format, args...)
}

// info is worth saying unless --quiet.
func (r *reporter) info(format string, args ...any) {
	if !r.quiet {
		r.say(format, args...)
	}
}

// debug is said only with --verbose.
func (r *reporter) debug(format string, args ...any) {
	if r.verbose {
		r.say(format, args...)
	}
}

func (r *reporter) say(format string, args ...any) {
	r.mu.Lock()
	if r.queue == nil {
		r.queue = make(chan message, 64)
		go r.write(r.queue)
	}
	queue := r.queue
	r.mu.Unlock()
	select {
	case queue <- message{line: fmt.Sprintf("distlock: "+format+"\n", args...)}:
	default: // stderr has been stuck for 64 lines: drop this one
	}
}

// write is the writer goroutine. Its thread blocks SIGTTOU, so that with
// `stty tostop` a write from the background goes through instead of
// stopping all of distlock; the command's threads are not affected.
func (r *reporter) write(queue <-chan message) {
	runtime.LockOSThread() // for good: the mask belongs to this thread
	var block unix.Sigset_t
	block.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, &block, nil)
	for m := range queue {
		if m.written != nil {
			close(m.written)
			continue
		}
		_, _ = io.WriteString(r.w, m.line)
	}
}

// flush waits until every line said so far is written, or timeout passes.
func (r *reporter) flush(timeout time.Duration) {
	r.mu.Lock()
	queue := r.queue
	r.mu.Unlock()
	if queue == nil {
		return // nothing was ever said
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	mark := message{written: make(chan struct{})}
	select {
	case queue <- mark:
	case <-t.C:
		return
	}
	select {
	case <-mark.written:
	case <-t.C:
	}
}
