package blackbox

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"

	"github.com/tinx/distlock/internal/poll"
)

// becomeRootMain is "become-root READY": installed setuid root, it takes
// root as its real user ID too, as sudo does, writes its PID to READY, and
// runs until it is killed.
func becomeRootMain() {
	if err := unix.Setresuid(0, 0, 0); err != nil {
		panic(err)
	}
	if err := os.WriteFile(os.Args[1], []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		panic(err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// TestCommandBecameAnotherUser: a command that became root (sudo, su)
// cannot be signalled by a distlock running as nobody. When the lock is
// lost, distlock says, in one line, that it cannot stop it, and waits for
// it to end.
func TestCommandBecameAnotherUser(t *testing.T) {
	t.Run("alone", func(t *testing.T) { testBecameAnotherUser(t, "sudo") })
	// In a script, the shell takes the kill signal and ends; only SIGKILL,
	// later, reaches nothing.
	t.Run("in a script", func(t *testing.T) { testBecameAnotherUser(t, "script") })
}

func testBecameAnotherUser(t *testing.T, lockName string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to install a setuid-root program and to run distlock as nobody")
	}
	// A directory nobody can enter, with distlock, and this test binary
	// setuid root as become-root.
	dir, err := os.MkdirTemp("", "distlock-otheruser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	built, err := exec.LookPath("distlock")
	if err != nil {
		t.Fatal(err)
	}
	distlock := copyExecutable(t, built, filepath.Join(dir, "distlock"), 0o755)
	becomeRoot := copyExecutable(t, self, filepath.Join(dir, "become-root"), 0o755|os.ModeSetuid)

	ready := filepath.Join(dir, "ready")
	command := []string{becomeRoot, ready}
	if lockName == "script" {
		command = []string{"sh", "-c", `"$0" "$1"; echo not reached`, becomeRoot, ready}
	}
	cmd := exec.Command(distlock, append([]string{"--lock-name=" + lockName, "--ttl=6s", "--kill-after=1s", "--"}, command...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"DISTLOCK_ENDPOINTS="+testEtcd(t).Endpoint(),
		"DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	j := startJob(t, cmd)
	rootPID := int(readInt(t, ready))
	t.Cleanup(func() { _ = syscall.Kill(rootPID, syscall.SIGKILL) })

	// Take the lock away, as an operator with etcdctl could.
	client := testClient(t)
	entries := waitKeys(t, client, lockName, 1)
	if _, err := client.Revoke(context.Background(), clientv3.LeaseID(entries[0].Lease)); err != nil {
		t.Fatal(err)
	}
	said := "distlock: cannot stop the command: operation not permitted (it runs as another user); waiting for it to end by itself"
	poll.For(t, "distlock to say it cannot stop the command", 20*time.Second, func() bool {
		return strings.Contains(j.stderr.String(), said)
	})
	select {
	case <-j.done:
		t.Fatalf("distlock exited %d while its command still ran; stderr:\n%s", j.status, j.stderr)
	default:
	}
	if err := syscall.Kill(rootPID, 0); err != nil {
		t.Fatalf("the command is gone (%v): the test cannot show what it means to show", err)
	}
	// Once it ends, distlock exits as on any lost lock.
	if err := syscall.Kill(rootPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := j.wait(t, 20*time.Second); got != 70 {
		t.Errorf("exit %d, want 70; stderr:\n%s", got, j.stderr)
	}
	if n := strings.Count(j.stderr.String(), "cannot stop"); n != 1 {
		t.Errorf("%d lines say it cannot stop the command, want 1; stderr:\n%s", n, j.stderr)
	}
}

// copyExecutable copies the program at from to to, owned by root, with
// mode perm (chmod after chown, which clears the setuid bit).
func copyExecutable(t *testing.T, from, to string, perm os.FileMode) string {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(to, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, perm); err != nil {
		t.Fatal(err)
	}
	return to
}
