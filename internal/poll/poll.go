// Package poll waits for a condition that nothing announces (a file
// written, a process gone, a key in etcd, a member that answers) by checking
// it every few milliseconds until it holds or a deadline passes. It is for
// tests and the test etcd: code that can be told of an event waits for it.
package poll

import (
	"context"
	"time"
)

// interval is how often a condition is checked: often enough that a wait
// ends soon after the event, seldom enough to leave the CPU to what is
// being waited for.
const interval = 10 * time.Millisecond

// Until checks cond at once and then every 10ms until it holds, and returns
// nil; or, if ctx ends first, ctx's cause.
func Until(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
	return nil
}

// T is what For needs of a test: *testing.T, *testing.B and testscript's
// *TestScript all have it.
type T interface {
	Fatalf(format string, args ...any)
}

// For checks cond at once and then every 10ms until it holds; if it does
// not within timeout, it fails t with "timed out after TIMEOUT waiting for
// WHAT". cond runs on the caller's goroutine, so it may fail t itself.
func For(t T, what string, timeout time.Duration, cond func() bool) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if Until(ctx, cond) != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
