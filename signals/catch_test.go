package signals

import (
	"syscall"
	"testing"
	"time"
)

// TestCatchRelaysOnceReady: once Ready is closed, a caught signal comes
// to C, and does not end the process.
func TestCatchRelaysOnceReady(t *testing.T) {
	c := Catch(syscall.SIGUSR2, syscall.SIGWINCH)
	defer c.Stop()
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Ready was not closed within 10s")
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-c.C:
		if s != syscall.SIGUSR2 {
			t.Errorf("got %v, want SIGUSR2", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGUSR2 did not come to C within 10s")
	}
}
