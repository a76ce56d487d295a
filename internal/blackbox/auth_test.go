package blackbox

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/etcdtest"
)

// TestAuthUnreachableEtcd: with --user the client logs in while it is
// created; an etcd that does not answer is still 69, not a usage error.
func TestAuthUnreachableEtcd(t *testing.T) {
	t.Parallel()
	proxy := testProxy(t)
	proxy.Partition()
	start := time.Now()
	j := startDistlock(t, t.TempDir(), proxy.URL(), "--lock-name=a", "--user=root", "--password=x", "--dial-timeout=1s", "--", "true")
	if got := j.wait(t, 30*time.Second); got != exitUnavailable {
		t.Fatalf("exit %d, want %d; stderr:\n%s", got, exitUnavailable, j.stderr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v to give up with --dial-timeout=1s", took)
	}
	want := "distlock: cannot reach etcd at " + proxy.URL() + " (from DISTLOCK_ENDPOINTS) within 1s"
	if !strings.HasPrefix(afterArgvWarning(t, j.stderr.String()), want) {
		t.Errorf("stderr:\n%s\nwant it to start with:\n%s", j.stderr, want)
	}
}

// authCluster starts an etcd of its own, closed when the test ends, with
// authentication on: the user root (password rootPW, role root) and the
// user guest (guestPW), who may log in but not write, so that etcd refuses
// guest at the first request, not while the client is made.
func authCluster(t *testing.T, rootPW, guestPW string) *etcdtest.Cluster {
	t.Helper()
	etcdtest.SkipShort(t)
	cluster, err := etcdtest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", rootPW); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "guest", guestPW); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return cluster
}

// TestAuthWrongPassword: an etcd with authentication on refuses a wrong
// password (69, one line, no password in it) and lets the right one in.
func TestAuthWrongPassword(t *testing.T) {
	t.Parallel()
	cluster := authCluster(t, "s3cret", "guest")
	root, err := clientv3.New(clientv3.Config{
		Endpoints:   cluster.Endpoints(),
		DialTimeout: 5 * time.Second,
		Username:    "root",
		Password:    "s3cret",
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close() // before the cluster: a member waits for its clients

	dir, ep := t.TempDir(), cluster.Endpoint()
	wrong := startDistlock(t, dir, ep, "--lock-name=a", "--user=root", "--password=wrong", "--", "true")
	if got := wrong.wait(t, 30*time.Second); got != exitUnavailable {
		t.Fatalf("wrong password: exit %d, want %d; stderr:\n%s", got, exitUnavailable, wrong.stderr)
	}
	msg := afterArgvWarning(t, wrong.stderr.String())
	if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "distlock: etcd at "+ep+": ") || !strings.Contains(msg, "authentication failed") {
		t.Errorf("wrong password: stderr is not one line naming the problem:\n%s", msg)
	}
	if strings.Contains(msg, "wrong") {
		t.Errorf("wrong password: stderr shows the password:\n%s", msg)
	}

	guest := startDistlock(t, dir, ep, "--lock-name=a", "--user=guest", "--password=guest", "--", "true")
	if got := guest.wait(t, 30*time.Second); got != exitUnavailable {
		t.Fatalf("user without permission: exit %d, want %d; stderr:\n%s", got, exitUnavailable, guest.stderr)
	}
	if msg := afterArgvWarning(t, guest.stderr.String()); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "permission denied") {
		t.Errorf("user without permission: stderr is not one line naming the problem:\n%s", msg)
	}

	// etcdctl's --user NAME:PASSWORD: split, and the password never shown.
	wrongPair := startDistlock(t, dir, ep, "--lock-name=a", "--user=root:wr0ng-pw", "--", "true")
	if got := wrongPair.wait(t, 30*time.Second); got != exitUnavailable || strings.Contains(wrongPair.stderr.String(), "wr0ng-pw") {
		t.Errorf("--user=root:PASSWORD, wrong: exit %d (want %d), stderr must not show the password:\n%s", got, exitUnavailable, wrongPair.stderr)
	}
	for _, user := range [][]string{{"--user=root", "--password=s3cret"}, {"--user=root:s3cret"}} {
		right := startDistlock(t, dir, ep, append(append([]string{"--lock-name=a"}, user...), "--", "true")...)
		if got := right.wait(t, 30*time.Second); got != 0 {
			t.Fatalf("%v: exit %d, want 0; stderr:\n%s", user, got, right.stderr)
		}
	}
	if keys := realmKeys(t, root); len(keys) != 0 {
		t.Errorf("keys left in the realm after the run: %q", keys)
	}
}

// TestAuthBadTLSFileIsUsage: what is wrong before any request is made (a
// TLS file that cannot be read) stays a configuration error.
func TestAuthBadTLSFileIsUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=a", "--user=root", "--password=x", "--cacert="+dir+"/missing.pem", "--", "true")
	if got := j.wait(t, 30*time.Second); got != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", got, exitUsage, j.stderr)
	}
	if msg := afterArgvWarning(t, j.stderr.String()); strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "distlock: TLS: ") {
		t.Errorf("stderr is not one line about TLS:\n%s", msg)
	}
}
