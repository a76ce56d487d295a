package blackbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/lock"
)

// TestUnlockWaitsForCommandToStop: --unlock deletes the holder's key, and
// the holder's distlock stops its command: SIGTERM, which this one
// ignores, then SIGKILL after --kill-after. The next waiter's command
// starts only once that command is dead, not when the key goes.
func TestUnlockWaitsForCommandToStop(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	ep := testEtcd(t).Endpoint()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startDistlock(t, dirA, ep, append([]string{"--lock-name=handoff", "--kill-after=4s", "--"}, stampLoop(true)...)...)
	cmdPID := readInt(t, filepath.Join(dirA, "cmd.pid"))
	waitFile(t, filepath.Join(dirA, "last.ns"))
	b := startDistlock(t, dirB, ep, "--lock-name=handoff", "--", "sh", "-c", "date +%s%N > start.ns")
	keys := waitKeys(t, client, "handoff", 2)

	unlock := startDistlock(t, t.TempDir(), ep, "--lock-name=handoff", "--unlock")
	if got := unlock.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--unlock exited %d; stderr:\n%s", got, unlock.stderr)
	}
	unlocked := time.Now()

	// While the command runs on, --status shows its holder as stopping,
	// and another --unlock leaves the waiter alone. (If the command is
	// still alive after they have answered, its lease, and with it the
	// record, was alive throughout.)
	status, statusOut, _ := runHandoff(t, "--lock-name=handoff", "--status")
	again, _, againErr := runHandoff(t, "--lock-name=handoff", "--unlock")
	if alive(int(cmdPID)) {
		if want := `lock "handoff" is held by host `; status != 0 || !strings.HasPrefix(statusOut, want) ||
			!regexp.MustCompile(`: unlocked; stopping its command; held for [0-9]+s; its lease has [0-9]+s left\n  waiter 1: host `).MatchString(statusOut) {
			t.Errorf("--status while the unlocked command stops: exit %d, stdout:\n%s\nwant exit 0, the holder as stopping, then the waiter", status, statusOut)
		}
		if want := `distlock: lock "handoff" was unlocked already; the next holder starts once this one has stopped its command: host `; again != 0 || !strings.HasPrefix(againErr, want) || strings.Count(againErr, "\n") != 1 {
			t.Errorf("--unlock again while the command stops: exit %d, stderr:\n%s\nwant one line starting %q", again, againErr, want)
		}
	} else {
		t.Logf("the command was dead before --status and --unlock answered: not checking what they said")
	}

	if got := a.wait(t, 30*time.Second); got != exitLockLost {
		t.Fatalf("unlocked holder exited %d, want %d; stderr:\n%s", got, exitLockLost, a.stderr)
	}
	if alive(int(cmdPID)) {
		t.Errorf("the unlocked command (pid %d) still runs", cmdPID)
	}
	lastA, startB := nextStartsAfter(t, b, dirA, dirB)
	t.Logf("unlocked at +0; the old command last ran at +%v; the next holder started at +%v (%v later)",
		time.Unix(0, lastA).Sub(unlocked).Round(time.Millisecond),
		time.Unix(0, startB).Sub(unlocked).Round(time.Millisecond),
		time.Duration(startB-lastA).Round(time.Millisecond))

	lines := strings.Split(strings.TrimSpace(unlock.stderr.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `distlock: released lock "handoff", held by host `) ||
		lines[1] != fmt.Sprintf(`distlock: its command is being stopped; the next holder of lock "handoff" starts once it has stopped, or its lease %x expires`, keys[0].Lease) {
		t.Errorf("--unlock said:\n%s\nwant the holder released, then that its command is being stopped", unlock.stderr)
	}
}

// runHandoff runs distlock with args in the test's realm and returns its
// exit status, standard output and standard error.
func runHandoff(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("distlock", args...)
	cmd.Env = append(os.Environ(),
		"DISTLOCK_ENDPOINTS="+testEtcd(t).Endpoint(),
		"DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("distlock %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestStatusWhileHolderStops: a holder that --unlock removed holds the
// lock until it has released its lease. --unlock names that lease, and
// --status and --list show that holder, in text and in JSON: "holder" is
// never null while "held" is true. The holder here is the lock package's
// own, which keeps its lease until it is released: it stops for as long
// as the test wants.
func TestStatusWhileHolderStops(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	req := lock.Request{Realm: testRealm(t), Name: "stops", Timeout: -1, TTL: 10 * time.Second, RPCTimeout: 5 * time.Second,
		Info: lock.Info{Host: "node-3", PID: 4711, User: "root", Mode: lock.ModeExec, Reason: "patching"}}
	a, err := lock.Acquire(context.Background(), client, req)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(context.Background())
	b := startDistlock(t, t.TempDir(), testEtcd(t).Endpoint(), "--lock-name=stops", "--reason=next", "--", "true")
	keys := waitKeys(t, client, "stops", 2)
	lease := fmt.Sprintf("%x", keys[0].Lease)

	status, _, stderr := runHandoff(t, "--lock-name=stops", "--unlock")
	if want := []string{
		`distlock: released lock "stops", held by host node-3, pid 4711, user root, since `,
		`distlock: its command is being stopped; the next holder of lock "stops" starts once it has stopped, or its lease ` + lease + ` expires`,
	}; status != 0 || strings.Count(stderr, "\n") != 2 || !strings.HasPrefix(stderr, want[0]) || !strings.HasSuffix(stderr, "\n"+want[1]+"\n") {
		t.Fatalf("--unlock: exit %d, stderr:\n%s\nwant exit 0, a line starting %q, then %q", status, stderr, want[0], want[1])
	}
	record := fmt.Sprintf("%s%019d-%s", lock.StoppingPrefix(req.Realm, req.Name), a.FencingToken, lease)

	status, stdout, _ := runHandoff(t, "--lock-name=stops", "--status")
	if status != 0 || !strings.HasPrefix(stdout, `lock "stops" is held by host node-3, pid 4711, `) ||
		!regexp.MustCompile(`, reason "patching": unlocked; stopping its command; held for [0-9]+s; its lease has [0-9]+s left\n  waiter 1: host `).MatchString(stdout) {
		t.Errorf("--status: exit %d, stdout:\n%s\nwant the holder as stopping, then the waiter", status, stdout)
	}

	type entry struct {
		Key      string `json:"key"`
		Stopping bool   `json:"stopping"`
		Info     *struct {
			Reason string `json:"reason"`
		} `json:"info"`
	}
	type lockJSON struct {
		Name     string  `json:"name"`
		Held     bool    `json:"held"`
		Holder   *entry  `json:"holder"`
		Holders  []entry `json:"holders"`
		Waiters  []entry `json:"waiters"`
		Stopping []entry `json:"stopping"`
	}
	check := func(how, stdout string, s lockJSON) {
		t.Helper()
		if !s.Held || s.Holder == nil || s.Holder.Key != record || !s.Holder.Stopping || s.Holder.Info == nil || s.Holder.Info.Reason != "patching" ||
			len(s.Holders) != 1 || s.Holders[0].Key != record || !s.Holders[0].Stopping ||
			len(s.Waiters) != 1 || s.Waiters[0].Key != keys[1].Key || s.Waiters[0].Stopping ||
			len(s.Stopping) != 1 || s.Stopping[0].Key != record || !s.Stopping[0].Stopping {
			t.Errorf("%s:\n%s\nwant held by the record %s, stopping, in holder, holders and stopping; the waiter %s", how, stdout, record, keys[1].Key)
		}
	}
	status, stdout, _ = runHandoff(t, "--lock-name=stops", "--status", "--json")
	var s lockJSON
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || status != 0 {
		t.Fatalf("--status --json: exit %d, %v; stdout:\n%s", status, err, stdout)
	}
	check("--status --json", stdout, s)
	status, stdout, _ = runHandoff(t, "--list", "--json")
	var all []lockJSON
	if err := json.Unmarshal([]byte(stdout), &all); err != nil || status != 0 || len(all) != 1 || all[0].Name != "stops" {
		t.Fatalf("--list --json: exit %d, %v; stdout:\n%s\nwant the lock stops alone", status, err, stdout)
	}
	check("--list --json", stdout, all[0])

	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := b.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("the waiter exited %d; stderr:\n%s", got, b.stderr)
	}
}
