package torture

import "time"

// A set's command holds every lock of the set at once, exclusively (a set
// is never --shared). The checker holds it to that under each lock: a
// view of its section stands in each lock's list beside the sections of
// that lock alone (and other sets' views), with that lock's fencing
// token. So the sweeps need nothing of their own for sets: a set's
// section overlaps no section of any of its locks, shared or not; its
// token under each lock is above the tokens of the commands that lock
// had before; after a set's command is cut off, the gap under each of
// its locks runs to the next command there. Only the handoff differs:
// see handoffs and setHandoffs.

// views are the sections that stand for s in the lists of its locks: s
// itself, for a lock alone; a copy for each lock of a set.
func (s *section) views() []*section {
	if len(s.locks) < 2 {
		return []*section{s}
	}
	var vs []*section
	for i, name := range s.locks {
		v := *s
		v.lock, v.token, v.of = name, s.tokens[i], s
		vs = append(vs, &v)
	}
	return vs
}

// freed is when one of a set's locks fell free before the set's command
// entered, and whether the command that held it last ended of its own
// accord.
type freed struct {
	at     int64
	exited bool
}

// setHandoffs adds a handoff for each set's command that entered after
// the last of its locks to fall free did so because its command ended of
// its own accord: from that end to the set's enter. (Measured from each
// lock, it would count the set's wait for the others.)
func (rep *report) setHandoffs(sets map[*section]freed) {
	for s, f := range sets {
		if f.exited && s.enter > f.at {
			rep.handoff = append(rep.handoff, time.Duration(s.enter-f.at))
		}
	}
}
