package blackbox

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/poll"
)

// TestSignalDuringLoginEndsAtOnce: with --user, distlock logs in as it
// dials, bounded by --dial-timeout. A Ctrl-C while the login waits for an
// etcd that does not answer ends distlock at once (130), in exec mode and
// with --lock: the signals are caught only once the dial is done, and
// nothing is written anywhere before. (From a fresh reader's attack: with
// the signals caught before the dial, the signal waited for the timeout
// and was lost, exit 69.)
func TestSignalDuringLoginEndsAtOnce(t *testing.T) {
	t.Parallel()
	for _, mode := range [][]string{{"--", "true"}, {"--lock"}} {
		t.Run(mode[0], func(t *testing.T) {
			proxy := testProxy(t)
			proxy.Partition()
			args := append([]string{"--lock-name=a", "--user=root", "--password=x", "--dial-timeout=15s", "--verbose"}, mode...)
			j := startDistlock(t, t.TempDir(), proxy.URL(), args...)
			// Said just before the login.
			poll.For(t, "the line that names etcd", 10*time.Second, func() bool { return strings.Contains(j.stderr.String(), "etcd at ") })
			sent := time.Now()
			if err := j.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			got := j.wait(t, 30*time.Second)
			if took := time.Since(sent); got != 128+int(syscall.SIGINT) || took > 5*time.Second {
				t.Errorf("SIGINT during the login: exit %d after %v, want %d at once; stderr:\n%s",
					got, took.Round(time.Millisecond), 128+int(syscall.SIGINT), j.stderr)
			}
		})
	}
}
