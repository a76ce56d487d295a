package torture

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The sweeps over one lock's sections. Under the plain lock, shared
// sections (--shared) may live beside one another, and an exclusive one
// beside nothing; so a shared section excludes, and is excluded by, the
// exclusive ones only. The tokens, gaps and handoffs below are measured
// between sections that exclude each other, or at the moments the lock
// as a whole changes hands.

// excludes says whether sections a and b may not live at once under a
// plain lock: unless both are shared.
func excludes(a, b *section) bool { return !a.shared || !b.shared }

// checkOverlap sweeps the commands' lives in time order and reports every
// moment a lock had more at once than it allows: more than limit
// exclusive sections, or an exclusive section beside a shared one (any
// number of shared sections may live together; --shared does not go with
// --limit). It notes the most shared sections that lived at once.
func (rep *report) checkOverlap(name string, limit int, list []*section, until map[string]int64) {
	type edge struct {
		at    int64
		delta int
		s     *section
	}
	var edges []edge
	for _, s := range list {
		end := s.last
		if u, ok := until[s.run]; ok {
			end = min(end, u)
		}
		// A life is [enter, end+1ns): one that ends the instant another
		// begins did not overlap it, and one whose only record was its
		// enter still lived.
		edges = append(edges, edge{s.enter, +1, s}, edge{end + 1, -1, s})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].delta < edges[j].delta
	})
	live := map[*section]bool{}
	shared := 0
	for _, e := range edges {
		if e.delta < 0 {
			delete(live, e.s)
			if e.s.shared {
				shared--
			}
			continue
		}
		live[e.s] = true
		if e.s.shared {
			shared++
			rep.mostShared = max(rep.mostShared, shared)
		}
		exclusive := len(live) - shared
		if exclusive > limit || exclusive > 0 && shared > 0 {
			rep.overlap(name, limit, live, shared)
		}
	}
}

// overlap reports the sections that lived at once beyond what the lock
// allows.
func (rep *report) overlap(name string, limit int, live map[*section]bool, shared int) {
	rep.overlaps++
	var who []string
	for s := range live {
		mode := ""
		if s.shared {
			mode = "shared, "
		}
		if s.of != nil {
			mode = "set " + s.of.lock + ", "
		}
		who = append(who, fmt.Sprintf("%s (%stoken %d, %.3fs..%.3fs)", s.run, mode, s.token, float64(s.enter)/1e9, float64(s.last)/1e9))
	}
	sort.Strings(who)
	allowed := fmt.Sprintf("%d allowed", limit)
	if shared > 0 {
		allowed = fmt.Sprintf("%d of them shared, which live beside shared ones only", shared)
	}
	rep.problem("lock %q: %d commands lived at once, %s: %s", name, len(live), allowed, strings.Join(who, ", "))
}

// checkTokens: a command's fencing token is above that of every command
// of the lock that it excludes and that was dead before it entered. That
// holds for a plain lock only: under a semaphore the tokens are the
// queue's order, and a holder that queued first may start its command
// after one that queued later has run and ended beside it (seen in a long
// run: a 20 ms command on the other slot). Two shared holders are in the
// same case, so their tokens are not compared with each other's.
func (rep *report) checkTokens(name string, list []*section, until map[string]int64) {
	byEnd := append([]*section(nil), list...)
	sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].last < byEnd[j].last })
	for _, s := range list {
		for _, p := range byEnd {
			if p.last >= s.enter {
				break
			}
			if excludes(p, s) && p.token >= s.token {
				rep.problem("lock %q: command %s got fencing token %d, but %s, dead before it entered, had %d", name, s.run, s.token, p.run, p.token)
			}
		}
	}
}

// checkGaps measures, for each command of a plain lock that was cut off,
// how long after its last sign of life the next command that it excludes
// entered (for a shared one, the next exclusive one: shared ones may
// have entered beside it). (Under a semaphore the next to enter may have
// taken another slot.)
func (rep *report) checkGaps(list []*section, until map[string]int64) {
	byEnter := append([]*section(nil), list...)
	sort.Slice(byEnter, func(i, j int) bool { return byEnter[i].enter < byEnter[j].enter })
	for _, s := range list {
		if s.exited {
			continue
		}
		if _, revoked := until[s.run]; revoked {
			continue
		}
		i := sort.Search(len(byEnter), func(i int) bool { return byEnter[i].enter > s.last })
		for i < len(byEnter) && !excludes(s, byEnter[i]) {
			i++
		}
		if i == len(byEnter) {
			continue
		}
		gap := time.Duration(byEnter[i].enter - s.last)
		rep.gaps = append(rep.gaps, gap)
		if rep.gap < 0 || gap < rep.gap {
			rep.gap, rep.gapRun = gap, s.run
		}
	}
}

// handoffs measures, each time the lock fell free because the last command
// that held it ended of its own accord, how long until the next command
// entered: the price of the lock changing hands (a waiter's distlock sees
// the release, confirms, starts its command). A shared command that
// enters while other shared ones live takes no handoff; a group of them
// hands the lock on when the last of them ends. A set's command waits
// for every lock of it: for it, this notes when the lock fell free in
// sets, and setHandoffs measures from the last of its locks to fall free.
func (rep *report) handoffs(list []*section, sets map[*section]freed) {
	byEnter := append([]*section(nil), list...)
	sort.Slice(byEnter, func(i, j int) bool { return byEnter[i].enter < byEnter[j].enter })
	var last *section // of the sections entered so far, the one that lived longest
	for _, s := range byEnter {
		switch {
		case last == nil:
		case s.of != nil:
			if f, ok := sets[s.of]; !ok || last.last > f.at {
				sets[s.of] = freed{at: last.last, exited: last.exited}
			}
		case last.exited && s.enter > last.last:
			rep.handoff = append(rep.handoff, time.Duration(s.enter-last.last))
		}
		if last == nil || s.last > last.last {
			last = s
		}
	}
}
