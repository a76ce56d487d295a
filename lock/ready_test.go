package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// readyRequest is request with Ready set and a TTL no other test grants,
// so that its lease can be told apart in the shared etcd.
func readyRequest(t *testing.T, name string, ttl time.Duration) (Request, chan struct{}) {
	req := request(t, name)
	ready := make(chan struct{})
	req.Ready, req.TTL = ready, ttl
	return req, ready
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

// TestReadyHoldsEveryWrite: a request with Ready writes nothing to etcd,
// no lease and no key, until Ready is closed; then it holds.
func TestReadyHoldsEveryWrite(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req, ready := readyRequest(t, "r", 4321*time.Second)
	got := acquireAsync(client, req)
	notYet(t, got, "with Ready open")
	if id := findLease(t, client, int64(req.TTL/time.Second)); id != 0 {
		t.Errorf("lease %x granted before Ready", id)
	}
	if n := keysUnder(t, client, req.Realm); n != 0 {
		t.Fatalf("%d keys under %s before Ready, want none", n, req.Realm)
	}
	close(ready)
	h := nowHolds(t, got)
	if n := keysUnder(t, client, req.Realm); n != 1 {
		t.Errorf("%d keys under %s once held, want 1 (%s)", n, req.Realm, h.Key)
	}
}

// TestReadyNeverComes: a request whose context ends before Ready returns
// at once, and leaves neither lease nor key.
func TestReadyNeverComes(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req, _ := readyRequest(t, "r", 4322*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h, err := Acquire(ctx, client, req)
	if h != nil {
		h.Release(context.Background())
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire: %v, want %v", err, context.Canceled)
	}
	if id := findLease(t, client, int64(req.TTL/time.Second)); id != 0 {
		t.Errorf("lease %x left in etcd", id)
	}
	if n := keysUnder(t, client, req.Realm); n != 0 {
		t.Errorf("%d keys under %s, want none", n, req.Realm)
	}
}
