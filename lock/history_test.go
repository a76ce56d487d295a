package lock

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/poll"
)

// watchRealm collects every event under the test's realm from now on.
func watchRealm(t *testing.T, client *clientv3.Client, realm string) func() []*clientv3.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := client.Get(ctx, realm, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	wch := client.Watch(ctx, realm, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	return func() []*clientv3.Event {
		// Everything up to a write of our own after the events wanted.
		mark := realm + "zz-mark"
		put, err := client.Put(ctx, mark, "")
		if err != nil {
			t.Fatal(err)
		}
		var evs []*clientv3.Event
		for wr := range wch {
			for _, ev := range wr.Events {
				if string(ev.Kv.Key) == mark && ev.Kv.ModRevision == put.Header.Revision {
					return evs
				}
				evs = append(evs, ev)
			}
		}
		t.Fatal("the watch ended")
		return nil
	}
}

// recordAt finds, among evs, the put of the history record of the key
// deleted in the same revision, and reads it.
func recordAt(t *testing.T, evs []*clientv3.Event, key string, historyKey string) Record {
	t.Helper()
	var deletedAt int64
	for _, ev := range evs {
		if ev.Type == mvccpb.DELETE && string(ev.Kv.Key) == key {
			deletedAt = ev.Kv.ModRevision
		}
	}
	if deletedAt == 0 {
		t.Fatalf("no deletion of %s among %d events", key, len(evs))
	}
	for _, ev := range evs {
		if ev.Type == mvccpb.PUT && string(ev.Kv.Key) == historyKey && ev.Kv.ModRevision == deletedAt {
			var r Record
			if err := json.Unmarshal(ev.Kv.Value, &r); err != nil {
				t.Fatal(err)
			}
			if ev.Kv.Lease == 0 {
				t.Errorf("the record %s is on no lease", historyKey)
			}
			return r
		}
	}
	t.Fatalf("no put of %s in revision %d, that of the deletion of %s", historyKey, deletedAt, key)
	return Record{}
}

// TestReleaseCompletesHistory: a release deletes the key and completes the
// holding's record in one revision, with how the command ended; the
// record was begun while the lock was held, and is on a lease of the
// history span.
func TestReleaseCompletesHistory(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "h")
	req.History = time.Hour
	events := watchRealm(t, client, req.Realm)
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	hk := HistoryKey(req.Realm, req.Name, h.FencingToken)
	var begun *HistoryEntry
	poll.For(t, "the record to be begun", 10*time.Second, func() bool {
		got, err := History(context.Background(), client, req.Realm, req.Name, 5, time.Second)
		if err == nil && len(got) == 1 {
			begun = &got[0]
		}
		return begun != nil
	})
	if begun.Key != hk || begun.Record == nil || begun.Record.Outcome != "" || begun.Record.Acquired.IsZero() {
		t.Fatalf("begun record %+v, want an open record at %s", begun, hk)
	}
	h.Ending("ran", 3)
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := recordAt(t, events(), h.Key, hk)
	if r.Outcome != EndReleased || r.Ended != "ran" || r.ExitStatus == nil || *r.ExitStatus != 3 ||
		r.FencingToken != h.FencingToken || r.Kind != KindExclusive || r.Released.IsZero() || r.Host != "testhost" {
		t.Errorf("completed record %+v", r)
	}
	ttl := leaseTTLOf(t, client, hk)
	if ttl < 3500 || ttl > 3600 {
		t.Errorf("the record's lease has %ds left, want about an hour", ttl)
	}
}

// TestUnlockCompletesHistory: --unlock deletes the holder's key and
// writes its record, unlocked and by whom, in one revision; the holder's
// release afterwards leaves it so.
func TestUnlockCompletesHistory(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "u")
	req.History = time.Hour
	events := watchRealm(t, client, req.Realm)
	h := mustAcquire(t, client, req)
	by := UnlockBy{Info: Info{Host: "admin", User: "alice", PID: 7, Reason: "it hangs"}, History: time.Hour}
	if _, err := Unlock(context.Background(), client, req.Realm, req.Name, by); err != nil {
		t.Fatal(err)
	}
	hk := HistoryKey(req.Realm, req.Name, h.FencingToken)
	r := recordAt(t, events(), h.Key, hk)
	if r.Outcome != EndUnlocked || r.UnlockedBy == nil || r.UnlockedBy.Reason != "it hangs" || r.UnlockedBy.Host != "admin" {
		t.Errorf("record %+v, unlocked by %+v", r, r.UnlockedBy)
	}
	<-h.Context().Done()
	h.Ending("lost", 70)
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := History(context.Background(), client, req.Realm, req.Name, 5, time.Second)
	if err != nil || len(got) != 1 || got[0].Record == nil || got[0].Record.Outcome != EndUnlocked {
		t.Errorf("after the holder's release: %+v, %v; want the one unlocked record", got, err)
	}
	// The record is on the --unlock's lease: the holder's own, empty,
	// does not stay for the history span.
	if ttl, err := client.TimeToLive(context.Background(), h.hist.lease); err != nil || ttl.TTL != -1 {
		t.Errorf("the holder's history lease after its release: %+v, %v; want it gone", ttl, err)
	}
}

// TestNoHistoryWithoutSpan: History 0 writes no record.
func TestNoHistoryWithoutSpan(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "n")
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := Unlock(context.Background(), client, req.Realm, req.Name); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(context.Background(), req.Realm, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("%d keys left in the realm (%v), want none", resp.Count, err)
	}
}

// leaseTTLOf is how many seconds are left of the lease of key.
func leaseTTLOf(t *testing.T, client *clientv3.Client, key string) int64 {
	t.Helper()
	resp, err := client.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v", key, err)
	}
	ttl, err := client.TimeToLive(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		t.Fatal(err)
	}
	return ttl.TTL
}
