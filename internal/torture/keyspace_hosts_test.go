package torture

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The key-space torture test's hosts: each runs distlock in exec mode,
// one run after another, on one lock or on a set of locks
// (keyspace_sets_test.go).

// runHost starts distlock after distlock in exec mode until ctx ends: most
// runs on one lock picked at random, some on a set of locks (runSet).
func (ks *keyspace) runHost(ctx context.Context, h int) {
	for seq := 0; ctx.Err() == nil; seq++ {
		r := &ksRun{id: fmt.Sprintf("h%d.%d", h, seq)}
		switch n := ks.intn(10); {
		case n < 2:
			r.timeout = 0
		case n < 4:
			r.timeout = ks.between(time.Second, 3*time.Second)
		default:
			r.timeout = ksWait
		}
		switch n := ks.intn(100); {
		case n < 55:
			r.millis = 20 + ks.intn(130)
		case n < 90:
			r.millis = 150 + ks.intn(450)
		default:
			r.millis = 1000 + ks.intn(2500)
		}
		r.ignoreTerm = ks.intn(3) == 0
		if ks.intn(100) < ksSetPercent {
			ks.runSet(r)
		} else {
			ks.runOne(r)
		}
		pause(ctx, ks.between(0, 200*time.Millisecond))
	}
}

// runOne runs r on one lock picked at random: often --shared, and then on
// a plain lock (--shared goes with neither --limit nor --min-interval),
// now and then with --min-interval or --min-hold.
func (ks *keyspace) runOne(r *ksRun) {
	r.shared = ks.intn(10) < 3
	l := ks.pick()
	if r.shared {
		l = ks.pickShared()
	}
	r.lk = l
	if !r.shared && l.span > 0 && ks.intn(4) == 0 {
		r.minInterval = l.span
	}
	if ks.intn(8) == 0 {
		r.minHold = ks.between(time.Second, 2*time.Second)
	}
	args := append(ks.args(l), ks.runArgs(r)...)
	if l.limit > 1 {
		args = append(args, fmt.Sprintf("--limit=%d", l.limit))
	}
	if r.shared {
		args = append(args, "--shared")
	}
	if r.minInterval > 0 {
		args = append(args, fmt.Sprintf("--min-interval=%v", r.minInterval))
	}
	if r.minHold > 0 {
		args = append(args, fmt.Sprintf("--min-hold=%v", r.minHold))
	}
	args = append(args, "--", ks.worker, ks.logPath, r.id, l.label(), strconv.Itoa(r.millis), r.term())
	if r.shared {
		ks.sharedBusy(l, +1)
		defer ks.sharedBusy(l, -1)
	}
	ks.start(r, args)
}

// runArgs are the flags of every exec run: the TTL, the kill sequence,
// the reason that names it, and its wait.
func (ks *keyspace) runArgs(r *ksRun) []string {
	args := []string{fmt.Sprintf("--ttl=%v", ttl), fmt.Sprintf("--kill-after=%v", killAfter), "--reason=keyspace " + r.id}
	if r.timeout == 0 {
		return append(args, "--nowait")
	}
	return append(args, fmt.Sprintf("--timeout=%v", r.timeout))
}

// term is the worker's word for how it takes SIGTERM.
func (r *ksRun) term() string {
	if r.ignoreTerm {
		return "ignore-term"
	}
	return "obey-term"
}

// start counts run r in and runs distlock with args to its end.
func (ks *keyspace) start(r *ksRun, args []string) {
	ks.mu.Lock()
	ks.runs = append(ks.runs, r)
	ks.mu.Unlock()
	r.start, r.end, r.pid, r.status = ks.exec(args, &r.stderr)
}
