package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keeping a lock beyond this process: --lock (Detach, or with --expire a
// lease that nobody keeps alive) and --min-hold (HoldFor). In each case the
// key stays the same key with the same create revision, so it keeps its
// place at the head of the queue, and its value is written again.

// Keep keeps the lock beyond this process, for --lock: with expire 0 until
// Unlock removes it (Detach); otherwise etcd removes it as well, once a
// lease of at least expire (whole seconds, rounded up; etcd may grant
// more) that nobody keeps alive has run out. A leader change renews every
// lease to its full TTL (unless etcd checkpoints leases), so that may be
// later still. It returns when etcd removes the lock at the earliest, by
// this host's clock, as the key's value says it (Info.Expires), or zero.
func (h *Holder) Keep(ctx context.Context, expire time.Duration) (time.Time, error) {
	if err := h.single(); err != nil {
		return time.Time{}, err
	}
	if expire <= 0 {
		return time.Time{}, h.Detach(ctx)
	}
	granted, expires, err := h.grantUnkept(ctx, expire)
	if err != nil {
		return time.Time{}, fmt.Errorf("keep the lock: %w", err)
	}
	lease := granted.ID
	resp, err := h.moveOnto(ctx, lease, expires)
	switch {
	case err != nil:
		// As for Detach: the move may have been applied with only its
		// answer lost. Settle it, then look.
		kept, lerr := h.settleMove(ctx, lease)
		switch {
		case lerr != nil:
			return time.Time{}, fmt.Errorf("keep the lock: %w; whether it was kept is unknown: see --status, free it with --unlock (else etcd removes it within %v)", err, expire)
		case !kept:
			_ = h.revoke(ctx, lease)
			return time.Time{}, fmt.Errorf("keep the lock: %w", err)
		}
	case !resp.Succeeded:
		_ = h.revoke(ctx, lease)
		return time.Time{}, fmt.Errorf("keep the lock: %w", ErrKeyDeleted)
	}
	// Our own lease holds nothing now; if the revoke does not get
	// through, it expires by itself.
	_ = h.revoke(ctx, h.lease.id)
	return expires, nil
}

// Detach keeps the lock beyond this process: the key stays where it is in
// the queue (same key, same create revision) but no longer belongs to a
// lease, and the lease is revoked. Only Unlock removes it.
func (h *Holder) Detach(ctx context.Context) error {
	if err := h.single(); err != nil {
		return err
	}
	h.stopWatching(ctx)
	h.historyWritten(ctx) // the record is written before this process goes
	h.lease.stopKeepAlive()
	resp, err := h.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.FencingToken)).
		Then(clientv3.OpPut(h.Key, h.req.valueSince(h.Since))). // no lease option: detached
		Commit()
	if err != nil {
		// The put may have been applied with only its answer lost, or
		// may still be on its way. A failure reported then would leave
		// a kept lock that nobody knows about: settle it, then look.
		kept, lerr := h.settleMove(ctx, 0)
		switch {
		case lerr != nil:
			return fmt.Errorf("keep the lock: %w; whether it was kept is unknown: see --status, free it with --unlock", err)
		case !kept:
			return fmt.Errorf("keep the lock: %w", err)
		}
	} else if !resp.Succeeded {
		return fmt.Errorf("keep the lock: %w", ErrKeyDeleted)
	}
	// The key is detached and safe now; if the revoke does not get
	// through, the lease just expires by itself.
	_ = h.revoke(ctx, h.lease.id)
	return nil
}

// HoldFor keeps the lock taken for d more after this process has gone,
// for --min-hold: the key moves onto a new lease of d (whole seconds,
// rounded up; etcd may grant more) that nobody keeps alive, so etcd
// deletes it when d has passed and the next waiter goes on; its value
// says until when (Info.Expires). The old lease is then revoked. It
// returns the TTL etcd granted. A d under a second is waited out here,
// with the lease kept alive, and the lock released. On every error the
// lock is released, now or by etcd. Each call to etcd is bounded by the
// Request's RPCTimeout.
func (h *Holder) HoldFor(ctx context.Context, d time.Duration) (time.Duration, error) {
	if err := h.single(); err != nil {
		return 0, err
	}
	if d < time.Second {
		// Shorter than any lease etcd grants: waiting it out costs
		// less than a second, and lets nobody in early.
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-h.held.Done():
			t.Stop()
		}
		return 0, h.release(ctx)
	}
	granted, expires, err := h.grantUnkept(ctx, d)
	if err != nil {
		// On one line, as distlock says it.
		if rerr := h.release(ctx); rerr != nil {
			return 0, fmt.Errorf("hold the lock: %w; and release it: %w", err, rerr)
		}
		return 0, fmt.Errorf("hold the lock: %w", err)
	}
	resp, err := h.moveOnto(ctx, granted.ID, expires)
	// Revoking the old lease settles every case: after a move it holds no
	// key any more (and if the revoke fails, it expires by itself);
	// without one it deletes ours, and a move still on its way then finds
	// no key to compare with. (Not a release: that would delete the key
	// that moved.)
	_ = h.revoke(ctx, h.lease.id)
	switch {
	case err != nil:
		return 0, fmt.Errorf("hold the lock: %w", err)
	case !resp.Succeeded:
		_ = h.revoke(ctx, granted.ID)
		return 0, ErrNotHeld
	}
	return time.Duration(granted.TTL) * time.Second, nil
}

// grantUnkept grants a lease of d (whole seconds, rounded up) that nobody
// will keep alive, and returns it with the moment etcd expires it at the
// earliest: etcd starts counting once it grants, after we asked.
func (h *Holder) grantUnkept(ctx context.Context, d time.Duration) (*clientv3.LeaseGrantResponse, time.Time, error) {
	asked := time.Now()
	gctx, cancel := context.WithTimeout(ctx, h.req.RPCTimeout)
	defer cancel()
	resp, err := h.client.Grant(gctx, wholeSeconds(d))
	if err != nil {
		return nil, time.Time{}, err
	}
	return resp, asked.Add(time.Duration(resp.TTL) * time.Second), nil
}

// moveOnto stops watching the key and keeping our lease alive, and puts
// the key onto lease, if it is still ours, with a value that says when
// etcd expires it at the earliest (rounded down to the second, as Since
// is). What becomes of our own lease is the caller's to settle.
func (h *Holder) moveOnto(ctx context.Context, lease clientv3.LeaseID, expires time.Time) (*clientv3.TxnResponse, error) {
	h.stopWatching(ctx)
	h.lease.stopKeepAlive()
	req := h.req
	req.Info.Expires = expires.UTC().Truncate(time.Second)
	tctx, cancel := context.WithTimeout(ctx, h.req.RPCTimeout)
	defer cancel()
	move := clientv3.OpPut(h.Key, req.valueSince(h.Since), clientv3.WithLease(lease))
	txn := func(hl clientv3.LeaseID) (*clientv3.TxnResponse, error) {
		ops := []clientv3.Op{move}
		if hl != 0 {
			// The record says until when, and how the command ended.
			moved := *h
			moved.req = req
			ops = append(ops, clientv3.OpPut(HistoryKey(req.Realm, req.Name, h.FencingToken), h.recordOf(&moved, time.Time{}, h.hist), clientv3.WithLease(hl)))
		}
		return h.client.Txn(tctx).
			If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.FencingToken)).
			Then(ops...).
			Commit()
	}
	hl := h.historyLease(tctx)
	resp, err := txn(hl)
	if hl != 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The record's lease ran out (a holding longer than the history
		// span), and with it the move: the move comes first, with a
		// record on a new lease if etcd grants one.
		resp, err = txn(h.regrantHistory(tctx))
	}
	return resp, err
}

// settleMove finds out, after a move of our key onto lease (0: detached)
// whose answer did not come, whether the key is now there (kept) or gone.
// It revokes our lease first: that deletes the key if the move has not
// been applied, and a move that arrives later then finds no key to
// compare with, so what it reads next is final. It keeps trying for one
// RPCTimeout.
func (h *Holder) settleMove(ctx context.Context, lease clientv3.LeaseID) (kept bool, err error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.req.RPCTimeout)
	defer cancel()
	var retry backoff
	for {
		_, err = h.client.Revoke(rctx, h.lease.id)
		if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			break
		}
		if !retry.wait(rctx) {
			return false, err
		}
	}
	for {
		resp, err := h.client.Get(rctx, h.Key)
		if err == nil {
			kvs := resp.Kvs
			return len(kvs) == 1 && kvs[0].CreateRevision == h.FencingToken && kvs[0].Lease == int64(lease), nil
		}
		if !retry.wait(rctx) {
			return false, err
		}
	}
}
