package blackbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/lock"
)

// running is a distlock process started by a Go test.
type running struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	status int
}

// syncBuffer is a buffer a process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDistlock runs the distlock binary in dir against endpoint, in a
// realm of the test's own.
func startDistlock(t *testing.T, dir, endpoint string, args ...string) *running {
	t.Helper()
	return startDistlockStderr(t, dir, endpoint, nil, args...)
}

// startDistlockStderr is startDistlock with stderr going to the given file
// itself (a pipe the test controls, say) rather than to j.stderr.
func startDistlockStderr(t *testing.T, dir, endpoint string, stderr *os.File, args ...string) *running {
	t.Helper()
	return startDistlockEnv(t, dir, endpoint, nil, stderr, args...)
}

// startDistlockEnv is startDistlockStderr with env added to distlock's
// environment (another host's, say), winning over what is there.
func startDistlockEnv(t *testing.T, dir, endpoint string, env []string, stderr *os.File, args ...string) *running {
	t.Helper()
	cmd := exec.Command("distlock", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(),
		"DISTLOCK_ENDPOINTS="+endpoint,
		"DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null"), env...)
	if stderr != nil {
		cmd.Stderr = stderr
	}
	return startJob(t, cmd)
}

// startJob starts cmd, a distlock, with its stderr in j.stderr unless cmd
// has one, and kills it at the end of the test if it still runs.
func startJob(t *testing.T, cmd *exec.Cmd) *running {
	t.Helper()
	j := &running{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	if j.cmd.Stderr == nil {
		j.cmd.Stderr = j.stderr
	}
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = j.cmd.Wait()
		j.status = j.cmd.ProcessState.ExitCode()
		if ws, ok := j.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			j.status = 128 + int(ws.Signal())
		}
		close(j.done)
	}()
	t.Cleanup(func() {
		select {
		case <-j.done:
		default:
			_ = j.cmd.Process.Kill()
			<-j.done
		}
	})
	return j
}

// wait returns the exit status, failing the test after timeout.
func (j *running) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-j.done:
		return j.status
	case <-time.After(timeout):
		t.Fatalf("distlock %q still runs after %v; stderr:\n%s", j.cmd.Args[1:], timeout, j.stderr)
		return -1
	}
}

// testRealm is a realm of the test's own, new for each run of the test
// (go test -count=N runs it again on the same etcd).
func testRealm(t *testing.T) string {
	return etcdtest.Realm(t, "/gotest/")
}

// testClient is a client of the test etcd, closed with it.
func testClient(t *testing.T) *clientv3.Client {
	t.Helper()
	client, err := testEtcd(t).Client()
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// testProxy is a fault proxy in front of the test etcd.
func testProxy(t *testing.T) *etcdtest.Proxy {
	t.Helper()
	proxy, err := etcdtest.NewProxy(testEtcd(t).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	return proxy
}

// waitFile waits until the file at path holds more than blanks and returns
// what it holds, trimmed.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	var content string
	poll.For(t, "something in "+path, 30*time.Second, func() bool {
		b, err := os.ReadFile(path)
		content = strings.TrimSpace(string(b))
		return err == nil && content != ""
	})
	return content
}

// waitKeys waits until lock name has n keys in the test's realm and
// returns them, holder first.
func waitKeys(t *testing.T, client *clientv3.Client, name string, n int) []lock.Entry {
	t.Helper()
	var entries []lock.Entry
	poll.For(t, fmt.Sprintf("%d keys for lock %s", n, name), 30*time.Second, func() bool {
		var err error
		entries, err = lock.Entries(context.Background(), client, testRealm(t), name)
		return err == nil && len(entries) == n
	})
	return entries
}

// readInt waits for the file at path and reads the number in it.
func readInt(t *testing.T, path string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(waitFile(t, path), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// stampLoop is a command that writes its pid to cmd.pid, then appends
// the time (ns) to last.ns every 10ms until it is killed (lastStamp reads
// the newest); trapTerm makes it ignore SIGTERM, so only SIGKILL ends it.
// It is bash, to take the time, write and wait with builtins (a read that
// times out on a pipe nobody writes to): with date, sleep and mv, each
// stamp started programs, and the loops took a good share of the cores
// the tests share. A line is one write to a file opened for appending, so
// a kill cannot leave half of one. The script has no single quote, for a
// shell line to quote it.
func stampLoop(trapTerm bool) []string {
	script := `echo $$ > cmd.pid; exec 3<> <(:); while :; do echo "${EPOCHREALTIME/./}000" >> last.ns; read -t 0.01 -u 3; done`
	if trapTerm {
		script = `trap "" TERM; ` + script
	}
	return []string{"bash", "-c", script}
}

// lastStamp waits for the file at path, which stampLoop appends to, and
// reads the newest stamp in it.
func lastStamp(t *testing.T, path string) int64 {
	t.Helper()
	lines := strings.Split(waitFile(t, path), "\n")
	n, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPartitionStopsCommandBeforeNextHolderStarts is the safety rule: a
// holder cut off from etcd kills its command before etcd can expire its
// lease and give the lock to the next waiter.
func TestPartitionStopsCommandBeforeNextHolderStarts(t *testing.T) {
	t.Parallel()
	for _, ignoresTerm := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignores_TERM=%v", ignoresTerm), func(t *testing.T) {
			t.Parallel()
			client, proxy := testClient(t), testProxy(t)
			dirA, dirB := t.TempDir(), t.TempDir()

			a := startDistlock(t, dirA, proxy.URL(), append([]string{"--lock-name=x", "--ttl=4s", "--kill-after=1s", "--dial-timeout=1s", "--"}, stampLoop(ignoresTerm)...)...)
			cmdPID := readInt(t, filepath.Join(dirA, "cmd.pid"))
			waitFile(t, filepath.Join(dirA, "last.ns"))
			b := startDistlock(t, dirB, testEtcd(t).Endpoint(), "--lock-name=x", "--", "sh", "-c", "date +%s%N > start.ns")
			waitKeys(t, client, "x", 2)

			proxy.Partition()
			partitioned := time.Now()
			if got := a.wait(t, 30*time.Second); got != exitLockLost {
				t.Fatalf("cut-off holder exited %d, want %d; stderr:\n%s", got, exitLockLost, a.stderr)
			}
			if !strings.Contains(a.stderr.String(), `distlock: lost lock "x": etcd has not confirmed the lease in time; stopping the command with SIGTERM (SIGKILL after 1s)`) {
				t.Errorf("stderr does not say the lock was lost:\n%s", a.stderr)
			}
			if alive(int(cmdPID)) {
				t.Errorf("the command (pid %d) still runs", cmdPID)
			}
			lastA, startB := nextStartsAfter(t, b, dirA, dirB)
			t.Logf("partition at +0; cut-off command last ran at +%v; next holder started at +%v (%v later)",
				time.Unix(0, lastA).Sub(partitioned).Round(time.Millisecond),
				time.Unix(0, startB).Sub(partitioned).Round(time.Millisecond),
				time.Duration(startB-lastA).Round(time.Millisecond))
		})
	}
}

// nextStartsAfter waits until the next holder b, whose command writes the
// time it started to start.ns in dirB, is done, and checks that it started
// only after the previous command, a stampLoop in dirA, last ran.
func nextStartsAfter(t *testing.T, b *running, dirA, dirB string) (lastA, startB int64) {
	t.Helper()
	if got := b.wait(t, 60*time.Second); got != 0 {
		t.Fatalf("next holder exited %d; stderr:\n%s", got, b.stderr)
	}
	lastA = lastStamp(t, filepath.Join(dirA, "last.ns"))
	startB = readInt(t, filepath.Join(dirB, "start.ns"))
	if lastA >= startB {
		t.Fatalf("the previous command ran until %d, after the next holder's started at %d", lastA, startB)
	}
	return lastA, startB
}

// TestLockLostWhileRunning covers the other triggers: the key deleted by
// --unlock elsewhere and the lease revoked by an etcd client.
func TestLockLostWhileRunning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		take    func(t *testing.T, client *clientv3.Client, holder lock.Entry)
		message string
	}{
		{"unlocked elsewhere", func(t *testing.T, _ *clientv3.Client, _ lock.Entry) {
			out, err := exec.Command("distlock", "--endpoints="+testEtcd(t).Endpoint(), "--prefix="+testRealm(t), "--lock-name=l", "--unlock").CombinedOutput()
			if err != nil {
				t.Fatalf("--unlock: %v\n%s", err, out)
			}
		}, "the lock's key was deleted (unlocked from elsewhere)"},
		{"lease revoked", func(t *testing.T, client *clientv3.Client, holder lock.Entry) {
			if _, err := client.Revoke(context.Background(), clientv3.LeaseID(holder.Lease)); err != nil {
				t.Fatal(err)
			}
		}, "etcd says the lease has expired or was revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := testClient(t)
			dir := t.TempDir()
			a := startDistlock(t, dir, testEtcd(t).Endpoint(), append([]string{"--lock-name=l", "--kill-after=1s", "--"}, stampLoop(true)...)...)
			cmdPID := readInt(t, filepath.Join(dir, "cmd.pid"))
			entries := waitKeys(t, client, "l", 1)
			start := time.Now()
			tt.take(t, client, entries[0])
			if got := a.wait(t, 30*time.Second); got != exitLockLost {
				t.Fatalf("exit %d, want %d; stderr:\n%s", got, exitLockLost, a.stderr)
			}
			want := fmt.Sprintf("distlock: lost lock %q: %s; stopping the command with SIGTERM (SIGKILL after 1s)\n", "l", tt.message)
			if got := a.stderr.String(); got != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", got, want)
			}
			if alive(int(cmdPID)) {
				t.Errorf("the command (pid %d) still runs", cmdPID)
			}
			t.Logf("command stopped %v after the lock was taken away", time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestWaitersRideOutLeaderChange: on a three-member cluster, a waiter keeps
// its key (same create revision) across leader changes, and a running
// holder's command is not disturbed.
func TestWaitersRideOutLeaderChange(t *testing.T) {
	t.Parallel()
	// Members of their own, built without the race detector: three in the
	// test process were several times slower, and once under load did not
	// start, and then did not stop.
	cluster := processCluster(t, 0)
	members := etcdtest.External(cluster.Endpoint(0), cluster.Endpoint(1), cluster.Endpoint(2))
	t.Cleanup(members.Close)
	client, err := members.Client()
	if err != nil {
		t.Fatal(err)
	}
	endpoints := strings.Join(members.Endpoints(), ",")
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startDistlock(t, dirA, endpoints, "--lock-name=lc", "--ttl=10s", "--kill-after=1s", "--",
		"sh", "-c", "echo up > ready; while [ ! -e go-on ]; do sleep 0.05; done")
	waitFile(t, filepath.Join(dirA, "ready"))
	b := startDistlock(t, dirB, endpoints, "--lock-name=lc", "--", "sh", "-c", "echo $DISTLOCK_FENCING_TOKEN > token")
	before := waitKeys(t, client, "lc", 2)

	for _, to := range []int{1, 2} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := cluster.MakeLeader(ctx, to)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("leader moved to member %d", to)
	}
	after := waitKeys(t, client, "lc", 2)
	if after[1].Key != before[1].Key || after[1].CreateRevision != before[1].CreateRevision {
		t.Fatalf("waiter lost its place: before %+v, after %+v", before[1], after[1])
	}
	if err := os.WriteFile(filepath.Join(dirA, "go-on"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := a.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("holder exited %d; stderr:\n%s", got, a.stderr)
	}
	if got := b.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("waiter exited %d; stderr:\n%s", got, b.stderr)
	}
	if token := readInt(t, filepath.Join(dirB, "token")); token != before[1].CreateRevision {
		t.Errorf("waiter ran with fencing token %d, want its create revision %d", token, before[1].CreateRevision)
	}
}

// TestLockSurvivesEtcdRestart: a lock taken with --lock belongs to no lease
// and no process; it is still there after etcd restarts, until --unlock.
func TestLockSurvivesEtcdRestart(t *testing.T) {
	t.Parallel()
	etcdtest.SkipShort(t)
	cluster, err := etcdtest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	dir := t.TempDir()
	ep := cluster.Endpoint()
	if got := startDistlock(t, dir, ep, "--lock-name=kept", "--lock", "--reason=look first").wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--lock exited %d", got)
	}
	if err := cluster.Restart(); err != nil {
		t.Fatal(err)
	}
	client, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	entries := waitKeys(t, client, "kept", 1)
	if entries[0].Lease != 0 || entries[0].Info == nil || entries[0].Info.Reason != "look first" {
		t.Fatalf("after the restart: %+v", entries[0])
	}
	busy := startDistlock(t, dir, ep, "--lock-name=kept", "--nowait", "--", "true")
	if got := busy.wait(t, 30*time.Second); got != exitConflict || !strings.Contains(busy.stderr.String(), `reason "look first"`) {
		t.Fatalf("--nowait after the restart exited %d: %s", got, busy.stderr)
	}
	if got := startDistlock(t, dir, ep, "--lock-name=kept", "--unlock", "--quiet").wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--unlock exited %d", got)
	}
	waitKeys(t, client, "kept", 0)
}

// TestUnansweredEtcdIsNotAHang: an etcd that accepts connections but never
// answers (a blackhole) gets status 69 within --dial-timeout, in every
// mode that talks to it.
func TestUnansweredEtcdIsNotAHang(t *testing.T) {
	t.Parallel()
	proxy := testProxy(t)
	proxy.Partition()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--", "true"},
		{"--lock"},
		{"--unlock"},
		{"--status"},
	} {
		start := time.Now()
		j := startDistlock(t, dir, proxy.URL(), append([]string{"--lock-name=hole", "--dial-timeout=1s"}, args...)...)
		if got := j.wait(t, 30*time.Second); got != exitUnavailable {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", args, got, exitUnavailable, j.stderr)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%v: took %v with --dial-timeout=1s", args, took.Round(time.Millisecond))
		}
		if !strings.HasPrefix(j.stderr.String(), "distlock: cannot reach etcd at "+proxy.URL()+" (from DISTLOCK_ENDPOINTS) within 1s") {
			t.Errorf("%v: stderr:\n%s", args, j.stderr)
		}
	}
}
