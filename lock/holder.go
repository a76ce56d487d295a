package lock

import (
	"context"
	"errors"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrKeyDeleted means the holder's key was deleted by someone else, most
// likely distlock --unlock. etcd does not revoke the lease then, so the
// holder learns it only by watching its own key.
var ErrKeyDeleted = errors.New("the lock's key was deleted (unlocked from elsewhere)")

// Holder is a lock that is ours.
type Holder struct {
	client *clientv3.Client
	lease  *lease
	req    Request

	// Key is the etcd key that holds the lock.
	Key string
	// Since is when the lock became ours.
	Since time.Time
	// FencingToken grows with every successive holder of the lock: the
	// key's create revision.
	FencingToken int64
	// taken is the revision of the read (or the write) that found the
	// lock ours.
	taken int64

	// held ends when the lock is lost, with the reason as its cause. It
	// derives from the lease's context, so a lease that can no longer be
	// proven ends it in the same instant, whatever the watch is doing.
	held context.Context
	lose context.CancelCauseFunc
	stop context.CancelFunc // ends the watch on release
	done chan struct{}

	why      error         // why the key went, when the cause is errKeyGone
	whyKnown chan struct{} // closed once why is set

	// more are the other locks of a set (AcquireSet), on the same lease,
	// in the set's order after this one; losing any ends held.
	more []*Holder
	// hist is the history record in the making (the first lock's, for
	// the whole set), nil without one.
	hist *history
}

func newHolder(client *clientv3.Client, l *lease, key string, createRev, seenRev int64, req Request, kw *keyWatch) *Holder {
	h := &Holder{
		client:       client,
		lease:        l,
		req:          req,
		Key:          key,
		FencingToken: createRev,
		taken:        seenRev,
		Since:        now(),
		done:         make(chan struct{}),
		whyKnown:     make(chan struct{}),
	}
	h.held, h.lose = context.WithCancelCause(l.alive)
	ctx, stop := context.WithCancel(h.held)
	h.stop = stop
	if kw != nil {
		// Made as the key was queued, from before it existed.
		go h.watch(ctx, kw, 0)
		return h
	}
	go func() {
		// Watching from the revision that found the lock ours, it
		// misses nothing by starting once the command has.
		select {
		case <-h.watchFrom():
			h.watch(ctx, nil, seenRev+1)
		case <-ctx.Done():
			close(h.done)
		}
	}()
	return h
}

// watchFrom is closed when the key's watch may start: at once, or, for
// the last lock of a Deferred request, once the command has started.
func (h *Holder) watchFrom() <-chan struct{} {
	if h.req.watchLater {
		return h.req.started.opened()
	}
	return alwaysOpen
}

// Started says that the command has started (exec mode, right after
// the fork): the watch of a Deferred request's last lock, if the queueing
// did not make it (a lock more than one may hold), starts then, so that
// it does not share the cores with the fork. Begin starts it too.
func (h *Holder) Started() { h.req.started.openUp(false) }

// sayHeld rewrites the key's value with the moment the lock became ours,
// for --status and whoever waits: a waiter's key says when it queued. The
// command does not wait for it. It tries until etcd answers, for as long
// as the lock is ours; a key that is gone by then stays gone, and one
// that has moved to another lease (HoldFor, Keep) says more already.
func (h *Holder) sayHeld() {
	select {
	case <-h.req.gate.opened():
		if h.req.gate.tooLate() {
			return
		}
	case <-h.held.Done():
		return
	}
	var retry backoff
	for {
		ctx, cancel := context.WithTimeout(h.held, h.req.RPCTimeout)
		_, err := h.client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.FencingToken),
				clientv3.Compare(clientv3.LeaseValue(h.Key), "=", h.lease.id)).
			Then(clientv3.OpPut(h.Key, h.req.valueSince(h.Since), clientv3.WithIgnoreLease())).
			Commit()
		cancel()
		if err == nil || !retry.wait(h.held) {
			return
		}
	}
}

// gate holds back a holder's writes that nothing waits for until Begin
// opens it (Request.Deferred); a nil gate is open.
type gate struct {
	once sync.Once
	open chan struct{}
	late bool // opened by what lets the lock go or keeps it: write nothing
}

// openUp opens g; late says that what lets the lock go (or keeps it)
// opened it, and writes the record itself: the held-back writes are not
// made then. Only the first call counts.
func (g *gate) openUp(late bool) {
	if g != nil {
		g.once.Do(func() { g.late = late; close(g.open) })
	}
}

// tooLate waits for g to open and says whether it opened late.
func (g *gate) tooLate() bool {
	<-g.opened()
	return g != nil && g.late
}

// opened is closed once the gate is open.
func (g *gate) opened() <-chan struct{} {
	if g == nil {
		return alwaysOpen
	}
	return g.open
}

var alwaysOpen = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Begin lets the writes go that a Deferred request held back (the key's
// since, the begun history record): exec mode calls it once its command
// has had its start. If what lets the lock go or keeps it comes first,
// they are not made: that writes the record itself.
func (h *Holder) Begin() {
	h.Started()
	h.req.gate.openUp(false)
}

// watch ends h.held when the key is deleted: watching first with kw, if
// the wait made one, else from rev. Every call it makes runs under ctx,
// which the lease's loss ends too: nothing here can keep a loss waiting.
func (h *Holder) watch(ctx context.Context, kw *keyWatch, rev int64) {
	defer close(h.done)
	var retry backoff
	for ctx.Err() == nil {
		if kw == nil {
			kw = watchKey(ctx, h.client, h.Key, rev)
		}
		gone, ok, next := kw.wait(ctx)
		kw.cancel()
		kw, rev = nil, next
		if gone && ctx.Err() != nil {
			return // stopped first: the delete may be our own release's
		}
		if gone {
			h.loseKey()
			return
		}
		if ok {
			retry.reset()
		}
		if ctx.Err() != nil {
			return
		}
		// The watch broke (leader loss, compaction): look at the key
		// before watching again from where we looked.
		next, err := h.stillOurs(ctx)
		switch {
		case err == nil && next == 0:
			h.loseKey()
			return
		case err == nil:
			rev = next
		}
		// The lease's deadline decides when etcd has been away too
		// long; until then, look again, without hammering it.
		retry.wait(ctx)
	}
}

// loseKey ends the lock at once, because the key is gone: the next waiter
// may have it already. Why it went (a revoked or expired lease, which
// deletes the key too, or --unlock) is found out afterwards, for Err.
func (h *Holder) loseKey() {
	h.lose(errKeyGone)
	why := ErrKeyDeleted
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if resp, err := h.client.TimeToLive(ctx, h.lease.id); err == nil && resp.TTL == -1 {
		why = ErrLeaseGone
	}
	h.why = why
	close(h.whyKnown)
}

// errKeyGone is the cause of a lost key until we know why it went.
var errKeyGone = errors.New("the lock's key is gone")

// stillOurs returns the revision to watch from next, or 0 if our key is gone.
func (h *Holder) stillOurs(ctx context.Context) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, h.req.RPCTimeout)
	defer cancel()
	resp, err := h.client.Get(rctx, h.Key)
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != h.FencingToken {
		return 0, nil
	}
	return resp.Header.Revision + 1, nil
}

// Context ends when the lock is lost or can no longer be proven to be ours
// for the Request's Lead more; Err says why. Work done under the lock can
// run under it, as under etcd's Session.Ctx.
func (h *Holder) Context() context.Context { return h.held }

// Err says why Context ended, or is nil while the lock is held. When the
// key was deleted, it waits (a second at most) to learn why.
func (h *Holder) Err() error {
	if h.held.Err() == nil {
		return nil
	}
	cause := context.Cause(h.held)
	var member *setMemberLost
	switch {
	case cause == errKeyGone:
		<-h.whyKnown
		return h.why
	case errors.As(cause, &member):
		return member.h.Err() // LostName says which lock
	}
	return cause
}

// LostName is the name of the lock whose loss ended Context: of a set,
// the lock that was lost.
func (h *Holder) LostName() string {
	var member *setMemberLost
	if errors.As(context.Cause(h.held), &member) {
		return member.h.req.Name
	}
	return h.req.Name
}

// Check tells, without asking etcd, whether the lock is still provably
// ours for the Request's Lead more: nil, or why not (and Context ends).
// Call it right before starting work under the lock: the loss may have
// happened a moment ago and not been noticed yet.
func (h *Holder) Check() error {
	if err := h.lease.check(); err != nil {
		h.lose(err)
	}
	for _, m := range h.more {
		if m.held.Err() != nil {
			h.lose(&setMemberLost{m})
		}
	}
	if h.held.Err() == nil {
		return nil
	}
	return context.Cause(h.held) // without waiting to learn why a key went
}

// SafeUntil is the earliest moment at which etcd could expire the lock's
// lease, by distlock's own count.
func (h *Holder) SafeUntil() time.Time { return h.lease.SafeUntil() }

// stopWatching ends the watch and waits for it, but not beyond ctx: the
// lease is what keeps the lock, not the watch.
func (h *Holder) stopWatching(ctx context.Context) {
	h.stop()
	select {
	case <-h.done:
	case <-ctx.Done():
	}
}

// Release gives the lock up: with a history record, by deleting the keys
// and completing the records in one transaction, then by revoking the
// lease; without, by revoking the lease, which deletes the keys. Either
// wakes the next waiter. If etcd cannot be reached, the lease expires by
// itself one TTL after the last keepalive. An empty history lease is
// dropped after the revoke, with what time is left: a look at it that
// goes unanswered must not keep the revoke (of a lease that may carry
// an --unlock's stopping record) from being made.
func (h *Holder) Release(ctx context.Context) error {
	// The watches are stopped, not waited for: a delete one of them
	// sees from here on counts for nothing.
	for _, m := range h.Set() {
		m.stop()
	}
	unused := h.completeHistory(ctx)
	err := h.lease.close(ctx)
	h.dropEmptyHistoryLease(ctx, unused)
	return err
}
