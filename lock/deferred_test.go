package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/poll"
)

// waitBehind acquires req (Deferred, with history) behind a holder of the
// same lock, once it waits: the holder lets go as soon as req's key is
// queued behind it.
func waitBehind(t *testing.T, client *clientv3.Client, req Request) *Holder {
	t.Helper()
	first := mustAcquire(t, client, request(t, req.Name))
	queued := make(chan struct{})
	req.Blocked = func(Entry) { close(queued) }
	got := acquireAsync(client, req)
	<-queued
	if err := first.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.h
}

// deferredRequest is request with Deferred set and a history span.
func deferredRequest(t *testing.T, name string) Request {
	req := request(t, name)
	req.Deferred, req.History = true, time.Hour
	return req
}

// TestDeferredReleaseWritesTheWholeRecord: a holder of a Deferred request
// let go before Begin writes its history record once, complete, with the
// release, on the lease granted while it waited (longer than the span by
// the slack), and never rewrote its key.
func TestDeferredReleaseWritesTheWholeRecord(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := deferredRequest(t, "d")
	h := waitBehind(t, client, req)
	events := watchRealm(t, client, req.Realm)
	h.Started()
	h.Ending("ran", 0)
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	hk := HistoryKey(req.Realm, req.Name, h.FencingToken)
	evs := events()
	r := recordAt(t, evs, h.Key, hk)
	if r.Outcome != EndReleased || r.Ended != "ran" {
		t.Errorf("record %+v, want a complete one", r)
	}
	for _, ev := range evs {
		switch {
		case ev.Type == mvccpb.PUT && string(ev.Kv.Key) == hk && ev.Kv.ModRevision != deletedAt(evs, h.Key):
			t.Errorf("the record was also written at revision %d, before the release", ev.Kv.ModRevision)
		case ev.Type == mvccpb.PUT && string(ev.Kv.Key) == h.Key:
			t.Errorf("the key was rewritten at revision %d, before Begin", ev.Kv.ModRevision)
		}
	}
	if ttl := leaseTTLOf(t, client, hk); ttl <= 3600 || ttl > 3600+450 {
		t.Errorf("the record's lease has %ds left; want the span and up to an eighth of it more (granted while waiting)", ttl)
	}
}

// deletedAt is the revision at which key was deleted among evs.
func deletedAt(evs []*clientv3.Event, key string) int64 {
	for _, ev := range evs {
		if ev.Type == mvccpb.DELETE && string(ev.Kv.Key) == key {
			return ev.Kv.ModRevision
		}
	}
	return 0
}

// TestDeferredBegin: Begin makes the writes a Deferred request held back:
// the key says since when it is held, and the history record is begun.
func TestDeferredBegin(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := deferredRequest(t, "b")
	h := waitBehind(t, client, req)
	defer h.Release(context.Background())
	h.Begin()
	poll.For(t, "the begun record and the key's since", 10*time.Second, func() bool {
		got, err := History(context.Background(), client, req.Realm, req.Name, 5, time.Second)
		if err != nil || len(got) != 1 || got[0].Record == nil || got[0].Record.Outcome != "" {
			return false
		}
		resp, err := client.Get(context.Background(), h.Key)
		return err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision > resp.Kvs[0].CreateRevision
	})
}

// TestDeferredWatchMissesNothing: a delete of a Deferred request's key
// that held at once, between the acquisition and Started (an --unlock as
// the command starts), ends the lock.
func TestDeferredWatchMissesNothing(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	h, err := Acquire(context.Background(), client, deferredRequest(t, "w"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(context.Background())
	deleteAndSeeLost(t, client, h, h.Started)
}

// TestDeferredKeyWatchedFromTheQueue: the key of a Deferred request that
// held at once is watched from its queueing on, on the stream made beside
// it: a delete ends the lock with no Started, no Begin.
func TestDeferredKeyWatchedFromTheQueue(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	h, err := Acquire(context.Background(), client, deferredRequest(t, "k"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(context.Background())
	deleteAndSeeLost(t, client, h, func() {})
}

// deleteAndSeeLost deletes h's key, calls then, and waits for h to learn
// that its key was deleted.
func deleteAndSeeLost(t *testing.T, client *clientv3.Client, h *Holder, then func()) {
	t.Helper()
	if _, err := client.Delete(context.Background(), h.Key); err != nil {
		t.Fatal(err)
	}
	then()
	select {
	case <-h.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the lock is still said held 10s after its key was deleted")
	}
	if err := h.Err(); !errors.Is(err, ErrKeyDeleted) {
		t.Errorf("Err = %v, want ErrKeyDeleted", err)
	}
}

// TestDeferredGiveUpRevokesEarlyLease: a Deferred request that waited and
// gave up leaves no lease behind: not the history lease granted while it
// waited (a span of three hours, which no other test uses, tells it
// apart: its TTL is the span and an eighth more).
func TestDeferredGiveUpRevokesEarlyLease(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	holder := mustAcquire(t, client, request(t, "g"))
	defer holder.Release(context.Background())
	req := deferredRequest(t, "g")
	req.History, req.Timeout = 3*time.Hour, 3*time.Second
	ttl := earlyTTL(req)
	granted := make(chan struct{})
	req.Blocked = func(Entry) {
		go func() {
			defer close(granted)
			poll.For(t, "the history lease granted while waiting", 3*time.Second, func() bool { return findLease(t, client, ttl) != 0 })
		}()
	}
	_, err := Acquire(context.Background(), client, req)
	var conflict *ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	<-granted
	noLeaseLeft(t, client, ttl, "the request that gave up")
}

// TestDeferredWaiterWatchesFromQueue: a Deferred request that waited has
// its key watched from its place in the queue on, before Started: a
// delete right after the turn ends the lock with no further call.
func TestDeferredWaiterWatchesFromQueue(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	h := waitBehind(t, client, deferredRequest(t, "q"))
	defer h.Release(context.Background())
	deleteAndSeeLost(t, client, h, func() {})
}

// TestDeferredNowaitLeavesNoEarlyLease: the records' lease is asked for
// beside the lock's own, so a --nowait that finds the lock taken has
// one; it leaves none behind.
func TestDeferredNowaitLeavesNoEarlyLease(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	holder := mustAcquire(t, client, request(t, "n"))
	defer holder.Release(context.Background())
	req := deferredRequest(t, "n")
	req.History, req.Timeout = 4*time.Hour, 0
	ttl := earlyTTL(req)
	_, err := Acquire(context.Background(), client, req)
	var conflict *ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	noLeaseLeft(t, client, ttl, "the --nowait that found the lock taken")
}
