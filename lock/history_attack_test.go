package lock

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/poll"
)

// historyGone waits until the begun record of h, on a lease of the
// history span, has gone with its lease: the run outlived the span.
func historyGone(t *testing.T, client *clientv3.Client, req Request, h *Holder) {
	t.Helper()
	hk := HistoryKey(req.Realm, req.Name, h.FencingToken)
	waitBegun(t, client, req, h)
	poll.For(t, "the history lease to run out", 20*time.Second, func() bool {
		resp, err := client.Get(context.Background(), hk, clientv3.WithCountOnly())
		return err == nil && resp.Count == 0
	})
}

// TestHoldForAfterHistorySpan: a command that ran longer than the history
// span, then --min-hold: the lock must stay taken for the hold, whatever
// became of the record's lease.
func TestHoldForAfterHistorySpan(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "mh")
	req.History = time.Second
	h := mustAcquire(t, client, req)
	historyGone(t, client, req, h)
	granted, err := h.HoldFor(context.Background(), 30*time.Second)
	if err != nil || granted < 30*time.Second {
		t.Fatalf("HoldFor(30s) after the history span = %v, %v; want the lock held 30s", granted, err)
	}
	resp, err := client.Get(context.Background(), h.Key)
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != h.FencingToken {
		t.Fatalf("after HoldFor the key is gone (%v): the min-hold was not honoured", err)
	}
	got, err := History(context.Background(), client, req.Realm, req.Name, 5, time.Second)
	if err != nil || len(got) != 1 || got[0].Record == nil || got[0].Record.Expires.IsZero() {
		t.Errorf("history after HoldFor: %+v, %v; want the held record", got, err)
	}
}

// TestReleaseAfterHistorySpan: a run longer than the history span still
// leaves its completed record ("for at least SPAN"), and the release
// deletes the key in the transaction, not only by the revoke.
func TestReleaseAfterHistorySpan(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "rel")
	req.History = time.Second
	events := watchRealm(t, client, req.Realm)
	h := mustAcquire(t, client, req)
	historyGone(t, client, req, h)
	h.Ending("success", 0)
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := recordAt(t, events(), h.Key, HistoryKey(req.Realm, req.Name, h.FencingToken))
	if r.Outcome != EndReleased {
		t.Errorf("record %+v, want released", r)
	}
}

// leasesWithoutKeys are the leases of etcd, not among before, that hold
// no key and have more than a minute left.
func leasesWithoutKeys(t *testing.T, client *clientv3.Client, before map[clientv3.LeaseID]bool) []clientv3.LeaseID {
	t.Helper()
	resp, err := client.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []clientv3.LeaseID
	for _, l := range resp.Leases {
		if before[l.ID] {
			continue
		}
		ttl, err := client.TimeToLive(context.Background(), l.ID, clientv3.WithAttachedKeys())
		if err == nil && ttl.TTL > 60 && len(ttl.Keys) == 0 {
			out = append(out, l.ID)
		}
	}
	return out
}

func leaseSet(t *testing.T, client *clientv3.Client) map[clientv3.LeaseID]bool {
	t.Helper()
	resp, err := client.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[clientv3.LeaseID]bool{}
	for _, l := range resp.Leases {
		m[l.ID] = true
	}
	return m
}

// TestUnlockRacingReleaseLeaksNoLease: an --unlock that finds the holder,
// then finds it released before its delete, writes no record: the lease
// it granted for one must not stay behind, empty, for the history span.
// (Not parallel: unlockStep is the package's.)
func TestUnlockRacingReleaseLeaksNoLease(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "ul")
	h := mustAcquire(t, client, req)
	before := leaseSet(t, client)
	unlockStep = func(step string) {
		if step == "delete" {
			_ = h.Release(context.Background())
		}
	}
	defer func() { unlockStep = func(string) {} }()
	by := UnlockBy{Info: Info{Host: "admin", User: "alice"}, History: time.Hour}
	if _, err := Unlock(context.Background(), client, req.Realm, req.Name, by); err != nil {
		t.Fatal(err)
	}
	if leaked := leasesWithoutKeys(t, client, before); len(leaked) != 0 {
		t.Errorf("leases left holding nothing for an hour: %x", leaked)
	}
}

// TestUnlockOutlivesItsRecordLease: an --unlock whose first delete found
// the key changed, and whose next try comes after its record's lease
// (--history-span 1s) ran out, still unlocks. (Not parallel: unlockStep.)
func TestUnlockOutlivesItsRecordLease(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "ulx")
	h := mustAcquire(t, client, req)
	other, err := client.Grant(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	unlockStep = func(step string) {
		if step != "delete" {
			return
		}
		calls++
		switch calls {
		case 1: // the key moves to another lease: the delete finds it changed
			resp, err := client.Get(context.Background(), h.Key)
			if err != nil || len(resp.Kvs) != 1 {
				t.Fatal(err)
			}
			if _, err := client.Put(context.Background(), h.Key, string(resp.Kvs[0].Value), clientv3.WithLease(other.ID)); err != nil {
				t.Fatal(err)
			}
		case 2:
			time.Sleep(3 * time.Second) // the record's lease of 1s runs out
		}
	}
	defer func() { unlockStep = func(string) {} }()
	by := UnlockBy{Info: Info{Host: "admin", User: "alice"}, History: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done, err := Unlock(ctx, client, req.Realm, req.Name, by)
	if err != nil || done.Removed == nil {
		t.Fatalf("Unlock = %+v, %v; want the key removed", done, err)
	}
}
