package torture

import (
	"fmt"
	"sort"
	"strings"
)

// Which sections of one lock may live at once, in the key-space checker.
// A plain lock holds either one exclusive holder (a distlock run or
// --lock without --shared, etcd's recipe, any key that does not say it is
// shared) or any number of shared ones, never both; a semaphore holds up
// to its limit of exclusive holders and no shared one (--shared does not
// go with --limit, and the test gives it none). The sweep is the fault
// test's (check_test.go), with that rule in place of a count.

// sectionShared says whether the section of id is a shared holder's: a
// distlock run or --lock given --shared. etcd's recipe, and whatever the
// checker cannot name, hold alone.
func (c *ksChecker) sectionShared(id string) bool {
	r := c.runByID[id]
	return r != nil && r.shared
}

// ksFits says whether excl exclusive and shared shared sections may live
// at once under a lock of limit.
func ksFits(excl, shared, limit int) bool {
	return excl == 0 || shared == 0 && excl <= limit
}

// sweepSections goes through the sections of the lock label in time order
// and reports every moment at which those alive do not fit (ksFits); a
// section removed by a plain --unlock counts up to c.until. It counts the
// shared sections that entered while another shared one lived.
func (c *ksChecker) sweepSections(label string, limit int, list []*section) {
	type edge struct {
		at    int64
		delta int
		s     *section
	}
	var edges []edge
	for _, s := range list {
		end := s.last
		if u, ok := c.until[s.run]; ok {
			end = min(end, u)
		}
		// [enter, end+1ns): ending the instant another enters is no
		// overlap; a section with only its enter still lived.
		edges = append(edges, edge{s.enter, +1, s}, edge{end + 1, -1, s})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].delta < edges[j].delta
	})
	live := map[*section]bool{}
	count := map[bool]int{} // by sectionShared
	for _, e := range edges {
		shared := c.sectionShared(e.s.run)
		if e.delta < 0 {
			delete(live, e.s)
			count[shared]--
			continue
		}
		if shared && count[true] > 0 {
			c.rep.together++
		}
		live[e.s] = true
		count[shared]++
		if ksFits(count[false], count[true], limit) || c.fitsExcusingLate(live, limit) {
			continue
		}
		c.rep.overlaps++
		var who []string
		for s := range live {
			who = append(who, fmt.Sprintf("%s (%s, token %d, %.3fs..%.3fs)",
				s.run, c.modeWord(s.run), s.token, float64(s.enter)/1e9, float64(s.last)/1e9))
		}
		sort.Strings(who)
		allowed := "one exclusive holder or any number of shared ones"
		if limit > 1 {
			allowed = fmt.Sprintf("up to %d exclusive holders, no shared one", limit)
		}
		c.rep.problem("overlap", "lock %q: %d exclusive and %d shared sections lived at once, %s allowed: %s%s",
			label, count[false], count[true], allowed, strings.Join(who, ", "), c.unlocksOf(label))
	}
}

// fitsExcusingLate says whether the sections alive fit once every
// distlock section that entered after the plain --unlock that cut it
// began (c.late) is left out where a section of etcd's recipe that
// entered after that --unlock began lives beside it: the recipe knows
// nothing of distlock's stopping record.
func (c *ksChecker) fitsExcusingLate(live map[*section]bool, limit int) bool {
	count := map[bool]int{}
	excused := false
	for s := range live {
		if u := c.late[s.run]; u != nil && c.recipeBeside(live, u) {
			excused = true
			continue
		}
		count[c.sectionShared(s.run)]++
	}
	return excused && ksFits(count[false], count[true], limit)
}

// recipeBeside says whether a section of etcd's recipe that entered after
// the --unlock u began is alive.
func (c *ksChecker) recipeBeside(live map[*section]bool, u *ksUnlock) bool {
	for s := range live {
		if c.recipeByID[s.run] != nil && s.enter >= u.start {
			return true
		}
	}
	return false
}

// modeWord is "shared" or "exclusive", for the section of id.
func (c *ksChecker) modeWord(id string) string {
	if c.sectionShared(id) {
		return "shared"
	}
	return "exclusive"
}

// checkTokens: under a plain lock, a section's fencing token is above
// that of every section dead before it entered, unless both are shared.
// Shared holders hold at once and their tokens say only which queued
// first: the first may start its command after the other has run and
// ended beside it, as under a semaphore. An exclusive holder's key was
// created after every key that held before it, shared or not, and a
// shared holder's after every exclusive one's.
func (c *ksChecker) checkTokens(label string, list []*section) {
	byEnd := append([]*section(nil), list...)
	sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].last < byEnd[j].last })
	for _, s := range list {
		for _, p := range byEnd {
			if p.last >= s.enter {
				break
			}
			if p.token >= s.token && !(c.sectionShared(p.run) && c.sectionShared(s.run)) {
				c.rep.problem("token", "lock %q: %s section %s got fencing token %d, but %s section %s, dead before it entered, had %d",
					label, c.modeWord(s.run), s.run, s.token, c.modeWord(p.run), p.run, p.token)
			}
		}
	}
}

// keepsOut says whether contender k, ahead of run r in its lock's queue,
// keeps r from holding: a shared run waits only for exclusive keys (and
// their stopping records, which last no longer than their owners).
func keepsOut(r *ksRun, k contender) bool {
	return !r.shared || !k.shared
}

// sharedNote is ", --shared" for a shared run, for a problem's text.
func sharedNote(r *ksRun) string {
	if r.shared {
		return ", --shared"
	}
	return ""
}

// ksSharedLeast is how many shared sections a round must have before it
// must also have two at once: a short round has some sixty, a handful of
// them beside another.
const ksSharedLeast = 20

// checkShared: shared holders did hold together. Half the --shared runs
// go to a lock that another one holds or awaits (pickShared), so a round
// in which no shared section entered beside another is one in which
// shared holders waited for one another; the wait check sees such a wait
// only when it is longer than ksBound.
func (c *ksChecker) checkShared() {
	if c.rep.sharedSecs >= ksSharedLeast && c.rep.together == 0 {
		c.rep.problem("shared", "%d sections of --shared runs and --locks, and none entered while another lived: shared holders never held together",
			c.rep.sharedSecs)
	}
}
