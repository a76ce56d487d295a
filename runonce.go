package main

import (
	"context"
	"errors"
	"time"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
)

// recentRun is --min-interval's question, asked once the lock is ours:
// did a run of this lock succeed less than SPAN ago, by etcd's count? If
// so, exec mode starts nothing and exits 0, saying so only with --verbose.
// --ignore-last-run does not ask.
// Without an answer from etcd nothing starts either (69).
// The read ends with the lock, as every etcd call of a holder does.
func recentRun(ctx context.Context, j *job, x settings.Exec, h *lock.Holder) (bool, error) {
	if x.MinInterval == 0 || x.IgnoreLastRun {
		return false, nil
	}
	rctx, cancel := context.WithTimeout(ctx, j.lock.RPCTimeout)
	defer cancel()
	defer context.AfterFunc(h.Context(), cancel)()
	last, err := lock.ReadLastRun(rctx, j.client, j.lock.Realm, j.lock.Name)
	if err != nil {
		if lost := h.Check(); lost != nil {
			j.out.About(report.EventLost).Fail("lost lock %q before the command started: %v", h.LostName(), lost)
			return false, lostBeforeStart{lost}
		}
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return false, err
	}
	if last == nil || !last.Within(x.MinInterval) {
		return false, nil
	}
	j.out.About(report.EventSkipped).Step("not running the command: lock %q last ran successfully less than %v ago (--min-interval): %s",
		j.lock.Name, x.MinInterval, last.Describe())
	return true, nil
}

// recordRun writes down, for --min-interval, that the command started at
// started succeeded, while the lock is still ours. A run that could not be
// recorded is said, and keeps no later run from starting.
func recordRun(j *job, x settings.Exec, h *lock.Holder, started time.Time) {
	if x.MinInterval == 0 {
		return
	}
	err := h.RecordRun(context.Background(), x.MinInterval, started)
	switch {
	case errors.Is(err, lock.ErrNotHeld):
		j.out.About(report.EventLost).Fail("lock %q was lost as the command ended; its run is not recorded for --min-interval", j.lock.Name)
	case errors.Is(err, lock.ErrMaybeRecorded):
		j.out.About(report.EventEtcdError).Fail("could not learn whether the run was recorded for --min-interval (%v); if it was, runs of lock %q are skipped until etcd drops the record, within %v", j.etcdError(err), j.lock.Name, x.MinInterval)
	case err != nil:
		j.out.About(report.EventEtcdError).Fail("could not record the run for --min-interval (%v); the next run of lock %q will not be skipped", j.etcdError(err), j.lock.Name)
	default:
		j.out.Debug("recorded the successful run of lock %q: runs are skipped for %v (--min-interval)", j.lock.Name, x.MinInterval)
	}
}

// runForget is --forget-last-run: delete the record of the lock's last
// successful run, and only that key, so that the next run with
// --min-interval runs.
func runForget(ctx context.Context, j *job) error {
	rctx, cancel := context.WithTimeout(ctx, j.lock.RPCTimeout)
	defer cancel()
	last, err := lock.ForgetLastRun(rctx, j.client, j.lock.Realm, j.lock.Name)
	switch {
	case err != nil:
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	case last == nil:
		j.out.Info("lock %q has no record of a successful run; nothing to forget", j.lock.Name)
	default:
		j.out.About(report.EventForgotten).Info("forgot the last successful run of lock %q (%s); the next run with --min-interval runs", j.lock.Name, last.DescribeRun())
	}
	return nil
}

// letGo gives the lock back when exec mode is done. With --min-hold, until
// holdUntil (zero when no command started), it leaves the lock to etcd to
// release then, and exits without waiting for it.
func letGo(j *job, x settings.Exec, h *lock.Holder, holdUntil time.Time) {
	left := time.Until(holdUntil)
	if holdUntil.IsZero() || left <= 0 || h.Err() != nil {
		release(j, h, false)()
		return
	}
	ttl, err := h.HoldFor(context.Background(), left)
	switch {
	case errors.Is(err, lock.ErrNotHeld):
		j.out.About(report.EventLost).Fail("lock %q was lost as the command ended; not holding it for --min-hold", j.lock.Name)
	case err != nil:
		j.out.About(report.EventEtcdError).Fail("could not keep lock %q taken for --min-hold (%v); it may be free before its time", j.lock.Name, j.etcdError(err))
	case ttl > 0:
		j.out.About(report.EventReleased).With("key", h.Key).Step("leaving lock %q taken for %v more (--min-hold); etcd releases it then", j.lock.Name, ttl)
	}
}
