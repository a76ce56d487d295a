package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/etcdtest"
)

// TestEarlyLeaseNotAskedBeforeTheGrant: etcd serves the grants but its
// answers never come (a slow member: the proposals are applied after the
// client gave up). The lock's own lease is a TTL long and goes by itself;
// a records' lease asked for beside it would live for the history span
// and its ID would not be known to drop it: it is asked for only once the
// lock's grant is answered. (From a fresh reader's attack on 3ccfe15.)
func TestEarlyLeaseNotAskedBeforeTheGrant(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	direct := newClient(t, endpoint)
	losing := clientLosingAnswers(t, endpoint, func(method string, _ any) bool {
		return method == "/etcdserverpb.Lease/LeaseGrant"
	})
	req := deferredRequest(t, "lost-grant")
	req.History, req.RPCTimeout = 5*time.Hour+7*time.Second, time.Second
	ttl := earlyTTL(req)
	_, err := Acquire(context.Background(), losing, req)
	if err == nil {
		t.Fatal("acquired, want a failed grant")
	}
	noLeaseLeft(t, direct, ttl, "a run that never queued")
}

// TestSignalDuringGrantEndsAtOnce: a signal while the lock's lease is
// being granted by a silent etcd ends the acquisition at once, not after
// a records' grant's RPC timeout. (From a fresh reader's attack.)
func TestSignalDuringGrantEndsAtOnce(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	losing := clientLosingAnswers(t, endpoint, func(method string, _ any) bool {
		return method == "/etcdserverpb.Lease/LeaseGrant"
	})
	req := deferredRequest(t, "sig-grant")
	req.RPCTimeout = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := Acquire(ctx, losing, req)
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want canceled", err)
	}
	if took > 2*time.Second {
		t.Errorf("a signal 200ms into the grant ended the acquisition only after %v", took)
	}
}

// TestKeyWatchCompactedBeforeItIsMade: etcd's history is compacted past
// the lease's grant revision, from which the key's watch starts, before
// the watch is made (as the grant's answer arrives): the holder still
// learns that its key was deleted. (From a fresh reader's attack.)
func TestKeyWatchCompactedBeforeItIsMade(t *testing.T) {
	t.Parallel()
	etcdtest.SkipShort(t)
	// An etcd of its own: a compaction breaks other tests' watches.
	cluster, err := etcdtest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the clients (cleanups run last first)
	endpoint := cluster.Endpoint()
	direct := newClient(t, endpoint)
	req := deferredRequest(t, "compacted")
	client := clientAfterAnswer(t, endpoint, func(r any) bool {
		_, ok := r.(*pb.LeaseGrantRequest)
		return ok
	}, func() {
		var rev int64
		for range 3 {
			resp, err := direct.Put(context.Background(), req.Realm+"filler", "x")
			if err != nil {
				t.Error(err)
				return
			}
			rev = resp.Header.Revision
		}
		if _, err := direct.Compact(context.Background(), rev, clientv3.WithCompactPhysical()); err != nil {
			t.Log(err)
		}
	})
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(context.Background())
	deleteAndSeeLost(t, direct, h, func() {})
}

// TestNowaitEarlyAnswerLost: a --nowait that finds the lock taken asks
// for no records' lease: one whose answer was lost (etcd applied it)
// would stay a history span long. (From a fresh reader's attack.)
func TestNowaitEarlyAnswerLost(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	direct := newClient(t, endpoint)
	holder := mustAcquire(t, direct, request(t, "nowait-lost"))
	defer holder.Release(context.Background())
	req := deferredRequest(t, "nowait-lost")
	req.History, req.Timeout, req.RPCTimeout = 6*time.Hour+11*time.Second, 0, time.Second
	ttl := earlyTTL(req)
	losing := losingGrantsOf(t, endpoint, ttl)
	_, err := Acquire(context.Background(), losing, req)
	var conflict *ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	noLeaseLeft(t, direct, ttl, "a --nowait that found the lock taken")
}

// TestEarlyAnswerLostThenSignal: a waiter asks for the records' lease
// once its own grant is answered; etcd applies that grant but its answer
// is lost (the member slows down just then). A signal then ends the
// wait: no record will be written, and the records' lease, of an ID
// chosen by distlock, is revoked all the same. (From a fresh reader's
// attack: with etcd's own IDs it stayed a history span.)
func TestEarlyAnswerLostThenSignal(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	direct := newClient(t, endpoint)
	holder := mustAcquire(t, direct, request(t, "ea"))
	defer holder.Release(context.Background())
	req := deferredRequest(t, "ea")
	req.History, req.RPCTimeout = 7*time.Hour+13*time.Second, time.Second
	ttl := earlyTTL(req)
	losing := losingGrantsOf(t, endpoint, ttl)
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan struct{})
	req.Blocked = func(Entry) { close(queued) }
	go func() { <-queued; cancel() }() // the signal, while it waits
	_, err := Acquire(ctx, losing, req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	noLeaseLeft(t, direct, ttl, "a waiter that never held the lock")
}

// earlyTTL is the TTL of the records' early lease of req, in seconds.
func earlyTTL(req Request) int64 {
	return wholeSeconds(newEarlyGrant(req.History, req.RPCTimeout).ttl())
}

// losingGrantsOf is a client of the etcd at endpoint that loses etcd's
// answers to the grants of leases of ttl seconds (etcd applies them).
func losingGrantsOf(t *testing.T, endpoint string, ttl int64) *clientv3.Client {
	return clientLosingAnswers(t, endpoint, func(_ string, r any) bool {
		g, ok := r.(*pb.LeaseGrantRequest)
		return ok && g.TTL == ttl
	})
}

// noLeaseLeft fails the test if etcd has a lease of ttl seconds, left
// by what by says; it revokes it.
func noLeaseLeft(t *testing.T, client *clientv3.Client, ttl int64, by string) {
	t.Helper()
	if left := findLease(t, client, ttl); left != 0 {
		resp, _ := client.TimeToLive(context.Background(), left)
		t.Errorf("lease %x (TTL %ds) left by %s", left, resp.TTL, by)
		_, _ = client.Revoke(context.Background(), left)
	}
}
