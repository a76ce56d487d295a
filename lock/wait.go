package lock

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/stamp"
)

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
			stamp.AtRev("turn", resp.Header.Revision)
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
		if err := agree(name, n, false, append(entries, stopping...)); err != nil {
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
				stamp.AtRev("woken", ev.Kv.ModRevision)
				return true, ok
			}
		}
	}
	return false, ok
}

// keyWatch is a holder's watch of its key for the key's deletion
// (Holder.watch), made as the key was queued or by the holder.
type keyWatch struct {
	opened chan struct{} // closed once ch is set
	ch     clientv3.WatchChan
	rev    int64 // where it started
	stop   context.CancelFunc
}

// cancel ends the watch; a nil keyWatch has none.
func (kw *keyWatch) cancel() {
	if kw != nil {
		kw.stop()
	}
}

// watchKey watches key from revision rev, under ctx (which must end when
// the lease does), with a leader required, as the wait's watches are:
// etcd's client puts them on one stream. It returns at once: etcd's
// client returns a watch once etcd has answered that it is made, a round
// trip that the caller need not wait for.
func watchKey(ctx context.Context, client *clientv3.Client, key string, rev int64) *keyWatch {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	kw := &keyWatch{opened: make(chan struct{}), rev: rev, stop: cancel}
	go func() {
		defer close(kw.opened)
		kw.ch = client.Watch(wctx, key, clientv3.WithRev(rev))
	}()
	return kw
}

// wait returns once the key is deleted (gone), the watch breaks or ctx
// ends; ok says whether etcd answered the watch at all, next the revision
// to watch again from (after the last event it had).
func (kw *keyWatch) wait(ctx context.Context) (gone, ok bool, next int64) {
	next = kw.rev
	select {
	case <-ctx.Done():
		return false, false, next
	case <-kw.opened:
	}
	for {
		select {
		case <-ctx.Done():
			return false, ok, next
		case wr, open := <-kw.ch:
			if !open || wr.Err() != nil {
				return false, ok, next
			}
			ok = true
			for _, ev := range wr.Events {
				if deleted(ev) {
					return true, ok, next
				}
				next = max(next, ev.Kv.ModRevision+1)
			}
		}
	}
}

func deleted(ev *clientv3.Event) bool { return ev.Type == mvccpb.DELETE }

func anyEvent(*clientv3.Event) bool { return true }

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
