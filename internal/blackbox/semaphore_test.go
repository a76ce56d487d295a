package blackbox

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSemaphoreContention: six processes on one lock with --limit 2. Every
// command runs, never more than two at once, two at once some of the time,
// each with a fencing token of its own.
func TestSemaphoreContention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "log")
	record := `echo "enter $(date +%s%N) $DISTLOCK_FENCING_TOKEN" >> ` + logFile +
		`; sleep 0.3; echo "exit $(date +%s%N) $DISTLOCK_FENCING_TOKEN" >> ` + logFile
	var jobs []*running
	for i := 0; i < 6; i++ {
		jobs = append(jobs, startDistlock(t, dir, testEtcd(t).Endpoint(), "--lock-name=six", "--limit=2", "--", "sh", "-c", record))
	}
	for i, j := range jobs {
		if got := j.wait(t, 60*time.Second); got != 0 {
			t.Fatalf("distlock %d exited %d; stderr:\n%s", i, got, j.stderr)
		}
	}
	type event struct {
		at    int64
		enter bool
		token string
	}
	var events []event
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		at, err := strconv.ParseInt(f[1], 10, 64)
		if len(f) != 3 || err != nil {
			t.Fatalf("bad log line %q", line)
		}
		events = append(events, event{at, f[0] == "enter", f[2]})
	}
	sort.Slice(events, func(i, j int) bool { return events[i].at < events[j].at })
	inside, most := 0, 0
	tokens := map[string]bool{}
	for _, e := range events {
		if e.enter {
			inside++
			tokens[e.token] = true
		} else {
			inside--
		}
		most = max(most, inside)
	}
	if len(events) != 12 || len(tokens) != 6 {
		t.Errorf("%d events, %d fencing tokens; want 12 and 6:\n%s", len(events), len(tokens), b)
	}
	if most != 2 {
		t.Errorf("at most %d commands ran at once, want 2:\n%s", most, b)
	}
}

// TestSemaphoreUnlockHolder: --unlock --holder KEY releases that holder,
// whose command is stopped (70), and leaves the other alone.
func TestSemaphoreUnlockHolder(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	wait := []string{"sh", "-c", "while [ ! -e go-on ]; do sleep 0.05; done"}
	a := startDistlock(t, dirA, testEtcd(t).Endpoint(), append([]string{"--lock-name=pair", "--limit=2", "--kill-after=1s", "--"}, wait...)...)
	waitKeys(t, client, "pair", 1)
	b := startDistlock(t, dirB, testEtcd(t).Endpoint(), append([]string{"--lock-name=pair", "--limit=2", "--kill-after=1s", "--"}, wait...)...)
	entries := waitKeys(t, client, "pair", 2)
	second := entries[1].Key[strings.LastIndexByte(entries[1].Key, '/')+1:]
	unlock := startDistlock(t, dirA, testEtcd(t).Endpoint(), "--lock-name=pair", "--unlock", "--holder="+second)
	if got := unlock.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("--unlock --holder exited %d; stderr:\n%s", got, unlock.stderr)
	}
	if want := fmt.Sprintf("distlock: released key %s of lock \"pair\": host ", entries[1].Key); !strings.HasPrefix(unlock.stderr.String(), want) {
		t.Errorf("--unlock said:\n%s\nwant it to start with %q", unlock.stderr, want)
	}
	if got := b.wait(t, 30*time.Second); got != exitLockLost {
		t.Errorf("the released holder exited %d, want %d; stderr:\n%s", got, exitLockLost, b.stderr)
	}
	if left := waitKeys(t, client, "pair", 1); left[0].Key != entries[0].Key {
		t.Errorf("left %s, want the first holder %s", left[0].Key, entries[0].Key)
	}
	if err := os.WriteFile(filepath.Join(dirA, "go-on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := a.wait(t, 30*time.Second); got != 0 {
		t.Errorf("the other holder exited %d; stderr:\n%s", got, a.stderr)
	}
}
