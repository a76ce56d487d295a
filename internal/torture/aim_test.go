package torture

import (
	"context"
	"time"

	"github.com/tinx/distlock/lock"
)

// target is what a fault is thrown at: a host, a lock, and a holder's key
// of that lock (or nil); set names the set of locks that the holder
// holds, if it holds one.
type target struct {
	h        *host
	lockName string
	e        *lock.Entry
	set      string
}

// ignoresTarget are the faults that pick their own target, or none: a
// waiter's host, or the members.
var ignoresTarget = map[string]bool{"partition-waiter": true, "kill-leader": true, "freeze-member": true, "cut-member-peers": true}

// injectFaults throws a fault every few seconds until ctx ends.
func (tt *torture) injectFaults(ctx context.Context) {
	total := 0
	for _, f := range faultKinds {
		total += f.weight
	}
	for {
		pause(ctx, tt.between(time.Second, 4*time.Second))
		if ctx.Err() != nil {
			return
		}
		n := tt.intn(total)
		f := faultKinds[0]
		for _, k := range faultKinds {
			if n < k.weight {
				f = k
				break
			}
			n -= k.weight
		}
		at := tt.pickTarget(ctx)
		what := "lock " + at.lockName
		if at.set != "" && !ignoresTarget[f.kind] {
			what += " of the set " + at.set
		}
		began := time.Now()
		if f.do(tt, ctx, at.h, at.lockName, at.e) {
			tt.t.Logf("fault %s on host %d (%s) at +%v for %v", f.kind, at.h.id, what,
				began.Sub(tt.began).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
			tt.mu.Lock()
			tt.faults[f.kind]++
			if at.set != "" && !ignoresTarget[f.kind] {
				tt.setFaults++
			}
			tt.mu.Unlock()
		}
	}
}

// pickTarget picks a fault's target: a holder more often than not, anyone
// otherwise.
func (tt *torture) pickTarget(ctx context.Context) target {
	at := target{lockName: []string{mutexName, mutexName, mutex2Name, semName}[tt.intn(4)]}
	if tt.intn(10) < 7 {
		at = tt.aim(ctx)
	}
	if at.h == nil {
		at.h, at.set = tt.hosts[tt.intn(len(tt.hosts))], ""
	}
	return at
}

// aim finds a holder to throw a fault at, preferring one whose command has
// a second or more to run (a fault needs time to take the lock away), and
// looking for up to two seconds; one time in three, only a holder of the
// set, by one of its locks. Its host is nil if no lock has such a holder
// on a host.
func (tt *torture) aim(ctx context.Context) target {
	var at target
	setOnly := tt.intn(3) == 0
	deadline := time.Now().Add(2 * time.Second)
	for ctx.Err() == nil {
		at.lockName = []string{mutexName, mutex2Name, semName}[tt.intn(3)]
		if setOnly {
			at.lockName = setNames[tt.intn(len(setNames))]
		}
		var r *run
		at.h, r, at.e = tt.holder(ctx, at.lockName, setOnly)
		at.set = ""
		if r != nil && len(r.locks) > 1 {
			at.set = r.lock
		}
		if at.h != nil && (r.millis >= 1000 || time.Now().After(deadline)) {
			return at
		}
		if time.Now().After(deadline) {
			break
		}
		pause(ctx, 100*time.Millisecond)
	}
	return at
}

// holder finds a holder of lock name now (one of them at random: several
// hold the semaphore, or a plain lock when they are shared; with setOnly,
// one that holds the set), its key, and the host and run whose distlock
// it is, if that still runs.
func (tt *torture) holder(ctx context.Context, name string, setOnly bool) (*host, *run, *lock.Entry) {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	q, err := lock.ReadQueue(rctx, tt.client, tt.realm, name)
	if err != nil {
		return nil, nil, nil
	}
	holders, _ := lock.Split(q.Entries, q.Stopping)
	type found struct {
		h *host
		r *run
		e *lock.Entry
	}
	var all []found
	for i := range holders {
		e := &holders[i]
		if e.Info == nil {
			continue
		}
		h, r := tt.running(e.Info.PID)
		if setOnly && (r == nil || len(r.locks) < 2) {
			continue
		}
		all = append(all, found{h, r, e})
	}
	if len(all) == 0 {
		return nil, nil, nil
	}
	f := all[tt.intn(len(all))]
	return f.h, f.r, f.e
}

// running finds the host whose distlock is process pid, and its run.
func (tt *torture) running(pid int) (*host, *run) {
	for _, h := range tt.hosts {
		h.mu.Lock()
		cur := h.cur
		h.mu.Unlock()
		if cur != nil && cur.pid == pid {
			return h, cur
		}
	}
	return nil, nil
}

// waiter finds a host whose distlock waits in a queue (its key is there,
// and does not hold: behind an exclusive key, or behind the semaphore's
// holders; a set's, in the queue of one of its locks), or nil.
func (tt *torture) waiter(ctx context.Context) *host {
	waiting := map[int]bool{}
	for _, name := range []string{mutexName, mutex2Name, semName} {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		q, err := lock.ReadQueue(rctx, tt.client, tt.realm, name)
		cancel()
		if err != nil {
			continue
		}
		_, waiters := lock.Split(q.Entries, q.Stopping)
		for _, e := range waiters {
			if e.Info != nil {
				waiting[e.Info.PID] = true
			}
		}
	}
	var hosts []*host
	for _, h := range tt.hosts {
		h.mu.Lock()
		if h.cur != nil && waiting[h.cur.pid] {
			hosts = append(hosts, h)
		}
		h.mu.Unlock()
	}
	if len(hosts) == 0 {
		return nil
	}
	return hosts[tt.intn(len(hosts))]
}
