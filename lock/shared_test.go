package lock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// sharedRequest is request for a shared holder.
func sharedRequest(t *testing.T, name string) Request {
	req := request(t, name)
	req.Info.Shared = true
	return req
}

// TestSharedHoldersTogether: shared holders hold at once, on the
// uncontended path; an exclusive one does not get past them.
func TestSharedHoldersTogether(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	shared := sharedRequest(t, "together")
	shared.Timeout = 0
	mustAcquire(t, client, shared)
	mustAcquire(t, client, shared)
	excl := request(t, "together")
	excl.Timeout = 0
	_, err := Acquire(context.Background(), client, excl)
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.Holder == nil || !conflict.Holder.shared() {
		t.Fatalf("an exclusive holder behind two shared ones: %v, want a conflict naming a shared holder", err)
	}
	if entries, _ := queue(t, client, shared); len(entries) != 2 {
		t.Errorf("%d keys left, want the 2 shared holders'", len(entries))
	}
}

// TestSharedFirstComeFirstServed: an exclusive waiter behind shared
// holders waits for all of them, and a shared waiter that came after the
// exclusive one waits for it, even though only shared holders hold.
func TestSharedFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	shared, excl := sharedRequest(t, "fifo"), request(t, "fifo")
	s1 := mustAcquire(t, client, shared)
	s2 := mustAcquire(t, client, shared)
	x := acquireAsync(client, excl)
	waitEntries(t, client, shared, 3)
	s3 := acquireAsync(client, shared)
	entries := waitEntries(t, client, shared, 4)
	holders, waiters := Split(entries, nil)
	if len(holders) != 2 || len(waiters) != 2 || waiters[0].shared() || !waiters[1].shared() {
		t.Fatalf("Split = %d holders, waiters %+v; want 2 shared holders, then the exclusive and the shared waiter", len(holders), waiters)
	}
	notYet(t, s3, "with an exclusive waiter ahead")
	if err := s1.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	notYet(t, x, "with one shared holder left")
	if err := s2.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	hx := nowHolds(t, x)
	notYet(t, s3, "while the exclusive holder holds")
	if err := hx.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	nowHolds(t, s3)
}

// TestSharedBehindEtcdRecipe: a key of etcd's own recipe (etcdctl lock)
// says nothing of being shared, so it is exclusive: a shared waiter
// waits for it, and the recipe waits for shared holders.
func TestSharedBehindEtcdRecipe(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	shared := sharedRequest(t, "recipe-shared")
	session, err := concurrency.NewSession(client, concurrency.WithTTL(60))
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	m := concurrency.NewMutex(session, strings.TrimSuffix(Prefix(shared.Realm, shared.Name), "/"))
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := acquireAsync(client, shared)
	notYet(t, s, "behind etcd's recipe")
	if err := m.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	nowHolds(t, s)
	mustAcquire(t, client, shared)
	ctx, cancel := context.WithCancel(context.Background())
	locked := make(chan error, 1)
	go func() { locked <- m.Lock(ctx) }()
	select {
	case err := <-locked:
		t.Fatalf("etcd's recipe took the lock from shared holders (%v)", err)
	default:
	}
	waitEntries(t, client, shared, 3)
	if entries, _ := queue(t, client, shared); len(entries) != 3 || entries[2].Info != nil {
		t.Fatalf("queue %+v: want two shared holders and the recipe's waiter", entries)
	}
	cancel()
	<-locked
}

// TestSharedWaiterUnlock: --unlock --holder of a shared waiter removes it
// while an exclusive key stands before it, without a record; --unlock of
// the lock removes the oldest of the shared holders.
func TestSharedWaiterUnlock(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	shared, excl := sharedRequest(t, "unlock-shared"), request(t, "unlock-shared")
	s1 := mustAcquire(t, client, shared)
	s2 := mustAcquire(t, client, shared)
	x := acquireAsync(client, excl)
	waitEntries(t, client, shared, 3)
	w := acquireAsync(client, shared)
	entries := waitEntries(t, client, shared, 4)
	done, err := UnlockKey(context.Background(), client, shared.Realm, shared.Name, entries[3].Key)
	if err != nil || done.Removed == nil || done.Removed.Key != entries[3].Key || done.Stopping {
		t.Fatalf("UnlockKey(shared waiter) = %+v, %v; want it removed without a record", done, err)
	}
	for i := 0; i < 2; i++ {
		done, err = Unlock(context.Background(), client, shared.Realm, shared.Name)
		if err != nil || done.Removed == nil || done.Removed.Key != entries[i].Key || !done.Stopping {
			t.Fatalf("Unlock #%d = %+v, %v; want the shared holder %s removed, stopping", i+1, done, err, entries[i].Key)
		}
	}
	// The holders' records keep the lock taken until they release.
	notYet(t, x, "while the unlocked shared holders stop")
	for _, h := range []*Holder{s1, s2} {
		if err := h.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := nowHolds(t, x).Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The removed waiter learns it at its next look, as a plain one does.
	select {
	case r := <-w:
		if !errors.Is(r.err, ErrPlaceLost) {
			t.Errorf("the removed shared waiter: %v, want ErrPlaceLost", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the removed shared waiter did not give up")
	}
}

// TestSharedWithLimitDisagrees: a semaphore and shared holders do not mix.
func TestSharedWithLimitDisagrees(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	mustAcquire(t, client, sharedRequest(t, "mix"))
	sem := request(t, "mix")
	sem.Limit = 2
	_, err := Acquire(context.Background(), client, sem)
	var disagree *LimitError
	if !errors.As(err, &disagree) || !disagree.Shared || !strings.Contains(err.Error(), "--shared") {
		t.Fatalf("a semaphore behind a shared holder: %v, want a LimitError naming --shared", err)
	}
}

// TestSplitShared: which keys hold, by Split's rule, for queues of shared
// and exclusive keys and stopping records.
func TestSplitShared(t *testing.T) {
	s := func(rev int64) Entry {
		return Entry{Key: "s", CreateRevision: rev, Info: &Info{Host: "h", Shared: true}}
	}
	x := func(rev int64) Entry { return Entry{Key: "x", CreateRevision: rev, Info: &Info{Host: "h"}} }
	etcdctl := Entry{Key: "e", CreateRevision: 1}
	rec := func(e Entry) Entry { e.Stopping = true; return e }
	for _, tc := range []struct {
		name     string
		entries  []Entry
		stopping []Entry
		holders  int
	}{
		{"shared run", []Entry{s(1), s(2), s(3)}, nil, 3},
		{"shared, then exclusive, then shared", []Entry{s(1), s(2), x(3), s(4)}, nil, 2},
		{"exclusive first", []Entry{x(1), s(2), s(3)}, nil, 1},
		{"etcdctl's key first", []Entry{etcdctl, s(2)}, nil, 1},
		{"behind a shared record", []Entry{s(5)}, []Entry{rec(s(1))}, 1},
		{"behind an exclusive record", []Entry{s(5)}, []Entry{rec(x(1))}, 0},
		{"exclusive behind a shared record", []Entry{x(5)}, []Entry{rec(s(1))}, 0},
		{"a record of a later key", []Entry{s(5)}, []Entry{rec(x(9))}, 1},
	} {
		if holders, _ := Split(tc.entries, tc.stopping); len(holders) != tc.holders {
			t.Errorf("%s: %d hold, want %d", tc.name, len(holders), tc.holders)
		}
	}
}
