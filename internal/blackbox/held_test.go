package blackbox

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHeldLogsInWithItsOwnPassword: where etcd wants a password, the
// supervisor hands --held the user but never the password; --held logs
// in with the one in its config file, and without one cannot tell (69).
func TestHeldLogsInWithItsOwnPassword(t *testing.T) {
	t.Parallel()
	cluster := authCluster(t, "s3cret", "guest")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "own.yaml"), []byte("password: s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `distlock --held 2> nopw.err; echo $? > nopw
DISTLOCK_CONFIG=own.yaml distlock --held; echo $? > withpw
echo "$DISTLOCK_HELD_SOCKET" > sock
while [ ! -e asked ]; do sleep 0.05; done`
	j := startDistlock(t, dir, cluster.Endpoint(), "--lock-name=a", "--user=root", "--password=s3cret", "--", "sh", "-c", script)
	// What the supervisor hands on, as any process of the command sees it.
	c, err := net.Dial("unix", strings.TrimSpace(waitFile(t, filepath.Join(dir, "sock"))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("held?\n")); err != nil {
		t.Fatal(err)
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	writeFile(filepath.Join(dir, "asked"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := j.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", got, j.stderr)
	}
	for file, want := range map[string]string{"nopw": "69", "withpw": "0"} {
		if got := strings.TrimSpace(readFile(t, filepath.Join(dir, file))); got != want {
			t.Errorf("%s: --held exited %s, want %s; stderr:\n%s", file, got, want, j.stderr)
		}
	}
	if msg := readFile(t, filepath.Join(dir, "nopw.err")); strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "distlock: cannot tell whether the lock is held: ") {
		t.Errorf("without a password, --held says:\n%s\nwant one line that it cannot tell", msg)
	}
	if !strings.Contains(answer, `"user":"root"`) || strings.Contains(answer, "s3cret") || strings.Contains(j.stderr.String(), "s3cret") {
		t.Error("the password was shown, or handed to the command")
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHeldCannotTellWhileEtcdIsSilent: the supervisor counts its lease
// alive, but etcd does not answer --held's read: it cannot tell (69),
// within its --dial-timeout, rather than say yes or hang.
func TestHeldCannotTellWhileEtcdIsSilent(t *testing.T) {
	t.Parallel()
	proxy := testProxy(t)
	dir := t.TempDir()
	script := `echo up > ready; while [ ! -e go ]; do sleep 0.05; done
distlock --held --dial-timeout=1s 2> held.err; echo $? > status.tmp; mv status.tmp status`
	j := startDistlock(t, dir, proxy.URL(), "--lock-name=silent", "--ttl=30s", "--", "sh", "-c", script)
	waitFile(t, filepath.Join(dir, "ready"))
	proxy.Partition()
	asked := time.Now()
	writeFile(filepath.Join(dir, "go"), "")
	status := waitFile(t, filepath.Join(dir, "status"))
	took := time.Since(asked)
	proxy.Heal()
	if status != "69" || took > 10*time.Second {
		t.Errorf("--held with etcd silent: exit %s after %v, want 69 within its --dial-timeout; stderr:\n%s", status, took.Round(time.Millisecond), readFile(t, filepath.Join(dir, "held.err")))
	}
	if msg := readFile(t, filepath.Join(dir, "held.err")); !strings.HasPrefix(msg, "distlock: cannot tell whether the lock is held: ") {
		t.Errorf("--held says:\n%s", msg)
	}
	if got := j.wait(t, 30*time.Second); got != 0 {
		t.Errorf("distlock exited %d, want 0; stderr:\n%s", got, j.stderr)
	}
}
