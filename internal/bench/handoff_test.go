package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tinx/distlock/internal/stamp"
)

// A handoff is split into phases by stamps (internal/stamp) on the
// machine's monotonic clock: a distlock built with -tags distlock_stamps
// and ctlmirror (./ctlmirror, etcdctl lock's calls) stamp their steps,
// and the command under the lock, mark (./mark), stamps its start and
// its exit under its parent's pid. Bursts of n at once on one lock give
// n-1 handoffs each; etcdctl itself runs mark too, which gives its
// handoffs whole, to check that ctlmirror stands for it.

// step is one stamp line.
type step struct {
	name string
	pid  int
	at   int64 // ns on CLOCK_MONOTONIC
	rev  int64 // etcd's revision, 0 if the step has none
}

// parseSteps reads stamp lines: "STEP PID NS [REV]".
func parseSteps(data []byte) ([]step, error) {
	var steps []step
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("stamp line %q", line)
		}
		s := step{name: f[0]}
		var err error
		if s.pid, err = strconv.Atoi(f[1]); err != nil {
			return nil, fmt.Errorf("stamp line %q: %w", line, err)
		}
		if s.at, err = strconv.ParseInt(f[2], 10, 64); err != nil {
			return nil, fmt.Errorf("stamp line %q: %w", line, err)
		}
		if len(f) == 4 {
			if s.rev, err = strconv.ParseInt(f[3], 10, 64); err != nil {
				return nil, fmt.Errorf("stamp line %q: %w", line, err)
			}
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// handoff is one handoff's moments (ns on CLOCK_MONOTONIC), 0 where the
// tool stamps none: from the holder's command's exit to the next
// holder's command's start.
type handoff struct {
	exit     int64 // the holder's command stamps its exit
	exitSeen int64 // the holder's tool has seen it exit
	sent     int64 // the holder sends the request that deletes its key
	answered int64 // etcd's answer to it has come
	woken    int64 // the waiter's watch has the key's delete event
	turn     int64 // the waiter's read has answered: the lock is its own
	forked   int64 // the waiter's fork/exec of its command has returned
	started  int64 // the waiter's command stamps its start
	// released is the revision of the delete that answered was about,
	// wokenBy the one of the event that woke the waiter: the same if the
	// waiter was woken by this release.
	released, wokenBy int64
}

// byRelease says whether the waiter was woken by the holder's release,
// by the revisions etcd gave both; false if the tool stamps neither.
func (h handoff) byRelease() bool { return h.released != 0 && h.released == h.wokenBy }

// phase is a part of a handoff: from one of its moments to another.
type phase struct {
	label    string
	from, to func(handoff) int64
}

// phases are the parts of a handoff that the report shows, in order.
// Etcd's answer to the release and the waiter's wake run side by side:
// both follow the release's commit.
var phases = []phase{
	{"a  command exit -> exit seen by the tool", func(h handoff) int64 { return h.exit }, func(h handoff) int64 { return h.exitSeen }},
	{"b  exit seen -> release request sent", func(h handoff) int64 { return h.exitSeen }, func(h handoff) int64 { return h.sent }},
	{"c  release sent -> etcd's answer (beside d)", func(h handoff) int64 { return h.sent }, func(h handoff) int64 { return h.answered }},
	{"d  release sent -> waiter woken (watch event)", func(h handoff) int64 { return h.sent }, func(h handoff) int64 { return h.woken }},
	{"e  woken -> turn decided (read answered)", func(h handoff) int64 { return h.woken }, func(h handoff) int64 { return h.turn }},
	{"f  turn -> next command's first stamp", func(h handoff) int64 { return h.turn }, func(h handoff) int64 { return h.started }},
	{"   f1 turn -> fork/exec returned", func(h handoff) int64 { return h.turn }, func(h handoff) int64 { return h.forked }},
	{"   f2 fork/exec returned -> first stamp", func(h handoff) int64 { return h.forked }, func(h handoff) int64 { return h.started }},
	{"handoff: command exit -> next command's start", func(h handoff) int64 { return h.exit }, func(h handoff) int64 { return h.started }},
}

// span is the phase's length in ms, and false where a moment is missing.
func (p phase) span(h handoff) (float64, bool) {
	from, to := p.from(h), p.to(h)
	if from == 0 || to == 0 {
		return 0, false
	}
	return float64(to-from) / 1e6, true
}

// toolRun is what one process of a lock tool stamped, with its command's
// stamps.
type toolRun struct {
	pid            int
	start, exit    int64 // of its command
	exitSeen       int64
	forked, turn   int64
	woken          []step
	release, reply map[string]step // by request: "release", "revoke"
}

// handoffsOf groups the steps of one burst of n by process, checks that
// the n commands ran one at a time, each once, and returns the n-1
// handoffs between them, in order.
func handoffsOf(steps []step, n int) ([]handoff, error) {
	runs := map[int]*toolRun{}
	for _, s := range steps {
		r := runs[s.pid]
		if r == nil {
			r = &toolRun{pid: s.pid, release: map[string]step{}, reply: map[string]step{}}
			runs[s.pid] = r
		}
		switch s.name {
		case "command-start":
			if r.start != 0 {
				return nil, fmt.Errorf("process %d started two commands", s.pid)
			}
			r.start = s.at
		case "command-exit":
			r.exit = s.at
		case "exit-seen":
			r.exitSeen = s.at
		case "forked":
			r.forked = s.at
		case "turn":
			r.turn = s.at
		case "woken":
			r.woken = append(r.woken, s)
		case "release-sent", "revoke-sent":
			r.release[strings.TrimSuffix(s.name, "-sent")] = s
		case "release-done", "revoke-done":
			r.reply[strings.TrimSuffix(s.name, "-done")] = s
		}
	}
	var order []*toolRun
	for _, r := range runs {
		if r.start == 0 || r.exit == 0 {
			return nil, fmt.Errorf("process %d: its command stamped no start or no exit", r.pid)
		}
		order = append(order, r)
	}
	if len(order) != n {
		return nil, fmt.Errorf("%d commands ran, want %d", len(order), n)
	}
	sort.Slice(order, func(i, j int) bool { return order[i].start < order[j].start })
	var hs []handoff
	for k := 1; k < n; k++ {
		holder, waiter := order[k-1], order[k]
		if waiter.start < holder.exit {
			return nil, fmt.Errorf("process %d's command started before process %d's had exited: the lock was held twice", waiter.pid, holder.pid)
		}
		h := handoff{exit: holder.exit, exitSeen: holder.exitSeen, turn: waiter.turn, forked: waiter.forked, started: waiter.start}
		// The wake is the last before the turn (a waiter can be woken
		// more than once: by a waiter ahead that left, say).
		for _, w := range waiter.woken {
			if waiter.turn == 0 || w.at <= waiter.turn {
				h.woken, h.wokenBy = w.at, w.rev
			}
		}
		// The release is the first request sent whose answer bears the
		// revision of the event that woke the waiter (distlock deletes
		// its key in a transaction, then revokes the lease, whose
		// answer bears the same revision if it deleted nothing; without
		// history records the revoke deletes the key), else the first
		// request sent.
		pick := ""
		for _, matching := range []bool{true, false} {
			for what, sent := range holder.release {
				if matching && (holder.reply[what].rev == 0 || holder.reply[what].rev != h.wokenBy) {
					continue
				}
				if pick == "" || sent.at < holder.release[pick].at {
					pick = what
				}
			}
			if pick != "" {
				break
			}
		}
		if pick != "" {
			h.sent = holder.release[pick].at
			h.answered, h.released = holder.reply[pick].at, holder.reply[pick].rev
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// markHold is how long each command of a stamped burst holds the lock:
// DISTLOCK_BENCH_HOLD (a Go duration), none by default, as the worker of
// BenchmarkBurst. A command that holds it for a while lets its holder's
// writes beside the start (the key's since, the history record) be done
// before it lets go.
func markHold() time.Duration {
	hold, err := time.ParseDuration(os.Getenv("DISTLOCK_BENCH_HOLD"))
	if err != nil {
		return 0
	}
	return hold
}

// phaseBurst is one stamped burst: its handoffs, and what etcd saw
// meanwhile.
type phaseBurst struct {
	handoffs []handoff
	etcd     etcdMetrics // the growth during the burst
}

// stampedBurst starts n processes of t at once on one lock, each running
// mark, with every stamp going to a fresh file; it waits for all, and
// returns the burst's handoffs, checked.
func (e *env) stampedBurst(t tool, n int, out *os.File) (phaseBurst, error) {
	var r phaseBurst
	path := e.path("stamps")
	before, err := e.etcd.scrape()
	if err != nil {
		return r, err
	}
	var argvs [][]string
	for i := 0; i < n; i++ {
		argvs = append(argvs, t.argv("handoff", e.mark, markHold().String()))
	}
	if _, err = atOnce(argvs, []string{stamp.FileVar + "=" + path}, out); err != nil {
		return r, err
	}
	after, err := e.etcd.scrape()
	if err != nil {
		return r, err
	}
	r.etcd = after.since(before)
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	steps, err := parseSteps(data)
	if err != nil {
		return r, err
	}
	r.handoffs, err = handoffsOf(steps, n)
	return r, err
}

// phaseBursts collects stamped bursts of n, one of each tool per
// iteration.
type phaseBursts struct {
	tools    []tool
	n        int
	handoffs map[string][]handoff
	gaps     map[string][]float64 // every handoff's whole, ms
	// xGap is, per iteration, each tool's median handoff over
	// etcdctl's ("ctlmirror", "distlock").
	xGap  map[string][]float64
	etcd  map[string]etcdMetrics // summed over the bursts
	count int
}

func newPhaseBursts(tools []tool, n int) *phaseBursts {
	return &phaseBursts{tools: tools, n: n, handoffs: map[string][]handoff{}, gaps: map[string][]float64{},
		xGap: map[string][]float64{}, etcd: map[string]etcdMetrics{}}
}

// add runs a stamped burst of every tool, in the i-th iteration's order.
func (ps *phaseBursts) add(e *env, i int, out *os.File) error {
	gapMedian := map[string]float64{}
	for k := range ps.tools {
		t := ps.tools[order(i, len(ps.tools))[k]]
		r, err := e.stampedBurst(t, ps.n, out)
		if err != nil {
			return fmt.Errorf("stamped burst of %s, %d at once: %w", t.name, ps.n, err)
		}
		ps.handoffs[t.name] = append(ps.handoffs[t.name], r.handoffs...)
		var gaps []float64
		for _, h := range r.handoffs {
			gaps = append(gaps, float64(h.started-h.exit)/1e6)
		}
		ps.gaps[t.name] = append(ps.gaps[t.name], gaps...)
		gapMedian[t.name] = median(gaps)
		ps.etcd[t.name] = ps.etcd[t.name].plus(r.etcd)
	}
	if base := gapMedian["etcdctl"]; base > 0 {
		for name, g := range gapMedian {
			if name != "etcdctl" {
				ps.xGap[name] = append(ps.xGap[name], g/base)
			}
		}
	}
	ps.count++
	return nil
}

// spans are the lengths (ms) of phase p over the handoffs of tool whose
// waiter was woken by the release: a process that came to the lock only
// after it was free waited for its own start, not for the handoff.
func (ps *phaseBursts) spans(tool string, p phase) []float64 {
	var xs []float64
	for _, h := range ps.handoffs[tool] {
		if ms, ok := p.span(h); ok && h.byRelease() {
			xs = append(xs, ms)
		}
	}
	return xs
}

// byRelease counts the handoffs of tool whose waiter was woken by the
// release's own revision, of all.
func (ps *phaseBursts) byRelease(tool string) (woken, all int) {
	for _, h := range ps.handoffs[tool] {
		if h.byRelease() {
			woken++
		}
	}
	return woken, len(ps.handoffs[tool])
}
