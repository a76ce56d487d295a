package torture

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/lock"
)

// fault is one kind of trouble, and how often it is picked (weight).
type fault struct {
	kind   string
	weight int
	// do throws the fault at the target host h (the holder's, more often
	// than not) and entry e (the holder's key, or nil), and heals it again
	// before it returns, even when ctx ends early. It reports whether the
	// fault happened at all.
	do func(tt *torture, ctx context.Context, h *host, lockName string, e *lock.Entry) bool
}

var faultKinds = []fault{
	// The host's links to every member go dead for longer than the TTL:
	// its holder must stop its command before etcd expires the lease.
	{"partition-host", 10, func(tt *torture, ctx context.Context, h *host, _ string, _ *lock.Entry) bool {
		return tt.onLinks(ctx, h, allLinks(h), tt.between(ttl+500*time.Millisecond, ttl+2*time.Second), partition)
	}},
	// A waiter's host is cut off for longer than the TTL: its lease
	// lapses, and it queues again, at the back, once the links are back.
	{"partition-waiter", 8, func(tt *torture, ctx context.Context, _ *host, _ string, _ *lock.Entry) bool {
		h := tt.waiter(ctx)
		if h == nil {
			return false
		}
		return tt.onLinks(ctx, h, allLinks(h), tt.between(ttl+500*time.Millisecond, ttl+3*time.Second), partition)
	}},
	// The same, well inside the TTL: the holder rides it out.
	{"blip", 12, func(tt *torture, ctx context.Context, h *host, _ string, _ *lock.Entry) bool {
		return tt.onLinks(ctx, h, allLinks(h), tt.between(50*time.Millisecond, 500*time.Millisecond), partition)
	}},
	// Every byte to and from etcd arrives late.
	{"delay", 8, func(tt *torture, ctx context.Context, h *host, _ string, _ *lock.Entry) bool {
		lat := tt.between(20*time.Millisecond, 200*time.Millisecond)
		return tt.onLinks(ctx, h, allLinks(h), tt.between(time.Second, 5*time.Second), func(p link, on bool) {
			if on {
				p.DelayTx(lat, lat/4)
				p.DelayRx(lat, lat/4)
			} else {
				p.UndelayTx()
				p.UndelayRx()
			}
		})
	}},
	// The host's link to one member goes dead; the others work.
	{"cut-one-link", 10, func(tt *torture, ctx context.Context, h *host, _ string, _ *lock.Entry) bool {
		m := tt.intn(len(h.proxies))
		return tt.onLinks(ctx, h, []link{h.proxies[m]}, tt.between(time.Second, 2*ttl), partition)
	}},
	// The holder's distlock dies at once: its watchdog kills the command,
	// the lease expires a TTL later.
	{"kill-distlock", 10, func(tt *torture, _ context.Context, h *host, _ string, _ *lock.Entry) bool {
		h.mu.Lock()
		r := h.cur
		h.mu.Unlock()
		if r == nil {
			return false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.done || syscall.Kill(r.pid, syscall.SIGKILL) != nil {
			return false
		}
		r.killed = true
		return true
	}},
	// Someone runs distlock --unlock elsewhere.
	{"unlock", 8, func(tt *torture, ctx context.Context, _ *host, lockName string, e *lock.Entry) bool {
		if e == nil {
			return false
		}
		cmd := exec.CommandContext(ctx, tt.distlock, "--unlock", "--history-span=2s", "--lock-name="+lockName, "--prefix="+tt.realm,
			"--holder="+e.Key, "--endpoints="+tt.endpoints(), "--dial-timeout=2s")
		cmd.Env = append(os.Environ(), "DISTLOCK_CONFIG=/dev/null")
		return cmd.Run() == nil
	}},
	// Someone revokes the holder's lease by hand: etcd frees the lock at
	// once, so this is the one fault that may let the next command start
	// before the old one is dead; the checker bounds how long it lives on.
	{"revoke-lease", 4, func(tt *torture, ctx context.Context, _ *host, lockName string, e *lock.Entry) bool {
		if e == nil || e.Lease == 0 || e.Info == nil {
			return false
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		at := Mono() // the revocation cannot take effect before this
		if _, err := tt.client.Revoke(rctx, clientv3.LeaseID(e.Lease)); err != nil {
			return false
		}
		tt.mu.Lock()
		tt.revoked = append(tt.revoked, revocation{at: at, lock: lockName, pid: e.Info.PID})
		tt.mu.Unlock()
		return true
	}},
	// The leader crashes and comes back on its data.
	{"kill-leader", 8, func(tt *torture, ctx context.Context, _ *host, _ string, _ *lock.Entry) bool {
		return tt.onMembers(func() bool {
			l := tt.cluster.Leader(ctx)
			if l < 0 || tt.cluster.Kill(l) != nil {
				return false
			}
			pause(ctx, tt.between(500*time.Millisecond, 3*time.Second))
			tt.restart(l)
			return true
		})
	}},
	// A member freezes: its connections stay open, nothing is answered.
	{"freeze-member", 10, func(tt *torture, ctx context.Context, _ *host, _ string, _ *lock.Entry) bool {
		return tt.onMembers(func() bool {
			m := tt.intn(tt.cluster.Size())
			if tt.cluster.Freeze(m) != nil {
				return false
			}
			pause(ctx, tt.between(time.Second, ttl+time.Second))
			_ = tt.cluster.Resume(m)
			return true
		})
	}},
	// A member is cut off from its peers and still answers its clients.
	{"cut-member-peers", 8, func(tt *torture, ctx context.Context, _ *host, _ string, _ *lock.Entry) bool {
		return tt.onMembers(func() bool {
			m := tt.intn(tt.cluster.Size())
			tt.cluster.CutPeers(m)
			pause(ctx, tt.between(time.Second, ttl+time.Second))
			tt.cluster.HealPeers(m)
			return true
		})
	}},
	// The host talks to one member only; that member loses its quorum,
	// then freezes while the other two come back and carry on without it.
	{"quorum-moves-away", 3, func(tt *torture, ctx context.Context, h *host, _ string, _ *lock.Entry) bool {
		if !h.busy.TryLock() {
			return false
		}
		defer h.busy.Unlock()
		return tt.onMembers(func() bool {
			m := tt.intn(tt.cluster.Size())
			var others []int
			for i := 0; i < tt.cluster.Size(); i++ {
				if i != m {
					others = append(others, i)
					h.proxies[i].Partition()
				}
			}
			defer func() {
				for _, i := range others {
					h.proxies[i].Heal()
				}
			}()
			for _, i := range others {
				_ = tt.cluster.Freeze(i)
			}
			pause(ctx, tt.between(time.Second, 2*time.Second))
			_ = tt.cluster.Freeze(m)
			for _, i := range others {
				_ = tt.cluster.Resume(i)
			}
			pause(ctx, ttl+500*time.Millisecond)
			_ = tt.cluster.Resume(m)
			return true
		})
	}},
}

// restart starts member m again after a crash. Its ports were free while
// it was down, and another process may have taken one (an outgoing
// connection's local port): then it fails, and is tried again.
func (tt *torture) restart(m int) {
	for attempt := 1; ; attempt++ {
		if err := tt.cluster.Start(m); err != nil {
			tt.t.Errorf("restart etcd member %d: %v", m, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := tt.cluster.WaitReady(ctx, m)
		cancel()
		if err == nil {
			return
		}
		exited, how := tt.cluster.Exited(m)
		tt.t.Logf("etcd member %d did not come back after a crash (try %d): %v (exited: %v %v)", m, attempt, err, exited, how)
		if attempt == 3 {
			tt.t.Errorf("etcd member %d did not come back after a crash", m)
			return
		}
		_ = tt.cluster.Kill(m)
	}
}

// link is one host's proxy to one member.
type link interface {
	Partition()
	Heal()
	DelayTx(latency, rv time.Duration)
	DelayRx(latency, rv time.Duration)
	UndelayTx()
	UndelayRx()
}

func allLinks(h *host) []link {
	var ls []link
	for _, p := range h.proxies {
		ls = append(ls, p)
	}
	return ls
}

func partition(p link, on bool) {
	if on {
		p.Partition()
	} else {
		p.Heal()
	}
}

// onLinks applies set to the links for d (less if ctx ends), unless
// another fault is on h's links already.
func (tt *torture) onLinks(ctx context.Context, h *host, links []link, d time.Duration, set func(link, bool)) bool {
	if !h.busy.TryLock() {
		return false
	}
	defer h.busy.Unlock()
	for _, l := range links {
		set(l, true)
	}
	pause(ctx, d)
	for _, l := range links {
		set(l, false)
	}
	return true
}

// onMembers runs a fault on the members, unless another one runs, and
// waits until every member answers with a leader again before the next.
func (tt *torture) onMembers(do func() bool) bool {
	if !tt.memberMu.TryLock() {
		return false
	}
	defer tt.memberMu.Unlock()
	ok := do()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < tt.cluster.Size(); i++ {
		if err := tt.cluster.WaitReady(ctx, i); err != nil {
			tt.t.Logf("at +%v", time.Since(tt.began).Round(time.Millisecond))
			tt.t.Errorf("etcd member %d did not come back after a fault: %v", i, err)
		}
	}
	return ok
}

// pause waits for d, or less if ctx ends: a fault's own schedule.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// endpoints are the members' own client URLs, not through any host's
// proxies: what an operator elsewhere would use.
func (tt *torture) endpoints() string {
	s := ""
	for i := 0; i < tt.cluster.Size(); i++ {
		if i > 0 {
			s += ","
		}
		s += tt.cluster.Endpoint(i)
	}
	return s
}
