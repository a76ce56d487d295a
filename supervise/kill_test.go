package supervise

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/poll"
)

// The watchdog is this test binary started again, as distlock's is: the
// init of package watchdog, linked in here too, turns it into one.

// TestKillByBoundsSIGKILL: a kill sequence that starts late still sends
// SIGKILL by KillBy, not a whole KillAfter later.
func TestKillByBoundsSIGKILL(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	var killBy time.Time
	p, err := Start(Spec{
		Args:       []string{"sh", "-c", `trap "" TERM; echo > ` + ready + `; while :; do sleep 0.05; done`},
		Env:        os.Environ(),
		KillSignal: syscall.SIGTERM,
		KillAfter:  20 * time.Second,
		KillBy:     func() time.Time { return killBy },
	})
	if err != nil {
		t.Fatal(err)
	}
	// TERM only once the command ignores it.
	poll.For(t, "the command to be ready", 30*time.Second, func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	killBy = time.Now().Add(300 * time.Millisecond)
	stop := make(chan struct{})
	close(stop)
	ended := make(chan Status, 1)
	go func() {
		st, _ := p.Wait(stop, nil)
		ended <- st
	}()
	select {
	case st := <-ended:
		if st.Signal != syscall.SIGKILL {
			t.Errorf("the command ended with %v, want SIGKILL", st)
		}
		if late := time.Since(killBy); late > 2*time.Second {
			t.Errorf("SIGKILL came %v after KillBy", late.Round(time.Millisecond))
		}
	case <-time.After(10 * time.Second):
		p.Signal(syscall.SIGKILL)
		t.Fatal("no SIGKILL 10s into a kill sequence whose KillBy was 300ms away")
	}
}

// TestKillBeforeStopping: when stop ends, the kill signal reaches the
// command before Stopping is called. Stopping says the lock is lost, and
// saying it may wait (on etcd, to learn why a key went; on stderr): none
// of that may stand between a lost lock and the kill.
func TestKillBeforeStopping(t *testing.T) {
	dir := t.TempDir()
	ready, gotTerm := filepath.Join(dir, "ready"), filepath.Join(dir, "got-term")
	var termFirst bool
	p, err := Start(Spec{
		Args:       []string{"sh", "-c", `exec 2>/dev/null; trap "echo > ` + gotTerm + `; exit 0" TERM; echo > ` + ready + `; while :; do sleep 0.05; done`},
		Env:        os.Environ(),
		KillSignal: syscall.SIGTERM,
		KillAfter:  20 * time.Second,
		// Stopping waits (as long as it may) for the command to have
		// the kill signal: it never comes if the kill is sent after it.
		Stopping: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			termFirst = poll.Until(ctx, func() bool {
				_, err := os.Stat(gotTerm)
				return err == nil
			}) == nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	poll.For(t, "the command to be ready", 30*time.Second, func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	stop := make(chan struct{})
	close(stop)
	st, stopped := p.Wait(stop, nil)
	if !stopped {
		t.Errorf("Wait says stop did not end the command (%v)", st)
	}
	if !termFirst {
		t.Errorf("Stopping was called before the command had the kill signal; the command ended with %v", st)
	}
}
