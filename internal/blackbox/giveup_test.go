package blackbox

import (
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/poll"
)

// TestWaiterGivesUpAsDocumented: a waiter cut off from etcd waits for it
// within its --timeout, and when that passes, exits 69 saying that etcd
// stood in the way, in exec mode and with --lock.
func TestWaiterGivesUpAsDocumented(t *testing.T) {
	t.Parallel()
	for _, mode := range [][]string{{"--", "true"}, {"--lock"}} {
		t.Run(mode[0], func(t *testing.T) {
			t.Parallel()
			client, proxy := testClient(t), testProxy(t)
			dir := t.TempDir()
			holder := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=g", "--lock")
			if got := holder.wait(t, 30*time.Second); got != 0 {
				t.Fatalf("--lock exited %d; stderr:\n%s", got, holder.stderr)
			}
			start := time.Now()
			waiter := startDistlock(t, dir, proxy.URL(), append([]string{"--lock-name=g", "--ttl=6s", "--kill-after=2s", "--dial-timeout=1s", "--timeout=8s"}, mode...)...)
			waitKeys(t, client, "g", 2)
			poll.For(t, "the waiter to wait", 30*time.Second, func() bool { return strings.Contains(waiter.stderr.String(), "; waiting") })
			proxy.Partition()
			if got := waiter.wait(t, 30*time.Second); got != exitUnavailable {
				t.Fatalf("cut-off waiter exited %d, want %d; stderr:\n%s", got, exitUnavailable, waiter.stderr)
			}
			// From its start: the 8s --timeout, at most one more
			// --dial-timeout to try to revoke its lease, and the start and
			// exit of a program built with the race detector, which took
			// 1.3 s once with every test at once (2026-12-06). Another TTL
			// of waiting would pass the bound.
			if took := time.Since(start); took < 8*time.Second || took > 12*time.Second {
				t.Errorf("gave up %v after it started, want 8s to 12s (--timeout=8s)", took.Round(time.Millisecond))
			}
			if !strings.Contains(waiter.stderr.String(), `lock "g" was not acquired in time: etcd has not answered for `) ||
				!strings.Contains(waiter.stderr.String(), "; gave up after 8s (--timeout)") {
				t.Errorf("stderr does not say that etcd stood in the way:\n%s", waiter.stderr)
			}
		})
	}
}
