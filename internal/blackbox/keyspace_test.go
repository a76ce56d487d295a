package blackbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/tinx/distlock/internal/poll"
)

// Regression tests for issue 17: a key under a lock's prefix is a holder or
// a waiter only if the rest of it is a lease ID as etcd's recipe writes it
// (lower-case hex of a positive int64, no leading zero); any other key
// there is foreign. Realms nest, so a prefix scan of the lock "staging" in
// realm R/ also returns every key of the realm R/staging/: those keys must
// neither take, nor be freed by, nor be waited for by that lock.
// The scripts testdata/script/realms_*.txtar cover the rest of the issue.

// leaseKeyRest is what follows a lock's prefix in the key of a holder or
// a waiter: a lease ID in etcd's spelling (%x of a positive int64).
var leaseKeyRest = regexp.MustCompile(`^[1-9a-f][0-9a-f]{0,15}$`)

// queueKeys reads the keys under the lock prefix pfx that are named by a
// lease ID, oldest first. It reads etcd directly, so it does not depend on
// what the lock package makes of the keys.
func queueKeys(t *testing.T, client *clientv3.Client, pfx string) []*mvccpb.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, pfx, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		t.Fatal(err)
	}
	var kvs []*mvccpb.KeyValue
	for _, kv := range resp.Kvs {
		if leaseKeyRest.MatchString(strings.TrimPrefix(string(kv.Key), pfx)) {
			kvs = append(kvs, kv)
		}
	}
	return kvs
}

// waitQueueKeys waits until the lock prefix pfx has n keys named by a
// lease ID and returns them, oldest first.
func waitQueueKeys(t *testing.T, client *clientv3.Client, pfx string, n int) []*mvccpb.KeyValue {
	t.Helper()
	var kvs []*mvccpb.KeyValue
	poll.For(t, fmt.Sprintf("%d holder or waiter keys under %s", n, pfx), 30*time.Second, func() bool {
		kvs = queueKeys(t, client, pfx)
		return len(kvs) == n
	})
	return kvs
}

// createRevision is the create revision of key, or 0 if it is not there.
func createRevision(t *testing.T, client *clientv3.Client, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].CreateRevision
}

// notHeldLine is what --unlock says on stderr when it finds nobody to
// release.
var notHeldLine = regexp.MustCompile(`not held|nothing to unlock`)

// TestKeySpaceUnlockSparesNestedRealm guards effect 1: --unlock of the lock
// "staging" in realm R/ must not take the lock "deploy" of realm
// R/staging/ from its holder. Today it deletes that holder's key (its
// command is told to stop, and the waiter starts next to it: two holders).
func TestKeySpaceUnlockSparesNestedRealm(t *testing.T) {
	t.Parallel()
	client, ep := testClient(t), testEtcd(t).Endpoint()
	nested := testRealm(t) + "staging/"
	dirA, dirB := t.TempDir(), t.TempDir()

	// A's command would take 4s to stop on SIGTERM, and would leave a
	// mark; without one it ends when the test creates "release".
	a := startDistlock(t, dirA, ep, "--prefix="+nested, "--lock-name=deploy", "--", "sh", "-c",
		`echo $$ > cmd.pid
trap 'echo TERM > got-term; sleep 4; date +%s%N > end.ns; exit 0' TERM
while [ ! -e release ]; do sleep 0.02; done
date +%s%N > end.ns`)
	cmdPID := int(readInt(t, filepath.Join(dirA, "cmd.pid")))
	b := startDistlock(t, dirB, ep, "--prefix="+nested, "--lock-name=deploy", "--", "sh", "-c", "date +%s%N > start.ns")
	before := waitQueueKeys(t, client, nested+"deploy/", 2)

	status, _, stderr := runHandoff(t, "--lock-name=staging", "--unlock")
	if status != 0 || !notHeldLine.MatchString(stderr) || strings.Contains(stderr, "released") {
		t.Errorf("--unlock of lock staging in the outer realm: exit %d, stderr:\n%s\nwant exit 0 and that the lock is not held", status, stderr)
	}
	for _, kv := range before {
		if got := createRevision(t, client, string(kv.Key)); got != kv.CreateRevision {
			t.Errorf("key %s of the nested realm's lock deploy is gone after --unlock of the outer lock staging (create revision %d, was %d)", kv.Key, got, kv.CreateRevision)
		}
	}
	if !alive(cmdPID) {
		t.Errorf("A's command (pid %d) no longer runs after --unlock of another realm's lock", cmdPID)
	}
	if _, err := os.Stat(filepath.Join(dirB, "start.ns")); err == nil {
		t.Errorf("B's command started while A's command still runs: two holders of lock deploy")
	}

	if err := os.WriteFile(filepath.Join(dirA, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := a.wait(t, 15*time.Second); got != 0 {
		t.Errorf("A exited %d, want 0; stderr:\n%s", got, a.stderr)
	}
	if _, err := os.Stat(filepath.Join(dirA, "got-term")); err == nil {
		t.Errorf("A's command got SIGTERM: --unlock of lock staging in realm R/ took the lock deploy of realm R/staging/")
	}
	if got := b.wait(t, 15*time.Second); got != 0 {
		t.Fatalf("B exited %d, want 0; stderr:\n%s", got, b.stderr)
	}
	if endA, startB := readInt(t, filepath.Join(dirA, "end.ns")), readInt(t, filepath.Join(dirB, "start.ns")); startB < endA {
		t.Errorf("B's command started %v before A's command ended: two holders of lock deploy", time.Duration(endA-startB))
	}
}

// TestKeySpaceEtcdRecipeTrailingSlash guards effect 4: etcd's recipe on
// "R/foo/" (etcdctl lock "R/foo/", with the slash) writes R/foo//<lease>,
// which is a lock of its own, not distlock's lock foo: distlock neither
// waits for it nor deletes it, and --status says why it does not count
// it. etcd's recipe on "R/foo", without the slash, is distlock's lock foo
// and still keeps distlock out.
func TestKeySpaceEtcdRecipeTrailingSlash(t *testing.T) {
	t.Parallel()
	client, realm := testClient(t), testRealm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	slash, err := concurrency.NewSession(client, concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	defer slash.Close()
	if err := concurrency.NewMutex(slash, realm+"foo/").Lock(ctx); err != nil {
		t.Fatal(err)
	}
	lease := fmt.Sprintf("%x", slash.Lease())
	key := realm + "foo//" + lease
	if createRevision(t, client, key) == 0 {
		t.Fatalf("etcd's recipe on %q did not write %s", realm+"foo/", key)
	}

	if status, _, stderr := runHandoff(t, "--lock-name=foo", "--nowait", "--", "true"); status != 0 {
		t.Errorf("--nowait beside etcd's recipe on %q: exit %d, want 0; stderr:\n%s", realm+"foo/", status, stderr)
	}

	status, stdout, _ := runHandoff(t, "--lock-name=foo", "--status")
	if status != 1 {
		t.Errorf("--status: exit %d, want 1 (free); stdout:\n%s", status, stdout)
	}
	// The exact wording is not settled; the line must say that the key
	// is not counted, name it, and name the etcdctl lock that wrote it.
	notCounted := regexp.MustCompile(`not counted: key .*` + regexp.QuoteMeta("//"+lease) + `\b.*etcdctl lock`)
	recipe := `etcdctl lock "` + realm + `foo/"`
	found := false
	for _, line := range strings.Split(stdout, "\n") {
		found = found || notCounted.MatchString(line) && strings.Contains(line, recipe)
	}
	if !found {
		t.Errorf("--status stdout:\n%s\nwant a line matching %q that contains %q", stdout, notCounted, recipe)
	}

	status, _, stderr := runHandoff(t, "--lock-name=foo", "--unlock")
	if status != 0 || !notHeldLine.MatchString(stderr) {
		t.Errorf("--unlock: exit %d, stderr:\n%s\nwant exit 0 and that the lock is not held", status, stderr)
	}
	if createRevision(t, client, key) == 0 {
		t.Errorf("--unlock of lock foo deleted %s, the key of etcd's recipe on %q", key, realm+"foo/")
	}
	there := createRevision(t, client, key) != 0
	status, _, stderr = runHandoff(t, "--lock-name=foo", "--unlock", "--holder="+key)
	if status != 64 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, key) {
		t.Errorf("--unlock --holder=%s: exit %d, stderr:\n%s\nwant exit 64 and one line that names the key", key, status, stderr)
	}
	if there && createRevision(t, client, key) == 0 {
		t.Errorf("--unlock --holder=%s deleted it", key)
	}
	if err := slash.Close(); err != nil {
		t.Fatal(err)
	}

	// Without the slash, etcd's recipe and distlock share the lock.
	plain, err := concurrency.NewSession(client, concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := concurrency.NewMutex(plain, realm+"foo").Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if status, _, stderr := runHandoff(t, "--lock-name=foo", "--nowait", "--", "true"); status != 75 {
		t.Errorf("--nowait while etcd's recipe holds %q: exit %d, want 75; stderr:\n%s", realm+"foo", status, stderr)
	}
}

// TestKeySpaceWaiterPassesForeignKey guards effect 6: a waiter watches the
// holder or waiter just ahead of it, never a foreign key that happens to
// have been created between them. Today B watches the foreign key and,
// once A is done, waits on until someone deletes that key.
func TestKeySpaceWaiterPassesForeignKey(t *testing.T) {
	t.Parallel()
	client, ep, realm := testClient(t), testEtcd(t).Endpoint(), testRealm(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pfx := realm + "foo/"

	a := startDistlock(t, dirA, ep, "--lock-name=foo", "--", "sh", "-c",
		`echo $$ > cmd.pid; while [ ! -e release ]; do sleep 0.02; done; date +%s%N > end.ns`)
	readInt(t, filepath.Join(dirA, "cmd.pid"))
	waitQueueKeys(t, client, pfx, 1)
	foreign := pfx + "zz"
	if _, err := client.Put(context.Background(), foreign, "written by hand"); err != nil {
		t.Fatal(err)
	}
	b := startDistlock(t, dirB, ep, "--lock-name=foo", "--", "sh", "-c", "date +%s%N > started")
	waitQueueKeys(t, client, pfx, 2)
	if _, err := os.Stat(filepath.Join(dirB, "started")); err == nil {
		t.Fatalf("B's command started while A holds lock foo")
	}

	if err := os.WriteFile(filepath.Join(dirA, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := a.wait(t, 10*time.Second); got != 0 {
		t.Fatalf("A exited %d, want 0; stderr:\n%s", got, a.stderr)
	}
	if got := b.wait(t, 10*time.Second); got != 0 {
		t.Fatalf("B exited %d, want 0; stderr:\n%s", got, b.stderr)
	}
	if endA, startB := readInt(t, filepath.Join(dirA, "end.ns")), readInt(t, filepath.Join(dirB, "started")); startB < endA {
		t.Errorf("B's command started %v before A's command ended", time.Duration(endA-startB))
	}
	if createRevision(t, client, foreign) == 0 {
		t.Errorf("the foreign key %s is gone", foreign)
	}
}

// TestKeySpaceLockNameNFC guards effect 7: a name and its Unicode
// canonical equivalent must not be two locks. A name that is not in NFC
// is refused, with the NFC spelling to use instead.
func TestKeySpaceLockNameNFC(t *testing.T) {
	t.Parallel()
	const nfd, nfc = "cafe\u0301", "caf\u00e9"
	status, _, stderr := runHandoff(t, "--lock-name="+nfd, "--status")
	if status != 64 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "NFC") || !strings.Contains(stderr, nfc) {
		t.Errorf("--status of %q (NFD): exit %d, stderr:\n%s\nwant exit 64 and one line that mentions NFC and shows %q", nfd, status, stderr, nfc)
	}
	if status, stdout, stderr := runHandoff(t, "--lock-name="+nfc, "--status"); status != 1 {
		t.Errorf("--status of %q (NFC): exit %d, want 1 (free); stdout:\n%s\nstderr:\n%s", nfc, status, stdout, stderr)
	}
}

// TestKeySpaceRealmSpelling guards effect 8: a realm with an empty segment
// ("//") or without a leading "/" is a usage error, found before etcd is
// asked anything: the endpoint here answers nobody, so a call that tried
// to reach it would end with 69 instead.
func TestKeySpaceRealmSpelling(t *testing.T) {
	t.Parallel()
	realm := testRealm(t)
	for _, tc := range []struct {
		prefix string
		want   int
	}{
		{realm + "/", 64},
		{realm + "a//b/", 64},
		{"distlock/", 64},
		{realm + "cafe\u0301/", 64}, // NFD: the NFC spelling would be another realm
		{realm, 69},                 // a good realm: distlock goes on to etcd, which does not answer
	} {
		status, _, stderr := runHandoff(t, "--prefix="+tc.prefix, "--endpoints=http://127.0.0.1:1", "--dial-timeout=1s",
			"--lock-name=x", "--status")
		if status != tc.want || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--prefix=%s: exit %d, stderr:\n%s\nwant exit %d and one line", tc.prefix, status, stderr, tc.want)
		}
	}
}
