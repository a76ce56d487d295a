package report

// An Ending is one kind of end a run can come to. endings is the one table
// of them: each one's exit status, its outcome in the metrics file, the
// event of the line that tells it (--log-format json), and what --help
// says of it. --help's exit statuses and the man page are written from
// it; the README's table of exit statuses is held to its statuses, and
// the events to the reference's list, by the main package's tests. The
// main package decides which ending a run came to (endingOf), in one
// place.
type Ending int

const (
	EndDone        Ending = iota // the mode did what it was asked
	EndSkipped                   // --min-interval: a recent run succeeded
	EndExited                    // exec mode: the command exited N
	EndKilled                    // exec mode: the command was killed by signal N
	EndSignal                    // a signal ended the wait, or came before the start
	EndFree                      // --status: the lock is free
	EndUsage                     // bad input
	EndUnreachable               // etcd could not be reached, or refused us
	EndLostEarly                 // the lock was lost after it was taken, before the command started
	EndLost                      // the lock was lost while the command ran
	EndConflict                  // the lock was not acquired in time
	EndOverran                   // exec mode: --max-runtime passed and the command was stopped
	EndCannotRun                 // the command exists but cannot be run
	EndNotFound                  // the command was not found
	numEndings
)

// ending is what the table says of one Ending.
type ending struct {
	status  string // the exit status: a number, or N, 128+N
	outcome string // distlock_outcome's label
	event   Event  // the event of the line that tells it; "" if none does
	help    string // what --help says of it; a status's later endings start with "or"
}

var endings = [numEndings]ending{
	EndDone:        {"0", OutcomeRan, "", "success"},
	EndSkipped:     {"0", OutcomeSkipped, EventSkipped, "or --min-interval found a recent run and started nothing"},
	EndExited:      {"N", OutcomeRan, EventEnded, "the command exited N"},
	EndKilled:      {"128+N", OutcomeRan, EventEnded, "the command was killed by signal N"},
	EndSignal:      {"128+N", OutcomeConflict, EventSignal, "or signal N ended the wait"},
	EndFree:        {"1", OutcomeRan, "", "--status: the lock is free"},
	EndUsage:       {"64", OutcomeUsage, EventUsage, "usage or configuration error"},
	EndUnreachable: {"69", OutcomeUnreachable, EventEtcdError, "etcd unreachable or refused us, before any command ran (also: --timeout passed while etcd was out of reach)"},
	EndLostEarly:   {"69", OutcomeLost, EventLost, "or the lock was lost before the command started"},
	EndLost:        {"70", OutcomeLost, EventLost, "the lock was lost while the command ran"},
	EndConflict:    {"75", OutcomeConflict, EventConflict, "the lock was not acquired (--nowait, or --timeout passed while it was held; --conflict-exit-code)"},
	EndOverran:     {"124", OutcomeOverran, EventOverran, "exec mode: --max-runtime passed and the command was stopped"},
	EndCannotRun:   {"126", OutcomeRan, EventNotStarted, "the command cannot be run"},
	EndNotFound:    {"127", OutcomeRan, EventNotStarted, "the command was not found"},
}

// Endings are all the kinds of ending, in the table's order.
func Endings() []Ending {
	all := make([]Ending, numEndings)
	for i := range all {
		all[i] = Ending(i)
	}
	return all
}

// ExitStatus is the ending's exit status as --help writes it: a number,
// or N or 128+N where the command or the signal decides.
func (e Ending) ExitStatus() string { return endings[e].status }

// Outcome is the ending's label of distlock_outcome.
func (e Ending) Outcome() string { return endings[e].outcome }

// Event is the event of the line that tells the ending, "" if no line
// does.
func (e Ending) Event() Event { return endings[e].event }

// Help is what --help says of the ending.
func (e Ending) Help() string { return endings[e].help }

// Status is one exit status and what it means: the help of its endings,
// in the table's order.
type Status struct{ Status, Meaning string }

// ExitStatuses are the exit statuses with what they mean, for --help and
// the man page.
func ExitStatuses() []Status {
	var list []Status
	at := map[string]int{}
	for _, e := range endings {
		if i, ok := at[e.status]; ok {
			list[i].Meaning += ", " + e.help
			continue
		}
		at[e.status] = len(list)
		list = append(list, Status{e.status, e.help})
	}
	return list
}
