package blackbox

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/lock"
)

// runHost runs distlock to its end in dir, against the test etcd in the
// test's realm, with env added to the environment (another host's, say),
// and returns its exit status and stderr.
func runHost(t *testing.T, dir string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "distlock", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(),
		"DISTLOCK_ENDPOINTS="+testEtcd(t).Endpoint(),
		"DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("distlock %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// countLines counts the lines of the file at path; 0 if there is none.
func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// lastRunKey is the key of lock name's record in the test's realm, and
// whether it is there.
func lastRunKey(t *testing.T, client *clientv3.Client, name string) (string, bool) {
	t.Helper()
	key := lock.LastRunKey(testRealm(t), name)
	resp, err := client.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return key, len(resp.Kvs) == 1
}

// TestMinIntervalTimedByEtcd: a run within SPAN of a recorded success is
// skipped, silently; once etcd has expired the record's lease, and not
// before, the next run runs. Two "hosts": one gives the setting as a flag,
// the other in its environment, in another time zone.
func TestMinIntervalTimedByEtcd(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	hostA := []string{"DISTLOCK_REASON=host-a", "TZ=UTC"}
	hostB := []string{"DISTLOCK_REASON=host-b", "TZ=Pacific/Kiritimati", "DISTLOCK_MIN_INTERVAL=3s"}
	cmd := []string{"sh", "-c", "echo ran >> runs; date +%s%N > end.ns"}

	if got, stderr := runHost(t, dir, hostA, append([]string{"--lock-name=w", "--min-interval=3s", "--"}, cmd...)...); got != 0 || stderr != "" {
		t.Fatalf("first run: exit %d, stderr %q", got, stderr)
	}
	ended := time.Unix(0, readInt(t, filepath.Join(dir, "end.ns")))
	if got, stderr := runHost(t, dir, hostB, append([]string{"--lock-name=w", "--"}, cmd...)...); got != 0 || stderr != "" {
		t.Fatalf("second run: exit %d, stderr %q; want 0 and silence", got, stderr)
	}
	if n := countLines(t, runs); n != 1 {
		t.Fatalf("the command ran %d times, want once", n)
	}
	if _, there := lastRunKey(t, client, "w"); !there {
		t.Fatalf("the record expired before the second run: this machine is too slow for a 3s span")
	}

	var gone time.Time
	poll.For(t, "etcd to expire the record", 30*time.Second, func() bool {
		_, there := lastRunKey(t, client, "w")
		gone = time.Now()
		return !there
	})
	if lived := gone.Sub(ended); lived < 3*time.Second {
		t.Fatalf("the record was gone %v after the run ended, before its 3s", lived)
	}
	if got, stderr := runHost(t, dir, hostB, append([]string{"--lock-name=w", "--"}, cmd...)...); got != 0 || stderr != "" {
		t.Fatalf("run after expiry: exit %d, stderr %q", got, stderr)
	}
	if n := countLines(t, runs); n != 2 {
		t.Fatalf("after the record expired the command ran %d times in all, want twice", n)
	}
}

// TestMinIntervalHostsAtOnce: the cron recipe. Five hosts fire the same
// job at the same moment and queue for the lock, each with an environment
// of its own (the setting as a flag, from the environment, from a config
// file; other time zones and reasons). The first runs the job; each of the
// others, when its turn comes, finds that run recorded and exits 0 without
// a word. The one run holds the lock until all five are in line, so a
// distlock that looked for the record before its turn would run again.
func TestMinIntervalHostsAtOnce(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "distlock.yaml")
	if err := os.WriteFile(file, []byte("min-interval: 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := [][]string{
		{"TZ=UTC", "DISTLOCK_REASON=host-a"},
		{"TZ=Pacific/Kiritimati", "DISTLOCK_REASON=host-b"},
		{"TZ=America/Los_Angeles", "DISTLOCK_MIN_INTERVAL=1h"},
		{"TZ=Asia/Kolkata", "DISTLOCK_CONFIG=" + file},
		{"TZ=Europe/Berlin", "DISTLOCK_MIN_INTERVAL=3600"},
	}
	command := []string{"sh", "-c", "echo $DISTLOCK_FENCING_TOKEN >> runs; while [ ! -e go-on ]; do sleep 0.05; done"}
	var jobs []*running
	for i, env := range hosts {
		args := []string{"--lock-name=hourly", "--quiet"}
		if i < 2 {
			args = append(args, "--min-interval=1h")
		}
		jobs = append(jobs, startDistlockEnv(t, dir, testEtcd(t).Endpoint(), env, nil, append(append(args, "--"), command...)...))
	}
	waitKeys(t, client, "hourly", len(hosts))
	waitFile(t, filepath.Join(dir, "runs"))
	if err := os.WriteFile(filepath.Join(dir, "go-on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, j := range jobs {
		if got := j.wait(t, 60*time.Second); got != 0 || j.stderr.String() != "" {
			t.Errorf("host %d: exit %d, stderr %q; want 0 and silence", i, got, j.stderr)
		}
	}
	if n := countLines(t, filepath.Join(dir, "runs")); n != 1 {
		t.Errorf("five hosts in one window ran the command %d times, want once", n)
	}
	if key, there := lastRunKey(t, client, "hourly"); !there {
		t.Errorf("no record at %s after the run", key)
	}
}

// TestMinIntervalOnlyTheLeaseCounts: the times a record claims are the
// recording host's and decide nothing. A record that says it ended in the
// far past keeps runs away while its lease lives; one that says it ends in
// the far future stops counting when etcd expires its lease.
func TestMinIntervalOnlyTheLeaseCounts(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	put := func(name, ended string, ttl int64) {
		t.Helper()
		lease, err := client.Grant(context.Background(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		value := `{"host":"skewed","pid":1,"user":"nobody","reason":"","started":"` + ended + `","ended":"` + ended + `","duration":"1s"}`
		if _, err := client.Put(context.Background(), lock.LastRunKey(testRealm(t), name), value, clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string) (ran bool, stderr string) {
		t.Helper()
		dir := t.TempDir()
		got, stderr := runHost(t, dir, nil, "--lock-name="+name, "--min-interval=1h", "--verbose", "--", "touch", "ran")
		if got != 0 {
			t.Fatalf("exit %d; stderr:\n%s", got, stderr)
		}
		_, err := os.Stat(filepath.Join(dir, "ran"))
		return err == nil, stderr
	}

	put("past", "1970-01-01T00:00:00Z", 60)
	if ran, stderr := run("past"); ran || !strings.Contains(stderr, "host skewed, pid 1, user nobody, ended 1970-01-01T") {
		t.Errorf("a record from 1970 on a live lease: ran %v; stderr:\n%s", ran, stderr)
	}

	put("future", "2999-01-01T00:00:00Z", 2)
	if ran, stderr := run("future"); ran {
		t.Fatalf("a record from 2999 on a live lease: the command ran; stderr:\n%s", stderr)
	}
	poll.For(t, "etcd to expire the record from 2999", 30*time.Second, func() bool {
		_, there := lastRunKey(t, client, "future")
		return !there
	})
	if ran, stderr := run("future"); !ran {
		t.Errorf("after the record from 2999 expired, the command did not run; stderr:\n%s", stderr)
	}
}

// TestMinIntervalLostLockRecordsNothing: a command that exits 0 after its
// lock was taken away did not succeed under the lock: nothing is recorded,
// and the next run runs.
func TestMinIntervalLostLockRecordsNothing(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dir := t.TempDir()
	a := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=lost", "--min-interval=1h", "--kill-after=1s", "--",
		"sh", "-c", "trap 'exit 0' TERM; echo up > ready; while :; do sleep 0.05; done")
	waitFile(t, filepath.Join(dir, "ready"))
	if got, stderr := runHost(t, dir, nil, "--lock-name=lost", "--unlock", "--quiet"); got != 0 {
		t.Fatalf("--unlock exited %d: %s", got, stderr)
	}
	if got := a.wait(t, 30*time.Second); got != exitLockLost {
		t.Fatalf("exit %d, want %d; stderr:\n%s", got, exitLockLost, a.stderr)
	}
	if key, there := lastRunKey(t, client, "lost"); there {
		t.Fatalf("%s was written for a run that lost its lock", key)
	}
	if got, stderr := runHost(t, dir, nil, "--lock-name=lost", "--min-interval=1h", "--", "touch", "next"); got != 0 {
		t.Fatalf("next run exited %d: %s", got, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "next")); err != nil {
		t.Fatal("the next run did not run its command")
	}
}

// TestMinHoldOutlivesDistlock: with --min-hold, distlock exits as soon as
// its command does, the key stays (same key, same place, on a new lease),
// and a waiter queued behind it starts only when SPAN has passed since the
// lock was acquired.
func TestMinHoldOutlivesDistlock(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startDistlock(t, dirA, testEtcd(t).Endpoint(), "--lock-name=hold", "--min-hold=3s", "--",
		"sh", "-c", "date +%s%N > start.ns; echo $DISTLOCK_FENCING_TOKEN > token; while [ ! -e go-on ]; do sleep 0.01; done")
	startA := time.Unix(0, readInt(t, filepath.Join(dirA, "start.ns")))
	b := startDistlock(t, dirB, testEtcd(t).Endpoint(), "--lock-name=hold", "--", "sh", "-c", "date +%s%N > start.ns")
	before := waitKeys(t, client, "hold", 2)

	if err := os.WriteFile(filepath.Join(dirA, "go-on"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	if got := a.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("holder exited %d; stderr:\n%s", got, a.stderr)
	}
	exited := time.Now()
	// (Its stderr, which the test reads to the end, closes about a second
	// after distlock exits, with or without --min-hold.)
	if took := exited.Sub(released); took > 2500*time.Millisecond {
		t.Errorf("distlock took %v to exit after its command: it lingered", took.Round(time.Millisecond))
	}
	if _, err := os.Stat(filepath.Join(dirB, "start.ns")); err == nil {
		t.Errorf("the waiter started before the holder's distlock had exited")
	}
	after, err := lock.Entries(context.Background(), client, testRealm(t), "hold")
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(startA) < 3*time.Second {
		token := readInt(t, filepath.Join(dirA, "token"))
		if len(after) != 2 || after[0].Key != before[0].Key || after[0].CreateRevision != token {
			t.Fatalf("after distlock exited: %+v; want its key %s (revision %d) still first", after, before[0].Key, token)
		}
		if after[0].Lease == 0 || after[0].Lease == before[0].Lease {
			t.Errorf("the key is on lease %x, was on %x; want a new lease", after[0].Lease, before[0].Lease)
		}
		ttl, err := client.TimeToLive(context.Background(), clientv3.LeaseID(after[0].Lease))
		if err != nil || ttl.TTL < 0 || ttl.TTL > 3 {
			t.Errorf("the key's new lease: %+v, %v; want one of at most 3s", ttl, err)
		}
	}

	if got := b.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("waiter exited %d; stderr:\n%s", got, b.stderr)
	}
	startB := time.Unix(0, readInt(t, filepath.Join(dirB, "start.ns")))
	if gap := startB.Sub(startA); gap < 3*time.Second {
		t.Fatalf("the waiter started %v after the holder's command, within --min-hold=3s", gap)
	}
	t.Logf("holder's command started at +0, ended at +%v; distlock gone at +%v; waiter started at +%v",
		released.Sub(startA).Round(time.Millisecond), exited.Sub(startA).Round(time.Millisecond), startB.Sub(startA).Round(time.Millisecond))
}
