package lock

import (
	"context"
	"testing"
	"time"
)

// TestDeferredRecordLeaseLostBeforeBegin: an exec holder (Deferred) whose
// command ends before Begin, and whose records' lease (granted beside the
// turn) is gone by the release, writes its record whole on a new lease.
// The begun-record writer, woken by the release, must not read the lease
// the release is replacing (go test -race).
func TestDeferredRecordLeaseLostBeforeBegin(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	req := request(t, "regrant-before-begin")
	req.Deferred, req.History = true, time.Hour
	h, err := Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.req.early.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the records' lease was not granted")
	}
	if h.req.early.id == 0 {
		t.Fatal("the records' lease was not granted")
	}
	// As if it ran out.
	if _, err := client.Revoke(context.Background(), h.req.early.id); err != nil {
		t.Fatal(err)
	}
	h.Ending("exited", 0)
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := History(context.Background(), client, req.Realm, req.Name, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Record == nil || entries[0].Record.Released.IsZero() {
		t.Fatalf("history = %+v, want the one complete record", entries)
	}
}
