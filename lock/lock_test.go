package lock

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

var testEtcd *etcdtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(etcdtest.Run(func(c *etcdtest.Cluster) int {
		testEtcd = c
		return m.Run()
	}))
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
	proxy, err := etcdtest.NewProxy(testEtcd.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	client := newClient(t, proxy.URL())
	// Warm the connection up so the delay hits only the grant.
	if _, err := client.Get(context.Background(), "warm-up"); err != nil {
		t.Fatal(err)
	}
	const ttl, delay = 10 * time.Second, 700 * time.Millisecond
	proxy.DelayRx(delay, 0)
	sent := time.Now()
	l, err := grantLease(context.Background(), client, ttl, 0)
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
	client := newClient(t, testEtcd.Endpoint())
	req := request(t, "deleted")
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(context.Background())
	removed, err := Unlock(context.Background(), client, req.Realm, req.Name)
	if err != nil || removed == nil || removed.Key != h.Key {
		t.Fatalf("Unlock = %+v, %v; want the holder %s", removed, err, h.Key)
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
	client := newClient(t, testEtcd.Endpoint())
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
	client := newClient(t, testEtcd.Endpoint())
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
func waitEntries(t *testing.T, client *clientv3.Client, req Request, n int) {
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
}

// TestWaiterLeavingMidQueue: when a waiter in the middle of the queue gives
// up, the one behind it goes on waiting for the holder, not for the lock to
// be free of the waiter it watched.
func TestWaiterLeavingMidQueue(t *testing.T) {
	client := newClient(t, testEtcd.Endpoint())
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
	got, err := client.Get(context.Background(), h.Key)
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("the last waiter's key: %v, %v", got, err)
	}
	// Taking the lock rewrites the key (its "since"): that must come
	// after the holder let go.
	if took := got.Kvs[0].ModRevision; took <= released {
		t.Errorf("the last waiter took the lock at revision %d, before the holder released it at %d", took, released)
	}
}

// TestDetachWithLostReply: a detach that etcd applied but whose answer never
// arrived is reported as done, not as a failure that would leave a kept
// lock nobody knows about (and that a retried --lock queues behind).
func TestDetachWithLostReply(t *testing.T) {
	proxy, err := etcdtest.NewProxy(testEtcd.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	client, direct := newClient(t, proxy.URL()), newClient(t, testEtcd.Endpoint())
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
