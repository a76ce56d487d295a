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
	if stopped != StoppedByCaller {
		t.Errorf("Wait says %d, not that stop ended the command (%v)", stopped, st)
	}
	if !termFirst {
		t.Errorf("Stopping was called before the command had the kill signal; the command ended with %v", st)
	}
}

// TestMaxRuntime: once MaxRuntime has passed since the start, the kill
// sequence starts and Overran is called; a stop that comes during the
// grace period changes nothing, neither the status nor the grace. A
// command that ends in time is not stopped.
func TestMaxRuntime(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	stop := make(chan struct{})
	var overranAt time.Time
	p, err := Start(Spec{
		Args:       []string{"sh", "-c", `trap "" TERM; echo > ` + ready + `; while :; do sleep 0.05; done`},
		Env:        os.Environ(),
		KillSignal: syscall.SIGTERM,
		KillAfter:  time.Second,
		MaxRuntime: time.Second,
		Overran: func() {
			overranAt = time.Now()
			close(stop) // the lock lost in the same instant
		},
		Stopping: func() { t.Error("Stopping called: the stop came second") },
	})
	if err != nil {
		t.Fatal(err)
	}
	st, stopped := p.Wait(stop, nil)
	if _, err := os.Stat(ready); err != nil {
		t.Fatalf("the command was not ready at MaxRuntime: %v", err)
	}
	if stopped != StoppedAtMaxRuntime || st.Signal != syscall.SIGKILL {
		t.Errorf("Wait: %v, stopped %d; want SIGKILL, %d", st, stopped, StoppedAtMaxRuntime)
	}
	if ran := overranAt.Sub(p.started); overranAt.IsZero() || ran < time.Second {
		t.Errorf("Overran called %v after the start, before MaxRuntime", ran)
	}

	p, err = Start(Spec{Args: []string{"true"}, Env: os.Environ(), KillSignal: syscall.SIGTERM, MaxRuntime: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st, stopped := p.Wait(nil, nil); stopped != NotStopped || st.ExitCode() != 0 {
		t.Errorf("a command that ended in time: %v, stopped %d", st, stopped)
	}
}
