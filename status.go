package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/tinx/distlock/internal/follow"
	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/show"
	"github.com/tinx/distlock/lock"
)

// runStatus is --status: the holders and the waiters of one lock, and what
// each holder is. A holder that --unlock removed and that is still
// stopping its command holds the lock until it has stopped, and is shown
// as holding it.
func runStatus(ctx context.Context, j *job, stdout io.Writer, asJSON bool) error {
	s, err := show.ReadStatus(ctx, j.client, j.lock.Realm, j.lock.Name, j.lock.RPCTimeout)
	if err != nil {
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	}
	if asJSON {
		s.WriteJSON(stdout)
	} else {
		s.WriteText(stdout)
	}
	if s.Free() {
		return errFree
	}
	return nil
}

// listPageSize is how many keys --list asks etcd for at a time.
const listPageSize = 1000

// runList is --list: every lock in the realm that has a holder, one line
// (or one JSON object) each, written as the realm is read page by page.
// If etcd fails half-way, what was written stays, --json's array is left
// open, and the status is 69.
func runList(ctx context.Context, j *job, stdout io.Writer, asJSON bool) error {
	list := show.NewList(stdout, asJSON)
	if err := lock.List(ctx, j.client, j.lock.Realm, listPageSize, j.lock.RPCTimeout, list.Add); err != nil {
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	}
	list.End(j.lock.Realm, report.IsTerminal(stdout))
	return nil
}

// runHistory is --history: the lock's last runs, newest first.
func runHistory(ctx context.Context, j *job, stdout io.Writer, asJSON bool) error {
	records, err := lock.History(ctx, j.client, j.lock.Realm, j.lock.Name, j.lock.Count, j.lock.RPCTimeout)
	if err != nil {
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	}
	show.WriteHistory(stdout, records, asJSON)
	if len(records) == 0 && report.IsTerminal(stdout) {
		fmt.Fprintf(stdout, "no run of lock %q is on record\n", j.lock.Name)
	}
	return nil
}

// runFollow is --status --follow and --list --follow: the state, then each
// change, until SIGINT, SIGTERM or SIGHUP (0), or until etcd stays out of
// reach beyond --timeout, or 6 times --dial-timeout when it waits forever
// (69).
func runFollow(ctx context.Context, j *job, stdout io.Writer, realm, asJSON bool) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	c := follow.Config{Client: j.client, Realm: j.lock.Realm, Name: j.lock.Name, JSON: asJSON,
		RPCTimeout: j.lock.RPCTimeout, GiveUp: j.lock.Timeout, Out: stdout,
		Warn: j.out.About(report.EventEtcdError).Warn, Info: j.out.About(report.EventEtcdError).Info}
	if realm {
		c.Name = ""
	}
	if c.GiveUp < 0 {
		c.GiveUp = follow.GiveUpAfter * j.lock.RPCTimeout
	}
	if err := follow.Run(ctx, c); err != nil {
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	}
	return nil
}
