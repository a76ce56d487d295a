//go:build distlock_late_signal

package main

import (
	"context"
	"os"
	"syscall"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/lock"
)

// Built with the tag distlock_late_signal (by the black-box tests, never
// for a release), distlock sends itself SIGTERM the moment it has taken
// the lock, before anything else happens: the worst moment for a signal
// that must keep the command from starting.
func init() {
	acquireLock = func(ctx context.Context, client *clientv3.Client, reqs []lock.Request) (*lock.Holder, error) {
		h, err := lock.AcquireSet(ctx, client, reqs)
		if err == nil {
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			<-ctx.Done() // distlock's signal watcher has taken it
		}
		return h, err
	}
}
