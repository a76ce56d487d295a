package supervise

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestHopperKeepsGroupAlive: a process that forks and exits, over and over
// (a daemon's double fork, in a loop), runs on in the command's group
// although none of its processes lives long, and leaves zombies for the
// reaper as it goes. The command's end must wait for it: a look at the
// group that reads /proc one process after another misses the child each
// time and sees only the zombie.
func TestHopperKeepsGroupAlive(t *testing.T) {
	dir := t.TempDir()
	hop := filepath.Join(dir, "hop")
	beats := filepath.Join(dir, "beats")
	script := "#!/bin/sh\necho . >> " + beats + "\n\"$0\" &\nexit 0\n"
	if err := os.WriteFile(hop, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Start(Spec{
		Args:       []string{"sh", "-c", `trap "" TERM; "$0" & exit 0`, hop},
		Env:        os.Environ(),
		KillSignal: syscall.SIGTERM,
		KillAfter:  time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	pgid := p.pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	size := func() int64 {
		fi, err := os.Stat(beats)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	ended := make(chan struct{})
	go func() {
		p.Wait(nil, nil)
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
		if size() == 0 {
			t.Fatal("the hopper never ran")
		}
		return // still waiting for the hopper, as it should
	}
	before := size()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		if size() > before {
			t.Fatalf("the command's group was taken for gone while a process in it still runs (%s grows)", beats)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
