package torture

import "strings"

// The key-space checker's look at each distlock run (checkRuns): the
// numbers it adds to the summary, what it was told holds its lock, and
// its exit status.

// countRun counts run r in the summary's numbers.
func (c *ksChecker) countRun(r *ksRun) {
	rep := c.rep
	if r.lockMode {
		rep.lockRuns++
		rep.lockStat[r.status]++
		if r.shared {
			rep.sharedLocks++
		}
		return
	}
	rep.runs++
	if r.shared {
		rep.sharedRuns++
	}
	rep.statuses[r.status]++
	if r.timeout == 0 {
		rep.nowait++
	}
	if r.minHold > 0 {
		rep.minHold++
	}
}

// checkNamed: what run r was told holds its lock (for a set, the lock
// the line names, which must be one of the set's) is that lock's. Each
// holder is said once a run: a wait's first line and its last usually
// name the same.
func (c *ksChecker) checkNamed(r *ksRun, stderr string) {
	said := map[string]bool{}
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, " is held by ") {
			continue
		}
		o := c.ownerOf(line)
		want, what := c.heldLock(r, line)
		if said[o.desc+" "+want] {
			continue
		}
		said[o.desc+" "+want] = true
		switch {
		case want == "":
			c.rep.problem("named", "distlock %s (lock %s) was told of a lock not its own: %q", r.id, r.label(), line)
		case !o.known:
			c.rep.problem("named", "distlock %s (lock %s) was told %s is held by %s, which the test cannot name: %q", r.id, r.label(), what, o.desc, line)
		case !o.of(want):
			c.rep.problem("named", "distlock %s (lock %s) was told %s is held by %s", r.id, r.label(), what, o.desc)
		}
	}
}

// checkStatus: run r's exit status fits what happened to it (its
// section s, or none); a key it lost to a deletion went to an --unlock
// of its own lock. same are the runs of its lock, for --min-interval.
func (c *ksChecker) checkStatus(r *ksRun, s *section, stderr string, same []*ksRun) {
	rep, label := c.rep, r.label()
	// Its key went without its doing: an --unlock of its own lock
	// must say it removed it.
	lostKey := strings.Contains(stderr, "unlocked from elsewhere") || strings.Contains(stderr, "place in the queue was deleted")
	removed := c.removedBy[r.id] != nil
	if lostKey && !removed && !c.wronged[r.id] {
		rep.problem("deleted", "distlock %s (lock %s) lost its key to a deletion, and no --unlock of its lock says it removed it; stderr:\n%s", r.id, label, stderr)
	}
	lost := strings.Contains(stderr, "lost lock")
	var fits bool
	switch {
	case r.lockMode:
		// An --unlock between the take and the detach: 69.
		fits = r.status == 0 || r.status == 75 || r.status == 69 && removed
		if r.status == 0 && r.key == "" && !removed {
			rep.problem("deleted", "--lock %s (lock %s) exited 0, but its key was not there after it, and no --unlock of its lock says it removed it", r.id, label)
		}
	case r.status == 64:
		fits = false
	case s != nil && s.exited:
		fits = r.status == 0 || r.status == 70 && lost
	case s != nil:
		fits = r.status == 70 && lost
	case r.status == 0:
		fits = r.minInterval > 0
		if fits {
			rep.skipped++
			c.checkSkip(r, same)
		}
	case r.status == 75:
		fits = true // the wait is checked on its own
	case r.status == 70 && lost, r.status == 69 && (lost || lostKey):
		fits = removed || c.wronged[r.id]
	}
	if fits {
		return
	}
	what := "its command never started"
	switch {
	case r.lockMode:
		what = "it is --lock"
	case s != nil && s.exited:
		what = "its command ended of its own accord"
	case s != nil:
		what = "its command was cut off"
	}
	rep.problem("status", "distlock %s (lock %s) exited %d, which does not fit: %s; stderr:\n%s", r.id, label, r.status, what, stderr)
}
