package lock

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// listAll is List's locks in a slice, read in pages of 1000 keys.
func listAll(client *clientv3.Client, realm string) ([]Lock, error) {
	var locks []Lock
	err := List(context.Background(), client, realm, 1000, 10*time.Second, func(l Lock) { locks = append(locks, l) })
	return locks, err
}

// rangeCounter is a client's KV that notes every Get on its way to etcd:
// its limit and revision.
type rangeCounter struct {
	clientv3.KV
	mu     sync.Mutex
	gets   []clientv3.Op
	onPage func(n int) // after the nth Get, if set
}

func (r *rangeCounter) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r.mu.Lock()
	r.gets = append(r.gets, clientv3.OpGet(key, opts...))
	n := len(r.gets)
	r.mu.Unlock()
	resp, err := r.KV.Get(ctx, key, opts...)
	if r.onPage != nil {
		r.onPage(n)
	}
	return resp, err
}

// putAll writes kvs (key, value pairs) in transactions of 128 puts.
func putAll(t testing.TB, client *clientv3.Client, kvs [][2]string) {
	t.Helper()
	for len(kvs) > 0 {
		n := min(len(kvs), 128)
		ops := make([]clientv3.Op, 0, n)
		for _, kv := range kvs[:n] {
			ops = append(ops, clientv3.OpPut(kv[0], kv[1]))
		}
		if _, err := client.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		kvs = kvs[n:]
	}
}

// TestListPages: a realm of 100,000 keys (20,000 locks of a holder and
// four waiters) is listed completely and correctly, in requests of at
// most the page size, all at the revision of the first (a lock taken and
// a lock freed while List reads are not seen), and each lock is handed on
// as soon as it has been read.
func TestListPages(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes 100,000 keys")
	}
	const locks, perLock, pageSize = 20000, 5, 1000
	client := newClient(t, testEtcd(t).Endpoint())
	realm := request(t, "x").Realm
	var kvs [][2]string
	// Every lock's first key, then every lock's second, ...: each
	// transaction's keys share a create revision.
	for j := range perLock {
		for i := range locks {
			v, _ := json.Marshal(Info{Host: "h", PID: j + 1, Mode: ModeExec, Reason: fmt.Sprint("r", i)})
			// Key order is not queue order: the holder's key sorts last.
			kvs = append(kvs, [2]string{fmt.Sprintf("%s%x", Prefix(realm, fmt.Sprintf("lock-%05d", i)), 0xff-j), string(v)})
		}
	}
	start := time.Now()
	putAll(t, client, kvs)
	t.Logf("wrote %d keys in %v", len(kvs), time.Since(start))

	counter := &rangeCounter{}
	counter.onPage = func(n int) {
		if n != 1 {
			return
		}
		// After the first page: a lock taken, one freed, both after it.
		if _, err := client.Put(context.Background(), Prefix(realm, "zz-new")+"1", `{"host":"late"}`); err != nil {
			t.Error(err)
		}
		if _, err := client.Delete(context.Background(), Prefix(realm, "lock-19999"), clientv3.WithPrefix()); err != nil {
			t.Error(err)
		}
	}
	listing := newClient(t, testEtcd(t).Endpoint())
	counter.KV = listing.KV
	listing.KV = counter
	start = time.Now()
	n, firstAfter := 0, 0 // firstAfter: requests made before the first lock came
	err := List(context.Background(), listing, realm, pageSize, 10*time.Second, func(l Lock) {
		if n == 0 {
			counter.mu.Lock()
			firstAfter = len(counter.gets)
			counter.mu.Unlock()
		}
		want := fmt.Sprintf("lock-%05d", n)
		switch {
		case l.Name != want:
			t.Fatalf("lock %d is %q, want %q", n, l.Name, want)
		case len(l.Entries) != perLock || len(l.Stopping) != 0:
			t.Fatalf("lock %s: %d keys, %d records; want %d and none", l.Name, len(l.Entries), len(l.Stopping), perLock)
		}
		for j, e := range l.Entries {
			if e.Info == nil || e.Info.PID != j+1 || e.Info.Reason != fmt.Sprint("r", n) {
				t.Fatalf("lock %s: entry %d is %+v, want pid %d first come first", l.Name, j, e.Info, j+1)
			}
		}
		n++
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listed in %v, %d requests", time.Since(start), len(counter.gets))
	if n != locks {
		t.Errorf("listed %d locks, want %d", n, locks)
	}
	if firstAfter != 1 {
		t.Errorf("the first lock came after %d requests, want 1: List must hand on what it has read", firstAfter)
	}
	if want := locks * perLock / pageSize; len(counter.gets) < want {
		t.Errorf("%d requests, want at least %d", len(counter.gets), want)
	}
	for i, op := range counter.gets {
		if op.Limit() < 1 || op.Limit() > pageSize {
			t.Errorf("request %d asked for %d keys, want 1 to %d", i+1, op.Limit(), pageSize)
		}
		if i > 0 && op.Rev() == 0 {
			t.Errorf("request %d read at the latest revision, not the first request's", i+1)
		}
	}
}

// TestListNested: the keys of locks whose escaped names start alike come
// between one lock's stopping records and its queue; each lock is still
// found whole, once.
func TestListNested(t *testing.T) {
	client := newClient(t, testEtcd(t).Endpoint())
	realm := request(t, "x").Realm
	lease, err := client.Grant(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Revoke(context.Background(), lease.ID) })
	value := `{"host":"h","pid":1,"mode":"exec"}`
	putAll(t, client, [][2]string{
		{Prefix(realm, "a-b") + "1", value},
		{Prefix(realm, "a") + "1", value},
		{Prefix(realm, "a b") + "1", value},
		{Prefix(realm, "a.b") + "1", value},
		{LastRunKey(realm, "a"), value},
		{realm + "not-a-lock", value},
		// etcdctl lock REALM"a b": a segment Escape never makes, which
		// spells the name of the lock "a b".
		{realm + "a b/694d7a", ""},
	})
	for _, name := range []string{"a", "a-b", "only-stopping"} {
		sp := StoppingPrefix(realm, name)
		if _, err := client.Put(context.Background(), stoppingKey(sp, 7, int64(lease.ID)), value, clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	for _, pageSize := range []int{1, 2, 1000} {
		var got []string
		err := List(context.Background(), client, realm, pageSize, 10*time.Second, func(l Lock) {
			name := l.Name
			if l.Foreign {
				name = "foreign " + name
			}
			got = append(got, fmt.Sprintf("%s:%d+%d", name, len(l.Entries), len(l.Stopping)))
		})
		if err != nil {
			t.Fatal(err)
		}
		want := "[foreign a b:1+0 a b:1+0 a-b:1+1 a.b:1+0 a:1+1 only-stopping:0+1]"
		if fmt.Sprint(got) != want {
			t.Errorf("pages of %d: %v, want %s", pageSize, got, want)
		}
	}
}

// TestParseEntryLenient: a value is read field by field; a field of the
// wrong type is left at its zero and the others still count, and a value
// that is no JSON object is no distlock value.
func TestParseEntryLenient(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  *Info
	}{
		{`{"host":"h","pid":"abc","since":"not a time","limit":"many","user":12,"reason":["x"]}`, &Info{Host: "h"}},
		{`{"host":{"a":1},"mode":"lock","pid":7}`, &Info{Mode: ModeLock, PID: 7}},
		{`{"host":"h","since":"2024-01-01T00:00:00Z","pid":1e30}`, &Info{Host: "h", Since: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{`{"Host":"h"}`, nil}, // distlock writes its names in lower case
		{`{"pid":1}`, nil},
		{`[1,2]`, nil}, {`42`, nil}, {`null`, nil}, {`"h"`, nil}, {``, nil}, {"\xff\xfe", nil},
		{strings.Repeat("[", 20000) + strings.Repeat("]", 20000), nil},
	} {
		e := parseEntry(&mvccpb.KeyValue{Key: []byte("/r/l/1"), Value: []byte(tc.value)})
		if (e.Info == nil) != (tc.want == nil) || e.Info != nil && *e.Info != *tc.want {
			t.Errorf("parseEntry(%.40q).Info = %+v, want %+v", tc.value, e.Info, tc.want)
		}
		_ = e.Describe() // never panics
	}
}
