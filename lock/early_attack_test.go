package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/poll"
)

// TestEarlyRecordLeaseDroppedWhenRejoinEnds: a waiter asks for its
// records' lease while it waits; if it loses its place (its lease lost,
// an etcd outage) and the wait then ends while it queues again (a
// signal, or --timeout), no record will be written on that lease, and it
// must be revoked, not left empty in etcd for the history span.
func TestEarlyRecordLeaseDroppedWhenRejoinEnds(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	holding := request(t, "early-rejoin")
	mustAcquire(t, client, holding)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := holding
	req.Deferred, req.History = true, 2*time.Hour // a lease of its own TTL, to be found (TestDeferredGiveUpRevokesEarlyLease uses 3h)
	req.Outage = func(o Outage) {
		if o.Kind == PlaceLost {
			cancel() // a signal, as the place is lost
		}
	}
	got := make(chan error, 1)
	go func() {
		_, err := AcquireSet(ctx, client, []Request{req})
		got <- err
	}()
	// The waiter is queued behind h, and its records' lease granted.
	var waiter Entry
	poll.For(t, "the waiter's key", 10*time.Second, func() bool {
		entries, err := Entries(context.Background(), client, req.Realm, req.Name)
		if err != nil || len(entries) != 2 {
			return false
		}
		waiter = entries[1]
		return true
	})
	ttl := int64(wholeSeconds(newEarlyGrant(req.History, req.RPCTimeout).ttl()))
	var recordsLease clientv3.LeaseID
	poll.For(t, "the records' lease", 10*time.Second, func() bool {
		recordsLease = findLease(t, client, ttl)
		return recordsLease != 0
	})
	if _, err := client.Revoke(context.Background(), clientv3.LeaseID(waiter.Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("AcquireSet = %v, want the wait ended by the signal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not end")
	}
	resp, err := client.TimeToLive(context.Background(), recordsLease)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TTL > 0 {
		t.Errorf("the records' lease %x was left in etcd (TTL %ds), with no record to keep", recordsLease, resp.TTL)
	}
}

// findLease is a lease in etcd granted with ttl seconds that has as much
// left, or 0.
func findLease(t *testing.T, client *clientv3.Client, ttl int64) clientv3.LeaseID {
	t.Helper()
	leases, err := client.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Leases {
		resp, err := client.TimeToLive(context.Background(), l.ID)
		if err == nil && resp.GrantedTTL == ttl && resp.TTL > ttl-60 {
			return l.ID
		}
	}
	return 0
}
