package lock

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Shared holders (--shared) hold the lock together; every other key holds
// it alone. The queue is one queue, first come first served across both
// kinds: a shared key holds once no exclusive key, and no stopping record
// of one, stands before it; an exclusive key, once nothing stands before
// it (the plain lock's rule, waitForTurn). So a shared waiter behind an
// exclusive one waits for it, and an exclusive waiter behind shared
// holders waits for all of them: neither kind can starve the other.

// shared says whether the entry is a shared holder's or waiter's. A key
// that does not say so, etcdctl's empty value among them, is exclusive.
func (e Entry) shared() bool { return e.Info != nil && e.Info.Shared }

// shared says whether the request is for a shared holder.
func (req Request) shared() bool { return req.Info.Shared }

// lastExclusive is the newest exclusive entry of entries, oldest first,
// or nil: what a shared key behind them waits for.
func lastExclusive(entries []Entry) *Entry {
	for i := len(entries) - 1; i >= 0; i-- {
		if !entries[i].shared() {
			return &entries[i]
		}
	}
	return nil
}

// exclusiveRecords is the stopping records of exclusive keys created
// before rev: a shared key created at rev waits for them too.
func exclusiveRecords(rev int64, stopping []Entry) []Entry {
	var recs []Entry
	for _, r := range recordsBefore(rev, stopping) {
		if !r.shared() {
			recs = append(recs, r)
		}
	}
	return recs
}

// canHold says whether e, behind the entries ahead (oldest first) and the
// stopping records, holds a lock of limit n: Split's rule for one key.
func canHold(e Entry, ahead, stopping []Entry, n int) bool {
	if e.shared() {
		return lastExclusive(ahead) == nil && len(exclusiveRecords(e.CreateRevision, stopping)) == 0
	}
	return len(ahead)+countBefore(stopping, e.CreateRevision) < n
}

// waitShared is waitForTurn for a shared key: it returns once no exclusive
// key under pfx was created before myRev and no stopping record under sp
// is of such a key, with the revision at which it saw that; or
// ErrPlaceLost if our key is gone. Each look is one read of our key, the
// keys ahead and the records, at one revision; it then watches only the
// newest exclusive key ahead or, once there is none, the records, so that
// shared holders coming and going ahead of it wake it not at all.
func waitShared(ctx context.Context, client *clientv3.Client, key, pfx, sp string, myRev int64) (int64, error) {
	ahead := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMaxCreateRev(myRev - 1),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)}
	recs := recordsOf(sp, myRev)
	var retry backoff
	for {
		resp, err := client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", myRev)).
			Then(clientv3.OpGet(pfx, ahead...), clientv3.OpGet(recs.key, recs.opts...)).
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
		blocker := lastExclusive(parseEntries(onlyQueue(pfx, resp.Responses[0].GetResponseRange().Kvs)))
		from := resp.Header.Revision + 1
		var moved bool
		switch {
		case blocker != nil:
			moved = watchUntil(ctx, client, from, deleted, watched{key: blocker.Key})
		case len(exclusiveRecords(myRev, parseStopping(sp, resp.Responses[1].GetResponseRange().Kvs))) > 0:
			moved = watchUntil(ctx, client, from, deleted, recs)
		default:
			return resp.Header.Revision, nil
		}
		if !moved && !retry.wait(ctx) {
			return 0, ctx.Err()
		}
	}
}
