package torture

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// section is one command's life under a lock, from its own records.
type section struct {
	run     string
	lock    string
	token   int64
	enter   int64 // monotonic ns
	last    int64 // its last sign of life
	exited  bool  // it wrote "exit": it ended of its own accord
	silence int64 // the longest time between two of its records
}

// readSections parses the shared log.
func readSections(path string) (map[string]*section, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]*section{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	secs := map[string]*section{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) != 5 {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n, sc.Text())
		}
		at, err1 := strconv.ParseInt(fields[0], 10, 64)
		token, err2 := strconv.ParseInt(fields[4], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n, sc.Text())
		}
		s := secs[fields[1]]
		switch {
		case fields[3] == "enter" && s == nil:
			secs[fields[1]] = &section{run: fields[1], lock: fields[2], token: token, enter: at, last: at}
			continue
		case s == nil || fields[3] == "enter":
			return nil, fmt.Errorf("%s:%d: record out of order %q", path, n, sc.Text())
		}
		s.silence = max(s.silence, at-s.last)
		s.last = max(s.last, at)
		if fields[3] == "exit" {
			s.exited = true
		}
	}
	return secs, sc.Err()
}

// countSections is how many commands have entered so far.
func countSections(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(" enter "))
}

// report is what the checker found.
type report struct {
	duration time.Duration
	runs     int
	sections map[string]int // by lock
	faults   map[string]int
	statuses map[int]int
	losses   int // runs that said "lost lock"
	requeued int // waiters that lost their place to an outage and queued again
	rejoined int // of those, the ones whose command then ran
	killed   int // commands that did not end of their own accord
	gap      time.Duration
	gapRun   string
	gaps     []time.Duration
	silence  time.Duration
	revoked  int
	afterRev time.Duration // the longest a command lived on after its lease was revoked by hand
	overlaps int
	handoff  []time.Duration // from a command's exit to the next one's enter
	problems []string
}

func (rep *report) problem(format string, args ...any) {
	rep.problems = append(rep.problems, fmt.Sprintf(format, args...))
}

// check reads the log and the runs and checks that, per lock, no more
// commands lived at once than the lock allows (a command's life: its
// "enter" to its last record), that fencing tokens grew under the plain
// lock, and that every distlock's exit status fits what happened to it.
func (tt *torture) check() *report {
	rep := &report{sections: map[string]int{}, statuses: map[int]int{}, faults: tt.faults, gap: -1}
	secs, err := readSections(tt.logPath)
	if err != nil {
		rep.problem("%v", err)
		return rep
	}
	byPID := map[int]*run{}
	byID := map[string]*run{}
	for _, r := range tt.runs {
		byPID[r.pid] = r
		byID[r.id] = r
	}
	rep.runs = len(tt.runs)

	// A command whose lease was revoked by hand counts for exclusion up
	// to the revocation; after it, it must be dead within a TTL (its
	// distlock's own deadline, at the latest).
	until := map[string]int64{}
	for _, rv := range tt.revoked {
		r := byPID[rv.pid]
		if r == nil || secs[r.id] == nil {
			continue
		}
		s := secs[r.id]
		if s.enter > rv.at {
			continue
		}
		rep.revoked++
		until[r.id] = rv.at
		lived := time.Duration(s.last - rv.at)
		rep.afterRev = max(rep.afterRev, lived)
		if lived > ttl {
			rep.problem("command %s lived on %v after its lease was revoked, more than the TTL (%v)", r.id, lived, ttl)
		}
	}

	byLock := map[string][]*section{}
	for _, s := range secs {
		byLock[s.lock] = append(byLock[s.lock], s)
		rep.sections[s.lock]++
		rep.silence = max(rep.silence, time.Duration(s.silence))
	}
	for name, list := range byLock {
		limit := 1
		if name == semName {
			limit = semLimit
		}
		rep.checkOverlap(name, limit, list, until)
		if limit == 1 {
			rep.checkTokens(name, list, until)
			rep.checkGaps(list, until)
			rep.handoffs(list)
		}
	}
	sort.Slice(rep.gaps, func(i, j int) bool { return rep.gaps[i] < rep.gaps[j] })

	for _, r := range tt.runs {
		rep.statuses[r.status]++
		stderr := r.stderr.String()
		lost := strings.Contains(stderr, "lost lock")
		if lost {
			rep.losses++
		}
		s := secs[r.id]
		if s != nil && !s.exited {
			rep.killed++
		}
		if strings.Contains(stderr, "queued again for lock") {
			rep.requeued++
			if s != nil {
				rep.rejoined++
			}
		}
		// The first two of each status, for whoever reads a failed run
		// (or one with -v): what distlock said in each case.
		if rep.statuses[r.status] <= 2 {
			tt.t.Logf("distlock %s (%s) exited %d; stderr:\n%s", r.id, r.lock, r.status, stderr)
		}
		var fits bool
		switch {
		case r.killed && r.status == 128+9:
			fits = true // SIGKILLed by a fault
		case s != nil && s.exited:
			fits = r.status == 0 || r.status == 70 && lost
		case s != nil:
			fits = r.status == 70 && lost
		default:
			fits = r.status == 69 && strings.HasPrefix(stderr, "distlock: ") ||
				r.status == 75 || r.status == 70 && lost
		}
		if !fits {
			what := "its command never started"
			switch {
			case s != nil && s.exited:
				what = "its command ended of its own accord"
			case s != nil:
				what = "its command was cut off"
			}
			rep.problem("distlock %s (%s) exited %d, which does not fit: %s; stderr:\n%s", r.id, r.lock, r.status, what, stderr)
		}
	}
	return rep
}

// checkOverlap sweeps the commands' lives in time order and reports every
// moment more than limit of them lived at once.
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
	for _, e := range edges {
		if e.delta < 0 {
			delete(live, e.s)
			continue
		}
		live[e.s] = true
		if len(live) > limit {
			rep.overlaps++
			var who []string
			for s := range live {
				who = append(who, fmt.Sprintf("%s (token %d, %.3fs..%.3fs)", s.run, s.token, float64(s.enter)/1e9, float64(s.last)/1e9))
			}
			sort.Strings(who)
			rep.problem("lock %q: %d commands lived at once, %d allowed: %s", name, len(live), limit, strings.Join(who, ", "))
		}
	}
}

// checkTokens: a command's fencing token is above that of every command
// of the lock that was dead before it entered. That holds for a plain
// lock only: under a semaphore the tokens are the queue's order, and a
// holder that queued first may start its command after one that queued
// later has run and ended beside it (seen in a long run: a 20 ms command
// on the other slot).
func (rep *report) checkTokens(name string, list []*section, until map[string]int64) {
	byEnd := append([]*section(nil), list...)
	sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].last < byEnd[j].last })
	for _, s := range list {
		for _, p := range byEnd {
			if p.last >= s.enter {
				break
			}
			if p.token >= s.token {
				rep.problem("lock %q: command %s got fencing token %d, but %s, dead before it entered, had %d", name, s.run, s.token, p.run, p.token)
			}
		}
	}
}

// checkGaps measures, for each command of a plain lock that was cut off,
// how long after its last sign of life the next command entered. (Under a
// semaphore the next to enter may have taken another slot.)
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

// handoffs measures, for each command that ended of its own accord, how
// long until the next command entered: the price of the lock changing
// hands (a waiter's distlock sees the release, confirms, starts its
// command).
func (rep *report) handoffs(list []*section) {
	byEnter := append([]*section(nil), list...)
	sort.Slice(byEnter, func(i, j int) bool { return byEnter[i].enter < byEnter[j].enter })
	for i, s := range byEnter[:max(len(byEnter)-1, 0)] {
		if s.exited {
			rep.handoff = append(rep.handoff, time.Duration(byEnter[i+1].enter-s.last))
		}
	}
	sort.Slice(rep.handoff, func(i, j int) bool { return rep.handoff[i] < rep.handoff[j] })
}

// summary is the report as the test prints it.
func (rep *report) summary(run length, seed int64) string {
	var b strings.Builder
	total := 0
	for _, n := range rep.sections {
		total += n
	}
	fmt.Fprintf(&b, "torture (%s run, seed %d): %d hosts, 3 etcd members, %v of faults, %s/%s\n",
		run.name, seed, hosts, rep.duration.Round(time.Second), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "  critical sections: %d (%q %d, %q with --limit %d: %d) in %d distlock runs\n",
		total, mutexName, rep.sections[mutexName], semName, semLimit, rep.sections[semName], rep.runs)
	var kinds []string
	for k := range rep.faults {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	nf := 0
	var parts []string
	for _, k := range kinds {
		nf += rep.faults[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, rep.faults[k]))
	}
	fmt.Fprintf(&b, "  faults: %d (%s)\n", nf, strings.Join(parts, ", "))
	fmt.Fprintf(&b, "  lock losses detected: %d; commands cut off: %d\n", rep.losses, rep.killed)
	fmt.Fprintf(&b, "  waiters that lost their place to an outage and queued again: %d, of which %d then ran their command\n", rep.requeued, rep.rejoined)
	var codes []int
	for c := range rep.statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts = nil
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d: %d", c, rep.statuses[c]))
	}
	fmt.Fprintf(&b, "  distlock exit statuses: %s\n", strings.Join(parts, ", "))
	if rep.gap >= 0 {
		fmt.Fprintf(&b, "  gap from a cut-off command's last sign of life to the next command under %q: smallest %v (%s), median %v, over %d\n",
			mutexName, rep.gap.Round(time.Millisecond), rep.gapRun, rep.gaps[len(rep.gaps)/2].Round(time.Millisecond), len(rep.gaps))
	}
	if n := len(rep.handoff); n > 0 {
		fmt.Fprintf(&b, "  handoff under %q (a command's exit to the next one's enter): median %v, 90th percentile %v\n",
			mutexName, rep.handoff[n/2].Round(time.Millisecond), rep.handoff[n*9/10].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  leases revoked by hand under a running command: %d, which lived on at most %v\n",
		rep.revoked, rep.afterRev.Round(time.Millisecond))
	fmt.Fprintf(&b, "  longest silence of a running command (heartbeat every 5ms): %v\n", rep.silence.Round(time.Millisecond))
	fmt.Fprintf(&b, "  overlaps: %d; problems: %d\n", rep.overlaps, len(rep.problems))
	return b.String()
}
