package supervise

import (
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
