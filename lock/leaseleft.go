package lock

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxLeaseAsks is how many TimeToLive calls LeasesLeft has under way at
// once: enough for the holders of any lock a person reads about, few
// enough for a --limit of thousands not to flood etcd.
const maxLeaseAsks = 32

// LeasesLeft asks etcd how long each lease behind entries has left, in
// whole seconds rounded down: one TimeToLive call per lease, all at once,
// so that it takes about one round trip. A lease that etcd no longer has
// is -1s; one that etcd did not answer about before ctx ended is not in
// the map. Keys on no lease (a detached --lock) have no entry.
func LeasesLeft(ctx context.Context, client *clientv3.Client, entries []Entry) map[int64]time.Duration {
	ids := make(map[int64]bool)
	for _, e := range entries {
		if e.Lease != 0 {
			ids[e.Lease] = true
		}
	}
	left := make(map[int64]time.Duration, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	asks := make(chan struct{}, maxLeaseAsks)
	for id := range ids {
		asks <- struct{}{}
		wg.Go(func() {
			defer func() { <-asks }()
			resp, err := client.TimeToLive(ctx, clientv3.LeaseID(id))
			if err != nil {
				return
			}
			mu.Lock()
			left[id] = time.Duration(resp.TTL) * time.Second
			mu.Unlock()
		})
	}
	wg.Wait()
	return left
}
