package blackbox

import (
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/poll"
)

// TestWaiterGivesUpAsDocumented: a waiter cut off from etcd gives up (69)
// once its lease can no longer be proven: TTL - kill-after - 1s after the
// last acknowledged keepalive in exec mode, the full TTL with --lock. With
// --ttl=6s --kill-after=2s a keepalive goes out every 0.75s in exec mode
// and every 1.5s with --lock, and giving up then takes one more
// --dial-timeout (1s) to try to revoke the lease.
func TestWaiterGivesUpAsDocumented(t *testing.T) {
	tests := []struct {
		name     string
		mode     []string
		min, max time.Duration // from the cut to distlock's exit
	}{
		{"exec", []string{"--", "true"}, 2250 * time.Millisecond, 5500 * time.Millisecond},
		{"lock", []string{"--lock"}, 4500 * time.Millisecond, 8500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, proxy := testClient(t), testProxy(t)
			dir := t.TempDir()
			holder := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=g", "--lock")
			if got := holder.wait(t, 30*time.Second); got != 0 {
				t.Fatalf("--lock exited %d; stderr:\n%s", got, holder.stderr)
			}
			waiter := startDistlock(t, dir, proxy.URL(), append([]string{"--lock-name=g", "--ttl=6s", "--kill-after=2s", "--dial-timeout=1s"}, tt.mode...)...)
			waitKeys(t, client, "g", 2)
			poll.For(t, "the waiter to wait", 30*time.Second, func() bool { return strings.Contains(waiter.stderr.String(), "; waiting") })
			proxy.Partition()
			cut := time.Now()
			if got := waiter.wait(t, 30*time.Second); got != exitUnavailable {
				t.Fatalf("cut-off waiter exited %d, want %d; stderr:\n%s", got, exitUnavailable, waiter.stderr)
			}
			took := time.Since(cut)
			if took < tt.min || took > tt.max {
				t.Errorf("gave up %v after the cut, want between %v and %v", took.Round(time.Millisecond), tt.min, tt.max)
			}
			t.Logf("gave up %v after the cut", took.Round(time.Millisecond))
		})
	}
}
