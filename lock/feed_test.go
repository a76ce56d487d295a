package lock

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/etcdtest"
)

// feedHolder puts a distlock key for lock name on a lease of its own, and
// returns the key and its create revision (the fencing token).
func feedHolder(t *testing.T, client *clientv3.Client, realm, name, host string) (string, int64) {
	t.Helper()
	ctx := context.Background()
	lease, err := client.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	key := queueKey(Prefix(realm, name), int64(lease.ID))
	v, _ := jsonValue(Info{Host: host, PID: 1, Mode: ModeExec})
	resp, err := client.Put(ctx, key, v, clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	return key, resp.Header.Revision
}

// endWith deletes key in one transaction with a history record of token
// completed with outcome, unless outcome is "": then the key just goes.
func endWith(t *testing.T, client *clientv3.Client, realm, name, key string, token int64, outcome string) {
	t.Helper()
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	if outcome != "" {
		rec := Record{Kind: KindExclusive, FencingToken: token, Key: key, Outcome: outcome}
		if outcome == EndUnlocked {
			rec.UnlockedBy = &Info{Host: "ops", User: "alice"}
		}
		b, _ := json.Marshal(rec)
		ops = append(ops, clientv3.OpPut(HistoryKey(realm, name, token), string(b)))
	}
	if _, err := client.Txn(context.Background()).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestFeedTellsReleaseFromExpiry: a key deleted with a history record
// completed in the same transaction was released or unlocked (the record
// says which, and who unlocked it); deleted without one, it expired. Keys
// of other shapes under the watched range (another lock's whose name
// starts alike, a nested realm's, a record begun but not completed) are
// no changes.
func TestFeedTellsReleaseFromExpiry(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	realm := etcdtest.Realm(t, "/feedtest/")
	f := NewFeed(realm, "db")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, _ := feedHolder(t, client, realm, "db", "h0")
	if _, rev, err := ReadFeed(ctx, client, f, 2, 5*time.Second); err != nil {
		t.Fatal(err)
	} else {
		watch := client.Watch(ctx, f.Range(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		defer drain(t, f, watch, []string{
			"queued h1 1", "left h1",
			"released h0", "acquired h2", "queued h3 1",
			"unlocked h2 by ops", "acquired h3", "expired h3",
		})
	}
	k1, _ := feedHolder(t, client, realm, "db", "h1")
	endWith(t, client, realm, "db", k1, 0, "")
	feedHolder(t, client, realm, "db-b", "other")
	feedHolder(t, client, realm+"db/", "x", "nested")
	if _, err := client.Put(ctx, HistoryKey(realm, "db", 1), `{"kind":"exclusive"}`); err != nil {
		t.Fatal(err)
	}
	endWith(t, client, realm, "db", first, firstToken(t, client, first, f), EndReleased)
	k2, t2 := feedHolder(t, client, realm, "db", "h2")
	k3, t3 := feedHolder(t, client, realm, "db", "h3")
	endWith(t, client, realm, "db", k2, t2, EndUnlocked)
	endWith(t, client, realm, "db", k3, t3, "")
}

// firstToken is the create revision of key, as the feed's model has it.
func firstToken(t *testing.T, client *clientv3.Client, key string, f *Feed) int64 {
	t.Helper()
	e, ok := f.locks[Escape("db")].entries[key]
	if !ok {
		t.Fatalf("the feed's model lacks %s", key)
	}
	return e.CreateRevision
}

// drain reads the watch until it has as many changes as want, and
// compares them with want.
func drain(t *testing.T, f *Feed, watch clientv3.WatchChan, want []string) {
	t.Helper()
	var got []string
	for len(got) < len(want) {
		resp, ok := <-watch
		if !ok {
			t.Fatalf("the watch ended after %q, want %q", got, want)
		}
		for _, c := range f.Apply(resp.Events) {
			s := c.Kind + " " + c.Entry.Info.Host
			if c.Position > 0 {
				s += fmt.Sprintf(" %d", c.Position)
			}
			if c.UnlockedBy != nil {
				s += " by " + c.UnlockedBy.Host
			}
			got = append(got, s)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
