package supervise

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// zombieParentEnv makes this test binary a process that puts a child of
// its own into another process group, lets it die and never reaps it.
const zombieParentEnv = "SUPERVISE_TEST_ZOMBIE_PARENT"

func TestMain(m *testing.M) {
	if v := os.Getenv(zombieParentEnv); v != "" {
		zombieParent(v)
		return
	}
	os.Exit(m.Run())
}

// zombieParent, given "PGID DIR", leaves a zombie in group PGID whose
// parent, itself, is in a group of its own, writes DIR/ready, and lives on
// without reaping it.
func zombieParent(arg string) {
	var pgid int
	var dir string
	if _, err := fmt.Sscan(arg, &pgid, &dir); err != nil {
		panic(err)
	}
	if err := syscall.Setpgid(0, 0); err != nil {
		panic(err)
	}
	child := exec.Command("true")
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
	if err := child.Start(); err != nil {
		panic(err)
	}
	for {
		if st, ok := readStat(child.Process.Pid); ok && st.state == 'Z' {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	zombie := []byte(strconv.Itoa(child.Process.Pid))
	if err := os.WriteFile(filepath.Join(dir, "zombie.pid"), zombie, 0o644); err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		panic(err)
	}
	time.Sleep(time.Hour)
}

// TestZombieInGroupDoesNotHoldUp: a process that joined the command's group
// from outside and died there stays a zombie until its parent, outside
// the group, reaps it, which may be never. It runs nothing: the command's
// end must not wait for it.
func TestZombieInGroupDoesNotHoldUp(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parentPID := filepath.Join(dir, "parent.pid")
	p, err := Start(Spec{
		Args: []string{"sh", "-c", `` +
			zombieParentEnv + `="$$ $1" "$0" & echo $! > "$1/parent.pid"
			while [ ! -e "$1/ready" ]; do sleep 0.01; done`,
			self, dir},
		Env:        os.Environ(),
		KillSignal: syscall.SIGTERM,
		KillAfter:  time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The zombie's parent left the group, so nothing ends it but this.
		b, err := os.ReadFile(parentPID)
		if pid, _ := strconv.Atoi(string(bytes.TrimSpace(b))); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	ended := make(chan Status, 1)
	go func() {
		st, _ := p.Wait(nil, nil)
		ended <- st
	}()
	select {
	case st := <-ended:
		if st != (Status{}) {
			t.Errorf("the command ended with %+v, want exit status 0", st)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("15s after the command exited, distlock still waits for its group, where only a zombie is left")
	}
	// And the zombie was there all along, in the command's group.
	b, err := os.ReadFile(filepath.Join(dir, "zombie.pid"))
	if err != nil {
		t.Fatal(err)
	}
	zombie, _ := strconv.Atoi(string(b))
	if st, ok := readStat(zombie); !ok || st.state != 'Z' || st.pgrp != p.pid {
		t.Errorf("process %d: %+v (there: %v), want a zombie in group %d", zombie, st, ok, p.pid)
	}
}
