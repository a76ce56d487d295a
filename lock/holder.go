package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
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

	mu      sync.Mutex
	lost    chan struct{}
	lostErr error
	stop    context.CancelFunc
	done    chan struct{}
}

func newHolder(client *clientv3.Client, l *lease, key string, createRev, seenRev int64, req Request) *Holder {
	ctx, stop := context.WithCancel(context.Background())
	h := &Holder{
		client:       client,
		lease:        l,
		req:          req,
		Key:          key,
		FencingToken: createRev,
		Since:        now(),
		lost:         make(chan struct{}),
		stop:         stop,
		done:         make(chan struct{}),
	}
	go h.watch(ctx, seenRev+1)
	return h
}

// watch closes h.lost when the lease is lost or the key deleted.
func (h *Holder) watch(ctx context.Context, rev int64) {
	defer close(h.done)
	var retry backoff
	for {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		events := h.client.Watch(wctx, h.Key, clientv3.WithRev(rev))
		deleted := false
	events:
		for {
			select {
			case <-h.lease.Lost():
				cancel()
				h.lose(h.lease.Err())
				return
			case wr, ok := <-events:
				if !ok || wr.Err() != nil {
					break events
				}
				for _, ev := range wr.Events {
					if ev.Type == mvccpb.DELETE {
						deleted = true
					}
				}
				if deleted {
					break events
				}
			}
		}
		cancel()
		if deleted {
			h.lose(h.whyDeleted(ctx))
			return
		}
		if ctx.Err() != nil {
			return
		}
		// The watch broke (leader loss, compaction): look at the key
		// before watching again from where we looked.
		next, err := h.stillOurs(ctx)
		switch {
		case err == nil && next == 0:
			h.lose(h.whyDeleted(ctx))
			return
		case err == nil:
			rev = next
		}
		// The lease keepalive decides when etcd has been away too
		// long; until then, look again, without hammering it.
		retry.wait(ctx, h.lease.Lost())
	}
}

// whyDeleted tells a revoked or expired lease, which deletes the key too,
// from a key deleted by --unlock.
func (h *Holder) whyDeleted(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := h.client.TimeToLive(rctx, h.lease.id)
	if err == nil && resp.TTL == -1 {
		return ErrLeaseGone
	}
	return ErrKeyDeleted
}

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

func (h *Holder) lose(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lostErr == nil {
		h.lostErr = err
		close(h.lost)
	}
}

// Lost is closed when the lock is lost or can no longer be proven to be
// ours for the Request's Lead more.
func (h *Holder) Lost() <-chan struct{} { return h.lost }

// Err says why Lost was closed.
func (h *Holder) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lostErr
}

func (h *Holder) stopWatching() {
	h.stop()
	<-h.done
}

// Release gives the lock up by revoking its lease, which deletes the key
// and wakes the next waiter. If etcd cannot be reached, the lease expires
// by itself one TTL after the last keepalive.
func (h *Holder) Release(ctx context.Context) error {
	h.stopWatching()
	return h.lease.close(ctx)
}

// Detach keeps the lock beyond this process: the key stays where it is in
// the queue (same key, same create revision) but no longer belongs to a
// lease, and the lease is revoked. Only Unlock removes it.
func (h *Holder) Detach(ctx context.Context) error {
	h.stopWatching()
	h.lease.stopKeepAlive()
	info := h.req.Info
	info.Since = h.Since
	value, err := jsonValue(info)
	if err != nil {
		return err
	}
	resp, err := h.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.FencingToken)).
		Then(clientv3.OpPut(h.Key, value)). // no lease option: detached
		Commit()
	if err != nil {
		return fmt.Errorf("keep the lock: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("keep the lock: %w", ErrKeyDeleted)
	}
	// The key is detached and safe now; if the revoke does not get
	// through, the lease just expires by itself.
	_, _ = h.client.Revoke(ctx, h.lease.id)
	return nil
}
