package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Outage is news of etcd's silence, for a waiter or a holder to say.
type Outage struct {
	Kind OutageKind
	// Since is when the silence began, as far as distlock can tell: when
	// it sent the last keepalive that etcd acknowledged.
	Since time.Time
	// GiveUp (EtcdQuiet) is when the lease is given up, unless etcd
	// answers first: for a holder, when its command is stopped.
	GiveUp time.Time
	// Holding says whether the lock is ours, or we wait for it.
	Holding bool
	// Err (PlaceLost) is why the waiter's place was lost.
	Err error
}

// OutageKind is what an Outage tells.
type OutageKind int

const (
	// EtcdQuiet: etcd has left the lease unconfirmed for a third of its
	// TTL.
	EtcdQuiet OutageKind = iota + 1
	// EtcdBack: etcd confirmed the lease again, after EtcdQuiet.
	EtcdBack
	// PlaceLost: a waiter's lease was lost while it waited, so its place
	// in the queue is gone; it queues again, at the back, once etcd
	// answers.
	PlaceLost
	// StillOut: etcd is still out of reach, said once a minute while a
	// waiter that lost its place waits for it.
	StillOut
	// Rejoined: etcd answers again, and the waiter queues again.
	Rejoined
	// Regather: a lock of a set, taken already, was lost while the
	// others were gathered (Err says which); the set is given back and
	// queued for again from the first lock.
	Regather
)

// OutageError is a wait that ended at its timeout while etcd was out of
// reach: what stood in the way then was etcd, not a holder.
type OutageError struct {
	Name  string
	Since time.Time // when etcd last confirmed our lease
	Err   error     // what the last call got instead of an answer, if it says more
}

func (e *OutageError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("lock %q was not acquired in time: etcd did not answer (%v)", e.Name, e.Err)
	}
	return fmt.Sprintf("lock %q was not acquired in time: etcd has not answered for %v",
		e.Name, time.Since(e.Since).Round(time.Second))
}

// tell passes o to req.Outage, if set.
func (req Request) tell(o Outage) {
	if req.Outage != nil {
		req.Outage(o)
	}
}

// lostPlace says whether err, which ended a wait under the lease l, came
// from etcd's silence: the lease was lost, or etcd dropped our key with
// it, or a call timed out. Such a waiter holds nothing and may queue
// again. A key deleted by someone while our lease lives (--unlock
// --holder), a signal, the timeout and every refusal end the wait.
func lostPlace(ctx, wctx context.Context, client *clientv3.Client, req Request, l *lease, err error) bool {
	var limit *LimitError
	var conflict *ConflictError
	switch {
	case ctx.Err() != nil, wctx.Err() != nil, req.Timeout == 0,
		errors.As(err, &limit), errors.As(err, &conflict):
		return false
	case l.err() != nil, errors.Is(err, errMemberLost):
		return true
	case errors.Is(err, ErrPlaceLost):
		// Our key is gone, and our lease not yet known to be: ask
		// etcd whether it expired (or whether it answers at all).
		rctx, cancel := context.WithTimeout(wctx, req.RPCTimeout)
		defer cancel()
		resp, terr := client.TimeToLive(rctx, l.id)
		if terr != nil {
			return silence(terr) && ctx.Err() == nil && wctx.Err() == nil
		}
		return resp.TTL < 0
	}
	return silence(err)
}

// silence says whether err means that etcd did not answer in time, or
// had no leader to answer with, rather than that it refused.
func silence(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var code codes.Code
	var etcdErr rpctypes.EtcdError
	var grpcErr interface{ GRPCStatus() *status.Status }
	switch {
	case errors.As(err, &etcdErr):
		code = etcdErr.Code()
	case errors.As(err, &grpcErr):
		code = grpcErr.GRPCStatus().Code()
	default:
		return false
	}
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// rejoin waits until etcd answers again with a new lease for the waiter
// whose lease old was lost, saying once a minute that etcd is still out
// of reach. It revokes old first, as far as etcd lets it: a key of old that
// etcd still keeps would stand ahead of the new one until it expired.
// If wctx times out first, it returns an *OutageError; if etcd refuses a
// new lease, that refusal.
func rejoin(ctx, wctx context.Context, client *clientv3.Client, req Request, old *lease, since time.Time) (*lease, error) {
	if old != nil {
		old.stopKeepAlive()
	}
	next := time.Now().Add(time.Minute)
	var retry backoff
	for {
		if old != nil {
			old, _ = revokeOld(wctx, client, req, old) // still there: etcd is silent
		}
		if old == nil {
			gctx, cancel := context.WithTimeout(wctx, req.RPCTimeout)
			l, err := grantLease(gctx, client, req.TTL, req.Lead, req.Outage)
			cancel()
			switch {
			case err == nil:
				return l, nil
			case !silence(err) && wctx.Err() == nil:
				return nil, fmt.Errorf("grant a lease: %w", err) // a refusal, not a silence
			}
		}
		if now := time.Now(); !now.Before(next) {
			req.tell(Outage{Kind: StillOut, Since: since})
			next = now.Add(time.Minute)
		}
		if !retry.wait(wctx) {
			break
		}
	}
	if old != nil {
		// Ended by a signal or the timeout: one more try, so that the
		// old key does not stand in the queue until its lease expires.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), req.RPCTimeout)
		_, _ = client.Revoke(rctx, old.id)
		cancel()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, &OutageError{Name: req.Name, Since: since}
}

// revokeOld revokes the lost lease old, and returns nil once it is gone
// (or etcd refuses to revoke it: then it expires by itself), or old again
// while etcd does not answer.
func revokeOld(wctx context.Context, client *clientv3.Client, req Request, old *lease) (*lease, error) {
	rctx, cancel := context.WithTimeout(wctx, req.RPCTimeout)
	defer cancel()
	_, err := client.Revoke(rctx, old.id)
	switch {
	case err == nil, errors.Is(err, rpctypes.ErrLeaseNotFound):
		return nil, nil
	case silence(err) || rctx.Err() != nil:
		return old, err
	}
	return nil, err
}
