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
	shared  bool // held with --shared: beside other shared sections only
	token   int64
	enter   int64 // monotonic ns
	last    int64 // its last sign of life
	exited  bool  // it wrote "exit": it ended of its own accord
	silence int64 // the longest time between two of its records
}

// readSections parses the shared log: lines of "MONO RUN LOCK KIND TOKEN"
// and an optional MODE (shared or exclusive; none is exclusive), as the
// worker writes them.
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
		token, err2 := strconv.ParseInt(fields[4], 10, 64)
		if err1 != nil || err2 != nil || mode != "shared" && mode != "exclusive" {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n, sc.Text())
		}
		s := secs[fields[1]]
		switch {
		case fields[3] == "enter" && s == nil:
			secs[fields[1]] = &section{run: fields[1], lock: fields[2], shared: mode == "shared", token: token, enter: at, last: at}
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
	shared   int            // sections held with --shared
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
// "enter" to its last record; under the plain lock an exclusive one lives
// alone, a shared one beside shared ones only), that fencing tokens grew
// under the plain lock, and that every distlock's exit status fits what
// happened to it.
func (tt *torture) check() *report {
	rep := &report{sections: map[string]int{}, statuses: map[int]int{}, faults: tt.faults, gap: -1}
	secs, err := readSections(tt.logPath)
	if err != nil {
		rep.problem("%v", err)
		return rep
	}
	rep.runs = len(tt.runs)
	until := tt.revocations(rep, secs)

	byLock := map[string][]*section{}
	for _, s := range secs {
		byLock[s.lock] = append(byLock[s.lock], s)
		rep.sections[s.lock]++
		if s.shared {
			rep.shared++
		}
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

// summary is the report as the test prints it.
func (rep *report) summary(run length, seed int64) string {
	var b strings.Builder
	total := 0
	for _, n := range rep.sections {
		total += n
	}
	fmt.Fprintf(&b, "torture (%s run, seed %d): %d hosts, 3 etcd members, %v of faults, %s/%s\n",
		run.name, seed, hosts, rep.duration.Round(time.Second), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "  critical sections: %d (%q %d, of them --shared %d, at most %d at once; %q with --limit %d: %d) in %d distlock runs\n",
		total, mutexName, rep.sections[mutexName], rep.shared, rep.mostShared, semName, semLimit, rep.sections[semName], rep.runs)
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
		fmt.Fprintf(&b, "  gap from a cut-off command's last sign of life to the next command it excluded under %q: smallest %v (%s), median %v, over %d\n",
			mutexName, rep.gap.Round(time.Millisecond), rep.gapRun, rep.gaps[len(rep.gaps)/2].Round(time.Millisecond), len(rep.gaps))
	}
	if n := len(rep.handoff); n > 0 {
		fmt.Fprintf(&b, "  handoff under %q (the last command's exit to the next one's enter): median %v, 90th percentile %v\n",
			mutexName, rep.handoff[n/2].Round(time.Millisecond), rep.handoff[n*9/10].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  leases revoked by hand under a running command: %d, which lived on at most %v\n",
		rep.revoked, rep.afterRev.Round(time.Millisecond))
	fmt.Fprintf(&b, "  longest silence of a running command (heartbeat every 5ms): %v\n", rep.silence.Round(time.Millisecond))
	fmt.Fprintf(&b, "  overlaps: %d; problems: %d\n", rep.overlaps, len(rep.problems))
	return b.String()
}
