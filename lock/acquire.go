package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/stamp"
)

// Request says who wants which lock and how long it will wait.
type Request struct {
	Realm string // key prefix shared by all locks, ending in "/"
	Name  string // the lock's name, not escaped
	Info  Info   // stored in the key; Since and Limit are filled in here
	// Limit is how many may hold the lock at once (a semaphore); 0 or 1
	// is a plain lock. Everyone who contends must agree on it.
	Limit int

	// Timeout is the longest wait: negative waits forever, zero not at all.
	Timeout time.Duration
	// TTL of the lease behind the key.
	TTL time.Duration
	// Lead is how long before the lease could expire the holder is told the
	// lock is lost, so that it can stop its work in time.
	Lead time.Duration
	// RPCTimeout bounds each single call to etcd that is not a wait.
	RPCTimeout time.Duration

	// Blocked, if set, is called once with the current holder when the
	// lock is taken by someone else.
	Blocked func(holder Entry)
	// Outage, if set, hears of etcd's silence while we wait and while we
	// hold the lock (see OutageKind). It must not block: a holder's
	// lease tells it on the path that gives the lease up.
	Outage func(Outage)
	// History is how long etcd keeps the record of a holding (see
	// history.go); 0 writes none. The first request's counts for a set.
	History time.Duration
	// Deferred holds back the holder's writes that nothing waits for
	// (the key's since, the history record) until Begin: exec mode
	// begins them once its command has started, so that they do not
	// share the cores with that start. The first request's counts for
	// a set.
	Deferred bool
	// Ready, if set, is waited for before anything is written to etcd:
	// what must be in place once etcd has a lease or a key of the
	// caller's (exec mode's signals, caught while gRPC connects, so that
	// none can end the process by default with either left behind). The
	// first request's counts for a set.
	Ready <-chan struct{}

	gate    *gate // the set's, shared by its requests: see Begin
	started *gate // the set's: see Started
	// watchLater: the key's watch is made as the key is queued, or, for
	// a lock more than one may hold, waits for Started (the last lock of
	// a Deferred set: the others are watched while the set is gathered).
	watchLater bool
	early      *earlyGrant // the set's records' lease, asked for beside the queueing
	rejoined   time.Time   // set when we queue again: since when etcd was silent
}

// ConflictError is returned when the lock was not acquired in time.
type ConflictError struct {
	Name   string
	Holder *Entry // nil if the holder went away just as we gave up
	// Behind (a --shared call only) is the exclusive key that waits
	// ahead of ours while shared holders hold: what keeps us out.
	Behind *Entry
}

func (e *ConflictError) Error() string {
	switch {
	case e.Holder == nil:
		return fmt.Sprintf("lock %q was not acquired in time", e.Name)
	case e.Behind != nil:
		return fmt.Sprintf("lock %q is held by %s, and %s waits ahead of this --shared call for the lock alone",
			e.Name, e.Holder.Describe(), e.Behind.Describe())
	}
	return fmt.Sprintf("lock %q is held by %s", e.Name, e.Holder.Describe())
}

// behind is what keeps a --shared request out when only shared keys
// hold: the newest exclusive key ahead of it that does not hold; nil
// for other requests, or when a holder is what keeps it out.
func behind(req Request, holders, waiting []Entry) *Entry {
	if !req.shared() || lastExclusive(holders) != nil {
		return nil
	}
	return lastExclusive(waiting)
}

// LimitError means the lock is held, or awaited ahead of us, by a
// contender that gave another --limit than ours, or by one of etcd's own
// recipe (Foreign), which takes the lock alone.
type LimitError struct {
	Name       string
	Ours, Held int
	Foreign    bool
	Shared     bool // held or awaited with --shared
	OursShared bool // this call gives --shared
}

func (e *LimitError) Error() string {
	if e.OursShared {
		return fmt.Sprintf("lock %q is held or awaited with --limit %d, a semaphore; --shared cannot share it", e.Name, e.Held)
	}
	if e.Shared {
		return fmt.Sprintf("lock %q is held or awaited with --shared, which takes the lock with other shared holders or alone; --limit %d cannot share it", e.Name, e.Ours)
	}
	if e.Foreign {
		return fmt.Sprintf("lock %q is held or awaited by a key that is not distlock's (etcdctl lock?), which takes the lock alone; --limit %d cannot share it", e.Name, e.Ours)
	}
	return fmt.Sprintf("lock %q is held with --limit %d, but this call gives --limit %d: everyone who contends must give the same --limit", e.Name, e.Held, e.Ours)
}

// agree checks that every key that is to share the lock with ours, or
// takes it before ours, says the same limit. A key that says none (etcd's
// recipe: etcdctl lock) takes the lock alone, as a limit of 1 does.
func agree(name string, ours int, shared bool, others []Entry) error {
	for _, e := range others {
		switch held := e.limit(); {
		case shared && held > 1:
			return &LimitError{Name: name, Ours: 1, Held: held, OursShared: true}
		case e.shared() && ours != 1:
			return &LimitError{Name: name, Ours: ours, Held: 1, Shared: true}
		case held == 0 && ours != 1:
			return &LimitError{Name: name, Ours: ours, Held: 1, Foreign: true}
		case held != 0 && held != ours:
			return &LimitError{Name: name, Ours: ours, Held: held}
		}
	}
	return nil
}

// ErrPlaceLost means the waiter's key disappeared while it waited: its lease
// expired or someone deleted the key.
var ErrPlaceLost = errors.New("our place in the queue was deleted while we waited")

// Acquire queues for the lock and waits until it is ours, the timeout
// passes (*ConflictError, or *OutageError if etcd was out of reach then),
// or ctx ends (ctx's error). A waiter whose lease is lost to etcd's
// silence holds nothing: it queues again, at the back, once etcd answers,
// within the timeout. On every error the waiter's key and lease are
// removed again.
func Acquire(ctx context.Context, client *clientv3.Client, req Request) (*Holder, error) {
	return AcquireSet(ctx, client, []Request{req})
}

// AcquireSet is Acquire for a set of locks, taken one after the other in
// the order given, on one lease (see set.go); the Holder is the first's,
// and holds them all. The timeout and ctx cover the whole set; the
// TTL, Lead, RPC timeout and callbacks are the first request's.
func AcquireSet(ctx context.Context, client *clientv3.Client, reqs []Request) (*Holder, error) {
	if len(reqs) == 0 {
		return nil, errors.New("no lock to take")
	}
	reqs, early := setOf(reqs)
	first := &reqs[0]
	waiting := time.Now()
	l, err := firstLease(ctx, client, *first, early)
	if err != nil {
		return nil, err
	}
	wctx, cancel := waitContext(ctx, first.Timeout)
	defer cancel()
	var rounds backoff // between rounds that end soon after they began
	for {
		began := time.Now()
		h, err := gather(ctx, wctx, client, reqs, l)
		if err == nil {
			l.holding.Store(true)
			early.start(client) // if it was not asked for before
			h.startHistory(waiting)
			return h, nil
		}
		// The first request's settings and callbacks, the name of the
		// lock that was in the way.
		req := *first
		var inWay *gatherError
		if errors.As(err, &inWay) {
			req.Name, err = inWay.req.Name, inWay.err
		}
		if !lostPlace(ctx, wctx, client, req, l, err) {
			if ctx.Err() == nil && errors.Is(context.Cause(wctx), errTimedOut) && !verdict(err) {
				// The timeout passed in the middle of a call.
				err = conflict(ctx, client, req, l)
			}
			cctx, cancel := context.WithTimeout(context.Background(), req.RPCTimeout)
			_ = l.close(cctx) // revoking the lease deletes our keys
			cancel()
			early.drop(client)
			return nil, err
		}
		var rejoined time.Time
		if l, rejoined, err = again(ctx, wctx, client, req, l, err, time.Since(began), &rounds); err != nil {
			early.drop(client) // no record will be written on it
			return nil, err
		}
		first.rejoined = rejoined
	}
}

// firstLease grants the lease that req, the first of a set, queues on,
// once the caller is ready for anything to be written to etcd; unless
// req will not wait, it asks for the records' early lease beside the
// queueing that follows: the turn finds it granted, and the command's
// start shares the cores with no grant (a --nowait asks once it holds).
func firstLease(ctx context.Context, client *clientv3.Client, req Request, early *earlyGrant) (*lease, error) {
	if err := whenReady(ctx, req); err != nil {
		return nil, err
	}
	gctx, cancel := context.WithTimeout(ctx, req.RPCTimeout)
	defer cancel()
	l, err := grantLease(gctx, client, req.TTL, req.Lead, req.Outage)
	if err != nil {
		return nil, fmt.Errorf("grant a lease: %w", err)
	}
	if req.Timeout != 0 {
		early.start(client)
	}
	return l, nil
}

// whenReady waits for req.Ready, if set, or for ctx to end.
func whenReady(ctx context.Context, req Request) error {
	if req.Ready == nil {
		return nil
	}
	select {
	case <-req.Ready:
		return ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setOf is a copy of the requests of a set, with what the set's requests
// share: the first one's timeout, the gates of a Deferred request (open
// at once otherwise), and the records' early lease.
func setOf(reqs []Request) ([]Request, *earlyGrant) {
	reqs = slices.Clone(reqs)
	first := reqs[0]
	g, started := &gate{open: make(chan struct{})}, &gate{open: make(chan struct{})}
	var early *earlyGrant
	if first.Deferred && first.History > 0 {
		early = newEarlyGrant(first.History, first.RPCTimeout)
	}
	for i := range reqs {
		reqs[i].Timeout = first.Timeout // the whole set's
		reqs[i].gate, reqs[i].started, reqs[i].early = g, started, early
	}
	reqs[len(reqs)-1].watchLater = first.Deferred
	if first.History > 0 {
		go warmRecordEncoder.Do(func() { _, _ = json.Marshal(Record{}) })
	}
	if !first.Deferred {
		g.openUp(false)
		started.openUp(false)
	}
	return reqs, early
}

// warmRecordEncoder builds encoding/json's encoder of a history record
// while the lock is taken: built at its first use, by the release that
// completes the record, it cost the next holder 0.2 to 0.4 ms here.
var warmRecordEncoder sync.Once

// again gives back what a round of the set gathered on the lease l, and
// returns a new lease to queue again with, from the first lock, once
// etcd grants one. err ended the round, after it had run for took: a lock
// of the set lost while the others were gathered (etcd answers: the set
// is given back at once), or etcd's silence (the lease is revoked once
// etcd lets it). Rounds that end soon after they began are spaced out.
func again(ctx, wctx context.Context, client *clientv3.Client, req Request, l *lease, err error, took time.Duration, rounds *backoff) (*lease, time.Time, error) {
	since := l.confirmedAt()
	lostOne := errors.Is(err, errMemberLost)
	if lostOne {
		req.tell(Outage{Kind: Regather, Err: err})
		l.stopKeepAlive()
		l, _ = revokeOld(wctx, client, req, l) // nil once revoked
	} else {
		req.tell(Outage{Kind: PlaceLost, Since: since, Err: err})
	}
	if took > req.TTL {
		rounds.reset()
	} else {
		rounds.wait(wctx) // a call that fails at once must not spin
	}
	if lostOne && ctx.Err() == nil && errors.Is(context.Cause(wctx), errTimedOut) {
		// etcd answered all along: the lock in the way is what timed out.
		return nil, time.Time{}, conflict(ctx, client, req, l)
	}
	next, err := rejoin(ctx, wctx, client, req, l, since)
	if lostOne {
		since = time.Time{} // not an outage: nothing to say when queued
	}
	return next, since, err
}

// verdict says whether err already says what stood in the way when the
// wait timed out.
func verdict(err error) bool {
	var conflict *ConflictError
	var outage *OutageError
	var limit *LimitError
	return errors.As(err, &conflict) || errors.As(err, &outage) || errors.As(err, &limit)
}

// waitContext is ctx, ended with the cause errTimedOut once timeout has
// passed, if it is positive.
func waitContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, timeout, errTimedOut)
}

// acquire is etcd's recipe: take a place in the queue, wait for the turn
// (for a semaphore, then confirm it), until wctx (ctx and the timeout)
// ends.
func acquire(ctx, wctx context.Context, client *clientv3.Client, req *Request, l *lease) (*Holder, error) {
	kw := ownKeyWatch(client, *req, l)
	defer func() { kw.cancel() }() // unless the holder took it
	p, err := enqueue(ctx, client, *req, l)
	if err != nil {
		return nil, err
	}
	if !req.rejoined.IsZero() {
		req.tell(Outage{Kind: Rejoined, Since: req.rejoined})
		req.rejoined = time.Time{}
	}
	if p.holds {
		// Fewer than Limit were ahead: the uncontended path is one
		// round trip.
		stamp.AtRev("turn", p.rev)
		h := newHolder(client, l, p.key, p.rev, p.rev, *req, kw)
		kw = nil
		return h, nil
	}
	if req.Timeout == 0 {
		return nil, &ConflictError{Name: req.Name, Holder: p.ahead, Behind: p.behind}
	}
	if req.Blocked != nil {
		req.Blocked(*p.ahead)
		req.Blocked = nil // once, however often we queue
	}
	// The wait and the confirmation end the moment the lease is lost.
	lctx, cancel := l.bind(wctx)
	defer cancel()
	rev, err := waitTurn(ctx, lctx, client, *req, l, p)
	if err != nil {
		return nil, err
	}
	if req.limit() > 1 {
		// The waiter behind ours watches our key until it changes
		// (waitForSlot): the confirmation's write is what tells it that
		// it is first in line now.
		return confirm(lctx, client, *req, l, p)
	}
	// The read that found our turn also found our key, at rev: the lock
	// is ours from there, and the holder watches the key from there. No
	// write stands between the previous holder's release and our
	// command's start; the key's value says since when we hold the lock
	// a moment later (a --lock says it as it detaches the key).
	if err := l.check(); err != nil {
		// Lost as the turn came: we still hold nothing.
		return nil, fmt.Errorf("waiting for the lock: %w", err)
	}
	h := newHolder(client, l, p.key, p.rev, rev, *req, kw)
	kw = nil
	if req.Info.Mode != ModeLock {
		go h.sayHeld()
	}
	return h, nil
}

// ownKeyWatch is the watch of the key that req queues on l, made beside
// the queueing, from before the key exists, on the stream the wait's own
// watches use: the turn finds it open, and the command's start shares
// the cores with no new watch (0.7 ms here), whether it waited or not.
// nil unless the holder's watch would wait for Started (watchLater) on a
// lock that one holds at a time.
func ownKeyWatch(client *clientv3.Client, req Request, l *lease) *keyWatch {
	if !req.watchLater || req.limit() != 1 {
		return nil
	}
	return watchKey(l.alive, client, queueKey(Prefix(req.Realm, req.Name), int64(l.id)), l.grantRev+1)
}

// place is a key of ours in a lock's queue.
type place struct {
	key   string
	rev   int64  // its create revision: the place in the queue
	holds bool   // fewer than Limit keys and stopping records were ahead of it
	ahead *Entry // the oldest holder when we queued (or holder being stopped), if not us
	// behind is, for a --shared request held back by no holder, the
	// exclusive waiter ahead of it (see behind).
	behind *Entry
}

// enqueue writes our key under the lock's prefix, on our lease, and reads
// the first Limit keys (the holders) and the stopping records in the same
// round trip: if ours is among the keys and fewer than Limit keys and
// records are ahead of it, we hold the lock already. For a plain lock that
// read is the first key alone, as in etcd's recipe. A record there can
// only be of a key created before ours (the key exists before its record
// does), but a forged one may say otherwise: only those before ours count.
func enqueue(ctx context.Context, client *clientv3.Client, req Request, l *lease) (place, error) {
	pfx, sp := Prefix(req.Realm, req.Name), StoppingPrefix(req.Realm, req.Name)
	p := place{key: queueKey(pfx, int64(l.id))}
	rctx, cancel := context.WithTimeout(ctx, req.RPCTimeout)
	defer cancel()
	resp, err := client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(p.key), "=", 0)).
		Then(clientv3.OpPut(p.key, req.value(), clientv3.WithLease(l.id)),
			clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend),
				clientv3.WithLimit(req.readAhead())),
			opStopping(sp)).
		Commit()
	if err != nil {
		return p, fmt.Errorf("queue for the lock: %w", err)
	}
	if !resp.Succeeded {
		return p, fmt.Errorf("queue for the lock: key %s exists already", p.key)
	}
	p.rev = resp.Header.Revision
	kvs := resp.Responses[1].GetResponseRange().Kvs
	var ahead []Entry
	ours := false
	if !allInQueue(pfx, kvs) {
		// Foreign keys took some of the places read: read every key
		// created before ours, as of the same revision.
		fctx, cancel := context.WithTimeout(ctx, req.RPCTimeout)
		kvs, err = keysBefore(fctx, client, pfx, p.rev, p.rev, clientv3.SortAscend)
		cancel()
		if err != nil {
			return p, fmt.Errorf("queue for the lock: %w", err)
		}
		kvs = onlyQueue(pfx, kvs)
		ours = true // written in the transaction, and all before it read
	}
	for _, kv := range kvs {
		if kv.CreateRevision == p.rev {
			ours = true
			continue
		}
		ahead = append(ahead, parseEntry(kv))
	}
	// Only the records of keys created before ours count, as they do
	// for waitForTurn and Split; a later one can only have been forged.
	recs := recordsBefore(p.rev, parseStopping(sp, resp.Responses[2].GetResponseRange().Kvs))
	p.holds = ours && canHold(Entry{Info: &req.Info, CreateRevision: p.rev}, ahead, recs, req.limit())
	holders, waiting := Split(ahead, recs)
	p.behind = behind(req, holders, waiting)
	if len(holders) > 0 {
		p.ahead = &holders[0]
	} else if len(recs) > 0 {
		p.ahead = &recs[0]
	} else if len(ahead) > 0 {
		p.ahead = &ahead[0]
	}
	// Everyone who holds must have given the same limit as we do, or the
	// lock would be one thing to some and another to others.
	return p, agree(req.Name, req.limit(), req.shared(), append(ahead[:len(ahead):len(ahead)], recs...))
}

// waitTurn waits under wctx (the caller's ctx, ended by the timeout and by
// the lease's loss) until no key is ahead of p, or the timeout passes
// (*ConflictError, or *OutageError if etcd is silent then).
func waitTurn(ctx, wctx context.Context, client *clientv3.Client, req Request, l *lease, p place) (int64, error) {
	pfx, sp := Prefix(req.Realm, req.Name), StoppingPrefix(req.Realm, req.Name)
	var rev int64
	var err error
	if req.shared() {
		rev, err = waitShared(wctx, client, p.key, pfx, sp, p.rev)
	} else if req.limit() == 1 {
		rev, err = waitForTurn(wctx, client, p.key, pfx, sp, p.rev)
	} else {
		err = waitForSlot(wctx, client, req.Name, pfx, sp, p.rev, req.limit())
	}
	var disagree *LimitError
	switch {
	case err == nil:
		return rev, nil
	case errors.As(err, &disagree), errors.Is(err, ErrPlaceLost):
		return 0, err
	case errors.Is(context.Cause(wctx), errTimedOut):
		return 0, conflict(ctx, client, req, l)
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case l.err() != nil:
		return 0, fmt.Errorf("waiting for the lock: %w", l.err())
	}
	return 0, fmt.Errorf("waiting for the lock: %w", err)
}

// confirm makes sure, now that it is our turn, that our key is still
// there, and records since when we hold the lock. It need not check again
// that nothing stands before us: after the read that found our turn, no
// key can appear ahead of ours (a new key has a newer create revision),
// and a stopping record of a key created before ours appears only in the
// same transaction that deletes that key, which that read counted: the
// count cannot grow.
func confirm(lctx context.Context, client *clientv3.Client, req Request, l *lease, p place) (*Holder, error) {
	rctx, cancel := context.WithTimeout(lctx, req.RPCTimeout)
	defer cancel()
	resp, err := client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(p.key), "=", p.rev)).
		Then(clientv3.OpPut(p.key, req.value(), clientv3.WithIgnoreLease())).
		Commit()
	if err != nil {
		if lerr := l.err(); lerr != nil {
			err = lerr
		}
		return nil, fmt.Errorf("take the lock: %w", err)
	}
	if !resp.Succeeded {
		return nil, ErrPlaceLost
	}
	return newHolder(client, l, p.key, p.rev, resp.Header.Revision, req, nil), nil
}

// readAhead is how many keys enqueue reads with its write, oldest first:
// the first Limit, which hold if ours is among them; for a shared key,
// every one (0), to see whether an exclusive one is ahead.
func (req Request) readAhead() int64 {
	if req.shared() {
		return 0
	}
	return int64(req.limit())
}

// limit is Limit, 1 for a plain lock.
func (req Request) limit() int { return max(req.Limit, 1) }

// value is what our key holds: who we are, and since when (now).
func (req Request) value() string { return req.valueSince(now()) }

// valueSince is what our key holds, as of since.
func (req Request) valueSince(since time.Time) string {
	info := req.Info
	info.Since = since
	if req.limit() > 1 {
		info.Limit = req.limit()
	}
	v, _ := jsonValue(info) // Info always encodes
	return v
}

var errTimedOut = errors.New("timed out waiting for the lock")

// conflict builds the error for a wait that timed out, naming whoever holds
// the lock now: the oldest holder, or else the oldest being stopped. If
// etcd has left our lease unconfirmed for a third of its TTL, or does not
// answer the read, etcd is what stood in the way (*OutageError).
func conflict(ctx context.Context, client *clientv3.Client, req Request, l *lease) error {
	// Unconfirmed for a third of the TTL, and a keepalive more: what
	// "etcd not answering" was said for, with room for a slow answer.
	if l != nil && l.untilQuiet() <= -l.interval() {
		return &OutageError{Name: req.Name, Since: l.confirmedAt()}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), req.RPCTimeout)
	defer cancel()
	q, err := ReadQueue(rctx, client, req.Realm, req.Name)
	if err != nil {
		return &OutageError{Name: req.Name, Since: time.Now(), Err: err}
	}
	entries := q.Entries
	if l != nil {
		ours := queueKey(Prefix(req.Realm, req.Name), int64(l.id))
		entries = slices.DeleteFunc(entries, func(e Entry) bool { return e.Key == ours })
	}
	stopping := q.Stopping
	if holders, waiting := Split(entries, stopping); len(holders) > 0 {
		return &ConflictError{Name: req.Name, Holder: &holders[0], Behind: behind(req, holders, waiting)}
	}
	if len(stopping) > 0 {
		return &ConflictError{Name: req.Name, Holder: &stopping[0]}
	}
	if len(entries) > 0 {
		return &ConflictError{Name: req.Name, Holder: &entries[0]}
	}
	return &ConflictError{Name: req.Name}
}
