package blackbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestExpireAcrossLeaderChange: a lock taken with --lock --expire goes away
// by itself even when etcd's leader changes meanwhile. A new leader gives
// every lease its full TTL again (etcd checkpoints no lease by default),
// so SPAN is "at least": the lock may last longer, never less, but it
// does go, and the next waiter gets it.
//
// It fails if --expire leaves the key on no lease (it never goes: the
// waiter times out), or on the lease distlock kept alive (revoked or
// expired when distlock exits: the waiter runs before SPAN).
func TestExpireAcrossLeaderChange(t *testing.T) {
	t.Parallel()
	cluster, endpoints := startDurabilityCluster(t)
	dir := t.TempDir()
	const span = 3 * time.Second

	start := time.Now()
	taken := runDistlockOn(t, dir, endpoints, "--lock-name=expiring", "--lock", "--expire=3s", "--reason=forgotten")
	if taken.status != 0 {
		t.Fatalf("--lock --expire exited %d; stderr:\n%s", taken.status, taken.stderr)
	}
	client := clusterClient(t, cluster)
	if key := waitKeys(t, client, "expiring", 1)[0]; key.Lease == 0 || key.Key != strings.TrimSpace(taken.stdout) {
		t.Fatalf("after --lock --expire: key %s on lease %x; want the key it printed (%q) on a lease", key.Key, key.Lease, taken.stdout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	from, to, err := cluster.MoveLeader(ctx)
	cancel()
	if err != nil {
		t.Fatalf("move the leader from member %d: %v", from, err)
	}
	moved := time.Now()
	status := runDistlockOn(t, dir, endpoints, "--lock-name=expiring", "--status")
	t.Logf("leader moved from member %d to %d at +%v; --status then: %s", from, to, moved.Sub(start).Round(time.Millisecond), status.stdout)

	// The next waiter gets the lock once etcd has removed it, by itself.
	next := runDistlockOn(t, dir, endpoints, "--lock-name=expiring", "--timeout=60s", "--", "echo", "ran")
	got := time.Now()
	if next.status != 0 || next.stdout != "ran\n" {
		t.Fatalf("the next waiter: exit %d, stdout %q; stderr:\n%s", next.status, next.stdout, next.stderr)
	}
	if got.Sub(start) < span {
		t.Errorf("the lock was free %v after --lock --expire=%v, sooner than SPAN", got.Sub(start).Round(time.Millisecond), span)
	}
	if keys := keysUnder(t, client, "expiring"); len(keys) != 0 {
		t.Errorf("keys left after the next waiter ran: %q", keys)
	}
	t.Logf("the next waiter ran at +%v (the leader moved at +%v)", got.Sub(start).Round(time.Millisecond), moved.Sub(start).Round(time.Millisecond))
}
