package blackbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// TestWaiterRidesOutOutage: an etcd outage longer than the TTL, so that
// the waiter's lease really lapses. A waiter told to wait for ever says
// that etcd does not answer, that it lost its place, and, once etcd
// answers, that it queued again; it then waits behind the holder as
// before, and runs its command on its new key when the holder is gone. A
// waiter whose --timeout passes during the outage exits 69, saying that
// etcd stood in the way. Once on a single member that freezes, once on a
// three-member cluster that loses its quorum.
func TestWaiterRidesOutOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		members int
		frozen  []int
	}{
		{"one member", 1, []int{0}},
		{"quorum lost", 3, []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var cluster *etcdtest.ProcessCluster
			if tt.members == 1 {
				etcdtest.SkipShort(t)
				var err error
				if cluster, err = etcdtest.StartProcessCluster(t.TempDir(), "etcd-member", 1); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(cluster.Close)
			} else {
				cluster = processCluster(t, 0)
			}
			ridesOut(t, cluster, tt.frozen)
		})
	}
}

// ridesOut is TestWaiterRidesOutOutage on cluster, with an outage made by
// freezing the members frozen; distlock talks to member 0 alone.
func ridesOut(t *testing.T, cluster *etcdtest.ProcessCluster, frozen []int) {
	const ttl = 4 * time.Second
	ep := cluster.Endpoint(0)
	client, err := etcdtest.External(ep).Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	dir := t.TempDir()
	if got := startDistlock(t, dir, ep, "--lock-name=ride", "--lock", "--reason=look first").wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--lock exited %d", got)
	}
	short := []string{"--lock-name=ride", "--ttl=4s", "--kill-after=1s", "--dial-timeout=1s"}
	waiter := startDistlock(t, dir, ep, append(short, "--", "sh", "-c", `echo "$DISTLOCK_HELD_KEY" > ran`)...)
	first := waitKeys(t, client, "ride", 2)[1].Key
	impatient := startDistlock(t, t.TempDir(), ep, append(short, "--timeout=8s", "--", "true")...)
	waitKeys(t, client, "ride", 3)
	for _, j := range []*running{waiter, impatient} {
		poll.For(t, "the waiters to wait", 30*time.Second, func() bool { return strings.Contains(j.stderr.String(), "; waiting") })
	}

	freeze(t, cluster, frozen...)
	froze := time.Now()
	if got := impatient.wait(t, 30*time.Second); got != exitUnavailable {
		t.Errorf("the waiter with --timeout=8s exited %d, want %d; stderr:\n%s", got, exitUnavailable, impatient.stderr)
	}
	if !strings.Contains(impatient.stderr.String(), `lock "ride" was not acquired in time: etcd has not answered for `) {
		t.Errorf("the waiter with --timeout does not say that etcd stood in the way:\n%s", impatient.stderr)
	}
	poll.For(t, "the waiter to lose its place", 30*time.Second, func() bool {
		return strings.Contains(waiter.stderr.String(), `lost the place in the queue for lock "ride"`)
	})
	// The outage's length is the test: longer than the TTL, etcd
	// expires the waiter's lease the moment it can.
	if d := time.Until(froze.Add(ttl + time.Second)); d > 0 {
		<-time.After(d)
	}
	resume(t, cluster, frozen...)
	poll.For(t, "the waiter to queue again", 60*time.Second, func() bool {
		return strings.Contains(waiter.stderr.String(), `queued again for lock "ride", at the back`)
	})
	again := waitKeys(t, client, "ride", 2)
	if again[0].Info == nil || again[0].Info.Reason != "look first" || again[1].Key == first {
		t.Fatalf("after the outage the queue is %+v; want the --lock, then the waiter on a new key (not %s)", again, first)
	}
	if got := startDistlock(t, dir, ep, "--lock-name=ride", "--unlock").wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--unlock exited %d", got)
	}
	if got := waiter.wait(t, 60*time.Second); got != 0 {
		t.Fatalf("the waiter exited %d, want 0; stderr:\n%s", got, waiter.stderr)
	}
	if ran := strings.TrimSpace(waitFile(t, filepath.Join(dir, "ran"))); ran != again[1].Key {
		t.Errorf("the command ran holding %q, want its new key %q", ran, again[1].Key)
	}
	said := waiter.stderr.String()
	for i, want := range []string{"; waiting", "etcd not answering for ", `lost the place in the queue for lock "ride"`, `queued again for lock "ride", at the back`} {
		at := strings.Index(said, want)
		if at < 0 {
			t.Errorf("line %d (%q) missing from the waiter's stderr:\n%s", i+1, want, said)
			continue
		}
		said = said[at:]
	}
	t.Logf("waiter's stderr:\n%s", waiter.stderr)
}

// TestHolderSaysEtcdQuiet: a holder whose lease goes unconfirmed for a
// third of its TTL says so once, with the moment its command will be
// stopped, and once more when etcd confirms the lease again; the command
// runs on. At --quiet it says nothing.
func TestHolderSaysEtcdQuiet(t *testing.T) {
	t.Parallel()
	proxy := testProxy(t)
	// TTL 12s, --kill-after 1s: a keepalive every 2.5s; etcd's silence is
	// said 4s after the last confirmed one was sent, and the lease given
	// up at 10s.
	hold := []string{"--ttl=12s", "--kill-after=1s", "--", "sh", "-c", "echo up > ready; while [ ! -e go-on ]; do sleep 0.05; done"}
	loud, quiet := t.TempDir(), t.TempDir()
	a := startDistlock(t, loud, proxy.URL(), append([]string{"--lock-name=quiet-a"}, hold...)...)
	b := startDistlock(t, quiet, proxy.URL(), append([]string{"--lock-name=quiet-b", "--quiet"}, hold...)...)
	waitFile(t, filepath.Join(loud, "ready"))
	waitFile(t, filepath.Join(quiet, "ready"))
	proxy.PauseTx()
	proxy.PauseRx()
	paused := time.Now()
	// Both leases were last confirmed before the pause: by 4.5s into it
	// both have gone unconfirmed for a third of the TTL, and neither
	// has come near its 10s.
	poll.For(t, "the holder to say etcd is quiet", 30*time.Second, func() bool {
		return time.Since(paused) > 4500*time.Millisecond && strings.Contains(a.stderr.String(), "etcd has not confirmed the lease")
	})
	proxy.UnpauseTx()
	proxy.UnpauseRx()
	poll.For(t, "the holder to say etcd answers", 30*time.Second, func() bool {
		return strings.Contains(a.stderr.String(), `etcd confirms the lease of lock "quiet-a" again`)
	})
	for _, dir := range []string{loud, quiet} {
		if err := os.WriteFile(filepath.Join(dir, "go-on"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.wait(t, 30*time.Second); got != 0 {
		t.Errorf("exit %d after a blip; stderr:\n%s", got, a.stderr)
	}
	if got := b.wait(t, 30*time.Second); got != 0 {
		t.Errorf("--quiet: exit %d after a blip; stderr:\n%s", got, b.stderr)
	}
	lines := strings.Split(strings.TrimSpace(a.stderr.String()), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], `distlock: etcd has not confirmed the lease of lock "quiet-a" for `) ||
		!strings.Contains(lines[0], "; the command will be stopped at ") ||
		!strings.HasPrefix(lines[1], `distlock: etcd confirms the lease of lock "quiet-a" again, after `) {
		t.Errorf("want one line for etcd's silence and one for its return:\n%s", a.stderr)
	}
	if s := b.stderr.String(); s != "" {
		t.Errorf("--quiet said something about the blip:\n%s", s)
	}
}
