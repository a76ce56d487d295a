package lock

import (
	"context"
	"testing"
	"time"
)

// TestKeepWithExpireKeepsPlace: --lock --expire leaves the key, same key
// and create revision, on a new lease that nobody keeps alive, its value
// saying when it expires; the old lease is revoked, and the waiter behind
// it gets the lock once etcd has expired the new one, not before.
func TestKeepWithExpireKeepsPlace(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "keep-expire")
	req.Info.Mode = ModeLock
	h := mustAcquire(t, client, req)
	oldLease := h.lease.id
	next := make(chan *Holder, 1)
	go func() {
		w := req
		w.Info.Mode = ModeExec
		h, err := Acquire(context.Background(), client, w)
		if err != nil {
			t.Error(err)
		}
		next <- h
	}()
	waitEntries(t, client, req, 2)

	asked := time.Now()
	expires, err := h.Keep(context.Background(), 2*time.Second)
	if err != nil || expires.Before(asked.Add(2*time.Second-time.Millisecond)) {
		t.Fatalf("Keep(2s) = %v, %v; want at least 2s from %v", expires, err, asked)
	}
	entries, err := Entries(context.Background(), client, req.Realm, req.Name)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(asked) < 2*time.Second {
		first := entries[0]
		if first.Key != h.Key || first.CreateRevision != h.FencingToken || first.Lease == 0 || first.Lease == int64(oldLease) {
			t.Fatalf("after Keep: %+v; want %s, revision %d, on a new lease (not %x)", first, h.Key, h.FencingToken, oldLease)
		}
		if first.Info == nil || first.State() != StateManual || !first.Info.Expires.Equal(expires.UTC().Truncate(time.Second)) {
			t.Errorf("after Keep: %+v; want a manual lock that expires at %v", first.Info, expires)
		}
		if ttl, err := client.TimeToLive(context.Background(), oldLease); err != nil || ttl.TTL != -1 {
			t.Errorf("the old lease: %+v, %v; want it revoked", ttl, err)
		}
	}
	select {
	case second := <-next:
		if waited := time.Since(asked); waited < 2*time.Second {
			t.Errorf("the next holder got the lock %v after Keep(2s), before the lease expired", waited)
		}
		if second != nil {
			second.Release(context.Background())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the next holder never got the lock")
	}
}
