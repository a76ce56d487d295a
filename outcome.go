package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/signals"
	"github.com/tinx/distlock/supervise"
)

// An ending is one kind of end a run can come to. endings is the one table
// of them: each one's exit status, its outcome in the metrics file, the
// event of the line that tells it (--log-format json), and what --help
// says of it. --help's exit statuses and the man page are written from
// it; the README's table of exit statuses is held to its statuses
// (TestExitStatusesInREADME), and the events to the reference's list
// (TestEndings): the call sites that say a line name its event themselves.
// endingOf is the one place that decides which ending a run came to.
type ending int

const (
	endDone        ending = iota // the mode did what it was asked
	endSkipped                   // --min-interval: a recent run succeeded
	endExited                    // exec mode: the command exited N
	endKilled                    // exec mode: the command was killed by signal N
	endSignal                    // a signal ended the wait, or came before the start
	endFree                      // --status: the lock is free
	endUsage                     // bad input
	endUnreachable               // etcd could not be reached, or refused us
	endLostEarly                 // the lock was lost after it was taken, before the command started
	endLost                      // the lock was lost while the command ran
	endConflict                  // the lock was not acquired in time
	endCannotRun                 // the command exists but cannot be run
	endNotFound                  // the command was not found
)

// endingRow is what the table says of one ending.
type endingRow struct {
	status  string // the exit status: a number, or N, 128+N
	outcome string // distlock_outcome's label
	event   string // the event of the line that tells it; "" if none does
	help    string // what --help says of it; a status's later endings start with "or"
}

var endings = [...]endingRow{
	endDone:        {"0", outcomeRan, "", "success"},
	endSkipped:     {"0", outcomeSkipped, evSkipped, "or --min-interval found a recent run and started nothing"},
	endExited:      {"N", outcomeRan, evEnded, "the command exited N"},
	endKilled:      {"128+N", outcomeRan, evEnded, "the command was killed by signal N"},
	endSignal:      {"128+N", outcomeConflict, evSignal, "or signal N ended the wait"},
	endFree:        {"1", outcomeRan, "", "--status: the lock is free"},
	endUsage:       {"64", outcomeUsage, evUsage, "usage or configuration error"},
	endUnreachable: {"69", outcomeUnreachable, evEtcdError, "etcd unreachable or refused us, before any command ran"},
	endLostEarly:   {"69", outcomeLost, evLost, "or the lock was lost before the command started"},
	endLost:        {"70", outcomeLost, evLost, "the lock was lost while the command ran"},
	endConflict:    {"75", outcomeConflict, evConflict, "the lock was not acquired (--nowait, --timeout; --conflict-exit-code)"},
	endCannotRun:   {"126", outcomeRan, evNotStarted, "the command cannot be run"},
	endNotFound:    {"127", outcomeRan, evNotStarted, "the command was not found"},
}

// endingOf is what a run came to, from what its mode returned and the
// facts no error carries.
func endingOf(err error, facts *runFacts) ending {
	var (
		ended    commandEnded
		lost     lockLost
		lostSoon lostBeforeStart
		sig      signalError
		usage    *usageError
		limit    *lock.LimitError
		busy     *lock.ConflictError
		notStart *supervise.StartError
	)
	switch {
	case facts != nil && facts.skipped:
		return endSkipped
	case err == nil:
		return endDone
	case errors.As(err, &ended) && ended.status.Signal != 0:
		return endKilled
	case errors.As(err, &ended):
		return endExited
	case errors.As(err, &lost):
		return endLost
	case errors.As(err, &lostSoon):
		return endLostEarly
	case errors.As(err, &sig):
		return endSignal
	case errors.As(err, &usage), errors.As(err, &limit):
		return endUsage
	case errors.As(err, &busy):
		return endConflict
	case errors.As(err, &notStart) && notStart.NotFound:
		return endNotFound
	case errors.As(err, &notStart):
		return endCannotRun
	case errors.Is(err, errFree):
		return endFree
	}
	return endUnreachable
}

// exitStatus turns what happened into distlock's exit status. conflict is
// --conflict-exit-code.
func exitStatus(err error, conflict int) int {
	var (
		ended commandEnded
		sig   signalError
	)
	switch e := endingOf(err, nil); e {
	case endExited, endKilled:
		errors.As(err, &ended)
		return ended.status.ExitCode()
	case endSignal:
		errors.As(err, &sig)
		return signals.ExitStatus(sig.sig)
	case endConflict:
		return conflict
	default:
		n, _ := strconv.Atoi(endings[e].status) // a number for every other ending
		return n
	}
}

// outcomeOf is what a run came to, for --metrics-file.
func outcomeOf(err error, facts *runFacts) string {
	return endings[endingOf(err, facts)].outcome
}

// exitStatuses are the exit statuses with what they mean, for --help and
// the man page: the endings of each status, in the table's order.
func exitStatuses() []struct{ status, meaning string } {
	var list []struct{ status, meaning string }
	at := map[string]int{}
	for _, e := range endings {
		if i, ok := at[e.status]; ok {
			list[i].meaning += ", " + e.help
			continue
		}
		at[e.status] = len(list)
		list = append(list, struct{ status, meaning string }{e.status, e.help})
	}
	return list
}

// exitStatusHelp is the block of --help that lists them.
func exitStatusHelp() string {
	var b strings.Builder
	for _, e := range exitStatuses() {
		writeEntry(&b, 9, e.status, strings.Fields(e.meaning))
	}
	return b.String()
}
