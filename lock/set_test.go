package lock

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// setRequests is a request for each of names, in SetOrder.
func setRequests(t *testing.T, names ...string) []Request {
	base := request(t, names[0])
	var reqs []Request
	for _, n := range SetOrder(base.Realm, names) {
		r := base
		r.Name = n
		reqs = append(reqs, r)
	}
	return reqs
}

// TestSetHoldsEveryLock: a set holds each of its locks, on one lease,
// and gives them all back at once; a lock of the set that is taken keeps
// the set out, and a --nowait set gives back what it had taken.
func TestSetHoldsEveryLock(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	reqs := setRequests(t, "set-b", "set-a")
	if reqs[0].Name != "set-a" {
		t.Fatalf("SetOrder put %q first", reqs[0].Name)
	}
	h, err := AcquireSet(context.Background(), client, reqs)
	if err != nil {
		t.Fatal(err)
	}
	set := h.Set()
	if len(set) != 2 || set[0].Name() != "set-a" || set[1].Name() != "set-b" || set[0].lease != set[1].lease {
		t.Fatalf("Set() = %+v; want set-a then set-b on one lease", set)
	}
	for _, r := range reqs {
		nowait := r
		nowait.Timeout = 0
		if _, err := Acquire(context.Background(), client, nowait); !errors.As(err, new(*ConflictError)) {
			t.Errorf("%s while the set holds it: %v, want a conflict", r.Name, err)
		}
	}
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if entries, _ := queue(t, client, r); len(entries) != 0 {
			t.Errorf("%s after the release: %d keys", r.Name, len(entries))
		}
	}

	other := request(t, "set-b")
	b := mustAcquire(t, client, other)
	nowait := setRequests(t, "set-a", "set-b")
	nowait[0].Timeout = 0
	_, err = AcquireSet(context.Background(), client, nowait)
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.Name != "set-b" {
		t.Fatalf("a --nowait set with set-b taken: %v, want a conflict on set-b", err)
	}
	if entries, _ := queue(t, client, nowait[0]); len(entries) != 0 {
		t.Errorf("set-a kept %d keys after the set gave up", len(entries))
	}
	b.Release(context.Background())
}

// TestSetsInACircleFinish: sets that share locks, asked for in opposite
// orders and in a three-way circle, all get their turns: SetOrder puts
// every set's locks in one order.
func TestSetsInACircleFinish(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	sets := [][]string{{"c1", "c2"}, {"c2", "c1"}, {"c2", "c3"}, {"c3", "c1"}}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(sets))
	for _, names := range sets {
		for round := 0; round < 4; round++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := AcquireSet(context.Background(), client, setRequests(t, names...))
				if err != nil {
					errs <- err
					return
				}
				errs <- h.Release(context.Background())
			}()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("sets in a circle did not all finish within 60s: a deadlock")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestSetLosesOneLock: a set whose second lock is unlocked from
// elsewhere has lost the set: its context ends and says which lock.
func TestSetLosesOneLock(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	reqs := setRequests(t, "lose-a", "lose-b")
	h, err := AcquireSet(context.Background(), client, reqs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(context.Background())
	if _, err := Unlock(context.Background(), client, reqs[1].Realm, "lose-b"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the set did not learn that lose-b was unlocked")
	}
	if err := h.Err(); !errors.Is(err, ErrKeyDeleted) || h.LostName() != "lose-b" {
		t.Errorf("Err = %v, LostName = %q; want lose-b's key deleted", err, h.LostName())
	}
}

// TestSetRequeuesWhenAnEarlierLockIsLost: while a set waits for its
// second lock, its first is unlocked from elsewhere: it gives the set back
// and queues again from the first lock, on a new key, rather than keep a
// place behind the second while it has lost the first.
func TestSetRequeuesWhenAnEarlierLockIsLost(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	reqs := setRequests(t, "req-a", "req-b")
	told := make(chan Outage, 10)
	reqs[0].Outage = func(o Outage) { told <- o }
	b := mustAcquire(t, client, request(t, "req-b"))
	got := acquireSetAsync(client, reqs)
	first := waitEntries(t, client, reqs[0], 1)[0]
	waitEntries(t, client, reqs[1], 2)
	if _, err := UnlockKey(context.Background(), client, reqs[0].Realm, "req-a", first.Key); err != nil {
		t.Fatal(err)
	}
	again := waitEntries(t, client, reqs[0], 1)[0]
	if again.Key == first.Key {
		t.Fatalf("the set kept its key %s on req-a", first.Key)
	}
	if err := b.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := nowHolds(t, got)
	if h.Key != again.Key {
		t.Errorf("the set holds req-a as %s, want its new key %s", h.Key, again.Key)
	}
	// It said which lock it lost, as such, not as an etcd outage.
	select {
	case o := <-told:
		if o.Kind != Regather || !strings.Contains(o.Err.Error(), `lock "req-a"`) {
			t.Errorf("told %+v, want Regather naming req-a", o)
		}
	default:
		t.Error("the set said nothing of the lock it lost")
	}
}

// acquireSetAsync starts AcquireSet(reqs) and returns where its result will
// come.
func acquireSetAsync(client *clientv3.Client, reqs []Request) <-chan acquired {
	got := make(chan acquired, 1)
	go func() {
		h, err := AcquireSet(context.Background(), client, reqs)
		got <- acquired{h, err}
	}()
	return got
}
