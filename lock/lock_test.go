package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// sharedEtcd is the etcd of this package's tests, started by the first
// that needs it, as a process of its own.
var sharedEtcd = etcdtest.Shared{Process: true}

// testEtcd is the package's etcd; under -short it skips the test.
func testEtcd(t testing.TB) *etcdtest.Cluster {
	t.Helper()
	return sharedEtcd.Get(t)
}

// TestMain runs 4 parallel tests at once where go test's default here is
// 2: they wait on proxies that hold replies back and on leases, not on
// the cores.
func TestMain(m *testing.M) {
	etcdtest.AtOnce(8)
	code := m.Run()
	sharedEtcd.Close()
	os.Exit(code)
}

// newClient is a client of the etcd at endpoint, closed when the test ends.
func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// request asks for lock name in a realm of the test's own, waiting as long
// as it takes.
func request(t *testing.T, name string) Request {
	return Request{
		Realm:      etcdtest.Realm(t, "/locktest/"),
		Name:       name,
		Info:       Info{Host: "testhost", PID: 1, Mode: ModeExec, Reason: "test"},
		Timeout:    -1,
		TTL:        5 * time.Second,
		RPCTimeout: 5 * time.Second,
	}
}

// TestDeadlineCountsFromSend: with replies held back, the lease's safe
// deadline is still counted from when the keepalive was sent.
func TestDeadlineCountsFromSend(t *testing.T) {
	t.Parallel()
	proxy, err := etcdtest.NewProxy(testEtcd(t).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() }) // after the clients through it (cleanups run last first): it waits for their connections
	client := newClient(t, proxy.URL())
	// Warm the connection up so the delay hits only the grant.
	if _, err := client.Get(context.Background(), "warm-up"); err != nil {
		t.Fatal(err)
	}
	const ttl, delay = 10 * time.Second, 700 * time.Millisecond
	proxy.DelayRx(delay, 0)
	sent := time.Now()
	l, err := grantLease(context.Background(), client, ttl, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	replied := time.Now()
	defer l.close(context.Background())
	if replied.Sub(sent) < delay {
		t.Fatalf("the reply was not held back: %v", replied.Sub(sent))
	}
	// Counted from the send, the deadline is the held-back time before
	// reply + TTL.
	if got, fromReply := l.SafeUntil(), replied.Add(ttl); fromReply.Sub(got) < delay-100*time.Millisecond {
		t.Errorf("safe until only %v before reply + TTL: counted from the reply, not the send", fromReply.Sub(got))
	}

	// The same for the keepalives that follow: watch the deadline move.
	first := l.SafeUntil()
	poll.For(t, "a keepalive to be acknowledged", 20*time.Second, func() bool { return !l.SafeUntil().Equal(first) })
	if ahead := time.Until(l.SafeUntil()); ahead > ttl-(delay-100*time.Millisecond) {
		t.Errorf("a keepalive moved the deadline to %v from now: counted from the reply, not the send", ahead)
	}
}

// TestHolderLearnsOfDeletedKey: etcd does not revoke a lease when its key is
// deleted, so the holder must watch the key to know.
func TestHolderLearnsOfDeletedKey(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "deleted")
	h := mustAcquire(t, client, req)
	done, err := Unlock(context.Background(), client, req.Realm, req.Name)
	if err != nil || done.Removed == nil || done.Removed.Key != h.Key {
		t.Fatalf("Unlock = %+v, %v; want the holder %s", done, err, h.Key)
	}
	select {
	case <-h.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the holder was not told its key was deleted")
	}
	if !errors.Is(h.Err(), ErrKeyDeleted) {
		t.Errorf("Err() = %v, want ErrKeyDeleted", h.Err())
	}
}

// TestDetachKeepsPlace: --lock keeps the same key and create revision, with
// no lease, after its lease is revoked.
func TestDetachKeepsPlace(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "detach")
	req.Info.Mode = ModeLock
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Detach(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := Entries(context.Background(), client, req.Realm, req.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Key != h.Key || entries[0].CreateRevision != h.FencingToken || entries[0].Lease != 0 {
		t.Fatalf("after Detach: %+v; want key %s, revision %d, no lease", entries, h.Key, h.FencingToken)
	}
	if entries[0].Info == nil || entries[0].Info.Mode != ModeLock || entries[0].Info.Reason != "test" {
		t.Errorf("details lost: %+v", entries[0].Info)
	}
}

// TestQueueOrderAndTimeout: waiters queue in order; a waiter that times out
// removes its key and names the holder.
func TestQueueOrderAndTimeout(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "queue")
	first, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}

	impatient := req
	impatient.Timeout = 300 * time.Millisecond
	var blockedBy *Entry
	impatient.Blocked = func(e Entry) { blockedBy = &e }
	_, err = Acquire(context.Background(), client, impatient)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Holder == nil || ce.Holder.Key != first.Key {
		t.Fatalf("Acquire with timeout = %v; want a conflict naming %s", err, first.Key)
	}
	if blockedBy == nil || blockedBy.Key != first.Key {
		t.Errorf("Blocked was told %+v, want %s", blockedBy, first.Key)
	}

	got := make(chan *Holder, 1)
	go func() {
		h, err := Acquire(context.Background(), client, req)
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	waitEntries(t, client, req, 2)
	if err := first.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case second := <-got:
		if second == nil {
			return
		}
		if second.FencingToken <= first.FencingToken {
			t.Errorf("fencing token %d not above %d", second.FencingToken, first.FencingToken)
		}
		second.Release(context.Background())
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the lock")
	}
	waitEntries(t, client, req, 0)
}

// waitEntries waits until req's lock has n keys, holder and waiters.
func waitEntries(t *testing.T, client *clientv3.Client, req Request, n int) []Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var entries []Entry
	var err error
	if poll.Until(ctx, func() bool {
		entries, err = Entries(context.Background(), client, req.Realm, req.Name)
		return err == nil && len(entries) == n
	}) != nil {
		var keys []string
		for _, e := range entries {
			keys = append(keys, e.Key)
		}
		t.Fatalf("timed out after 10s: want %d keys, have %s (%v)", n, strings.Join(keys, ", "), err)
	}
	return entries
}

// TestWaiterLeavingMidQueue: when a waiter in the middle of the queue gives
// up, the one behind it goes on waiting for the holder, not for the lock to
// be free of the waiter it watched.
func TestWaiterLeavingMidQueue(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "mid")
	holder, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}

	midCtx, leave := context.WithCancel(context.Background())
	midDone := make(chan error, 1)
	go func() {
		_, err := Acquire(midCtx, client, req)
		midDone <- err
	}()
	waitEntries(t, client, req, 2)
	last := make(chan *Holder, 1)
	go func() {
		h, err := Acquire(context.Background(), client, req)
		if err != nil {
			t.Error(err)
		}
		last <- h
	}()
	waitEntries(t, client, req, 3)

	leave()
	if err := <-midDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the middle waiter: %v", err)
	}
	waitEntries(t, client, req, 2)
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	before, err := client.Get(wctx, holder.Key)
	if err != nil {
		t.Fatal(err)
	}
	deletions := client.Watch(wctx, holder.Key, clientv3.WithRev(before.Header.Revision+1))
	if err := holder.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	var released int64
	for wr := range deletions {
		if len(wr.Events) > 0 {
			released = wr.Events[0].Kv.ModRevision
			break
		}
	}

	h := <-last
	if h == nil {
		return
	}
	defer h.Release(context.Background())
	// The read that found the turn is of a revision that has the
	// holder's key gone: the release's, or a later one.
	if h.taken < released {
		t.Errorf("the last waiter took the lock at revision %d, before the holder released it at %d", h.taken, released)
	}
}

// TestDetachWithLostReply: a detach that etcd applied but whose answer never
// arrived is reported as done, not as a failure that would leave a kept
// lock nobody knows about (and that a retried --lock queues behind).
func TestDetachWithLostReply(t *testing.T) {
	t.Parallel()
	proxy, err := etcdtest.NewProxy(testEtcd(t).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() }) // after the clients through it (cleanups run last first): it waits for their connections
	client, direct := newClient(t, proxy.URL()), newClient(t, testEtcd(t).Endpoint())
	h, err := Acquire(context.Background(), client, request(t, "lost-reply"))
	if err != nil {
		t.Fatal(err)
	}
	proxy.BlackholeRx() // requests reach etcd, answers are dropped
	detached := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		detached <- h.Detach(ctx)
	}()
	// Once etcd has applied the detach, let answers through again.
	keyState := func() (int64, int64) {
		resp, err := direct.Get(context.Background(), h.Key)
		if err != nil || len(resp.Kvs) == 0 {
			return 0, -1
		}
		return resp.Kvs[0].CreateRevision, resp.Kvs[0].Lease
	}
	applied, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	var rev, lease int64
	if poll.Until(applied, func() bool {
		rev, lease = keyState()
		return rev == h.FencingToken && lease == 0
	}) != nil {
		t.Fatalf("the detach never reached etcd within 20s: revision %d, lease %x", rev, lease)
	}
	proxy.Heal()
	select {
	case err := <-detached:
		if err != nil {
			t.Errorf("Detach = %v, but etcd kept the lock", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Detach did not return")
	}
	if rev, lease := keyState(); rev != h.FencingToken || lease != 0 {
		t.Errorf("after Detach: revision %d, lease %x; want %d, none", rev, lease, h.FencingToken)
	}
	if _, err := direct.Delete(context.Background(), h.Key); err != nil {
		t.Fatal(err)
	}
}

// TestBackoffStartsOverAfterSuccess: one hiccup must not make every later
// retry wait the longest interval.
func TestBackoffStartsOverAfterSuccess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // wait only computes the interval then
	var b backoff
	for i := 0; i < 8; i++ {
		b.wait(ctx)
	}
	if b.next != 2*time.Second {
		t.Fatalf("after 8 failures the interval is %v, want the 2s cap", b.next)
	}
	b.reset()
	b.wait(ctx)
	if b.next != 50*time.Millisecond {
		t.Errorf("after a success the next interval is %v, want 50ms", b.next)
	}
}

// mustAcquire takes the lock at once, or fails t; the lock is released when
// t ends.
func mustAcquire(t *testing.T, client *clientv3.Client, req Request) *Holder {
	t.Helper()
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Release(context.Background()) })
	return h
}

// acquireAsync starts Acquire(req) and returns where its result will come.
func acquireAsync(client *clientv3.Client, req Request) <-chan acquired {
	got := make(chan acquired, 1)
	go func() {
		h, err := Acquire(context.Background(), client, req)
		got <- acquired{h, err}
	}()
	return got
}

type acquired struct {
	h   *Holder
	err error
}

// notYet fails the test if the waiter got (or failed to get) the lock
// within a second: it must still be waiting.
func notYet(t *testing.T, got <-chan acquired, why string) {
	t.Helper()
	select {
	case r := <-got:
		if r.h != nil {
			r.h.Release(context.Background())
		}
		t.Fatalf("%s, the waiter returned (%v)", why, r.err)
	case <-time.After(time.Second):
	}
}

// nowHolds waits for the waiter's Acquire and returns its lock.
func nowHolds(t *testing.T, got <-chan acquired) *Holder {
	t.Helper()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("the waiter: %v", r.err)
		}
		t.Cleanup(func() { r.h.Release(context.Background()) })
		return r.h
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the lock within 10s")
		return nil
	}
}

// queue reads req's lock: its keys and its stopping records.
func queue(t *testing.T, client *clientv3.Client, req Request) (entries, stopping []Entry) {
	t.Helper()
	q, err := ReadQueue(context.Background(), client, req.Realm, req.Name)
	if err != nil {
		t.Fatal(err)
	}
	return q.Entries, q.Stopping
}

// TestUnlockWaitsForHolderToStop: after --unlock, the next waiter gets the
// lock only once the old holder has released it (its command stopped),
// not when its key is deleted: the old holder's stopping record, on its
// lease, keeps the lock taken until then.
func TestUnlockWaitsForHolderToStop(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"Unlock", "UnlockKey"} {
		t.Run(how, func(t *testing.T) {
			client := newClient(t, testEtcd(t).Endpoint())
			req := request(t, "stop-"+how)
			a := mustAcquire(t, client, req)
			b := acquireAsync(client, req)
			waitEntries(t, client, req, 2)

			var done *Unlocked
			var err error
			if how == "Unlock" {
				done, err = Unlock(context.Background(), client, req.Realm, req.Name)
			} else {
				done, err = UnlockKey(context.Background(), client, req.Realm, req.Name, a.Key)
			}
			if err != nil || done.Removed == nil || done.Removed.Key != a.Key || !done.Stopping {
				t.Fatalf("%s = %+v, %v; want %s removed, stopping", how, done, err, a.Key)
			}
			select {
			case <-a.Context().Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the holder was not told its key was deleted")
			}
			entries, stopping := queue(t, client, req)
			if len(entries) != 1 || entries[0].Key == a.Key {
				t.Fatalf("keys after %s: %+v; want the waiter's alone", how, entries)
			}
			wantKey := fmt.Sprintf("%s%019d-%x", StoppingPrefix(req.Realm, req.Name), a.FencingToken, a.lease.id)
			if len(stopping) != 1 || stopping[0].Key != wantKey || stopping[0].Lease != int64(a.lease.id) || stopping[0].CreateRevision != a.FencingToken ||
				!stopping[0].Stopping || stopping[0].Info == nil || stopping[0].Info.Reason != "test" {
				t.Fatalf("stopping records: %+v; want %s, on the lease of %s", stopping, wantKey, a.Key)
			}
			// Unlocking again removes nobody: the waiter keeps its place.
			if again, err := Unlock(context.Background(), client, req.Realm, req.Name); err != nil || again.Removed != nil || len(again.Pending) != 1 {
				t.Fatalf("Unlock again = %+v, %v; want nothing removed, one pending", again, err)
			}
			notYet(t, b, "with the old holder's key gone but its lease alive")

			// Someone new is turned away, naming the holder being stopped.
			impatient := req
			impatient.Timeout = 0
			_, err = Acquire(context.Background(), client, impatient)
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Holder == nil || !ce.Holder.Stopping || !strings.Contains(err.Error(), "(unlocked; stopping its command)") {
				t.Errorf("--nowait while the holder stops: %v; want a conflict naming it as stopping", err)
			}

			if err := a.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			h := nowHolds(t, b)
			if h.FencingToken <= a.FencingToken {
				t.Errorf("fencing token %d not above %d", h.FencingToken, a.FencingToken)
			}
			if _, stopping := queue(t, client, req); len(stopping) != 0 {
				t.Errorf("records left after the release: %+v", stopping)
			}
		})
	}
}

// TestUnlockSemaphoreHolder: a stopping record takes a slot of a semaphore
// too; a second --unlock takes the other holder, and a third finds only
// holders being stopped and removes nobody (the waiter keeps its place).
func TestUnlockSemaphoreHolder(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "stop-sem")
	req.Limit = 2
	a1 := mustAcquire(t, client, req)
	a2 := mustAcquire(t, client, req)
	b := acquireAsync(client, req)
	waitEntries(t, client, req, 3)

	done, err := Unlock(context.Background(), client, req.Realm, req.Name)
	if err != nil || done.Removed == nil || done.Removed.Key != a1.Key || !done.Stopping {
		t.Fatalf("Unlock = %+v, %v; want the oldest holder %s removed, stopping", done, err, a1.Key)
	}
	notYet(t, b, "with one holder left and one stopping")

	done, err = Unlock(context.Background(), client, req.Realm, req.Name)
	if err != nil || done.Removed == nil || done.Removed.Key != a2.Key || !done.Stopping {
		t.Fatalf("second Unlock = %+v, %v; want %s removed, stopping", done, err, a2.Key)
	}
	done, err = Unlock(context.Background(), client, req.Realm, req.Name)
	if err != nil || done.Removed != nil || len(done.Pending) != 2 {
		t.Fatalf("third Unlock = %+v, %v; want nothing removed, two pending", done, err)
	}
	entries, stopping := queue(t, client, req)
	if holders, waiters := Split(entries, stopping); len(stopping) != 2 || len(holders) != 0 || len(waiters) != 1 {
		t.Fatalf("after three unlocks: %d holders, %d waiters, %d stopping; want 0, 1, 2", len(holders), len(waiters), len(stopping))
	}
	notYet(t, b, "with both holders stopping")

	if err := a2.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	nowHolds(t, b)
}

// TestUnlockWithoutProcessLeavesNoRecord: a key that no process keeps on
// its lease (detached by --lock, moved to a lease of its own by
// --min-hold) has no command to stop: it is deleted without a record,
// and the waiter goes on at once.
func TestUnlockWithoutProcessLeavesNoRecord(t *testing.T) {
	for _, how := range []string{"detached", "held for"} {
		t.Run(how, func(t *testing.T) {
			client := newClient(t, testEtcd(t).Endpoint())
			req := request(t, "no-record")
			a, err := Acquire(context.Background(), client, req)
			if err != nil {
				t.Fatal(err)
			}
			if how == "detached" {
				err = a.Detach(context.Background())
			} else {
				_, err = a.HoldFor(context.Background(), time.Minute)
			}
			if err != nil {
				t.Fatal(err)
			}
			b := acquireAsync(client, req)
			waitEntries(t, client, req, 2)
			done, err := Unlock(context.Background(), client, req.Realm, req.Name)
			if err != nil || done.Removed == nil || done.Removed.Key != a.Key || done.Stopping {
				t.Fatalf("Unlock = %+v, %v; want %s removed without a record", done, err, a.Key)
			}
			nowHolds(t, b)
			if _, stopping := queue(t, client, req); len(stopping) != 0 {
				t.Errorf("records: %+v", stopping)
			}
		})
	}
}

// TestUnlockWaiterKey: --unlock --holder on a waiter's key removes it
// without a record (it runs nothing); it gives up when its turn comes,
// and the waiter behind it moves up.
func TestUnlockWaiterKey(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "waiter-key")
	a := mustAcquire(t, client, req)
	w1 := acquireAsync(client, req)
	entries := waitEntries(t, client, req, 2)
	w2 := acquireAsync(client, req)
	waitEntries(t, client, req, 3)

	done, err := UnlockKey(context.Background(), client, req.Realm, req.Name, entries[1].Key)
	if err != nil || done.Removed == nil || done.Removed.Key != entries[1].Key || done.Stopping {
		t.Fatalf("UnlockKey(waiter) = %+v, %v; want it removed without a record", done, err)
	}
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-w1:
		if !errors.Is(r.err, ErrPlaceLost) {
			t.Errorf("the removed waiter: %v, want ErrPlaceLost", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the removed waiter did not give up")
	}
	nowHolds(t, w2)
}

// TestStoppingRecordIsNoLock: a stopping record is not a key under the
// lock's prefix (etcd's recipe would take it for a holder or waiter), not
// a lock of its own in List, and not a key of the lock whose name looks
// like it; List shows it with its lock.
func TestStoppingRecordIsNoLock(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "rec")
	a := mustAcquire(t, client, req)
	lookalike := req
	lookalike.Name = "rec!stopping:"
	l, err := Acquire(context.Background(), client, lookalike)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	if done, err := Unlock(context.Background(), client, req.Realm, req.Name); err != nil || !done.Stopping {
		t.Fatalf("Unlock = %+v, %v", done, err)
	}

	resp, err := client.Get(context.Background(), Prefix(req.Realm, req.Name), clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("keys under the lock's prefix: %v, %v; want none", resp.Kvs, err)
	}
	if entries, _ := Entries(context.Background(), client, req.Realm, req.Name); len(entries) != 0 {
		t.Errorf("Entries: %+v; want none", entries)
	}
	if entries, stopping := queue(t, client, lookalike); len(entries) != 1 || entries[0].Key != l.Key || len(stopping) != 0 {
		t.Errorf("the lock %q: %+v, stopping %+v; want its own key alone", lookalike.Name, entries, stopping)
	}
	locks, err := listAll(client, req.Realm)
	if err != nil {
		t.Fatal(err)
	}
	// In the order of their keys: "rec%21stopping%3A/" before "rec/".
	if len(locks) != 2 || locks[1].Name != "rec" || locks[0].Name != "rec!stopping:" {
		t.Fatalf("List: %+v; want the locks rec!stopping: and rec", locks)
	}
	if rec := locks[1]; len(rec.Entries) != 0 || len(rec.Stopping) != 1 || rec.Stopping[0].CreateRevision != a.FencingToken {
		t.Errorf("List's rec: %+v; want no keys, one record of %s", rec, a.Key)
	}
	if lk := locks[0]; len(lk.Entries) != 1 || len(lk.Stopping) != 0 {
		t.Errorf("List's %q: %+v; want its key alone", lk.Name, lk)
	}
}

// TestNowaitWhileHolderStops: with nothing but a stopping record in the
// way, a newcomer does not hold the lock at once (the one round trip of
// the uncontended path counts the records); it is told who is stopping.
func TestNowaitWhileHolderStops(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "nowait-stopping")
	a := mustAcquire(t, client, req)
	if done, err := Unlock(context.Background(), client, req.Realm, req.Name); err != nil || !done.Stopping {
		t.Fatalf("Unlock = %+v, %v", done, err)
	}
	impatient := req
	impatient.Timeout = 0
	h, err := Acquire(context.Background(), client, impatient)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Holder == nil || !ce.Holder.Stopping || ce.Holder.CreateRevision != a.FencingToken {
		if h != nil {
			h.Release(context.Background())
		}
		t.Fatalf("Acquire while the holder stops: %v; want a conflict naming it", err)
	}
	waitEntries(t, client, req, 0) // the newcomer's key went again
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	h, err = Acquire(context.Background(), client, impatient)
	if err != nil {
		t.Fatalf("Acquire after the holder released: %v", err)
	}
	h.Release(context.Background())
}

// TestJunkUnderStoppingPrefix: keys under a lock's stopping prefix that
// distlock did not write (no lease, not on the lease their name says, a
// value that is not distlock's) keep nobody waiting.
func TestJunkUnderStoppingPrefix(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "junk")
	sp := StoppingPrefix(req.Realm, req.Name)
	lease, err := client.Grant(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Revoke(context.Background(), lease.ID)
	for _, put := range []struct {
		key  string
		opts []clientv3.OpOption
	}{
		{sp + "0000000000000000001-1", nil},
		{fmt.Sprintf("%s0000000000000000001-%x", sp, lease.ID+1), []clientv3.OpOption{clientv3.WithLease(lease.ID)}},
		{sp + "1", []clientv3.OpOption{clientv3.WithLease(lease.ID)}},
		// Named and leased as a record, but the value is not distlock's:
		// an earlier distlock's record of a holder of etcd's recipe.
		{fmt.Sprintf("%s0000000000000000001-%x", sp, lease.ID), []clientv3.OpOption{clientv3.WithLease(lease.ID)}},
	} {
		if _, err := client.Put(context.Background(), put.key, "junk", put.opts...); err != nil {
			t.Fatal(err)
		}
	}
	req.Timeout = 0
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatalf("Acquire with junk under %s: %v", sp, err)
	}
	h.Release(context.Background())
	if _, stopping := queue(t, client, req); len(stopping) != 0 {
		t.Errorf("junk taken for records: %+v", stopping)
	}
}

// TestUnlockRacesUnlock: of two unlocks of the same holder at once, one
// deletes the key; both report it removed and stopping, and neither
// touches the waiter.
func TestUnlockRacesUnlock(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "race")
	a := mustAcquire(t, client, req)
	b := acquireAsync(client, req)
	waitEntries(t, client, req, 2)
	results := make(chan *Unlocked, 2)
	for range 2 {
		go func() {
			done, err := Unlock(context.Background(), client, req.Realm, req.Name)
			if err != nil {
				t.Error(err)
			}
			results <- done
		}()
	}
	for range 2 {
		done := <-results
		if done == nil {
			continue
		}
		// The loser either saw the record already (Pending) or lost the
		// delete to the winner (Removed, stopping).
		if (done.Removed == nil || done.Removed.Key != a.Key || !done.Stopping) && len(done.Pending) != 1 {
			t.Errorf("Unlock = %+v; want %s removed and stopping, or pending", done, a.Key)
		}
	}
	if entries, stopping := queue(t, client, req); len(entries) != 1 || len(stopping) != 1 {
		t.Fatalf("after two unlocks: %d keys, %d records; want the waiter and one record", len(entries), len(stopping))
	}
	notYet(t, b, "after two unlocks of the holder")
	a.Release(context.Background())
	nowHolds(t, b)
}

// TestUnlockEtcdRecipeHolder: a holder of etcd's own recipe
// (concurrency.Mutex, etcdctl lock) never learns that --unlock deleted its
// key and keeps its session's lease alive: a stopping record on that lease
// would keep the lock taken for as long as the session lives, stopping
// nothing. Its key is just deleted, and the distlock waiter behind it gets
// the lock while the session still lives.
func TestUnlockEtcdRecipeHolder(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "recipe")
	session, err := concurrency.NewSession(client, concurrency.WithTTL(60))
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	m := concurrency.NewMutex(session, strings.TrimSuffix(Prefix(req.Realm, req.Name), "/"))
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := acquireAsync(client, req)
	waitEntries(t, client, req, 2)

	done, err := Unlock(context.Background(), client, req.Realm, req.Name)
	if err != nil || done.Removed == nil || done.Removed.Key != m.Key() || done.Removed.Info != nil || done.Stopping {
		t.Fatalf("Unlock = %+v, %v; want the recipe's key %s removed without a record", done, err, m.Key())
	}
	if _, stopping := queue(t, client, req); len(stopping) != 0 {
		t.Errorf("records after unlocking the recipe's holder: %+v", stopping)
	}
	nowHolds(t, b)
	select {
	case <-session.Done():
		t.Fatal("the recipe's session ended: the waiter may have waited for it")
	default:
	}
}

// TestDeleteWaiterPastChangingHolders: whether a waiter still waits is
// checked on the keys just ahead of it, not on the holders at the head of
// the queue: a holder that left since the queue was read does not make
// deleting a waiter further back fail (and --unlock --holder read again,
// and again on a busy lock).
func TestDeleteWaiterPastChangingHolders(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "churn")
	a := mustAcquire(t, client, req)
	w1 := acquireAsync(client, req)
	waitEntries(t, client, req, 2)
	w2 := acquireAsync(client, req)
	waitEntries(t, client, req, 3)
	w3 := acquireAsync(client, req)
	entries := waitEntries(t, client, req, 4)
	target, err := client.Get(context.Background(), entries[3].Key)
	if err != nil || len(target.Kvs) != 1 {
		t.Fatalf("the last waiter's key: %v, %v", target, err)
	}

	// The holder goes, the next takes its place: the head of what was
	// read is gone, the waiter at the end still waits.
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	h1 := nowHolds(t, w1)
	ok, err := deleteWaiter(context.Background(), client, target.Kvs[0], entries[:3], nil, 1)
	if err != nil || !ok {
		t.Fatalf("deleteWaiter after the holder changed = %v, %v; want it deleted", ok, err)
	}
	waitEntries(t, client, req, 2)

	if err := h1.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := nowHolds(t, w2).Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-w3:
		if !errors.Is(r.err, ErrPlaceLost) {
			t.Errorf("the deleted waiter: %v, want ErrPlaceLost", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted waiter did not give up")
	}
}

// TestUnlockWithLostReply: a delete that etcd applied but whose answer
// never came is not reported as a failure (after which the operator
// unlocks again, and frees the next holder too): unlock looks again and
// says what etcd did. If it cannot look again either, it says that the
// key may be gone all the same.
func TestUnlockWithLostReply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		heals bool
	}{
		{"answer lost", true},
		{"every answer lost", false},
	} {
		heals := tc.heals
		t.Run(tc.name, func(t *testing.T) {
			proxy, err := etcdtest.NewProxy(testEtcd(t).Endpoint())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() }) // after the clients through it (cleanups run last first): it waits for their connections
			client, lossy := newClient(t, testEtcd(t).Endpoint()), newClient(t, proxy.URL())
			defer lossy.Close() // before the proxy: a stuck link keeps it from closing
			req := request(t, "unlock-lost")
			a := mustAcquire(t, client, req)
			if err := a.Detach(context.Background()); err != nil {
				t.Fatal(err)
			}
			b := acquireAsync(client, req)
			waitEntries(t, client, req, 2)

			unlockStep = func(step string) {
				switch {
				case step == "delete":
					proxy.BlackholeRx() // the delete reaches etcd, its answer is dropped
				case step == "settle" && heals:
					proxy.Heal()
				}
			}
			defer func() { unlockStep = func(string) {} }()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			done, err := Unlock(ctx, lossy, req.Realm, req.Name)
			proxy.Heal()
			if heals {
				if err != nil || done.Removed == nil || done.Removed.Key != a.Key {
					t.Fatalf("Unlock with its answer lost = %+v, %v; want %s removed", done, err, a.Key)
				}
			} else if err == nil || !strings.Contains(err.Error(), "may have deleted it all the same") {
				t.Fatalf("Unlock with every answer lost = %+v, %v; want an error that says the key may be gone", done, err)
			}
			nowHolds(t, b) // etcd applied the delete either way
		})
	}
}

// TestLaterRecordTakesNoSlot: a stopping record that names a key created
// after ours (only a forged one can: a key exists before its record)
// takes no slot from us, when we queue as when we wait.
func TestLaterRecordTakesNoSlot(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "later-record")
	ctx := context.Background()
	lease, err := client.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Revoke(ctx, lease.ID)
	forged := stoppingKey(StoppingPrefix(req.Realm, req.Name), 1<<50, int64(lease.ID))
	if _, err := client.Put(ctx, forged, `{"host":"forger","pid":1,"mode":"exec"}`, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	req.Timeout = 0 // --nowait
	h, err := Acquire(ctx, client, req)
	if err != nil {
		t.Fatalf("Acquire beside a record of a later key = %v; want the lock", err)
	}
	h.Release(ctx)
}

// TestSlowEtcdShortTimeoutFreeLock: a free lock, and an etcd whose
// answers take longer than the --timeout: the timeout bounds the wait for
// the lock, not the call that queues, so the lock is taken (it once gave
// up, naming our own key as the holder).
func TestSlowEtcdShortTimeoutFreeLock(t *testing.T) {
	t.Parallel()
	proxy, err := etcdtest.NewProxy(testEtcd(t).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() }) // after the clients through it (cleanups run last first): it waits for their connections
	client := newClient(t, proxy.URL())
	if _, err := client.Get(context.Background(), "warm-up"); err != nil {
		t.Fatal(err)
	}
	req := request(t, "slow-free")
	req.Timeout = 300 * time.Millisecond
	proxy.DelayRx(600*time.Millisecond, 0)
	h, err := Acquire(context.Background(), client, req)
	proxy.UndelayRx()
	if err != nil {
		t.Fatalf("a free lock on a slow etcd: %v", err)
	}
	h.Release(context.Background())
}
