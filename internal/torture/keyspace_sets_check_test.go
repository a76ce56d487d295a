package torture

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sets of locks in the key-space checker. A set's section is one
// command's life, and it counts under every lock of the set, as a section
// of its own (ksMemberID) with that lock's fencing token: exclusive, so
// beside no other section of that lock, whoever's (distlock's, shared or
// not, a --lock hold, etcd's recipe), and its token above those of the
// lock's sections dead before it entered. A plain --unlock that removes
// the set's key of one lock cuts the section under that lock only: the
// set's keys of the others stay on its lease until its command is dead,
// as the safety rule wants, so no one may enter those meanwhile. What the
// command was told (the tokens and the keys, in the canonical order, all
// named after one lease) is checked as well.

// ksSetReport is what the summary says of the sets.
type ksSetReport struct {
	runs, two, three int
	statuses         map[int]int
	secs             int // sections of a set
	members          int // those sections, once under each of their locks
	removed          int // plain --unlocks that removed a set's key
	cut              int // of a set's sections under one of its locks
}

// line is the summary's line about sets.
func (s *ksSetReport) line() string {
	return fmt.Sprintf("  sets of locks: %d exec runs (%d of two locks, %d of three), %d sections (each under all its locks above); "+
		"a set's key removed by a plain --unlock: %d, a section cut under one lock: %d; exit statuses: %s\n",
		s.runs, s.two, s.three, s.secs, s.removed, s.cut, statusList(s.statuses))
}

// ksMemberID names the part of set run id's section that counts under the
// lock label.
func ksMemberID(id, label string) string { return id + "@" + label }

// ksSetLabels are the labels of run r's locks if it took a set, else nil.
func ksSetLabels(r *ksRun) []string {
	var labels []string
	for _, l := range r.set {
		labels = append(labels, l.label())
	}
	return labels
}

// of says whether the owner o is a holder or waiter of the lock label: a
// set's run is one of each of its locks.
func (o owner) of(label string) bool {
	return o.label == label || slices.Contains(o.set, label)
}

// cutID is the section that the plain --unlock u cuts when it removes
// the holder id: a set's under u's lock only.
func (c *ksChecker) cutID(id string, u *ksUnlock) string {
	if r := c.runByID[id]; r != nil && len(r.set) > 0 {
		c.rep.sets.removed++
		return ksMemberID(id, u.lk.label())
	}
	return id
}

// runSection is run r's section, or nil.
func (c *ksChecker) runSection(r *ksRun) *section {
	if len(r.set) > 0 {
		return c.setSecs[r.id]
	}
	return c.secs[r.id]
}

// expandSets takes each set's section out of c.secs (into c.setSecs) and
// puts one in for each lock of the set, with that lock's label and
// fencing token, after checking what the command was told.
func (c *ksChecker) expandSets() {
	for _, r := range c.ks.runs {
		s := c.secs[r.id]
		if len(r.set) == 0 || s == nil {
			continue
		}
		delete(c.secs, r.id)
		c.setSecs[r.id] = s
		told, err := parseKsSetTold(r, s.lock)
		switch {
		case err != nil:
			c.rep.problem("set", "distlock %s (locks %s): %v", r.id, r.label(), err)
		case told.tokens[0] != s.token:
			c.rep.problem("set", "distlock %s (locks %s): DISTLOCK_FENCING_TOKEN %d is not the first of DISTLOCK_FENCING_TOKENS %v",
				r.id, r.label(), s.token, told.tokens)
		}
		for i, l := range r.set {
			m := *s
			m.run, m.lock = ksMemberID(r.id, l.label()), l.label()
			if err == nil {
				m.token = told.tokens[i]
			}
			c.secs[m.run] = &m
			c.runByID[m.run] = r
		}
	}
}

// setContenders puts set run r among the contenders of each of its locks,
// with its key's create revision there (its token) if known. A set that a
// plain --unlock knocked back while it was gathered queued again with
// new keys: its tokens are those of the last try, and say nothing of
// whom its earlier keys stood ahead of; such a set stands ahead of whoever
// entered after it started.
func (c *ksChecker) setContenders(m map[string][]contender, r *ksRun) {
	for _, l := range r.set {
		k := contender{id: r.id, start: r.start, end: r.end}
		if s := c.secs[ksMemberID(r.id, l.label())]; s != nil && c.removedBy[r.id] == nil {
			k.rev = s.token
		}
		m[l.label()] = append(m[l.label()], k)
	}
}

// reKsHeldName is the lock a "held by" line names.
var reKsHeldName = regexp.MustCompile(`lock ("(?:[^"\\]|\\.)*") is held by `)

// heldLock is the lock that a "held by" line told to run r names: its
// lock, or the one of its set that the line names ("" if none), and how
// to say it.
func (c *ksChecker) heldLock(r *ksRun, line string) (label, what string) {
	if len(r.set) == 0 {
		return r.lk.label(), "its lock"
	}
	m := reKsHeldName.FindStringSubmatch(line)
	if m == nil {
		return "", ""
	}
	name, err := strconv.Unquote(m[1])
	if err != nil {
		return "", ""
	}
	for _, l := range r.set {
		if l.name == name {
			return l.label(), "lock " + l.label()
		}
	}
	return "", ""
}

// checkSetWait checks the wait of set run r, with section s (nil if its
// command never ran). It takes its locks one after the other, each once
// the contenders ahead of it there (by create revision where both are
// known, else those that started before it entered) have gone: so it got
// the set within ksBound of the moment the last of those had gone on
// every lock. (Knocked back by an --unlock, it queued again behind
// whoever was there by then: its tokens are the last try's.) If it gave
// up (75), something of one of its locks stood in its way when its
// --timeout passed: started before it ended, and there until ksBound
// before the --timeout could first pass.
func (c *ksChecker) checkSetWait(r *ksRun, s *section, conts map[string][]contender) {
	switch {
	case s == nil && r.status == 75:
		passed := r.start + int64(r.timeout)
		for _, l := range r.set {
			for _, k := range conts[l.label()] {
				if k.id != r.id && k.start < r.end && k.end > passed-int64(ksBound) {
					return
				}
			}
		}
		c.rep.problem("blocked", "distlock %s (locks %s, --timeout %v) gave up, but nothing of its locks could have stood in its way then; %s",
			r.id, r.label(), r.timeout, told(r.stderr.String()))
		return
	case s == nil:
		return
	}
	free := r.start
	for _, l := range r.set {
		rev := c.secs[ksMemberID(r.id, l.label())].token
		for _, k := range conts[l.label()] {
			ahead := k.start < s.enter
			if k.rev > 0 && rev > 0 {
				ahead = k.rev < rev
			}
			if k.id != r.id && ahead {
				free = max(free, k.end)
			}
		}
	}
	over := time.Duration(s.enter - free)
	// Each further lock of the set is one more queueing and look.
	bound := ksBound + time.Duration(len(r.set)-1)*ksSetStep
	if over > bound {
		c.rep.problem("blocked", "distlock %s (locks %s) got its set %v after the last of its locks' holders and waiters ahead of it had gone (bound %v); %s",
			r.id, r.label(), over.Round(time.Millisecond), bound, told(r.stderr.String()))
		return
	}
	if over > c.rep.waitMax {
		c.rep.waitMax, c.rep.waitRun = over, r.id+", a set"
	}
}

// countSets counts the sets' runs and sections for the summary.
func (c *ksChecker) countSets() {
	st := &c.rep.sets
	st.statuses = map[int]int{}
	for _, r := range c.ks.runs {
		if len(r.set) == 0 {
			continue
		}
		st.runs++
		if len(r.set) == 2 {
			st.two++
		} else {
			st.three++
		}
		st.statuses[r.status]++
		if c.setSecs[r.id] != nil {
			st.secs++
			st.members += len(r.set)
		}
	}
	for id := range c.until {
		if strings.Contains(id, "@") {
			st.cut++
		}
	}
}
