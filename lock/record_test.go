package lock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// TestWithin: etcd reports whole seconds left, rounded down, so a run
// counts as recent unless even its least possible age is span.
func TestWithin(t *testing.T) {
	tests := []struct {
		granted, left, span time.Duration
		want                bool
	}{
		{time.Hour, time.Hour, time.Hour, true},
		{time.Hour, 0, time.Hour, true}, // about to expire: still there, still recent
		{2 * time.Second, time.Second, 2 * time.Second, true},
		{time.Hour, time.Hour - time.Second, time.Second, true},       // aged 0 to 1s
		{time.Hour, time.Hour - 2*time.Second, time.Second, false},    // aged more than 1s
		{time.Hour, time.Hour - 2*time.Second, 2 * time.Second, true}, // aged up to 2s
		{time.Hour, time.Hour - 3*time.Second, 2 * time.Second, false},
		{time.Hour, time.Hour + time.Second, time.Second, true}, // renewed by a new leader
		{time.Minute, 0, time.Hour, true},                       // a longer span than it was written with
	}
	for _, tt := range tests {
		r := LastRun{Granted: tt.granted, Left: tt.left}
		if got := r.Within(tt.span); got != tt.want {
			t.Errorf("granted %v, %v left: Within(%v) = %v, want %v", tt.granted, tt.left, tt.span, got, tt.want)
		}
	}
}

// TestLastRunKeyIsNoLocksKey: the record is under no lock's prefix, its
// own or another name's, and List passes it by.
func TestLastRunKeyIsNoLocksKey(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "a/b")
	for _, name := range []string{"a/b", "a", "a%2Fb!last-run", "a/b!last-run"} {
		if key := LastRunKey(req.Realm, "a/b"); strings.HasPrefix(key, Prefix(req.Realm, name)) {
			t.Errorf("%s is under the prefix of lock %q", key, name)
		}
	}
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RecordRun(context.Background(), time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	locks, err := listAll(client, req.Realm)
	if err != nil || len(locks) != 0 {
		t.Errorf("List = %+v, %v; want no locks", locks, err)
	}
}

// TestRecordRun: a run recorded while the lock is ours reads back, on a
// lease of the span; once the lock's key is gone nothing is written.
func TestRecordRun(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "rec")
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-90 * time.Second)
	if err := h.RecordRun(context.Background(), 90*time.Minute, started); err != nil {
		t.Fatal(err)
	}
	last, err := ReadLastRun(context.Background(), client, req.Realm, req.Name)
	if err != nil || last == nil || last.Run == nil {
		t.Fatalf("ReadLastRun = %+v, %v", last, err)
	}
	if r := last.Run; r.Host != "testhost" || r.PID != 1 || r.Reason != "test" || !strings.HasPrefix(r.Duration, "1m30") || r.Ended.Before(r.Started) {
		t.Errorf("record: %+v", r)
	}
	if last.Granted != 90*time.Minute || last.Left > last.Granted || last.Left < last.Granted-5*time.Second || !last.Within(90*time.Minute) {
		t.Errorf("record's lease: granted %v, %v left", last.Granted, last.Left)
	}
	h.Release(context.Background())

	gone := request(t, "rec-gone")
	h, err = Acquire(context.Background(), client, gone)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(context.Background())
	if _, err := Unlock(context.Background(), client, gone.Realm, gone.Name); err != nil {
		t.Fatal(err)
	}
	if err := h.RecordRun(context.Background(), time.Hour, time.Now()); !errors.Is(err, ErrNotHeld) {
		t.Errorf("RecordRun after the key was deleted = %v, want ErrNotHeld", err)
	}
	if last, err := ReadLastRun(context.Background(), client, gone.Realm, gone.Name); last != nil || err != nil {
		t.Errorf("a record was written without the lock: %+v, %v", last, err)
	}
}

// TestShorterSpanGoesByItsOwn: a reader with a shorter span than the record
// was written with counts the record's age by etcd's lease.
func TestShorterSpanGoesByItsOwn(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "short")
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(context.Background())
	written := time.Now() // before the lease is granted: its age is less
	if err := h.RecordRun(context.Background(), time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	var last *LastRun
	poll.For(t, "the record to be older than 1s by etcd's count", 30*time.Second, func() bool {
		last, err = ReadLastRun(context.Background(), client, req.Realm, req.Name)
		if err != nil || last == nil {
			t.Fatalf("ReadLastRun = %+v, %v", last, err)
		}
		if last.Within(time.Second) && time.Since(written) > 5*time.Second {
			t.Fatalf("5s after it was written, the record is still within 1s: granted %v, %v left", last.Granted, last.Left)
		}
		return !last.Within(time.Second)
	})
	if age := time.Since(written); age < time.Second {
		t.Errorf("the record counted as older than 1s after %v", age)
	}
	if !last.Within(time.Hour) {
		t.Errorf("granted %v, %v left: not within the hour it was written for", last.Granted, last.Left)
	}
}

// TestHoldForKeepsPlace: HoldFor leaves the key, same key and create
// revision, on a new lease that nobody keeps alive; the waiter behind it
// gets the lock when etcd expires that lease, not before.
func TestHoldForKeepsPlace(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "hold")
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	oldLease := h.lease.id
	next := make(chan *Holder, 1)
	go func() {
		h, err := Acquire(context.Background(), client, req)
		if err != nil {
			t.Error(err)
		}
		next <- h
	}()
	waitEntries(t, client, req, 2)

	asked := time.Now()
	granted, err := h.HoldFor(context.Background(), 1500*time.Millisecond)
	if err != nil || granted < 2*time.Second {
		t.Fatalf("HoldFor(1.5s) = %v, %v; want at least 2s", granted, err)
	}
	entries, err := Entries(context.Background(), client, req.Realm, req.Name)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(asked) < 2*time.Second {
		first := entries[0]
		if first.Key != h.Key || first.CreateRevision != h.FencingToken || first.Lease == 0 || first.Lease == int64(oldLease) {
			t.Fatalf("after HoldFor: %+v; want %s, revision %d, on a new lease (not %x)", first, h.Key, h.FencingToken, oldLease)
		}
		if ttl, err := client.TimeToLive(context.Background(), oldLease); err != nil || ttl.TTL != -1 {
			t.Errorf("the old lease: %+v, %v; want it revoked", ttl, err)
		}
	}
	select {
	case second := <-next:
		if waited := time.Since(asked); waited < 2*time.Second {
			t.Errorf("the next holder got the lock %v after HoldFor(1.5s), before the 2s lease expired", waited)
		}
		if second != nil {
			second.Release(context.Background())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the next holder never got the lock")
	}
}

// TestHoldForNotHeld: a holder whose key is gone holds nothing for anyone.
func TestHoldForNotHeld(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "hold-gone")
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unlock(context.Background(), client, req.Realm, req.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := h.HoldFor(context.Background(), 10*time.Second); !errors.Is(err, ErrNotHeld) {
		t.Errorf("HoldFor = %v, want ErrNotHeld", err)
	}
	resp, err := client.Get(context.Background(), req.Realm, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Errorf("keys left: %v, %v", resp.Kvs, err)
	}
}

// TestRecordRunLostReply: when neither the answer to the record's write
// nor the one to the revoke of its lease arrives, RecordRun cannot know
// whether a record stands, and says so (ErrMaybeRecorded) rather than
// that the next run will not be skipped.
func TestRecordRunLostReply(t *testing.T) {
	proxy, err := etcdtest.NewProxy(testEtcd(t).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() }) // after the clients through it (cleanups run last first): it waits for their connections
	req := request(t, "rec-lost")
	req.RPCTimeout = time.Second
	h, err := Acquire(context.Background(), newClient(t, proxy.URL()), req)
	if err != nil {
		t.Fatal(err)
	}
	recordGranted = proxy.BlackholeRx // requests reach etcd, answers are dropped
	defer func() { recordGranted = func() {} }()
	err = h.RecordRun(context.Background(), time.Hour, time.Now())
	proxy.Heal()
	// The connection may stay stuck after the cut; the lease expires.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	defer h.Release(ctx)
	if !errors.Is(err, ErrMaybeRecorded) {
		t.Errorf("RecordRun with its answers lost = %v, want ErrMaybeRecorded", err)
	}
}
