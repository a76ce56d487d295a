package lock

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/stamp"
)

// lease is an etcd lease kept alive by distlock itself rather than by the
// client's KeepAlive stream, so that it knows when each acknowledged
// keepalive was sent. etcd renews a lease when the keepalive arrives, which
// is never before it was sent: sent + TTL is a time before which etcd cannot
// have expired the lease.
type lease struct {
	client   *clientv3.Client
	grantRev int64 // etcd's revision when it granted the lease: before any key on it
	id       clientv3.LeaseID
	ttl      time.Duration
	lead     time.Duration // how long before the earliest possible expiry to give up

	mu        sync.Mutex
	safeUntil time.Time // last acknowledged send + TTL
	confirmed time.Time // last acknowledged send

	// tell, if set, hears when etcd leaves the lease unconfirmed for a
	// third of its TTL, and when it confirms it again. It is called from
	// the keepalive loop, which also gives the lease up: it must not block.
	tell    func(Outage)
	holding atomic.Bool // the lock is ours: a holder's lease, not a waiter's

	// alive ends, with the reason as its cause, the moment the lease can
	// no longer be proven: whatever derives from it (the holder, its
	// calls to etcd) ends in the same instant, without a goroutine between.
	alive context.Context
	lose  context.CancelCauseFunc
	stop  context.CancelFunc // stops the keepalives
	done  chan struct{}
}

// ErrLeaseUnconfirmed means etcd has not acknowledged a keepalive for so long
// that the lease may expire soon (or has): the lock can no longer be proven.
var ErrLeaseUnconfirmed = errors.New("etcd has not confirmed the lease in time")

// ErrLeaseGone means etcd answered that the lease no longer exists: it
// expired or was revoked.
var ErrLeaseGone = errors.New("etcd says the lease has expired or was revoked")

func grantLease(ctx context.Context, client *clientv3.Client, ttl, lead time.Duration, tell func(Outage)) (*lease, error) {
	sent := time.Now()
	resp, err := client.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	stamp.At("granted")
	if err != nil {
		return nil, err
	}
	l := &lease{
		client:   client,
		grantRev: resp.GetRevision(),
		id:       resp.ID,
		ttl:      ttl,
		lead:     lead,
		tell:     tell,
		done:     make(chan struct{}),
	}
	l.safeUntil = sent.Add(l.effectiveTTL(resp.TTL))
	l.confirmed = sent
	l.alive, l.lose = context.WithCancelCause(context.Background())
	var kctx context.Context
	kctx, l.stop = context.WithCancel(context.Background())
	go l.keepAlive(kctx)
	return l, nil
}

// effectiveTTL is the shorter of what we asked for and what etcd granted:
// counting with the shorter one can only make distlock give up earlier.
func (l *lease) effectiveTTL(granted int64) time.Duration {
	g := time.Duration(granted) * time.Second
	if g > 0 && g < l.ttl {
		return g
	}
	return l.ttl
}

// interval is how often a keepalive is sent: several chances per TTL.
func (l *lease) interval() time.Duration {
	iv := (l.ttl - l.lead) / 4
	if iv > l.ttl/3 {
		iv = l.ttl / 3
	}
	if iv < 100*time.Millisecond {
		iv = 100 * time.Millisecond
	}
	return iv
}

type keepAliveResult struct {
	sent time.Time
	ttl  int64
	err  error
}

func (l *lease) keepAlive(ctx context.Context) {
	defer close(l.done)
	interval := l.interval()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	alarm := time.NewTimer(l.untilGiveUp())
	defer alarm.Stop()
	hush := time.NewTimer(l.untilQuiet())
	defer hush.Stop()
	var quiet time.Time // since when etcd has left the lease unconfirmed, once said
	results := make(chan keepAliveResult, 1)
	inFlight := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-hush.C:
			if d := l.untilQuiet(); d > 0 {
				hush.Reset(d)
				continue
			}
			quiet = l.confirmedAt()
			l.say(Outage{Kind: EtcdQuiet, Since: quiet, GiveUp: l.SafeUntil().Add(-l.lead), Holding: l.holding.Load()})
		case <-ticker.C:
			if inFlight {
				continue // the previous one is still waiting for its answer
			}
			inFlight = true
			go l.sendKeepAlive(ctx, 2*interval, results)
		case r := <-results:
			inFlight = false
			switch {
			case errors.Is(r.err, rpctypes.ErrLeaseNotFound):
				l.lose(ErrLeaseGone)
				return
			case r.err != nil:
				continue // not confirmed; the alarm decides when that is too long
			}
			l.confirm(r)
			alarm.Reset(l.untilGiveUp())
			if !quiet.IsZero() {
				l.say(Outage{Kind: EtcdBack, Since: quiet, Holding: l.holding.Load()})
				quiet = time.Time{}
			}
			hush.Reset(l.untilQuiet())
		case <-alarm.C:
			if d := l.untilGiveUp(); d > 0 {
				alarm.Reset(d) // a confirmation arrived in the meantime
				continue
			}
			l.lose(ErrLeaseUnconfirmed)
			return
		}
	}
}

// sendKeepAlive sends one keepalive, waits for its answer at most wait,
// and tells results when it was sent and what came of it.
func (l *lease) sendKeepAlive(ctx context.Context, wait time.Duration, results chan<- keepAliveResult) {
	sent := time.Now()
	cctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	resp, err := l.client.KeepAliveOnce(cctx, l.id)
	r := keepAliveResult{sent: sent, err: err}
	if err == nil {
		r.ttl = resp.TTL
	}
	results <- r
}

// confirm moves the lease's deadline on by the keepalive r that etcd
// acknowledged: sent + TTL, unless an answer to a later one did already.
func (l *lease) confirm(r keepAliveResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := r.sent.Add(l.effectiveTTL(r.ttl)); until.After(l.safeUntil) {
		l.safeUntil = until
		l.confirmed = r.sent
	}
}

// untilQuiet is how long until the lease has gone unconfirmed for a third
// of its TTL: then etcd's silence is worth a word.
func (l *lease) untilQuiet() time.Duration {
	return time.Until(l.confirmedAt().Add(l.ttl / 3))
}

// confirmedAt is when the last keepalive that etcd acknowledged was sent.
func (l *lease) confirmedAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirmed
}

// say tells o to whoever listens.
func (l *lease) say(o Outage) {
	if l.tell != nil {
		l.tell(o)
	}
}

func (l *lease) untilGiveUp() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Until(l.safeUntil.Add(-l.lead))
}

// check gives the lease up at once if its deadline has passed, whether or
// not the keepalive loop's alarm has fired yet, and says whether it is lost.
// It asks etcd nothing.
func (l *lease) check() error {
	if l.untilGiveUp() <= 0 {
		l.lose(ErrLeaseUnconfirmed)
	}
	return l.err()
}

// err says why the lease was lost, or nil while it is not.
func (l *lease) err() error {
	if l.alive.Err() == nil {
		return nil
	}
	return context.Cause(l.alive)
}

// close stops the keepalives and revokes the lease, deleting every key
// attached to it. If etcd cannot be reached, the lease expires by itself.
func (l *lease) close(ctx context.Context) error {
	l.stopKeepAlive()
	stamp.At("revoke-sent")
	resp, err := l.client.Revoke(ctx, l.id)
	if err == nil {
		stamp.AtRev("revoke-done", resp.Header.Revision)
	}
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

func (l *lease) stopKeepAlive() {
	l.stop()
	<-l.done
}

// bind returns a context that ends when ctx ends or the lease is lost,
// whichever comes first; the lease's loss is then its cause.
func (l *lease) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	bctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.alive, func() { cancel(context.Cause(l.alive)) })
	return bctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// SafeUntil is the earliest moment at which etcd could expire the lease.
func (l *lease) SafeUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.safeUntil
}
