package blackbox

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// TestNoThunderingHerd: a release wakes one waiter, not the whole line.
// Two hold a --limit 2 lock and eight wait; when one holder lets go, the
// reads (Range calls) etcd serves are those of the waiter that takes the
// slot and of the one behind it that moves up, a handful, not one or more
// per waiter. The member runs in a process of its own, so that its
// counters are the lock's alone.
func TestNoThunderingHerd(t *testing.T) {
	t.Parallel()
	etcdtest.SkipShort(t)
	cluster, err := etcdtest.StartProcessCluster(t.TempDir(), "etcd-member", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ep := cluster.Endpoint(0)
	client, err := etcdtest.External(ep).Client()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// Each command says it started, then waits for its own go-on file.
	hold := []string{"sh", "-c", "echo up > started; while [ ! -e go-on ]; do sleep 0.05; done"}
	var dirs []string
	for i := 0; i < 10; i++ {
		dir := t.TempDir()
		dirs = append(dirs, dir)
		startDistlock(t, dir, ep, append([]string{"--lock-name=herd", "--limit=2", "--"}, hold...)...)
		waitKeys(t, client, "herd", i+1) // one after the other: a known order
	}
	waitFile(t, filepath.Join(dirs[1], "started"))

	before := rangeCalls(t, ep)
	if err := os.WriteFile(filepath.Join(dirs[0], "go-on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dirs[2], "started"))
	// The waiter behind the one that took the slot reads once to learn it
	// is first in line now; wait for that read, then count.
	poll.For(t, "the next waiter to look", 30*time.Second, func() bool { return rangeCalls(t, ep) >= before+2 })
	reads := rangeCalls(t, ep) - before
	if reads > 4 {
		t.Errorf("one release cost %d reads with eight waiting: the waiters are woken together", reads)
	}
	t.Logf("one release with eight waiting: %d reads", reads)
	for _, dir := range dirs {
		_ = os.WriteFile(filepath.Join(dir, "go-on"), nil, 0o644)
	}
	waitKeys(t, client, "herd", 0)
}

// rangeCalls is how many Range (Get) calls the etcd member at ep has
// served, by its Prometheus counters.
func rangeCalls(t *testing.T, ep string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "grpc_server_handled_total{") || !strings.Contains(line, `grpc_method="Range",grpc_service="etcdserverpb.KV"`) {
			continue
		}
		n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		total += int(n)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(fmt.Errorf("read metrics: %w", err))
	}
	return total
}
