package lock

import (
	"context"
	"testing"
	"time"
)

// TestLeasesLeft: what etcd says is left of each lease behind the entries,
// once per lease; a lease etcd does not have is -1s, a key on no lease
// has no entry.
func TestLeasesLeft(t *testing.T) {
	t.Parallel()
	client := newClient(t, testEtcd(t).Endpoint())
	ctx := context.Background()
	a, err := client.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := client.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Revoke(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	entries := []Entry{{Lease: int64(a.ID)}, {Lease: int64(b.ID)}, {Lease: int64(a.ID)}, {Lease: int64(gone.ID)}, {Lease: 0}}
	left := LeasesLeft(ctx, client, entries)
	if len(left) != 3 {
		t.Errorf("LeasesLeft = %v; want 3 leases", left)
	}
	if l := left[int64(a.ID)]; l < 55*time.Second || l > 60*time.Second {
		t.Errorf("lease a (60s): %v left", l)
	}
	if l := left[int64(b.ID)]; l < 3595*time.Second || l > 3600*time.Second {
		t.Errorf("lease b (1h): %v left", l)
	}
	if l, ok := left[int64(gone.ID)]; !ok || l != -time.Second {
		t.Errorf("a revoked lease: %v, %v; want -1s", l, ok)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if left := LeasesLeft(cancelled, client, entries); len(left) != 0 {
		t.Errorf("LeasesLeft without time to ask = %v; want nothing", left)
	}
}
