package main

import (
	"errors"
	"strconv"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/signals"
	"github.com/tinx/distlock/supervise"
)

// endingOf is what a run came to, from what its mode returned and the
// facts no error carries.
func endingOf(err error, facts *report.Facts) report.Ending {
	var (
		ended    commandEnded
		lost     lockLost
		over     overran
		lostSoon lostBeforeStart
		sig      signalError
		usage    *settings.UsageError
		limit    *lock.LimitError
		busy     *lock.ConflictError
		notStart *supervise.StartError
	)
	switch {
	case facts != nil && facts.Skipped:
		return report.EndSkipped
	case err == nil:
		return report.EndDone
	case errors.As(err, &ended) && ended.status.Signal != 0:
		return report.EndKilled
	case errors.As(err, &ended):
		return report.EndExited
	case errors.As(err, &lost):
		return report.EndLost
	case errors.As(err, &over):
		return report.EndOverran
	case errors.As(err, &lostSoon):
		return report.EndLostEarly
	case errors.As(err, &sig):
		return report.EndSignal
	case errors.As(err, &usage), errors.As(err, &limit):
		return report.EndUsage
	case errors.As(err, &busy):
		return report.EndConflict
	case errors.As(err, &notStart) && notStart.NotFound:
		return report.EndNotFound
	case errors.As(err, &notStart):
		return report.EndCannotRun
	case errors.Is(err, errFree):
		return report.EndFree
	}
	return report.EndUnreachable
}

// exitStatus turns what happened into distlock's exit status. conflict is
// --conflict-exit-code.
func exitStatus(err error, conflict int) int {
	var (
		ended commandEnded
		sig   signalError
	)
	switch e := endingOf(err, nil); e {
	case report.EndExited, report.EndKilled:
		errors.As(err, &ended)
		return ended.status.ExitCode()
	case report.EndSignal:
		errors.As(err, &sig)
		return signals.ExitStatus(sig.sig)
	case report.EndConflict:
		return conflict
	default:
		n, _ := strconv.Atoi(e.ExitStatus()) // a number for every other ending
		return n
	}
}

// outcomeOf is what a run came to, for --metrics-file.
func outcomeOf(err error, facts *report.Facts) string {
	return endingOf(err, facts).Outcome()
}
