package blackbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/lock"
)

// Durability: what distlock keeps in etcd outlives what happens to etcd
// itself. Each test runs its own three-member cluster, in this process,
// and gives distlock all three members.

// durabilityRun is one distlock call that ran to its end.
type durabilityRun struct {
	status         int
	pid            int
	stdout, stderr string
}

// runDistlockOn runs distlock to its end in dir against endpoints, in the
// test's realm, and returns what a user would see.
func runDistlockOn(t *testing.T, dir, endpoints string, args ...string) durabilityRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "distlock", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"DISTLOCK_ENDPOINTS="+endpoints,
		"DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("distlock %q: %v", args, err)
	}
	return durabilityRun{status: cmd.ProcessState.ExitCode(), pid: cmd.ProcessState.Pid(), stdout: stdout.String(), stderr: stderr.String()}
}

// startDurabilityCluster starts a three-member cluster for t alone, closed
// (clients first) when t ends, and returns it with the endpoints to give
// distlock.
func startDurabilityCluster(t *testing.T) (*etcdtest.Cluster, string) {
	t.Helper()
	etcdtest.SkipShort(t)
	cluster, err := etcdtest.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster, strings.Join(cluster.Endpoints(), ",")
}

// clusterClient is a client of all of cluster's members, closed with it.
func clusterClient(t *testing.T, cluster *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	client, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// moveLeaderAround hands leadership on three times, so that every member
// loses it once, whichever ones distlock's clients talk to; then it stops
// the leader and starts it again, which breaks the connections of every
// client that talked to it (their keepalives and watches must go on
// elsewhere) and makes another member lead.
func moveLeaderAround(t *testing.T, cluster *etcdtest.Cluster) {
	t.Helper()
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		from, to, err := cluster.MoveLeader(ctx)
		cancel()
		if err != nil {
			t.Fatalf("move the leader from member %d: %v", from, err)
		}
		t.Logf("leader moved from member %d to %d", from, to)
	}
	leader := cluster.Leader()
	if err := cluster.RestartMember(leader); err != nil {
		t.Fatal(err)
	}
	poll.For(t, "a leader after the old one restarted", 30*time.Second, func() bool { return cluster.Leader() >= 0 })
	t.Logf("member %d, the leader, restarted; member %d leads", leader, cluster.Leader())
}

// keysUnder is every key under lock name's prefix in the test's realm.
// realmKeys are the keys left in the test's realm but the history
// records, which outlive every run by design.
func realmKeys(t *testing.T, client *clientv3.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, testRealm(t), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		if !strings.Contains(string(kv.Key), "!history:") {
			keys = append(keys, string(kv.Key))
		}
	}
	return keys
}

func keysUnder(t *testing.T, client *clientv3.Client, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, lock.Prefix(testRealm(t), name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

// TestDurabilityLockSurvivesClusterRestart: a lock taken with --lock is a
// key on no lease; every member of the cluster restarting on its data does
// not free it, nor move it, nor give it to anyone else.
//
// It fails if --lock leaves the key on its lease (etcd keeps leases across
// a restart, so the key would still be there, but on a lease: the Lease
// check), revokes it without detaching (the key is gone), or if --status,
// --nowait or --unlock find the holder by anything but the key in etcd.
func TestDurabilityLockSurvivesClusterRestart(t *testing.T) {
	t.Parallel()
	cluster, endpoints := startDurabilityCluster(t)
	dir := t.TempDir()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	// Runs whose history records must outlive the restart, and one whose
	// record's lease ends soon after it.
	for _, args := range [][]string{{"--lock-name=kept", "--reason=before", "--", "true"}, {"--lock-name=brief", "--history-span=2s", "--", "true"}} {
		if run := runDistlockOn(t, dir, endpoints, args...); run.status != 0 {
			t.Fatalf("%q exited %d; stderr:\n%s", args, run.status, run.stderr)
		}
	}
	if h := runDistlockOn(t, dir, endpoints, "--lock-name=brief", "--history"); !strings.Contains(h.stdout, "released at ") {
		t.Fatalf("--history of brief: exit %d, stdout:\n%s", h.status, h.stdout)
	}
	taken := runDistlockOn(t, dir, endpoints, "--lock-name=kept", "--lock", "--reason=deploy freeze", "--verbose")
	if taken.status != 0 {
		t.Fatalf("--lock exited %d; stderr:\n%s", taken.status, taken.stderr)
	}
	client := clusterClient(t, cluster)
	before := waitKeys(t, client, "kept", 1)[0]
	if want := fmt.Sprintf("distlock: holding lock %q as %s until someone runs --unlock\n", "kept", before.Key); !strings.HasSuffix(taken.stderr, want) {
		t.Fatalf("--lock --verbose said:\n%s\nwant it to end with:\n%s", taken.stderr, want)
	}
	// A member waits for its clients' connections when it stops.
	client.Close()

	start := time.Now()
	if err := cluster.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster restarted in %v", time.Since(start).Round(time.Millisecond))

	client = clusterClient(t, cluster)
	after := waitKeys(t, client, "kept", 1)[0]
	if after.Key != before.Key || after.CreateRevision != before.CreateRevision || after.Lease != 0 {
		t.Fatalf("after the restart the lock's key is %s (revision %d, lease %x); before it was %s (revision %d), on no lease",
			after.Key, after.CreateRevision, after.Lease, before.Key, before.CreateRevision)
	}

	// --status: held, by the same key, as a manual lock (no pid: that
	// process has exited), for the same reason.
	status := runDistlockOn(t, dir, endpoints, "--lock-name=kept", "--status")
	manual := regexp.MustCompile(`^lock "kept" is held by host ` + regexp.QuoteMeta(host) + `, user [^,]+, since [^,]+, reason "deploy freeze": a manual lock \(--lock\), until --unlock; held for [0-9]+s\n$`)
	if status.status != 0 || !manual.MatchString(status.stdout) {
		t.Fatalf("--status after the restart: exit %d, stdout:\n%s\nwant exit 0 and one line matching %s", status.status, status.stdout, manual)
	}
	holder := fmt.Sprintf("host %s, pid %d, ", host, taken.pid)
	statusJSON := runDistlockOn(t, dir, endpoints, "--lock-name=kept", "--status", "--json")
	var s struct {
		Held   bool `json:"held"`
		Holder *struct {
			Key            string `json:"key"`
			CreateRevision int64  `json:"create_revision"`
		} `json:"holder"`
		Waiters []json.RawMessage `json:"waiters"`
	}
	if err := json.Unmarshal([]byte(statusJSON.stdout), &s); err != nil || statusJSON.status != 0 {
		t.Fatalf("--status --json: exit %d, %v; stdout:\n%s", statusJSON.status, err, statusJSON.stdout)
	}
	if !s.Held || s.Holder == nil || s.Holder.Key != before.Key || s.Holder.CreateRevision != before.CreateRevision || len(s.Waiters) != 0 {
		t.Fatalf("--status --json after the restart:\n%s\nwant held by %s (revision %d), no waiters", statusJSON.stdout, before.Key, before.CreateRevision)
	}

	// Someone else's run finds it taken and runs nothing.
	busy := runDistlockOn(t, dir, endpoints, "--lock-name=kept", "--nowait", "--", "touch", "ran")
	if busy.status != exitConflict || !strings.Contains(busy.stderr, holder) || !strings.Contains(busy.stderr, `reason "deploy freeze"`) {
		t.Fatalf("--nowait after the restart: exit %d, want %d naming the holder (%s...); stderr:\n%s", busy.status, exitConflict, holder, busy.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("--nowait ran its command while the lock was held")
	}

	unlock := runDistlockOn(t, dir, endpoints, "--lock-name=kept", "--unlock")
	if want := fmt.Sprintf("distlock: released lock %q, held by %s", "kept", holder); unlock.status != 0 || !strings.HasPrefix(unlock.stderr, want) {
		t.Fatalf("--unlock: exit %d; stderr:\n%s\nwant exit 0 and %s...", unlock.status, unlock.stderr, want)
	}
	if keys := keysUnder(t, client, "kept"); len(keys) != 0 {
		t.Fatalf("after --unlock, keys are left: %q", keys)
	}
	if free := runDistlockOn(t, dir, endpoints, "--lock-name=kept", "--status"); free.status != 1 || free.stdout != `lock "kept" is free`+"\n" {
		t.Fatalf("--status after --unlock: exit %d, stdout:\n%s", free.status, free.stdout)
	}
	checkHistoryAfterRestart(t, dir, endpoints)
}

// checkHistoryAfterRestart: the history of the lock kept across the
// restart has both its holdings, newest first; the record with a span of
// 2s is gone once its lease has ended (renewed by the restart, then run
// out).
func checkHistoryAfterRestart(t *testing.T, dir, endpoints string) {
	t.Helper()
	h := runDistlockOn(t, dir, endpoints, "--lock-name=kept", "--history")
	want := regexp.MustCompile(`^token [0-9]+\t[^\t]+\t[^\t]+\thost [^\t]*reason "deploy freeze"\tunlocked at [^\t]+\n` +
		`token [0-9]+\t[^\t]+\t[^\t]+\thost [^\t]*reason "before"\treleased at [^\t]+; outcome ran, exit status 0\n$`)
	if h.status != 0 || !want.MatchString(h.stdout) {
		t.Fatalf("--history after the restart: exit %d, stdout:\n%s\nwant it to match %s", h.status, h.stdout, want)
	}
	poll.For(t, "the 2s record to go", 30*time.Second, func() bool {
		b := runDistlockOn(t, dir, endpoints, "--lock-name=brief", "--history")
		return b.status == 0 && b.stdout == ""
	})
}

// TestDurabilityWaitersKeepTheirPlaceAcrossLeaderChanges: a holder and two
// queued waiters ride out the leader moving to every member in turn. The
// waiters' keys keep their create revisions, and once the holder is done
// they run in the order they queued, one after the other, each under the
// key it queued with.
//
// It fails if a waiter takes a leader change for the end of its wait (its
// command starts before the holder's ends: the order file), for a fatal
// error (it exits 69), or for a reason to queue again (a new key, a new
// create revision, or a fencing token that is not the first one); if two
// waiters run at once (the stamps); and if a key is left at the end. etcd
// hands leadership over gracefully here, and its clients have not been
// seen to get an error for it; the restart of the leader at the end breaks
// the connections of whoever talked to it.
func TestDurabilityWaitersKeepTheirPlaceAcrossLeaderChanges(t *testing.T) {
	t.Parallel()
	cluster, endpoints := startDurabilityCluster(t)
	client := clusterClient(t, cluster)
	dir := t.TempDir()
	start := time.Now()

	// A TTL short enough that every process sends keepalives (every two
	// seconds) while the leader moves, long enough that a waiter, which
	// gives up after TTL - kill-after - 1s without an answer, rides out the
	// restart of the leader on a loaded machine (6s was seen too short).
	lease := []string{"--lock-name=q", "--ttl=10s", "--kill-after=1s"}
	// Every command appends a line to one file: the order in it is the order
	// in which they ran. A waiter's command works for a moment (the sleep),
	// so that two running at once would overlap.
	holder := startDistlock(t, dir, endpoints, slices.Concat(lease, []string{"--",
		"sh", "-c", "echo up > ready; while [ ! -e go-on ]; do sleep 0.05; done; echo holder >> order"})...)
	waitFile(t, filepath.Join(dir, "ready"))
	waiterCmd := func(name string) []string {
		return slices.Concat(lease, []string{"--", "sh", "-c",
			"date +%s%N > " + name + ".start; echo " + name + " $DISTLOCK_FENCING_TOKEN >> order; sleep 0.2; date +%s%N > " + name + ".end"})
	}
	// Each waiter's "waiting" line comes once its key is in etcd and the
	// answer is back: then its place is taken.
	waiting := func(j *running) func() bool {
		return func() bool { return strings.Contains(j.stderr.String(), `distlock: lock "q" is held by `) }
	}
	w1 := startDistlock(t, dir, endpoints, waiterCmd("w1")...)
	waitKeys(t, client, "q", 2)
	poll.For(t, "the first waiter to wait", 30*time.Second, waiting(w1))
	w2 := startDistlock(t, dir, endpoints, waiterCmd("w2")...)
	before := waitKeys(t, client, "q", 3)
	poll.For(t, "the second waiter to wait", 30*time.Second, waiting(w2))

	moveLeaderAround(t, cluster)

	// Three keys still, and if not, what each distlock said.
	var after []lock.Entry
	var readErr error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := poll.Until(ctx, func() bool {
		// Each read on its own short deadline: one that hangs on a
		// connection to the restarted member must not use up the wait.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		after, readErr = lock.Entries(rctx, client, testRealm(t), "q")
		return readErr == nil && len(after) == 3
	})
	cancel()
	if err != nil {
		t.Fatalf("%d keys for lock q after the leader moved, not 3 (last read: %v); holder's stderr:\n%s\nfirst waiter's:\n%s\nsecond waiter's:\n%s",
			len(after), readErr, holder.stderr, w1.stderr, w2.stderr)
	}
	for i, name := range []string{"holder", "first waiter", "second waiter"} {
		if after[i].Key != before[i].Key || after[i].CreateRevision != before[i].CreateRevision {
			t.Errorf("%s: key %s (revision %d) before the leader moved, %s (revision %d) after",
				name, before[i].Key, before[i].CreateRevision, after[i].Key, after[i].CreateRevision)
		}
	}
	for name, j := range map[string]*running{"holder": holder, "first waiter": w1, "second waiter": w2} {
		select {
		case <-j.done:
			t.Errorf("the %s exited %d while the leader moved; stderr:\n%s", name, j.status, j.stderr)
		default:
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	if err := os.WriteFile(filepath.Join(dir, "go-on"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, j := range map[string]*running{"holder": holder, "first waiter": w1, "second waiter": w2} {
		if got := j.wait(t, 30*time.Second); got != 0 {
			t.Errorf("the %s exited %d; stderr:\n%s", name, got, j.stderr)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	order, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("holder\nw1 %d\nw2 %d\n", before[1].CreateRevision, before[2].CreateRevision); string(order) != want {
		t.Fatalf("the commands ran in this order, with these fencing tokens:\n%s\nwant:\n%s", order, want)
	}
	w1End, w2Start := readInt(t, filepath.Join(dir, "w1.end")), readInt(t, filepath.Join(dir, "w2.start"))
	if w2Start <= w1End {
		t.Errorf("the second waiter's command started at %d, before the first one's ended at %d", w2Start, w1End)
	}
	// distlock releases before it exits: nothing may be left, at once.
	if keys := keysUnder(t, client, "q"); len(keys) != 0 {
		t.Errorf("keys left under the lock's prefix: %q", keys)
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// TestDurabilityMinIntervalRecordSurvivesLeaderChanges: the record of a
// successful run lives on a lease of etcd's; the leader moving to every
// member in turn neither loses it nor makes it look old, so the next run
// within the span is skipped, and --status still shows it.
//
// It fails if the record goes with the run's own lease (revoked as the lock
// is released) or is not what the next run or --status reads. Note that a
// new leader renews every lease (unless etcd runs with the LeaseCheckpoint
// feature), so a leader change makes the record young again: the skip may
// last longer than SPAN. This test does not pin that either way.
func TestDurabilityMinIntervalRecordSurvivesLeaderChanges(t *testing.T) {
	t.Parallel()
	cluster, endpoints := startDurabilityCluster(t)
	client := clusterClient(t, cluster)
	dir := t.TempDir()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--lock-name=mi", "--min-interval=1h", "--verbose", "--", "sh", "-c", "echo ran >> runs"}

	first := runDistlockOn(t, dir, endpoints, args...)
	if first.status != 0 || countLines(t, filepath.Join(dir, "runs")) != 1 {
		t.Fatalf("first run: exit %d, %d runs; stderr:\n%s", first.status, countLines(t, filepath.Join(dir, "runs")), first.stderr)
	}
	if key, there := lastRunKey(t, client, "mi"); !there {
		t.Fatalf("no record %s after a successful run; stderr:\n%s", key, first.stderr)
	}

	moveLeaderAround(t, cluster)

	second := runDistlockOn(t, dir, endpoints, args...)
	ran := fmt.Sprintf("host %s, pid %d, ", host, first.pid)
	skipped := fmt.Sprintf("distlock: not running the command: lock %q last ran successfully less than 1h0m0s ago (--min-interval): %s", "mi", ran)
	if second.status != 0 || !strings.Contains(second.stderr, skipped) {
		t.Errorf("run after the leader moved: exit %d; stderr:\n%s\nwant exit 0 and %s...", second.status, second.stderr, skipped)
	}
	if n := countLines(t, filepath.Join(dir, "runs")); n != 1 {
		t.Errorf("after the leader moved the command ran again: %d runs in all, want 1", n)
	}

	status := runDistlockOn(t, dir, endpoints, "--lock-name=mi", "--status")
	if want := `lock "mi" is free` + "\nlast successful run: " + ran; status.status != 1 || !strings.HasPrefix(status.stdout, want) || strings.Count(status.stdout, "\n") != 2 {
		t.Errorf("--status after the leader moved: exit %d, stdout:\n%s\nwant exit 1 and:\n%s...", status.status, status.stdout, want)
	}
	if keys := keysUnder(t, client, "mi"); len(keys) != 0 {
		t.Errorf("keys left under the lock's prefix: %q", keys)
	}
}
