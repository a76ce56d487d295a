package blackbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/poll"
)

// TestWaiterLosingLeaseAtItsTurn: a waiter whose lease can no longer be
// proven while it takes its turn gives up with status 69 and starts
// nothing, even though etcd then grants it the lock.
func TestWaiterLosingLeaseAtItsTurn(t *testing.T) {
	t.Parallel()
	client, proxy := testClient(t), testProxy(t)
	dir := t.TempDir()
	holder := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=turn", "--", "sh", "-c", "while [ ! -e go-on ]; do sleep 0.05; done")
	waitKeys(t, client, "turn", 1)
	waiter := startDistlock(t, dir, proxy.URL(), "--lock-name=turn", "--ttl=6s", "--kill-after=3s", "--dial-timeout=5s", "--", "sh", "-c", "echo ran > ran")
	waiterKey := []byte(waitKeys(t, client, "turn", 2)[1].Key)
	poll.For(t, "the waiter to wait", 30*time.Second, func() bool { return strings.Contains(waiter.stderr.String(), "; waiting") })

	// From the moment the waiter's read of its turn goes out (the first
	// request naming its key since it began to wait: the read checks that
	// the key is still there), hold back all it sends for 3.5s. It gives
	// up 2s (ttl - kill-after - 1s) after its last answered keepalive,
	// sent at most 0.5s before that read: 1.5-2s into the hold, while the
	// read is in flight, as later keepalives queue behind it. The answer
	// comes at 3.5s: before the read's 5s timeout and before etcd could
	// expire the lease (5.5s at the earliest), so code that waits for it
	// is given the lock. A delay set at the release itself would land by
	// chance: gRPC sends pings as data arrives, each a chunk the proxy
	// delays in turn.
	var hold sync.Once
	held := make(chan time.Time, 1)
	proxy.ModifyTx(func(b []byte) []byte {
		if bytes.Contains(b, waiterKey) {
			hold.Do(func() {
				proxy.DelayTx(3500*time.Millisecond, 0)
				held <- time.Now()
			})
		}
		return b
	})
	released := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "go-on"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := holder.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("holder exited %d; stderr:\n%s", got, holder.stderr)
	}
	got := waiter.wait(t, 30*time.Second)
	select {
	case at := <-held:
		t.Logf("release at +0; read of the turn held back at +%v; waiter exited %d at +%v",
			at.Sub(released).Round(time.Millisecond), got, time.Since(released).Round(time.Millisecond))
	default:
		t.Fatalf("the waiter never read its turn; it exited %d; stderr:\n%s", got, waiter.stderr)
	}
	if got != exitUnavailable {
		t.Errorf("waiter exited %d, want %d; stderr:\n%s", got, exitUnavailable, waiter.stderr)
	}
	lines := strings.Split(strings.TrimSpace(waiter.stderr.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "; waiting") ||
		!strings.Contains(lines[1], "waiting for the lock: etcd has not confirmed the lease in time") &&
			!strings.Contains(lines[1], `lost lock "turn" before the command started: etcd has not confirmed the lease in time`) {
		t.Errorf("stderr does not say the lock was lost as it was taken:\n%s", waiter.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the waiter ran its command")
	}
	waitKeys(t, client, "turn", 0)
}
