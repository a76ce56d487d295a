package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
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
}

// ConflictError is returned when the lock was not acquired in time.
type ConflictError struct {
	Name   string
	Holder *Entry // nil if the holder went away just as we gave up
}

func (e *ConflictError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("lock %q was not acquired in time", e.Name)
	}
	return fmt.Sprintf("lock %q is held by %s", e.Name, e.Holder.Describe())
}

// LimitError means the lock is held, or awaited ahead of us, by a
// contender that gave another --limit than ours, or by one of etcd's own
// recipe (Foreign), which takes the lock alone.
type LimitError struct {
	Name       string
	Ours, Held int
	Foreign    bool
}

func (e *LimitError) Error() string {
	if e.Foreign {
		return fmt.Sprintf("lock %q is held or awaited by a key that is not distlock's (etcdctl lock?), which takes the lock alone; --limit %d cannot share it", e.Name, e.Ours)
	}
	return fmt.Sprintf("lock %q is held with --limit %d, but this call gives --limit %d: everyone who contends must give the same --limit", e.Name, e.Held, e.Ours)
}

// agree checks that every key that is to share the lock with ours, or
// takes it before ours, says the same limit. A key that says none (etcd's
// recipe: etcdctl lock) takes the lock alone, as a limit of 1 does.
func agree(name string, ours int, others []Entry) error {
	for _, e := range others {
		switch held := e.limit(); {
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
	gctx, cancel := context.WithTimeout(ctx, req.RPCTimeout)
	l, err := grantLease(gctx, client, req.TTL, req.Lead, req.Outage)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("grant a lease: %w", err)
	}
	wctx, cancel := waitContext(ctx, req.Timeout)
	defer cancel()
	for {
		h, err := acquire(ctx, wctx, client, &req, l)
		if err == nil {
			return h, nil
		}
		if !lostPlace(ctx, wctx, client, req, l, err) {
			if ctx.Err() == nil && errors.Is(context.Cause(wctx), errTimedOut) && !verdict(err) {
				// The timeout passed in the middle of a call.
				err = conflict(ctx, client, req, l)
			}
			cctx, cancel := context.WithTimeout(context.Background(), req.RPCTimeout)
			_ = l.close(cctx) // revoking the lease deletes our key
			cancel()
			return nil, err
		}
		since := l.confirmedAt()
		req.tell(Outage{Kind: PlaceLost, Since: since, Err: err})
		if l, err = rejoin(ctx, wctx, client, req, l, since); err != nil {
			return nil, err
		}
		req.tell(Outage{Kind: Rejoined, Since: since})
	}
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
	p, err := enqueue(wctx, client, *req, l)
	if err != nil {
		return nil, err
	}
	if p.holds {
		// Fewer than Limit were ahead: the uncontended path is one
		// round trip.
		return newHolder(client, l, p.key, p.rev, p.rev, *req), nil
	}
	if req.Timeout == 0 {
		return nil, &ConflictError{Name: req.Name, Holder: p.ahead}
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
	h := newHolder(client, l, p.key, p.rev, rev, *req)
	if req.Info.Mode != ModeLock {
		go h.sayHeld()
	}
	return h, nil
}

// place is a key of ours in a lock's queue.
type place struct {
	key   string
	rev   int64  // its create revision: the place in the queue
	holds bool   // fewer than Limit keys and stopping records were ahead of it
	ahead *Entry // the oldest holder when we queued (or holder being stopped), if not us
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
				clientv3.WithLimit(int64(req.limit()))),
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
	p.holds = ours && len(ahead)+len(recs) < req.limit()
	if holders, _ := Split(ahead, recs); len(holders) > 0 {
		p.ahead = &holders[0]
	} else if len(recs) > 0 {
		p.ahead = &recs[0]
	} else if len(ahead) > 0 {
		p.ahead = &ahead[0]
	}
	// Everyone who holds must have given the same limit as we do, or the
	// lock would be one thing to some and another to others.
	return p, agree(req.Name, req.limit(), append(ahead[:len(ahead):len(ahead)], recs...))
}

// waitTurn waits under wctx (the caller's ctx, ended by the timeout and by
// the lease's loss) until no key is ahead of p, or the timeout passes
// (*ConflictError, or *OutageError if etcd is silent then).
func waitTurn(ctx, wctx context.Context, client *clientv3.Client, req Request, l *lease, p place) (int64, error) {
	pfx, sp := Prefix(req.Realm, req.Name), StoppingPrefix(req.Realm, req.Name)
	var rev int64
	var err error
	if req.limit() == 1 {
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
	return newHolder(client, l, p.key, p.rev, resp.Header.Revision, req), nil
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
	if l.untilQuiet() <= 0 {
		return &OutageError{Name: req.Name, Since: l.confirmedAt()}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), req.RPCTimeout)
	defer cancel()
	q, err := ReadQueue(rctx, client, req.Realm, req.Name)
	if err != nil {
		return &OutageError{Name: req.Name, Since: l.confirmedAt()}
	}
	entries, stopping := q.Entries, q.Stopping
	if holders, _ := Split(entries, stopping); len(holders) > 0 {
		return &ConflictError{Name: req.Name, Holder: &holders[0]}
	}
	if len(stopping) > 0 {
		return &ConflictError{Name: req.Name, Holder: &stopping[0]}
	}
	if len(entries) > 0 {
		return &ConflictError{Name: req.Name, Holder: &entries[0]}
	}
	return &ConflictError{Name: req.Name}
}

// waitForTurn returns once no key under pfx was created before myRev and
// no stopping record under sp is of such a key, with the revision at which
// it saw that; or ErrPlaceLost if our key (key, created at myRev) is gone.
// Each look is one read: our key, the immediate predecessor and the
// records, at one revision. It watches only the predecessor, or, once
// there is none, the records, so a release wakes one waiter. Errors from
// etcd (a leader election, a lost connection) are retried until ctx ends:
// the caller ends it when the lease can no longer be proven.
func waitForTurn(ctx context.Context, client *clientv3.Client, key, pfx, sp string, myRev int64) (int64, error) {
	pred := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(myRev-1))
	recs := recordsOf(sp, myRev)
	var retry backoff
	for {
		resp, err := client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", myRev)).
			Then(clientv3.OpGet(pfx, pred...), clientv3.OpGet(recs.key, recs.opts...)).
			Commit()
		if err != nil {
			if !retry.wait(ctx) {
				return 0, ctx.Err()
			}
			continue
		}
		retry.reset()
		if !resp.Succeeded {
			return 0, ErrPlaceLost
		}
		ahead := resp.Responses[0].GetResponseRange().Kvs
		if !allInQueue(pfx, ahead) {
			// The newest key before ours is foreign: the predecessor,
			// if any, is further back.
			kvs, err := keysBefore(ctx, client, pfx, myRev, resp.Header.Revision, clientv3.SortDescend, clientv3.WithKeysOnly())
			if err != nil {
				if !retry.wait(ctx) {
					return 0, ctx.Err()
				}
				continue
			}
			ahead = onlyQueue(pfx, kvs)
		}
		from := resp.Header.Revision + 1
		var moved bool
		switch {
		case len(ahead) > 0:
			moved = watchUntil(ctx, client, from, deleted, watched{key: string(ahead[0].Key)})
		case len(parseStopping(sp, resp.Responses[1].GetResponseRange().Kvs)) > 0:
			moved = watchUntil(ctx, client, from, deleted, recs)
		default:
			return resp.Header.Revision, nil
		}
		if !moved && !retry.wait(ctx) {
			return 0, ctx.Err()
		}
	}
}

// recordsOf is the range of stopping records under sp of keys created
// before myRev: those that take a slot from the key created at myRev.
func recordsOf(sp string, myRev int64) watched {
	return watched{key: sp, opts: []clientv3.OpOption{clientv3.WithRange(stoppingBefore(sp, myRev))}}
}

// readRecords reads, as of revision rev (that of a read of the keys, so
// that both are one picture), the stopping records under sp of keys
// created before myRev. Whole: keys-only answers lack the lease.
func readRecords(ctx context.Context, client *clientv3.Client, sp string, myRev, rev int64) ([]Entry, error) {
	r := recordsOf(sp, myRev)
	resp, err := client.Get(ctx, r.key, append(r.opts, clientv3.WithRev(rev))...)
	if err != nil {
		return nil, err
	}
	return parseStopping(sp, resp.Kvs), nil
}

// waitForSlot is waitForTurn for a semaphore of n: it returns once fewer
// than n keys under pfx were created before myRev, stopping records of
// such keys included. Each waiter watches only what can move it: behind
// another waiter, that waiter (it leaves, or it takes a slot, which
// rewrites its key); first in line, the holders and the records (any of
// them leaving frees a slot). So a release wakes the first waiter alone.
// Every key and record ahead must agree on n (*LimitError): they only
// ever leave, so whoever will share the lock with us is among them.
// The records are read only when the keys alone leave a slot.
func waitForSlot(ctx context.Context, client *clientv3.Client, name, pfx, sp string, myRev int64, n int) error {
	opts := []clientv3.OpOption{clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithMaxCreateRev(myRev - 1)}
	holdersLeave := watched{key: pfx, opts: []clientv3.OpOption{clientv3.WithPrefix()}}
	var retry backoff
	for {
		resp, err := getRetrying(ctx, client, pfx, &retry, opts...)
		if err != nil {
			return err
		}
		ahead := onlyQueue(pfx, resp.Kvs)
		entries := make([]Entry, 0, len(ahead))
		for _, kv := range ahead {
			entries = append(entries, parseEntry(kv))
		}
		var stopping []Entry
		if len(ahead) < n {
			if stopping, err = readRecords(ctx, client, sp, myRev, resp.Header.Revision); err != nil {
				if !retry.wait(ctx) {
					return ctx.Err()
				}
				continue
			}
		}
		if err := agree(name, n, append(entries, stopping...)); err != nil {
			return err
		}
		if len(ahead)+len(stopping) < n {
			return nil
		}
		from := resp.Header.Revision + 1
		var moved bool
		switch holders, _ := Split(entries, stopping); {
		case len(holders) < len(entries):
			// The key just ahead of ours waits too: it moves first.
			moved = watchUntil(ctx, client, from, anyEvent, watched{key: string(ahead[len(ahead)-1].Key)})
		case len(stopping) == 0:
			// First in line: any holder's leaving frees a slot. Keys
			// behind us leaving wake us too, rarely and harmlessly.
			moved = watchUntil(ctx, client, from, deleted, holdersLeave)
		case len(ahead) == 0:
			moved = watchUntil(ctx, client, from, deleted, recordsOf(sp, myRev))
		default:
			moved = watchUntil(ctx, client, from, deleted, holdersLeave, recordsOf(sp, myRev))
		}
		if !moved && !retry.wait(ctx) {
			return ctx.Err()
		}
	}
}

// keysBefore reads, as of revision rev, every key under pfx created
// before myRev, in order of creation.
func keysBefore(ctx context.Context, client *clientv3.Client, pfx string, myRev, rev int64, order clientv3.SortOrder, opts ...clientv3.OpOption) ([]*mvccpb.KeyValue, error) {
	resp, err := client.Get(ctx, pfx, append(opts, clientv3.WithPrefix(), clientv3.WithRev(rev),
		clientv3.WithMaxCreateRev(myRev-1), clientv3.WithSort(clientv3.SortByCreateRevision, order))...)
	if err != nil {
		return nil, err
	}
	return resp.Kvs, nil
}

// getRetrying reads key with opts, retrying etcd's hiccups (a leader
// election, a lost connection) with retry's backoff until ctx ends.
func getRetrying(ctx context.Context, client *clientv3.Client, key string, retry *backoff, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	for {
		resp, err := client.Get(ctx, key, opts...)
		if err == nil {
			retry.reset()
			return resp, nil
		}
		if !retry.wait(ctx) {
			return nil, ctx.Err()
		}
	}
}

// watched is a key, or with opts a range of keys, to watch.
type watched struct {
	key  string
	opts []clientv3.OpOption
}

// watchUntil watches every target from revision rev, and returns once one
// of them sees an event that want accepts (true), or one watch breaks or
// ctx ends (false). The watches need a leader, and end without one.
func watchUntil(ctx context.Context, client *clientv3.Client, rev int64, want func(*clientv3.Event) bool, targets ...watched) bool {
	if len(targets) == 0 {
		return false
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	seen := make(chan bool, len(targets))
	for _, t := range targets {
		go func() {
			s, _ := watchFor(wctx, client, t.key, rev, want, t.opts...)
			seen <- s
		}()
	}
	first := <-seen
	cancel()
	for range targets[1:] {
		<-seen // the others end with wctx
	}
	return first
}

// watchFor watches key (with opts, a prefix say) from revision rev until an
// event that want accepts (seen), the watch breaks or ctx ends. ok says
// whether etcd answered the watch at all, so that the caller's backoff can
// start over.
func watchFor(ctx context.Context, client *clientv3.Client, key string, rev int64, want func(*clientv3.Event) bool, opts ...clientv3.OpOption) (seen, ok bool) {
	for wr := range client.Watch(ctx, key, append(opts, clientv3.WithRev(rev))...) {
		if wr.Err() != nil {
			return false, ok
		}
		ok = true
		for _, ev := range wr.Events {
			if want(ev) {
				return true, ok
			}
		}
	}
	return false, ok
}

func deleted(ev *clientv3.Event) bool { return ev.Type == mvccpb.DELETE }
func anyEvent(*clientv3.Event) bool   { return true }

// backoff spaces out retries against an etcd that does not answer well:
// 50ms, doubling up to 2s, and from 50ms again after a success.
type backoff struct{ next time.Duration }

// wait sleeps for the next interval, or less if ctx ends, and reports
// whether it slept the whole interval.
func (b *backoff) wait(ctx context.Context) bool {
	switch {
	case b.next == 0:
		b.next = 50 * time.Millisecond
	default:
		b.next = min(2*b.next, 2*time.Second)
	}
	t := time.NewTimer(b.next)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// reset starts the intervals over: etcd answered.
func (b *backoff) reset() { b.next = 0 }
