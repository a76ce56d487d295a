package lock

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// earlySlack is how much longer than the history span the lease granted
// for the records while the lock is waited for lives, at most: an eighth
// of the span, so that records outlive their span by little. A wait longer
// than the slack leaves it unused, and the records get a lease of their
// own at the turn, so that they are kept for the whole span from there.
const earlySlack = time.Hour

// maxLeaseTTL is the longest lease etcd grants.
const maxLeaseTTL = 9_000_000_000 * time.Second

// earlyGrant is the history records' lease of a Deferred request
// (Request.early), asked for beside the queueing, so that the turn finds
// it granted and the command's start shares the cores with one write
// fewer. It is shared by the requests of a set. Its ID is chosen here:
// etcd may grant a lease whose answer never comes, and one that lives a
// history span must be revoked even then.
type earlyGrant struct {
	span       time.Duration
	timeout    time.Duration // one call's bound (RPCTimeout)
	once       sync.Once
	done       chan struct{} // closed once the grant has ended
	asked      time.Time
	id         clientv3.LeaseID // asked for; 0 if none
	granted    bool             // etcd said so
	ttlGranted time.Duration
}

func newEarlyGrant(span, timeout time.Duration) *earlyGrant {
	return &earlyGrant{span: span, timeout: timeout, done: make(chan struct{})}
}

// ttl is the lease asked for: the span and the slack, as far as etcd goes.
func (e *earlyGrant) ttl() time.Duration {
	return min(e.span+min(earlySlack, e.span/8), maxLeaseTTL)
}

// start asks for the lease in the background, once; a nil earlyGrant asks
// for nothing.
func (e *earlyGrant) start(client *clientv3.Client) {
	if e == nil {
		return
	}
	e.once.Do(func() {
		e.asked, e.id = time.Now(), clientv3.LeaseID(rand.Int64N(math.MaxInt64)+1)
		go func() {
			defer close(e.done)
			ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
			defer cancel()
			// etcd's client sends a grant again when the answer to the
			// first was lost: "lease exists" is then our own grant's
			// (another's lease with the same of 2^63 IDs is not to be
			// had), and is dropped like any grant not known to stand.
			g, err := clientv3.RetryLeaseClient(client).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: wholeSeconds(e.ttl()), ID: int64(e.id)})
			if err == nil {
				e.granted, e.ttlGranted = true, time.Duration(g.TTL)*time.Second
			}
		}()
	})
}

// started reports whether start was called.
func (e *earlyGrant) started() bool {
	if e == nil {
		return false
	}
	ok := true
	e.once.Do(func() { ok = false; close(e.done) })
	return ok
}

// ended reports, without waiting, whether a grant was asked for and has
// ended.
func (e *earlyGrant) ended() bool {
	if e == nil {
		return false
	}
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// take returns the lease for records begun now, once its grant has ended,
// or 0 if none was asked for, none was granted, or it was asked for so
// long ago that it would not keep a record for the whole span (then it is
// revoked, in the background).
func (e *earlyGrant) take(client *clientv3.Client) clientv3.LeaseID {
	if !e.started() {
		return 0
	}
	<-e.done
	if e.id != 0 && (!e.granted || time.Since(e.asked) > e.ttlGranted-e.span) {
		go e.drop(client) // an answer lost may hide a grant
		return 0
	}
	return e.id
}

// drop revokes the lease, if one may have been granted, when no record
// will be written on it (the lock was not taken): once the grant has
// ended (a revoke before it would find nothing, and the grant would then
// stand), within one call's bound for each.
func (e *earlyGrant) drop(client *clientv3.Client) {
	if !e.started() {
		return
	}
	t := time.NewTimer(e.timeout)
	defer t.Stop()
	select {
	case <-e.done:
	case <-t.C:
		return
	}
	if e.id != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		defer cancel()
		_, _ = client.Revoke(ctx, e.id)
	}
}
