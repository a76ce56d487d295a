package blackbox

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// following is a distlock --follow, its stdout read as it comes.
type following struct {
	*running
	stdout *syncBuffer
}

// startFollow runs distlock --follow with args against endpoint, in the
// test's realm.
func startFollow(t *testing.T, endpoint string, args ...string) *following {
	t.Helper()
	cmd := exec.Command("distlock", append([]string{"--follow", "--dial-timeout=1s"}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "DISTLOCK_ENDPOINTS="+endpoint, "DISTLOCK_PREFIX="+testRealm(t), "DISTLOCK_CONFIG=/dev/null")
	out := &syncBuffer{}
	cmd.Stdout = out
	f := &following{running: startJob(t, cmd), stdout: out}
	t.Cleanup(func() { t.Logf("--follow's stdout:\n%s\nits stderr:\n%s", f.stdout, f.stderr) })
	return f
}

// waitLines waits until stdout has lines matching each of patterns, in
// that order, the first after the from-th line, and returns how many
// lines that took.
func (f *following) waitLines(t *testing.T, from int, patterns ...string) int {
	t.Helper()
	var n int
	poll.For(t, "lines matching "+strings.Join(patterns, ", "), 20*time.Second, func() bool {
		lines := strings.Split(f.stdout.String(), "\n")
		n = from
		for _, p := range patterns {
			re := regexp.MustCompile(p)
			for n < len(lines) && !re.MatchString(lines[n]) {
				n++
			}
			if n == len(lines) {
				return false
			}
			n++
		}
		return true
	})
	return n
}

// waitStderr waits until stderr says s.
func (f *following) waitStderr(t *testing.T, s string) {
	t.Helper()
	poll.For(t, "stderr to say "+s, 20*time.Second, func() bool { return strings.Contains(f.stderr.String(), s) })
}

// run runs one distlock to its end, failing the test unless it exits with
// status want.
func runWant(t *testing.T, endpoint string, want int, args ...string) {
	t.Helper()
	if _, stderr, status := runCaptured(t, endpoint, nil, args...); status != want {
		t.Fatalf("distlock %q exited %d, want %d; stderr:\n%s", args, status, want, stderr)
	}
}

// followScenario: a --lock that someone --unlocks, a waiter that queues
// behind it and takes it, an --unlock of that live holder, and a
// --lock --expire 2s that lapses.
func followScenario(t *testing.T, ep string, f *following) {
	runWant(t, ep, 0, "--lock", "--lock-name=q", "--reason=first")
	dir := t.TempDir()
	b := startDistlock(t, dir, ep, "--lock-name=q", "--reason=second", "--kill-after=1s", "--",
		"sh", "-c", "echo up > ready; exec sleep 30")
	f.waitLines(t, 0, "queued")
	runWant(t, ep, 0, "--unlock", "--lock-name=q")
	waitFile(t, filepath.Join(dir, "ready"))
	runWant(t, ep, 0, "--unlock", "--lock-name=q")
	if got := b.wait(t, 20*time.Second); got != exitLockLost {
		t.Errorf("the unlocked holder exited %d, want %d", got, exitLockLost)
	}
	runWant(t, ep, 0, "--lock", "--lock-name=q", "--reason=third", "--expire=2s")
	// Behind the lapsing --lock: a run that releases as it ends.
	runWant(t, ep, 0, "--lock-name=q", "--reason=fourth", "--", "true")
}

// TestFollowLock: --status --follow prints the state, then a line for
// each change in order (an --unlock of a --lock as unlocked, by whom; a
// live holder's as unlocked, then stopping and stopped; a lapsed --expire
// as expired; a run's end as released, told apart by the history record
// written with the release), and ends on SIGINT with 0.
func TestFollowLock(t *testing.T) {
	t.Parallel()
	ep := testEtcd(t).Endpoint()
	f := startFollow(t, ep, "--status", "--lock-name=q")
	f.waitLines(t, 0, `^lock "q" is free$`)
	followScenario(t, ep, f)
	const when = `^\d{4}-\d\d-\d\dT\S+ lock "q" `
	f.waitLines(t, 1,
		when+`acquired by host \S+, user \S+, since \S+, reason "first" \(fencing token \d+\)$`,
		when+`queued: host \S+, pid \d+, .*reason "second", waiter 1$`,
		when+`unlocked by host \S+, pid \d+, user \S+, no reason given \(--unlock\): it was held by host .*reason "first"`,
		when+`acquired by host .*reason "second"`,
		when+`unlocked( by .*)? \(--unlock\): it was held by host .*reason "second"`,
		when+`stopping: host .*reason "second" is stopping its command after --unlock`,
		when+`stopped: host .*reason "second" has let go after --unlock$`,
		when+`acquired by host .*reason "third"`,
		when+`expired: the key of host .*reason "third" went with its lease, no release recorded`,
		when+`acquired by host .*reason "fourth"`,
		when+`released by host .*reason "fourth"`)
	if err := f.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if got := f.wait(t, 10*time.Second); got != 0 {
		t.Errorf("--follow exited %d on SIGINT, want 0; stderr:\n%s", got, f.stderr)
	}
}

// TestFollowJSON: with --json, --list --follow prints one object a line:
// the realm's state, then the changes, each with its event, lock, key
// and what the key says; SIGTERM ends it with 0.
func TestFollowJSON(t *testing.T) {
	t.Parallel()
	ep := testEtcd(t).Endpoint()
	f := startFollow(t, ep, "--list", "--json")
	f.waitLines(t, 0, `^\{"event":"state","time":"[^"]+","locks":\[\]\}$`)
	followScenario(t, ep, f)
	f.waitLines(t, 1, `"event":"released".*"reason":"fourth"`)
	want := []string{"state", "acquired first", "queued second", "unlocked first", "acquired second",
		"unlocked second", "stopping second", "stopped second", "acquired third", "queued fourth",
		"expired third", "acquired fourth", "released fourth"}
	lines := strings.Split(strings.TrimSpace(f.stdout.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), f.stdout)
	}
	for i, line := range lines {
		var c struct {
			Event, Lock string
			Info        struct{ Reason string }
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("line %d is not a JSON object: %v\n%s", i+1, err, line)
		}
		got := strings.TrimSpace(c.Event + " " + c.Info.Reason)
		if ok, _ := regexp.MatchString("^("+strings.ReplaceAll(want[i], " ", ") ")+"$", got); !ok && got != want[i] {
			t.Errorf("line %d: %q, want %q:\n%s", i+1, got, want[i], line)
		}
		if i > 0 && c.Lock != "q" {
			t.Errorf("line %d names lock %q, want q", i+1, c.Lock)
		}
	}
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := f.wait(t, 10*time.Second); got != 0 {
		t.Errorf("--follow exited %d on SIGTERM, want 0; stderr:\n%s", got, f.stderr)
	}
}

// TestFollowOutage: cut off from etcd, --follow says so once; meanwhile
// the lock is taken and etcd compacts its history past the watch's
// revision; once etcd answers again, it says so, that it may have missed
// changes, and prints the state afresh, then goes on following. Cut off
// beyond --timeout, it gives up with 69.
func TestFollowOutage(t *testing.T) {
	t.Parallel()
	// An etcd of its own: a compaction of the shared one would cut the
	// page-by-page reads of other tests short.
	etcdtest.SkipShort(t)
	cluster, err := etcdtest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ep := cluster.Endpoint()
	proxy, err := etcdtest.NewProxy(ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	f := startFollow(t, proxy.URL(), "--status", "--lock-name=q", "--timeout=6s")
	f.waitLines(t, 0, `^lock "q" is free$`)
	proxy.Partition()
	f.waitStderr(t, "etcd does not answer")
	runWant(t, ep, 0, "--lock", "--lock-name=q", "--reason=meanwhile")
	client, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, "compact")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	proxy.Heal()
	n := f.waitLines(t, 1, `^lock "q" is held by host .*reason "meanwhile"`)
	for _, s := range []string{"etcd answers again", "may have missed changes"} {
		f.waitStderr(t, s)
	}
	if c := strings.Count(f.stderr.String(), "etcd does not answer"); c != 1 {
		t.Errorf("the outage was said %d times, want once:\n%s", c, f.stderr)
	}
	runWant(t, ep, 0, "--unlock", "--lock-name=q")
	f.waitLines(t, n, `lock "q" (expired|unlocked).*reason "meanwhile"`)
	proxy.Partition()
	if got := f.wait(t, 30*time.Second); got != exitUnavailable {
		t.Errorf("--follow cut off beyond --timeout exited %d, want %d; stderr:\n%s", got, exitUnavailable, f.stderr)
	}
}

// TestFollowLeaderChange: through a leader change of a three-member
// cluster, --follow says so and goes on following.
func TestFollowLeaderChange(t *testing.T) {
	t.Parallel()
	cluster := processCluster(t, 0)
	eps := cluster.Endpoint(0) + "," + cluster.Endpoint(1) + "," + cluster.Endpoint(2)
	f := startFollow(t, eps, "--status", "--lock-name=q")
	f.waitLines(t, 0, `^lock "q" is free$`)
	runWant(t, eps, 0, "--lock", "--lock-name=q", "--reason=before")
	n := f.waitLines(t, 1, `acquired by .*reason "before"`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.MakeLeader(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.waitStderr(t, "etcd has a new leader")
	runWant(t, eps, 0, "--unlock", "--lock-name=q")
	runWant(t, eps, 0, "--lock", "--lock-name=q", "--reason=after")
	f.waitLines(t, n, `lock "q" (expired|unlocked).*reason "before"`, `acquired by .*reason "after"`)
}

// TestFollowUsage: --follow with a mode other than --status or --list is
// one line and status 64, before etcd is asked; from the environment it
// is no setting at all.
func TestFollowUsage(t *testing.T) {
	t.Parallel()
	_, stderr, status := runCaptured(t, "127.0.0.1:1", nil, "--follow", "--lock", "--lock-name=q")
	if status != exitUsage || stderr != "distlock: --follow goes with --status or --list\n" {
		t.Errorf("--follow --lock: status %d, stderr %q; want %d and one line", status, stderr, exitUsage)
	}
	stdout, stderr, status := runCaptured(t, testEtcd(t).Endpoint(), []string{"DISTLOCK_FOLLOW=true"}, "--status", "--lock-name=q")
	if status != exitFree || stdout != "lock \"q\" is free\n" {
		t.Errorf("--status with DISTLOCK_FOLLOW: status %d, stdout %q, stderr %q; want a plain --status", status, stdout, stderr)
	}
}
