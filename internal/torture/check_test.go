package torture

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// section is one command's life under a lock, from its own records.
type section struct {
	run    string
	lock   string   // as the records name it: a lock, or a set's locks joined by "+"
	locks  []string // the locks it held: one, or a set's in the set's order
	tokens []int64  // a fencing token for each of them
	shared bool     // held with --shared: beside other shared sections only
	token  int64    // the first of tokens
	// of is, for a view of a set's section under one of its locks (see
	// views), that section.
	of      *section
	enter   int64 // monotonic ns
	last    int64 // its last sign of life
	exited  bool  // it wrote "exit": it ended of its own accord
	silence int64 // the longest time between two of its records
}

// readSections parses the shared log: lines of "MONO RUN LOCK KIND TOKEN"
// and an optional MODE (shared or exclusive; none is exclusive), as the
// worker writes them. For a set, LOCK is its locks joined by "+" and
// TOKEN their tokens joined by ",".
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
		if len(fields) != 5 && len(fields) != 6 {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n, sc.Text())
		}
		mode := "exclusive"
		if len(fields) == 6 {
			mode = fields[5]
		}
		at, err1 := strconv.ParseInt(fields[0], 10, 64)
		locks := strings.Split(fields[2], "+")
		tokens, err2 := parseTokens(fields[4], len(locks))
		if err1 != nil || err2 != nil || mode != "shared" && mode != "exclusive" {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n, sc.Text())
		}
		s := secs[fields[1]]
		switch {
		case fields[3] == "enter" && s == nil:
			secs[fields[1]] = &section{run: fields[1], lock: fields[2], locks: locks, tokens: tokens,
				shared: mode == "shared", token: tokens[0], enter: at, last: at}
			continue
		case s == nil || fields[3] == "enter":
			return nil, fmt.Errorf("%s:%d: record out of order %q", path, n, sc.Text())
		case s.shared != (mode == "shared"):
			return nil, fmt.Errorf("%s:%d: record in another mode than its enter %q", path, n, sc.Text())
		}
		s.silence = max(s.silence, at-s.last)
		s.last = max(s.last, at)
		if fields[3] == "exit" {
			s.exited = true
		}
	}
	return secs, sc.Err()
}

// parseTokens reads a record's TOKEN: n fencing tokens joined by ",".
func parseTokens(field string, n int) ([]int64, error) {
	parts := strings.Split(field, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("%d tokens for %d locks", len(parts), n)
	}
	tokens := make([]int64, n)
	for i, p := range parts {
		var err error
		if tokens[i], err = strconv.ParseInt(p, 10, 64); err != nil {
			return nil, err
		}
	}
	return tokens, nil
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
	sections map[string]int // by lock, or by set (its locks joined by "+")
	shared   int            // sections held with --shared
	setRuns  int            // distlock runs that took a set of locks
	// setFaults is how many faults were aimed at a set's holder.
	setFaults int
	// mostShared is the most shared sections that lived at once.
	mostShared int
	faults     map[string]int
	statuses   map[int]int
	losses     int // runs that said "lost lock"
	requeued   int // waiters that lost their place to an outage and queued again
	rejoined   int // of those, the ones whose command then ran
	killed     int // commands that did not end of their own accord
	gap        time.Duration
	gapRun     string
	gaps       []time.Duration
	silence    time.Duration
	revoked    int
	afterRev   time.Duration // the longest a command lived on after its lease was revoked by hand
	overlaps   int
	handoff    []time.Duration // from a command's exit to the next one's enter
	problems   []string
}

func (rep *report) problem(format string, args ...any) {
	rep.problems = append(rep.problems, fmt.Sprintf(format, args...))
}

// check reads the log and the runs and checks that, per lock, no more
// commands lived at once than the lock allows (a command's life: its
// "enter" to its last record; under a plain lock an exclusive one lives
// alone, a shared one beside shared ones only), that fencing tokens grew
// under the plain locks, and that every distlock's exit status fits what
// happened to it. A set's command counts under each of its locks as an
// exclusive holder of it (see views).
func (tt *torture) check() *report {
	rep := &report{sections: map[string]int{}, statuses: map[int]int{}, faults: tt.faults, setFaults: tt.setFaults, gap: -1}
	secs, err := readSections(tt.logPath)
	if err != nil {
		rep.problem("%v", err)
		return rep
	}
	rep.runs = len(tt.runs)
	until := tt.revocations(rep, secs)

	byLock := map[string][]*section{}
	for _, s := range secs {
		for _, v := range s.views() {
			byLock[v.lock] = append(byLock[v.lock], v)
		}
		rep.sections[s.lock]++
		if s.shared {
			rep.shared++
		}
		rep.silence = max(rep.silence, time.Duration(s.silence))
	}
	sets := map[*section]freed{}
	for name, list := range byLock {
		limit := 1
		if name == semName {
			limit = semLimit
		}
		rep.checkOverlap(name, limit, list, until)
		if limit == 1 {
			rep.checkTokens(name, list, until)
			rep.checkGaps(list, until)
			rep.handoffs(list, sets)
		}
	}
	rep.setHandoffs(sets)
	sort.Slice(rep.gaps, func(i, j int) bool { return rep.gaps[i] < rep.gaps[j] })
	sort.Slice(rep.handoff, func(i, j int) bool { return rep.handoff[i] < rep.handoff[j] })
	tt.checkRuns(rep, secs)
	return rep
}

// revocations finds the commands whose lease was revoked by hand while
// they ran. Such a command counts for exclusion up to the revocation (the
// moment it is in until); after it, it must be dead within a TTL (its
// distlock's own deadline, at the latest).
func (tt *torture) revocations(rep *report, secs map[string]*section) (until map[string]int64) {
	byPID := map[int]*run{}
	for _, r := range tt.runs {
		byPID[r.pid] = r
	}
	until = map[string]int64{}
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
	return until
}

// checkRuns checks every distlock's exit status against what its command's
// records say happened to it, and counts the losses, requeues and
// commands cut off.
func (tt *torture) checkRuns(rep *report, secs map[string]*section) {
	for _, r := range tt.runs {
		rep.statuses[r.status]++
		stderr := r.stderr.String()
		lost := strings.Contains(stderr, "lost lock")
		if lost {
			rep.losses++
		}
		if len(r.locks) > 1 {
			rep.setRuns++
		}
		s := secs[r.id]
		if s != nil && !s.exited {
			rep.killed++
		}
		if s != nil && s.shared != r.shared {
			rep.problem("distlock %s (%s) ran with --shared %v, its command's records say shared %v", r.id, r.lock, r.shared, s.shared)
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
}
