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
// proven while it takes its turn never runs its command on that lease,
// even though etcd then grants it the lock. Either it lost the lock just
// after it became its own (69, nothing started), or it lost its place
// while it waited: then it queues again once etcd answers, and runs its
// command on its new key.
func TestWaiterLosingLeaseAtItsTurn(t *testing.T) {
	t.Parallel()
	client, proxy := testClient(t), testProxy(t)
	dir := t.TempDir()
	holder := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=turn", "--", "sh", "-c", "while [ ! -e go-on ]; do sleep 0.05; done")
	waitKeys(t, client, "turn", 1)
	waiter := startDistlock(t, dir, proxy.URL(), "--lock-name=turn", "--ttl=6s", "--kill-after=3s", "--dial-timeout=5s", "--", "sh", "-c", `echo "$DISTLOCK_HELD_KEY" > ran`)
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
				// What the waiter sends once the read is out need
				// not wait: a waiter that queues again can hold.
				time.AfterFunc(3500*time.Millisecond, proxy.UndelayTx)
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
	ran, _ := os.ReadFile(filepath.Join(dir, "ran"))
	said := waiter.stderr.String()
	switch {
	case got == exitUnavailable:
		if !strings.Contains(said, `lost lock "turn" before the command started: etcd has not confirmed the lease in time`) {
			t.Errorf("exit 69, but stderr does not say the lock was lost as it was taken:\n%s", said)
		}
		if ran != nil {
			t.Errorf("exit 69, but the waiter ran its command")
		}
	case got == 0:
		if !strings.Contains(said, `lost the place in the queue for lock "turn"`) || !strings.Contains(said, `queued again for lock "turn", at the back`) {
			t.Errorf("exit 0, but stderr does not say the waiter lost its place and queued again:\n%s", said)
		}
		if key := strings.TrimSpace(string(ran)); key == "" || key == string(waiterKey) {
			t.Errorf("the command ran holding %q, the key whose lease was lost is %q", key, waiterKey)
		}
	default:
		t.Errorf("waiter exited %d, want %d or 0; stderr:\n%s", got, exitUnavailable, said)
	}
	waitKeys(t, client, "turn", 0)
}
