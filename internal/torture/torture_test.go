package torture

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/lock"
)

// The locks: two plain ones, and a semaphore of two. Some runs take the
// two plain ones as a set.
const (
	mutexName  = "mutex"
	mutex2Name = "mutex2"
	semName    = "sem"
	semLimit   = 2
)

// setNames is the set of locks that some runs take, in the canonical
// order (lock.SetOrder; TestTorture makes sure).
var setNames = []string{mutexName, mutex2Name}

// setLabel names the set in the workers' records and the summary.
func setLabel() string { return strings.Join(setNames, "+") }

// Timing of every distlock run. The TTL is short so that faults cost the
// run little; --kill-after is what a command that ignores SIGTERM gets.
const (
	ttl       = 3 * time.Second
	killAfter = 500 * time.Millisecond
	waitLimit = 20 * time.Second // --timeout: a waiter gives up (75)
)

// length is one of the two runs: the short one in CI, the long one on
// demand (DISTLOCK_TORTURE=long).
type length struct {
	name     string
	sections int           // critical sections to reach
	least    time.Duration // faults go on at least this long
	most     time.Duration // and never longer: not enough sections fails
}

var (
	short = length{"short", 100, 30 * time.Second, 90 * time.Second}
	long  = length{"long", 2000, 0, 90 * time.Minute}
)

// TestTorture runs distlock on simulated hosts under random faults, then
// checks the commands' own records: see check_test.go for what is checked.
func TestTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("the torture test is not short")
	}
	t.Parallel()
	if os.Getenv("DISTLOCK_TEST_ETCD") != "" {
		t.Skip("the torture test runs a cluster of its own; DISTLOCK_TEST_ETCD is for the others")
	}
	run, seed := round(t)
	if got := lock.SetOrder("/torture/", []string{mutex2Name, mutexName}); !slices.Equal(got, setNames) {
		t.Fatalf("the canonical order of the set is %q; setNames says %q", got, setNames)
	}
	tt := newTorture(t, seed)
	faultTime := tt.faultRound(run)

	// Everything a run left in etcd goes: released, or its lease expired.
	ctx, cancel := context.WithTimeout(context.Background(), ttl+30*time.Second)
	defer cancel()
	var left []string
	if err := poll.Until(ctx, func() bool {
		if now := tt.leftUnder(ctx); now != nil {
			left = now // the last answer, for the message
		}
		return left != nil && len(left) == 0
	}); err != nil {
		t.Errorf("left under the realm %s a TTL after the last run: %q", tt.realm, left)
	}

	report := tt.check()
	report.duration = faultTime
	fmt.Print(report.summary(run, seed))
	if w := os.Getenv("DISTLOCK_TORTURE_SUMMARY"); w != "" {
		if err := os.WriteFile(w, []byte(report.summary(run, seed)), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, p := range report.problems {
		t.Error(p)
	}
}

// newTorture builds the commands, starts the cluster and the hosts'
// proxies, and connects to the members; the test's cleanup stops them.
func newTorture(t *testing.T, seed int64) *torture {
	dir := t.TempDir()
	tt := &torture{
		t:        t,
		rnd:      rand.New(rand.NewSource(seed)),
		distlock: build(t, dir, "distlock", "github.com/tinx/distlock"),
		logPath:  filepath.Join(dir, "sections.log"),
		realm:    etcdtest.Realm(t, "/torture/"),
		faults:   map[string]int{},
	}
	var err error
	member := build(t, dir, "etcd-member", "github.com/tinx/distlock/internal/devetcd")
	tt.worker = build(t, dir, "worker", "github.com/tinx/distlock/internal/torture/worker")
	tt.cluster, err = etcdtest.StartProcessClusterWith(filepath.Join(dir, "etcd"), member, 3,
		etcdtest.ProcessOptions{PeerProxies: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tt.cluster.Close)
	var endpoints []string
	for i := 0; i < tt.cluster.Size(); i++ {
		endpoints = append(endpoints, tt.cluster.Endpoint(i))
	}
	tt.client, err = clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.client.Close() })
	for i := 0; i < hosts; i++ {
		h := &host{id: i}
		for _, ep := range endpoints {
			p, err := etcdtest.NewProxy(ep)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			h.proxies = append(h.proxies, p)
		}
		tt.hosts = append(tt.hosts, h)
	}
	return tt
}

// faultRound runs the hosts and throws faults at them until there are
// enough sections, for at least run.least and at most run.most; then it
// heals every fault and stops the hosts. It returns how long faults went
// on.
func (tt *torture) faultRound(run length) time.Duration {
	tt.began = time.Now()
	hostsCtx, stopHosts := context.WithCancel(context.Background())
	defer stopHosts()
	faultsCtx, stopFaults := context.WithCancel(context.Background())
	defer stopFaults()
	var hostsDone, faultsDone sync.WaitGroup
	for _, h := range tt.hosts {
		hostsDone.Add(1)
		go func() {
			defer hostsDone.Done()
			tt.runHost(hostsCtx, h)
		}()
	}
	for i := 0; i < injectors; i++ {
		faultsDone.Add(1)
		go func() {
			defer faultsDone.Done()
			tt.injectFaults(faultsCtx)
		}()
	}
	deadline := time.After(run.most)
	tick := time.NewTicker(time.Second)
wait:
	for sections := 0; sections < run.sections || time.Since(tt.began) < run.least; {
		select {
		case <-deadline:
			tt.t.Errorf("only %d critical sections in %v; %d wanted", sections, run.most, run.sections)
			break wait
		case <-tick.C:
			sections = countSections(tt.t, tt.logPath)
		}
	}
	tick.Stop()
	stopFaults()
	faultsDone.Wait() // every fault healed, every member running
	stopHosts()
	hostsDone.Wait()
	return time.Since(tt.began)
}

// round is the run that DISTLOCK_TORTURE asks for (short, the default, or
// long) and the seed of its random choices, new each time unless
// DISTLOCK_TORTURE_SEED repeats one.
func round(t *testing.T) (length, int64) {
	t.Helper()
	run := short
	switch v := os.Getenv("DISTLOCK_TORTURE"); v {
	case "", "short":
	case "long":
		run = long
	default:
		t.Fatalf("DISTLOCK_TORTURE=%q: want short or long", v)
	}
	seed := time.Now().UnixNano()
	if v := os.Getenv("DISTLOCK_TORTURE_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("DISTLOCK_TORTURE_SEED: %v", err)
		}
	}
	t.Logf("%s run, seed %d (DISTLOCK_TORTURE_SEED=%d repeats the choices)", run.name, seed, seed)
	return run, seed
}

// hosts is how many simulated machines contend; injectors is how many
// faults can be under way at once.
const (
	hosts     = 8
	injectors = 2
)

// torture is one run of the torture test.
type torture struct {
	t        *testing.T
	distlock string
	worker   string
	logPath  string
	realm    string
	cluster  *etcdtest.ProcessCluster
	client   *clientv3.Client // straight to the members, for faults and checks
	hosts    []*host
	began    time.Time

	mu     sync.Mutex
	rnd    *rand.Rand
	runs   []*run
	faults map[string]int // by kind
	// setFaults is how many faults were aimed at a set's holder.
	setFaults int
	revoked   []revocation
	memberMu  sync.Mutex // one fault on the members at a time
}

// revocation is a holder's lease revoked by hand: etcd frees the lock that
// instant, so the next holder may start while the old command is being
// stopped. The checker holds that stop to the kill sequence's bounds.
type revocation struct {
	at   int64 // monotonic
	lock string
	pid  int // the distlock that held it
}

// intn is a random number below n from the run's seeded source.
func (tt *torture) intn(n int) int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.rnd.Intn(n)
}

// between is a random span from lo to hi.
func (tt *torture) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(tt.intn(int(hi-lo)/int(time.Millisecond)+1))*time.Millisecond
}

// build builds a command of the module without the race detector, as
// users run it: distlock itself, and the etcd members (devetcd), which
// would run several times slower under the race detector.
func build(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	// go test puts the go command that runs it first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command(goTool, "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// leftUnder lists what is under the realm in etcd, or nil if etcd did not
// answer.
func (tt *torture) leftUnder(ctx context.Context) []string {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := tt.client.Get(rctx, tt.realm, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil
	}
	left := []string{}
	for _, kv := range resp.Kvs {
		left = append(left, string(kv.Key))
	}
	return left
}
