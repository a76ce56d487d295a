package blackbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// TestHolderStopsWhenItsMemberFails is the safety rule on a three-member
// cluster whose members are processes that can be frozen. The holder talks
// to member 0 only, a follower; a waiter talks to members 1 and 2. Whatever
// happens to member 0 and its peers, the holder's command must be dead one
// TTL after the fault began (etcd cannot have expired the lease before),
// and before the waiter's command starts.
func TestHolderStopsWhenItsMemberFails(t *testing.T) {
	t.Parallel()
	// The TTL is long enough that member 0 notices it has no leader (a few
	// election timeouts) well before the holder's deadline passes: then a
	// watch that waits for a leader is what the holder is doing.
	const ttl, killAfter = 12 * time.Second, time.Second
	tests := []struct {
		name  string
		fault func(t *testing.T, c *etcdtest.ProcessCluster, holder *running)
	}{
		// Member 0 keeps answering its clients, but has no quorum: its
		// keepalives go nowhere, and watches and reads wait.
		{"member loses quorum and keeps answering", func(t *testing.T, c *etcdtest.ProcessCluster, holder *running) {
			freeze(t, c, 1, 2)
			holder.wait(t, 60*time.Second)
			resume(t, c, 1, 2)
		}},
		// Member 0 stops answering at all, with its connections open.
		{"member freezes", func(t *testing.T, c *etcdtest.ProcessCluster, holder *running) {
			freeze(t, c, 0)
		}},
		// First no quorum, then member 0 freezes too while the other two
		// come back and carry on without it: the watch that waits for a
		// leader on member 0 never returns.
		{"quorum moves away", func(t *testing.T, c *etcdtest.ProcessCluster, holder *running) {
			freeze(t, c, 1, 2)
			time.Sleep(6 * time.Second) // the fault's own schedule
			freeze(t, c, 0)
			resume(t, c, 1, 2)
		}},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			cluster := processCluster(t, 1)
			dirA, dirB := t.TempDir(), t.TempDir()
			// The command notes when SIGTERM came, and runs on: only
			// SIGKILL ends it.
			cmd := stampLoop(false)
			cmd[2] = `trap "date +%s%N > term.ns" TERM; ` + cmd[2]
			a := startDistlock(t, dirA, cluster.Endpoint(0), append([]string{"--lock-name=q",
				fmt.Sprintf("--ttl=%v", ttl), fmt.Sprintf("--kill-after=%v", killAfter), "--dial-timeout=1s", "--"}, cmd...)...)
			cmdPID := int(readInt(t, filepath.Join(dirA, "cmd.pid")))
			waitFile(t, filepath.Join(dirA, "last.ns"))
			b := startDistlock(t, dirB, cluster.Endpoint(1)+","+cluster.Endpoint(2), "--lock-name=q", "--",
				"sh", "-c", "date +%s%N > start.ns")
			poll.For(t, "the waiter to wait", 30*time.Second, func() bool { return strings.Contains(b.stderr.String(), "; waiting") })

			start := time.Now()
			// Watch for the command's death while the fault runs its course
			// (a fault may wait for the holder to end).
			watching, stopWatching := context.WithCancel(context.Background())
			defer stopWatching()
			died := make(chan time.Time, 1)
			go func() {
				if poll.Until(watching, func() bool { return !alive(cmdPID) }) == nil {
					died <- time.Now()
				}
			}()
			tt.fault(t, cluster, a)
			var dead time.Time
			select {
			case dead = <-died:
			case <-time.After(60 * time.Second):
				t.Fatalf("the holder's command still runs %v after the fault; stderr:\n%s", time.Since(start).Round(time.Millisecond), a.stderr)
			}
			if dead.Sub(start) >= ttl {
				t.Errorf("the holder's command died %v after the fault, not within the TTL (%v); stderr:\n%s",
					dead.Sub(start).Round(time.Millisecond), ttl, a.stderr)
			}
			// The kill sequence starts at distlock's own deadline, a
			// whole --kill-after before SIGKILL is due (KillBy): a
			// sequence started late, the loss heard of late, leaves less
			// between SIGTERM and the death.
			term := time.Unix(0, readInt(t, filepath.Join(dirA, "term.ns")))
			if gap := dead.Sub(term); gap < killAfter*3/4 {
				t.Errorf("SIGTERM came only %v before the command died by SIGKILL, not --kill-after (%v): the kill sequence started late; stderr:\n%s",
					gap.Round(time.Millisecond), killAfter, a.stderr)
			}
			if got := a.wait(t, 30*time.Second); got != exitLockLost {
				t.Errorf("holder exited %d, want %d; stderr:\n%s", got, exitLockLost, a.stderr)
			}
			if !strings.Contains(a.stderr.String(), `distlock: lost lock "q": etcd has not confirmed the lease in time; stopping the command with SIGTERM (SIGKILL after 1s)`) {
				t.Errorf("stderr does not say the lock was lost:\n%s", a.stderr)
			}
			for i := 0; i < 3; i++ {
				resume(t, cluster, i)
			}
			_, startB := nextStartsAfter(t, b, dirA, dirB)
			t.Logf("fault at +0; SIGTERM at +%v; holder's command dead at +%v; waiter's started at +%v",
				term.Sub(start).Round(time.Millisecond), dead.Sub(start).Round(time.Millisecond), time.Unix(0, startB).Sub(start).Round(time.Millisecond))
		})
	}
}

// processCluster starts three etcd members as processes of their own,
// which a test can freeze, with member leader as the leader; closed when
// the test ends, after the distlocks it started.
func processCluster(t *testing.T, leader int) *etcdtest.ProcessCluster {
	t.Helper()
	etcdtest.SkipShort(t)
	cluster, err := etcdtest.StartProcessCluster(t.TempDir(), "etcd-member", 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cluster.MakeLeader(ctx, leader); err != nil {
		t.Fatal(err)
	}
	return cluster
}

// freeze stops the given members with SIGSTOP.
func freeze(t *testing.T, c *etcdtest.ProcessCluster, members ...int) {
	t.Helper()
	for _, i := range members {
		if err := c.Freeze(i); err != nil {
			t.Fatal(err)
		}
	}
}

// resume continues the given members.
func resume(t *testing.T, c *etcdtest.ProcessCluster, members ...int) {
	t.Helper()
	for _, i := range members {
		if err := c.Resume(i); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWaiterOutlivesFrozenMember: a waiter whose watch lives on a member
// that freezes, while its other requests reach a healthy member, must
// still get its turn: the connection to the frozen member is found dead
// and the watch moves. Without that, the waiter's lease stays alive
// through the healthy member and it waits for good. Which member a
// waiter's watch picks is the balancer's choice, so several waiters, on
// locks of their own, make it all but certain that some pick the frozen
// one.
func TestWaiterOutlivesFrozenMember(t *testing.T) {
	t.Parallel()
	// The leader is the member no one freezes: no election muddles it.
	cluster := processCluster(t, 2)
	const n = 5
	release := filepath.Join(t.TempDir(), "release")
	type pair struct {
		holder, waiter *running
		dir            string
	}
	var pairs []pair
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("--lock-name=frozen-%d", i)
		holder := startDistlock(t, t.TempDir(), cluster.Endpoint(2), name, "--",
			"sh", "-c", `echo held > held; while [ ! -e "$0" ]; do sleep 0.05; done`, release)
		pairs = append(pairs, pair{holder: holder, dir: t.TempDir()})
	}
	for i := range pairs {
		waitFile(t, filepath.Join(pairs[i].holder.cmd.Dir, "held"))
		pairs[i].waiter = startDistlock(t, pairs[i].dir, cluster.Endpoint(0)+","+cluster.Endpoint(1),
			fmt.Sprintf("--lock-name=frozen-%d", i), "--", "sh", "-c", "echo started > started")
	}
	for _, p := range pairs {
		poll.For(t, "the waiter to wait", 30*time.Second, func() bool { return strings.Contains(p.waiter.stderr.String(), "; waiting") })
	}
	freeze(t, cluster, 0)
	defer resume(t, cluster, 0)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i, p := range pairs {
		if got := p.holder.wait(t, 30*time.Second); got != 0 {
			t.Fatalf("holder %d exited %d; stderr:\n%s", i, got, p.holder.stderr)
		}
	}
	// A dead connection is found within the client's keepalive time and
	// timeout (15s); the rest is slack for a slow machine.
	for i, p := range pairs {
		if got := p.waiter.wait(t, 45*time.Second-time.Since(start)); got != 0 {
			t.Errorf("waiter %d exited %d, want 0 (its command run); stderr:\n%s", i, got, p.waiter.stderr)
			continue
		}
		if _, err := os.Stat(filepath.Join(p.dir, "started")); err != nil {
			t.Errorf("waiter %d's command did not run: %v", i, err)
		}
	}
	t.Logf("every waiter had its turn %v after the member froze", time.Since(start).Round(time.Millisecond))
}
