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
// passes (*ConflictError), or ctx ends (ctx's error). On every error the
// waiter's key and lease are removed again.
func Acquire(ctx context.Context, client *clientv3.Client, req Request) (*Holder, error) {
	gctx, cancel := context.WithTimeout(ctx, req.RPCTimeout)
	l, err := grantLease(gctx, client, req.TTL, req.Lead)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("grant a lease: %w", err)
	}
	h, err := acquire(ctx, client, req, l)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), req.RPCTimeout)
		defer cancel()
		_ = l.close(cctx) // revoking the lease deletes our key
		return nil, err
	}
	return h, nil
}

// acquire is etcd's recipe, in three steps: take a place in the queue,
// wait for the turn, confirm.
func acquire(ctx context.Context, client *clientv3.Client, req Request, l *lease) (*Holder, error) {
	p, err := enqueue(ctx, client, req, l)
	if err != nil {
		return nil, err
	}
	if p.holds {
		// Fewer than Limit were ahead: the uncontended path is one
		// round trip.
		return newHolder(client, l, p.key, p.rev, p.rev, req), nil
	}
	if req.Timeout == 0 {
		return nil, &ConflictError{Name: req.Name, Holder: p.ahead}
	}
	if req.Blocked != nil {
		req.Blocked(*p.ahead)
	}
	// The wait and the confirmation end the moment the lease is lost.
	lctx, cancel := l.bind(ctx)
	defer cancel()
	if err := waitTurn(ctx, lctx, client, req, l, p); err != nil {
		return nil, err
	}
	return confirm(lctx, client, req, l, p)
}

// place is a key of ours in a lock's queue.
type place struct {
	key   string
	rev   int64  // its create revision: the place in the queue
	holds bool   // fewer than Limit keys were ahead of it
	ahead *Entry // the oldest holder when we queued, if not us
}

// enqueue writes our key under the lock's prefix, on our lease, and reads
// the first Limit keys (the holders) in the same round trip: if ours is
// among them, we hold the lock already. For a plain lock that read is the
// first key alone, as in etcd's recipe.
func enqueue(ctx context.Context, client *clientv3.Client, req Request, l *lease) (place, error) {
	pfx := Prefix(req.Realm, req.Name)
	p := place{key: fmt.Sprintf("%s%x", pfx, l.id)}
	rctx, cancel := context.WithTimeout(ctx, req.RPCTimeout)
	defer cancel()
	resp, err := client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(p.key), "=", 0)).
		Then(clientv3.OpPut(p.key, req.value(), clientv3.WithLease(l.id)),
			clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend),
				clientv3.WithLimit(int64(req.limit())))).
		Commit()
	if err != nil {
		return p, fmt.Errorf("queue for the lock: %w", err)
	}
	if !resp.Succeeded {
		return p, fmt.Errorf("queue for the lock: key %s exists already", p.key)
	}
	p.rev = resp.Header.Revision
	var holders []Entry
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if kv.CreateRevision == p.rev {
			p.holds = true
			continue
		}
		holders = append(holders, parseEntry(kv))
	}
	if len(holders) > 0 {
		p.ahead = &holders[0]
	}
	// Everyone who holds must have given the same limit as we do, or the
	// lock would be one thing to some and another to others.
	return p, agree(req.Name, req.limit(), holders)
}

// waitTurn waits under lctx (the caller's ctx, ended by the lease's loss)
// until no key is ahead of p, or req.Timeout passes (*ConflictError).
func waitTurn(ctx, lctx context.Context, client *clientv3.Client, req Request, l *lease, p place) error {
	wctx := lctx
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeoutCause(lctx, req.Timeout, errTimedOut)
		defer cancel()
	}
	var err error
	if req.limit() == 1 {
		err = waitForTurn(wctx, client, Prefix(req.Realm, req.Name), p.rev)
	} else {
		err = waitForSlot(wctx, client, req.Name, Prefix(req.Realm, req.Name), p.rev, req.limit())
	}
	var disagree *LimitError
	if errors.As(err, &disagree) {
		return err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(context.Cause(wctx), errTimedOut):
		return conflict(ctx, client, req)
	case ctx.Err() != nil:
		return ctx.Err()
	case l.err() != nil:
		return fmt.Errorf("waiting for the lock: %w", l.err())
	}
	return fmt.Errorf("waiting for the lock: %w", err)
}

// confirm makes sure, now that it is our turn, that our key is still
// there, and records since when we hold the lock.
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
// the lock now.
func conflict(ctx context.Context, client *clientv3.Client, req Request) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), req.RPCTimeout)
	defer cancel()
	entries, err := Entries(rctx, client, req.Realm, req.Name)
	if err != nil || len(entries) == 0 {
		return &ConflictError{Name: req.Name}
	}
	return &ConflictError{Name: req.Name, Holder: &entries[0]}
}

// waitForTurn returns once no key under pfx was created before myRev. It
// watches only the immediate predecessor, so a release wakes one waiter.
// Errors from etcd (a leader election, a lost connection) are retried until
// ctx ends: the caller ends it when the lease can no longer be proven.
func waitForTurn(ctx context.Context, client *clientv3.Client, pfx string, myRev int64) error {
	opts := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(myRev-1))
	var retry backoff
	for {
		resp, err := getRetrying(ctx, client, pfx, &retry, opts...)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		gone, _ := watchFor(wctx, client, string(resp.Kvs[0].Key), resp.Header.Revision+1, deleted)
		cancel()
		if !gone && !retry.wait(ctx) {
			return ctx.Err()
		}
	}
}

// waitForSlot is waitForTurn for a semaphore of n: it returns once fewer
// than n keys under pfx were created before myRev. Each waiter watches only
// what can move it: behind another waiter, that waiter (it leaves, or it
// takes a slot, which rewrites its key); first in line, the holders (any
// of them leaving frees a slot). So a release wakes the first waiter alone.
// Every key ahead must agree on n (*LimitError): keys ahead only ever
// leave, so whoever will share the lock with us is among them.
func waitForSlot(ctx context.Context, client *clientv3.Client, name, pfx string, myRev int64, n int) error {
	opts := []clientv3.OpOption{clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithMaxCreateRev(myRev - 1)}
	var retry backoff
	for {
		resp, err := getRetrying(ctx, client, pfx, &retry, opts...)
		if err != nil {
			return err
		}
		ahead := resp.Kvs
		entries := make([]Entry, 0, len(ahead))
		for _, kv := range ahead {
			entries = append(entries, parseEntry(kv))
		}
		if err := agree(name, n, entries); err != nil {
			return err
		}
		if len(ahead) < n {
			return nil
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		var moved bool
		if len(ahead) == n {
			// First in line: any holder's leaving frees a slot. Keys
			// behind us leaving wake us too, rarely and harmlessly.
			moved, _ = watchFor(wctx, client, pfx, resp.Header.Revision+1, deleted, clientv3.WithPrefix())
		} else {
			moved, _ = watchFor(wctx, client, string(ahead[len(ahead)-1].Key), resp.Header.Revision+1, anyEvent)
		}
		cancel()
		if !moved && !retry.wait(ctx) {
			return ctx.Err()
		}
	}
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
