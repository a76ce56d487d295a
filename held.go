package main

import (
	"context"
	"errors"

	"github.com/tinx/distlock/internal/held"
	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
)

// prepareHandOff makes the socket on which the command's distlock --held
// will ask, before the lock is taken: the turn then finds it made, and
// Prepared.Hold tells it the holder. Without a socket (an image with no
// writable /tmp) the command still runs, and distlock says so only with
// --verbose: most commands never ask, and a line on every run would be
// noise; a --held in it finds no distlock to ask (64).
func prepareHandOff(j *job) *held.Prepared {
	pre, err := held.Prepare()
	if err != nil {
		j.out.Debug("%v; distlock --held cannot answer in this command", err)
	}
	return pre
}

// runHeld is --held: does the command that runs it still hold its locks?
// All of it is bounded by --dial-timeout.
func runHeld(ctx context.Context, r *settings.Run, out *report.Reporter) error {
	ctx, cancel := context.WithTimeout(ctx, r.Lock.RPCTimeout)
	defer cancel()
	err := held.Check(ctx, r.Conn, out)
	var lost *held.LostError
	switch {
	case errors.Is(err, held.ErrNoSupervisor):
		err = settings.Usagef("--held asks the distlock that runs this command, and none does (%s is not set)", held.Var)
		out.About(report.EventUsage).Fail("%v", err)
	case errors.As(err, &lost):
		out.About(report.EventLost).Fail("the lock is no longer held: %v", lost.Cause)
		err = lockLost{lost.Cause}
	case err != nil:
		out.About(report.EventEtcdError).Fail("cannot tell whether the lock is held: %v", err)
	}
	return err
}
