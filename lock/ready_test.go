package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/poll"
)

// readyRequest is request with Ready set and a TTL no other test grants,
// so that its lease can be told apart in the shared etcd.
func readyRequest(t *testing.T, name string, ttl time.Duration) (Request, chan struct{}) {
	req := request(t, name)
	ready := make(chan struct{})
	req.Ready, req.TTL = ready, ttl
	return req, ready
}

// grantedLease waits until etcd has a lease granted with ttl, and
// returns it.
func grantedLease(t *testing.T, client *clientv3.Client, ttl time.Duration) clientv3.LeaseID {
	t.Helper()
	var id clientv3.LeaseID
	poll.For(t, "the lease to be granted", 10*time.Second, func() bool {
		id = findLease(t, client, int64(ttl/time.Second))
		return id != 0
	})
	return id
}

// keysUnder are the keys in etcd under realm.
func keysUnder(t *testing.T, client *clientv3.Client, realm string) int64 {
	t.Helper()
	resp, err := client.Get(context.Background(), realm, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestReadyHoldsTheQueue: a request with Ready is granted its lease at
// once, and queues no key until Ready is closed; then it holds.
func TestReadyHoldsTheQueue(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req, ready := readyRequest(t, "r", 4321*time.Second)
	got := acquireAsync(client, req)
	grantedLease(t, client, req.TTL)
	notYet(t, got, "with Ready open")
	if n := keysUnder(t, client, req.Realm); n != 0 {
		t.Fatalf("%d keys under %s before Ready, want none", n, req.Realm)
	}
	close(ready)
	h := nowHolds(t, got)
	if n := keysUnder(t, client, req.Realm); n != 1 {
		t.Errorf("%d keys under %s once held, want 1 (%s)", n, req.Realm, h.Key)
	}
}

// TestReadyNeverComes: a request whose context ends while it waits for
// Ready revokes the lease it was granted and leaves no key.
func TestReadyNeverComes(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req, _ := readyRequest(t, "r", 4322*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		h, err := Acquire(ctx, client, req)
		if h != nil {
			h.Release(context.Background())
		}
		got <- err
	}()
	id := grantedLease(t, client, req.TTL)
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Acquire: %v, want %v", err, context.Canceled)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire did not return within 10s of its context's end")
	}
	if resp, err := client.TimeToLive(context.Background(), id); err != nil || resp.TTL > 0 {
		t.Errorf("the lease %x is still there (TTL %v, %v), want it revoked", id, resp.TTL, err)
	}
	if n := keysUnder(t, client, req.Realm); n != 0 {
		t.Errorf("%d keys under %s, want none", n, req.Realm)
	}
}
