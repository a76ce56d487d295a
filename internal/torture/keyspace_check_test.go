package torture

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
)

// What the key-space checker proves, from the shared log, the runs, the
// --unlock calls, etcd's recipe's takes and the keys written by hand:
//
//   - overlap: for each lock, distlock's runs, --lock holds and etcd's
//     recipe's holds on its prefix counted together, an exclusive section
//     (everything but --shared) lived beside no other section, or beside
//     fewer than a semaphore's limit of exclusive ones, and a shared one
//     only beside shared ones (keyspace_shared_test.go); a holder that a
//     plain --unlock of its own lock removed counts up to that --unlock,
//     and a distlock one must then be dead within the TTL. Fencing tokens
//     grow under plain locks, but for two shared sections.
//   - blocked: no run waited for what is not its lock's. A run that got
//     its lock (a section, or --lock's exit) did so within ksBound of the
//     moment fewer than the lock's limit of its own holders and waiters
//     that keep it out (for a --shared run, the exclusive ones) stood
//     ahead of it (ahead: a smaller create revision where both are
//     known, else started before it got the lock; gone: its process or
//     its deletion ended, a --min-hold's key ksHoldTail later). A run that
//     gave up (75) had at least the limit of its own lock's holders and
//     waiters that keep it out that started before it could have queued and were still
//     there (give or take ksBound) when its --timeout could first pass.
//     Both ask only for what any correct lock does, so a failure is a
//     wait for something that was not the lock's.
//   - shared: --shared holders did hold together, now and then.
//   - named: whatever distlock said holds its lock is its lock's.
//   - deleted: around each --unlock, nothing vanished from etcd but the
//     lock's own keys, keys whose lease ended, and keys their owner
//     deleted itself meanwhile; every --unlock removed its own lock's
//     holder or nothing; a key that went without its owner (a run told
//     "unlocked from elsewhere", etcd's recipe, a key written by hand) was
//     removed by an --unlock of its own lock.
//   - status: every distlock's exit status fits what happened to it.
//   - skip: a --min-interval run skipped only after a success of its lock
//     within its span (plus etcd's whole-second rounding), and ran only
//     when no success was recorded less than the span ago.
//   - shape: every key under the base was written by the test or is of a
//     shape distlock writes; the keys written for the whole run are still
//     there at its end, and nothing else is once leases have run out.

// ksReport is what the key-space checker found.
type ksReport struct {
	duration time.Duration
	etcd     string
	labels   []string       // the locks, in the test's order
	sections map[string]int // by lock label
	recipe   int            // sections of etcd's recipe
	held     int            // --lock holds
	runs     int            // exec mode
	nowait   int
	skipped  int
	minHold  int
	statuses map[int]int
	lockRuns int
	lockStat map[int]int
	plain    int // plain --unlock calls
	removed  int // of them, those that removed a holder
	holders  int // --unlock --holder calls
	recipes  int
	slash    int // of them, on realm+escape(name)+"/"
	recipeTO int // that gave up waiting
	hand     int
	handHex  int
	besides  int
	samples  int
	cut      int           // sections cut by a plain --unlock
	lived    time.Duration // the longest a cut distlock command lived on
	early    int           // a distlock section entered while a cut command still lived
	// etcd's recipe's section entered while a cut command still lived
	earlyRecipe int
	waitMax     time.Duration // the longest a run took past the moment its lock was free for it
	waitRun     string
	sharedRuns  int // exec runs with --shared
	sharedLocks int // --lock runs with --shared
	sharedSecs  int // sections of a --shared run or --lock
	together    int // shared sections that entered while another shared one lived
	overlaps    int
	sets        ksSetReport
	problems    []ksProblem
}

// ksProblem is one thing found wrong, by kind (see the list above).
type ksProblem struct {
	kind, text string
}

func (rep *ksReport) problem(kind, format string, args ...any) {
	rep.problems = append(rep.problems, ksProblem{kind, fmt.Sprintf(format, args...)})
}

// The words in distlock's lines that name a holder: the reason the test
// gave each run and each key it wrote, or a key with no details.
var (
	reRunReason  = regexp.MustCompile(`reason "keyspace ([ho][0-9.]+)"`)
	reHandReason = regexp.MustCompile(`reason "(?:hand|odd) (k[0-9]+)"`)
	reNoDetails  = regexp.MustCompile(`key (\S+) \(no details`)
)

// owner is what a line of distlock names: which lock it is a holder or
// waiter of ("" if of none), in words, and who it is.
type owner struct {
	label, desc, id string
	key             string // for a key written by hand or by etcd's recipe
	known           bool
	set             []string // a set's run: the labels of its locks (of)
}

// ksChecker holds the indexes the checks share.
type ksChecker struct {
	ks          *keyspace
	rep         *ksReport
	secs        map[string]*section
	runByID     map[string]*ksRun
	recipeByID  map[string]*recipeHold
	recipeByKey map[string]*recipeHold
	handByID    map[string]*handKey
	handByKey   map[string]*handKey
	lockByLabel map[string]*ksLock
	removedBy   map[string]*ksUnlock // holder id -> the plain --unlock of its own lock that removed it
	setSecs     map[string]*section  // a set's run id -> its section (c.secs has it by lock: expandSets)
	blamed      map[string]bool      // keys already reported as deleted by a wrong --unlock
	wronged     map[string]bool      // ids already reported as removed by a wrong --unlock
	until       map[string]int64     // sections counted only up to here
	late        map[string]*ksUnlock // distlock sections that entered after the plain --unlock that cut them began
}

// ownerOf finds what a line of distlock names.
func (c *ksChecker) ownerOf(line string) owner {
	if m := reRunReason.FindStringSubmatch(line); m != nil {
		if r := c.runByID[m[1]]; r != nil {
			what := "distlock run"
			if r.lockMode {
				what = "--lock"
			}
			return owner{r.lk.label(), fmt.Sprintf("%s %s of lock %s", what, r.id, r.label()), r.id, "", true, ksSetLabels(r)}
		}
	}
	if m := reHandReason.FindStringSubmatch(line); m != nil {
		if hk := c.handByID[m[1]]; hk != nil {
			return c.handOwner(hk)
		}
	}
	if m := reNoDetails.FindStringSubmatch(line); m != nil {
		key := m[1]
		if rh := c.recipeByKey[key]; rh != nil {
			o := owner{rh.lk.label(), fmt.Sprintf("etcd's recipe's key %s (%s, of lock %s)", key, rh.id, rh.label()), rh.id, key, true, nil}
			if rh.slash {
				o.label = "" // a lock of its own
			}
			return o
		}
		if hk := c.handByKey[key]; hk != nil {
			return c.handOwner(hk)
		}
		return owner{desc: "key " + key}
	}
	return owner{desc: strings.TrimPrefix(line, "distlock: ")}
}

// handOwner is a key written by hand as an owner: a holder of its lock if
// it is named by a lease ID, of none otherwise.
func (c *ksChecker) handOwner(hk *handKey) owner {
	if hk.hex {
		return owner{hk.lk.label(), fmt.Sprintf("key %s, written by hand (%s, a holder of lock %s by the grammar)", hk.key, hk.id, hk.lk.label()), hk.id, hk.key, true, nil}
	}
	return owner{"", fmt.Sprintf("key %s, written by hand (%s, foreign to every lock)", hk.key, hk.id), hk.id, hk.key, true, nil}
}

// check runs every check on what the run left behind.
func (ks *keyspace) check() *ksReport {
	rep := &ksReport{sections: map[string]int{}, statuses: map[int]int{}, lockStat: map[int]int{}, samples: ks.samples}
	for _, l := range ks.locks {
		rep.labels = append(rep.labels, l.label())
	}
	for _, n := range ks.notes {
		rep.problem("other", "%s", n)
	}
	secs, err := readSections(ks.logPath)
	if err != nil {
		rep.problem("other", "%v", err)
		return rep
	}
	c := newKsChecker(ks, rep, secs)
	c.expandSets()
	c.checkUnlocks()
	c.checkSections()
	c.checkShared()
	c.checkRuns()
	c.checkRecipes()
	c.checkHand()
	c.checkShapes()
	c.countSets()
	return rep
}

// newKsChecker indexes what the run left behind for the checks, and adds
// a section for each --lock hold to secs.
func newKsChecker(ks *keyspace, rep *ksReport, secs map[string]*section) *ksChecker {
	c := &ksChecker{
		ks: ks, rep: rep, secs: secs,
		runByID: map[string]*ksRun{}, recipeByID: map[string]*recipeHold{}, recipeByKey: map[string]*recipeHold{},
		handByID: map[string]*handKey{}, handByKey: map[string]*handKey{}, lockByLabel: map[string]*ksLock{},
		removedBy: map[string]*ksUnlock{}, blamed: map[string]bool{}, wronged: map[string]bool{}, until: map[string]int64{}, late: map[string]*ksUnlock{},
		setSecs: map[string]*section{},
	}
	for _, l := range ks.locks {
		c.lockByLabel[l.label()] = l
	}
	for _, r := range ks.runs {
		c.runByID[r.id] = r
	}
	for _, rh := range ks.recipes {
		c.recipeByID[rh.id] = rh
		if rh.key != "" {
			c.recipeByKey[rh.key] = rh
		}
	}
	for _, hk := range ks.hand {
		c.handByID[hk.id] = hk
		c.handByKey[hk.key] = hk // the latest of a key written more than once
	}
	// A --lock holds from its exit (it held by then) until the test
	// began to unlock its key: a section without a command.
	for _, r := range ks.runs {
		if r.lockMode && r.key != "" && r.unlockFrom > 0 {
			secs[r.id] = &section{run: r.id, lock: r.lk.label(), token: r.keyRev, enter: r.end, last: r.unlockFrom, exited: true}
			rep.held++
		}
	}
	return c
}

// checkShapes: every key the sampler found of no shape distlock writes,
// and not written by the test, is a problem.
func (c *ksChecker) checkShapes() {
	ks := c.ks
	ks.mu.Lock()
	var bad []string
	for key, when := range ks.shapeBad {
		bad = append(bad, fmt.Sprintf("%s (first seen at %s)", key, when))
	}
	ks.mu.Unlock()
	sort.Strings(bad)
	for _, b := range bad {
		c.rep.problem("shape", "key %s is of no shape distlock writes, and the test did not write it", b)
	}
}

// checkUnlocks: each --unlock exited 0 and removed a holder of its own
// lock or nothing, and nothing else vanished around it that was not the
// lock's, not on a lease that ended, and not deleted by its owner.
func (c *ksChecker) checkUnlocks() {
	rep := c.rep
	for _, u := range c.ks.unlocks {
		what := "--unlock"
		if u.holder != "" {
			what = "--unlock --holder=" + u.holder
			rep.holders++
		} else {
			rep.plain++
		}
		if u.status != 0 {
			rep.problem("status", "%s of lock %s exited %d; stderr:\n%s", what, u.lk.label(), u.status, u.stderr)
		}
		for _, line := range strings.Split(u.stderr, "\n") {
			if !strings.HasPrefix(line, "distlock: released ") {
				continue
			}
			o := c.ownerOf(line)
			switch {
			case !o.known:
				rep.problem("deleted", "%s of lock %s removed %s, which the test cannot name: %q", what, u.lk.label(), o.desc, line)
			case !o.of(u.lk.label()):
				rep.problem("deleted", "%s of lock %s removed %s", what, u.lk.label(), o.desc)
				c.wronged[o.id] = true
				if o.key != "" {
					c.blamed[o.key] = true // said: not again as vanished
				}
			case u.holder == "":
				rep.removed++
				c.removedBy[o.id] = u
				c.cut(c.cutID(o.id, u), u)
			}
		}
		if u.snapErr != nil {
			rep.problem("other", "%s of lock %s: could not read etcd around it: %v", what, u.lk.label(), u.snapErr)
		}
		for _, key := range u.suspects {
			if c.blamed[key] || c.deletedByOwner(key, u.snapFrom, u.snapTo) {
				continue
			}
			c.blamed[key] = true
			rep.problem("deleted", "%s of lock %s: the key %s, not one of that lock's, vanished from etcd around it (its lease, if any, lives on, and its owner did not delete it); stderr:\n%s",
				what, u.lk.label(), key, u.stderr)
		}
	}
}

// deletedByOwner reports whether key's owner deleted it itself, or may
// have, between from and to.
func (c *ksChecker) deletedByOwner(key string, from, to int64) bool {
	for _, d := range c.ks.ownDeletes {
		if d.key == key && d.from <= to && d.to >= from {
			return true
		}
	}
	return false
}

// cut counts the section of id, removed by the plain --unlock u of its own
// lock, only up to u; a distlock command must be dead within the TTL.
// etcd's recipe reads its key once, then holds for as long as it means to:
// it can enter after the --unlock began and before it deleted the key
// (sometime before u ended), and such a section counts up to its own
// entry, that is not at all. A distlock section that entered after u
// began on the key u removed (its turn came just before the key went,
// and its command started before distlock heard of that) counts whole against distlock's own
// sections, whose stopping record is to keep them out until its command
// is gone, and up to its entry against etcd's recipe, which the --unlock
// lets in at once (sweepSections); it too must be dead within the TTL.
func (c *ksChecker) cut(id string, u *ksUnlock) {
	s := c.secs[id]
	if s == nil || s.last < u.start {
		return // it had not begun, or had ended: nothing to cut
	}
	r := c.runByID[id]
	switch {
	case c.recipeByID[id] != nil && s.enter > u.end:
		return
	case c.recipeByID[id] == nil && s.enter > u.start:
		if r == nil || r.lockMode || !u.before[s.token] {
			// A key it took after u began: a set that u knocked
			// back while it gathered, queued again; u did not cut
			// that section.
			return
		}
		c.late[id] = u
	default:
		c.until[id] = max(u.start, s.enter)
	}
	c.rep.cut++
	if r == nil || r.lockMode {
		return // etcd's recipe never learns of it; a --lock has no command
	}
	lived := time.Duration(s.last - u.start)
	c.rep.lived = max(c.rep.lived, lived)
	if lived > ttl {
		c.rep.overlaps++
		c.rep.problem("overlap", "command %s (lock %s) lived on %v after --unlock removed its key, more than the TTL (%v)", id, s.lock, lived, ttl)
	}
}

// checkSections: no lock had more sections at once than it allows, and
// fencing tokens grew under the plain locks.
func (c *ksChecker) checkSections() {
	rep := c.rep
	byLabel := map[string][]*section{}
	for _, s := range c.secs {
		byLabel[s.lock] = append(byLabel[s.lock], s)
		rep.sections[s.lock]++
		if strings.HasPrefix(s.run, "r") {
			rep.recipe++
		}
		if c.sectionShared(s.run) {
			rep.sharedSecs++
		}
	}
	var labels []string
	for l := range byLabel {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, label := range labels {
		list := byLabel[label]
		limit := 1
		if l := c.lockByLabel[label]; l != nil {
			limit = l.limit
		} else if !strings.HasSuffix(label, "/") {
			rep.problem("other", "sections under a lock the test does not know: %q", label)
		}
		c.sweepSections(label, limit, list)
		if limit == 1 {
			c.checkTokens(label, list)
		}
		// Informational, for plain locks: did the next holder that
		// could not share with it start while a cut distlock command
		// still lived? distlock's stopping record is to keep the lock
		// taken until then; etcd's recipe knows nothing of it.
		for id, at := range c.until {
			s, r := c.secs[id], c.runByID[id]
			if limit > 1 || s == nil || s.lock != label || r == nil || r.lockMode {
				continue
			}
			for _, o := range list {
				if o != s && o.enter > at && o.enter < s.last && !(c.sectionShared(o.run) && c.sectionShared(s.run)) {
					if strings.HasPrefix(o.run, "r") {
						rep.earlyRecipe++
					} else {
						rep.early++
					}
					break
				}
			}
		}
	}
}

// contender is a holder or waiter of a lock by the grammar, while it may
// have had a key there.
type contender struct {
	id         string
	start, end int64
	rev        int64 // its key's create revision, 0 if unknown
	shared     bool  // a --shared run or --lock
}

// contenders are every lock's own holders and waiters: distlock's runs
// (a set's under each of its locks) and --lock keys, etcd's recipe on
// its prefix, keys named by a lease ID written there by hand.
func (c *ksChecker) contenders() map[string][]contender {
	m := map[string][]contender{}
	for _, r := range c.ks.runs {
		if len(r.set) > 0 {
			c.setContenders(m, r)
			continue
		}
		k := contender{id: r.id, start: r.start, end: r.end, shared: r.shared}
		switch {
		case r.lockMode:
			k.end = max(k.end, r.unlockTo)
			k.rev = r.keyRev
		default:
			if r.minHold > 0 {
				k.end += int64(r.minHold + ksHoldTail)
			}
			if s := c.secs[r.id]; s != nil {
				k.rev = s.token
			}
		}
		m[r.lk.label()] = append(m[r.lk.label()], k)
	}
	for _, rh := range c.ks.recipes {
		if !rh.slash {
			m[rh.lk.label()] = append(m[rh.lk.label()], contender{rh.id, rh.start, rh.end, rh.rev, false})
		}
	}
	for _, hk := range c.ks.hand {
		if hk.hex {
			m[hk.lk.label()] = append(m[hk.lk.label()], contender{hk.id, hk.put, hk.del, hk.rev, false})
		}
	}
	return m
}

// told is what distlock said stood in the way, for a problem's text.
func told(stderr string) string {
	var lines []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, " is held by ") || strings.Contains(line, "not distlock's") {
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		return "it said nothing of a holder"
	}
	return "it was told: " + strings.Join(lines, " / ")
}

// checkRuns checks each distlock run: its exit status, its wait, what it
// was told holds its lock, its --min-interval skip.
func (c *ksChecker) checkRuns() {
	conts := c.contenders()
	byLabel := map[string][]*ksRun{}
	for _, r := range c.ks.runs {
		byLabel[r.lk.label()] = append(byLabel[r.lk.label()], r)
	}
	logged := map[int]int{}
	for _, r := range c.ks.runs {
		stderr := r.stderr.String()
		s := c.runSection(r)
		c.countRun(r)
		if logged[r.status] < 2 {
			logged[r.status]++
			c.ks.t.Logf("distlock %s (%s) exited %d; stderr:\n%s", r.id, r.label(), r.status, stderr)
		}
		c.checkNamed(r, stderr)
		c.checkStatus(r, s, stderr, byLabel[r.lk.label()])
		if s != nil && r.minInterval > 0 && !r.lockMode {
			c.checkRan(r, s, byLabel[r.lk.label()])
		}
		switch {
		case len(r.set) > 0:
			c.checkSetWait(r, s, conts)
		case s != nil:
			c.checkWait(r, s.enter, s.token, conts[r.lk.label()])
		case r.lockMode && r.status == 0:
			c.checkWait(r, r.end, r.keyRev, conts[r.lk.label()])
		case r.status == 75:
			c.checkGaveUp(r, conts[r.lk.label()])
		}
	}
}

// checkWait: run r, which got its lock at enter (with the key created at
// rev, if known), got it within ksBound of the moment fewer than the
// lock's limit of its own holders and waiters that keep it out stood
// ahead of it.
func (c *ksChecker) checkWait(r *ksRun, enter, rev int64, conts []contender) {
	var ends []int64
	for _, k := range conts {
		if k.id == r.id || !keepsOut(r, k) {
			continue
		}
		ahead := k.start < enter
		if k.rev > 0 && rev > 0 {
			ahead = k.rev < rev
		}
		if ahead {
			ends = append(ends, k.end)
		}
	}
	free := r.start
	if n := r.lk.limit; len(ends) >= n {
		sort.Slice(ends, func(i, j int) bool { return ends[i] > ends[j] })
		free = max(free, ends[n-1])
	}
	over := time.Duration(enter - free)
	if over > ksBound {
		c.rep.problem("blocked", "distlock %s (lock %s%s) got its lock %v after the last of its own lock's holders and waiters ahead of it that keep it out had gone (bound %v); %s",
			r.id, r.lk.label(), sharedNote(r), over.Round(time.Millisecond), ksBound, told(r.stderr.String()))
		return
	}
	if over > c.rep.waitMax {
		c.rep.waitMax, c.rep.waitRun = over, r.id+sharedNote(r)
	}
}

// checkGaveUp: run r, which gave up (75), had at least its lock's limit
// of its own holders and waiters that keep it out and could have been
// ahead of it and still there when its --timeout could first pass.
func (c *ksChecker) checkGaveUp(r *ksRun, conts []contender) {
	queuedBy := max(r.end-int64(r.timeout), r.start) // it queued at the latest then
	passed := r.start + int64(r.timeout)             // its timeout passed at the earliest then
	n := 0
	for _, k := range conts {
		if k.id != r.id && keepsOut(r, k) && k.start < queuedBy && k.end > passed-int64(ksBound) {
			n++
		}
	}
	if n < r.lk.limit {
		c.rep.problem("blocked", "distlock %s (lock %s%s, --timeout %v) gave up, but only %d of its lock's own holders and waiters that keep it out could have stood ahead of it then (limit %d); %s",
			r.id, r.lk.label(), sharedNote(r), r.timeout, n, r.lk.limit, told(r.stderr.String()))
	}
}

// recorded reports whether w is a successful --min-interval run whose
// success was recorded.
func (c *ksChecker) recorded(w *ksRun) bool {
	s := c.secs[w.id]
	stderr := w.stderr.String()
	return !w.lockMode && w.minInterval > 0 && w.status == 0 && s != nil && s.exited &&
		!strings.Contains(stderr, "not recorded") && !strings.Contains(stderr, "could not record")
}

// checkSkip: run r skipped its command (--min-interval): some run of its
// lock recorded a success before r ended, and ended less than r's span
// before r started, plus etcd's rounding to whole seconds (a lease's TTL
// is read in whole seconds, rounded down) and its least TTL.
func (c *ksChecker) checkSkip(r *ksRun, same []*ksRun) {
	for _, w := range same {
		if w != r && c.recorded(w) && c.secs[w.id].last < r.end && r.start-w.end < int64(r.minInterval+2*time.Second) {
			return
		}
	}
	c.rep.problem("skip", "distlock %s (lock %s, --min-interval %v) started nothing, but no run of its lock had succeeded within that span before it", r.id, r.lk.label(), r.minInterval)
}

// checkRan: run r (--min-interval) ran its command, so no success of its
// lock was recorded less than the span before it looked. A run w that
// ended before r started recorded its success after its command's last
// record; r looked before its own command's first; every run of a lock
// gives it the same span, so a newer record never expires sooner.
func (c *ksChecker) checkRan(r *ksRun, s *section, same []*ksRun) {
	for _, w := range same {
		if w == r || !c.recorded(w) || w.end > r.start {
			continue
		}
		if age := time.Duration(s.enter - c.secs[w.id].last); age < r.minInterval-300*time.Millisecond {
			c.rep.problem("skip", "distlock %s (lock %s, --min-interval %v) ran its command although %s had succeeded %v before",
				r.id, r.lk.label(), r.minInterval, w.id, age.Round(time.Millisecond))
			return
		}
	}
}

// checkRecipes: etcd's recipe's key went only to an --unlock of its lock
// (never on its own prefix+"/"), and its waits failed only by timing out.
func (c *ksChecker) checkRecipes() {
	rep := c.rep
	for _, rh := range c.ks.recipes {
		rep.recipes++
		if rh.slash {
			rep.slash++
		}
		switch {
		case rh.err == nil, errors.Is(rh.err, context.DeadlineExceeded), errors.Is(rh.err, context.Canceled):
			if rh.err != nil && !rh.acquired {
				rep.recipeTO++
			}
		case rh.lost:
		default:
			rep.problem("other", "etcd's recipe %s on %s: %v", rh.id, rh.label(), rh.err)
		}
		if rh.lost && c.removedBy[rh.id] == nil && !c.wronged[rh.id] && !c.blamed[rh.key] {
			rep.problem("deleted", "etcd's recipe's key %s (%s, lock %s) was deleted under it, and no --unlock of its lock says it removed it", rh.key, rh.id, rh.label())
		}
	}
}

// checkHand: a key written by hand went only to an --unlock of its lock,
// and only if it was a holder by the grammar.
func (c *ksChecker) checkHand() {
	rep := c.rep
	for _, hk := range c.ks.hand {
		switch {
		case hk.persistent:
			rep.besides++
		case hk.hex:
			rep.handHex++
			rep.hand++
		default:
			rep.hand++
		}
		if hk.gone && c.removedBy[hk.id] == nil && !c.wronged[hk.id] && !c.blamed[hk.key] {
			where := "under"
			if hk.persistent {
				where = "for the whole run beside"
			}
			rep.problem("deleted", "the key %s, written by hand (%s) %s lock %s, was gone before the test deleted it", hk.key, hk.id, where, hk.lk.label())
		}
	}
}

// kinds are the kinds of problems, in the order the summary gives them.
var ksKinds = []string{"overlap", "token", "blocked", "shared", "named", "set", "deleted", "status", "skip", "shape", "other"}

// errors are the problems as the test reports them: the first few of each
// kind in full, then how many more.
func (rep *ksReport) errors() []string {
	const shown = 8
	var out []string
	for _, kind := range ksKinds {
		n := 0
		for _, p := range rep.problems {
			if p.kind != kind {
				continue
			}
			if n++; n <= shown {
				out = append(out, fmt.Sprintf("[%s] %s", kind, p.text))
			}
		}
		if n > shown {
			out = append(out, fmt.Sprintf("[%s] ... and %d more of this kind", kind, n-shown))
		}
	}
	return out
}

// summary is the report as the test prints it.
func (rep *ksReport) summary(run length, seed int64) string {
	var b strings.Builder
	total := rep.sets.secs - rep.sets.members // a set's section once
	for _, n := range rep.sections {
		total += n
	}
	fmt.Fprintf(&b, "keyspace torture (%s run, seed %d): %d realms, %d names, %d locks, %s, %v of workload, %s/%s\n",
		run.name, seed, len(ksRealms), len(ksNames), len(rep.labels), rep.etcd, rep.duration.Round(time.Second), runtime.GOOS, runtime.GOARCH)
	var parts []string
	for _, l := range rep.labels {
		parts = append(parts, fmt.Sprintf("%s %d", l, rep.sections[l]))
	}
	own := 0
	for l, n := range rep.sections {
		if strings.HasSuffix(l, "/") {
			own += n
		}
	}
	fmt.Fprintf(&b, "  critical sections: %d (%s; etcd's recipe on prefix+\"/\" %d)\n", total, strings.Join(parts, ", "), own)
	fmt.Fprintf(&b, "    of them etcd's recipe %d, --lock holds %d\n", rep.recipe, rep.held)
	fmt.Fprintf(&b, "  distlock exec runs: %d (--nowait %d, --min-hold %d, skipped by --min-interval %d); exit statuses: %s\n",
		rep.runs, rep.nowait, rep.minHold, rep.skipped, statusList(rep.statuses))
	b.WriteString(rep.sets.line())
	fmt.Fprintf(&b, "  --lock runs: %d; exit statuses: %s\n", rep.lockRuns, statusList(rep.lockStat))
	fmt.Fprintf(&b, "  --shared: %d exec runs, %d --lock runs, %d sections, %d of them entered while another shared one lived\n",
		rep.sharedRuns, rep.sharedLocks, rep.sharedSecs, rep.together)
	fmt.Fprintf(&b, "  --unlock: %d plain (%d removed a holder of their lock), %d --holder\n", rep.plain, rep.removed, rep.holders)
	fmt.Fprintf(&b, "  sections cut by a plain --unlock: %d; distlock commands lived on at most %v; next holder in while a cut command lived: distlock %d, etcd's recipe %d\n",
		rep.cut, rep.lived.Round(time.Millisecond), rep.early, rep.earlyRecipe)
	fmt.Fprintf(&b, "  etcd's recipe: %d takes (%d on prefix+\"/\"), %d gave up waiting\n", rep.recipes, rep.slash, rep.recipeTO)
	fmt.Fprintf(&b, "  keys by hand: %d under the prefixes (%d named by a lease ID), %d beside them for the whole run; %d reads of every key's shape\n",
		rep.hand, rep.handHex, rep.besides, rep.samples)
	if rep.waitRun != "" {
		fmt.Fprintf(&b, "  longest time to the lock once nothing of its own stood ahead: %v (%s; bound %v)\n",
			rep.waitMax.Round(time.Millisecond), rep.waitRun, ksBound)
	}
	b.WriteString(rep.problemLine())
	return b.String()
}

// problemLine is the summary's last line: the overlaps, and the problems
// by kind.
func (rep *ksReport) problemLine() string {
	counts := map[string]int{}
	for _, p := range rep.problems {
		counts[p.kind]++
	}
	var parts []string
	for _, k := range ksKinds {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
		}
	}
	detail := ""
	if len(parts) > 0 {
		detail = " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("  overlaps: %d; problems: %d%s\n", rep.overlaps, len(rep.problems), detail)
}

// statusList is "0: 12, 75: 3".
func statusList(m map[int]int) string {
	var codes []int
	for c := range m {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d: %d", c, m[c]))
	}
	return strings.Join(parts, ", ")
}

// unlocksOf tells, for an overlap under label, when each --unlock of that
// lock ran and whom it said it removed: to tell a cut the checker missed
// from two holders at once.
func (c *ksChecker) unlocksOf(label string) string {
	var b strings.Builder
	for _, u := range c.ks.unlocks {
		if u.lk.label() != label {
			continue
		}
		var removed []string
		for _, line := range strings.Split(u.stderr, "\n") {
			if strings.HasPrefix(line, "distlock: released ") {
				removed = append(removed, c.ownerOf(line).id)
			}
		}
		fmt.Fprintf(&b, "\n    --unlock %q %.3fs..%.3fs removed %q", u.holder, float64(u.start)/1e9, float64(u.end)/1e9, removed)
	}
	for _, rh := range c.ks.recipes {
		if rh.lk.label() == label && !rh.slash && rh.acquired {
			fmt.Fprintf(&b, "\n    etcd's recipe %s: key %s (rev %d), lost at its end: %v", rh.id, rh.key, rh.rev, rh.lost)
		}
	}
	return b.String()
}
