package torture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// The key-space torture test (TestKeySpaceTorture): no faults, one etcd,
// and everything that can share a key space with distlock's locks at once.
// Realms nest (B, B+"a/", B+"a/b/") beside a sibling (B+"s/"); the lock
// names "a", "a/b", "a-b" and "b" collide across them (the lock "a" of B
// has the prefix B+"a/", the whole realm B+"a/" lies under it); distlock
// runs commands, some under a set of two or three plain locks of one
// realm, takes locks with --lock and frees them with --unlock, some of
// them --shared on the plain locks (shared holders beside one another,
// everyone else alone, etcd's recipe too); etcd's
// own recipe takes distlock's locks (realm+escape(name)) and locks of its
// own right beside them (realm+escape(name)+"/"); and keys of odd shapes
// come and go under the locks' prefixes and beside them. The checker
// (keyspace_check_test.go) then proves from the records that each lock
// kept to its own keys: no overlap, no wait for another's keys, nothing of
// another's deleted, only the key shapes distlock may write.

// Timing of the runs, besides ttl and killAfter (torture_test.go).
const (
	ksWait      = 8 * time.Second  // --timeout of a run that waits
	ksLockWait  = 4 * time.Second  // --timeout of --lock
	ksRecipeTTL = 3                // seconds: the lease of etcd's recipe's session
	ksProcLimit = 60 * time.Second // no process the test starts lives longer
	// ksRecipeWait bounds a wait of etcd's recipe: it waits for every
	// older key under its prefix, whoever's, as etcdctl lock does.
	ksRecipeWait = 3 * time.Second
	// ksBound is how long a run may take to get its lock once none of the
	// lock's own holders and waiters stands ahead of it: process start,
	// dial, queue, the --min-interval read, the worker's start. Any wait
	// past it was for something that is not the lock's. (2s proved too
	// tight on a 2-core machine running the whole suite under -race:
	// 1.8s was seen for a run that waited for nothing.)
	ksBound = 2500 * time.Millisecond
	// ksSetStep is what each further lock of a set may add to ksBound.
	ksSetStep = 500 * time.Millisecond
	// ksHoldTail is how long a --min-hold run's key may outlive its
	// distlock: the hold itself, the lease's rounding up to whole
	// seconds (and etcd's least TTL, 2s for etcd 3.4's default timing),
	// and the lessor's look for expired leases every half second.
	ksHoldTail = 3 * time.Second
)

// ksHosts distlock processes run at once, one after another on each
// simulated host; ksRecipes goroutines take locks with etcd's recipe.
const (
	ksHosts   = 6
	ksRecipes = 2
)

// The names: "b" is always a semaphore of two, the others are plain.
// "a-b" is there for the sets of locks (keyspace_sets_test.go): three
// plain locks in each realm, whose canonical order (by escaped prefix:
// "a%2Fb/", "a-b/", "a/") is the reverse of their names' order.
var (
	ksNames    = []string{"a", "a/b", "a-b", "b"}
	ksRealms   = []string{"", "a/", "a/b/", "s/"} // under the base
	ksSemName  = "b"
	ksSemLimit = 2
)

// ksLock is one lock of the test: a realm and a name.
type ksLock struct {
	realm string // the whole realm, ending in "/"
	rel   string // the realm below the base, "" for the base itself
	name  string
	limit int
	// span is the --min-interval of every run of this lock that takes one
	// (0: none do; a semaphore cannot): one span per lock, so that a
	// newer record never expires before an older one would have.
	span time.Duration
}

// seg is the lock's name as it is escaped in keys.
func (l *ksLock) seg() string { return escape(l.name) }

// prefix is where the lock's holders and waiters live.
func (l *ksLock) prefix() string { return l.realm + l.seg() + "/" }

// label names the lock in the shared log and the summary: the realm below
// the base in brackets, then the escaped name ("[a/]b": the lock "b" of
// the realm B+"a/").
func (l *ksLock) label() string { return "[" + l.rel + "]" + l.seg() }

// slashLabel names the lock of etcd's recipe on the prefix
// realm+escape(name)+"/": a lock of its own.
func (l *ksLock) slashLabel() string { return l.label() + "/" }

// escape is the contract's escape, written here again so that the test
// does not take the code under test at its word: [A-Za-z0-9._-] stay,
// every other byte is %XX.
func escape(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// isLeaseHex reports whether s is a lease ID as etcd's recipe writes it:
// fmt's %x of a nonzero int64 (a client may choose a negative one), and
// nothing else.
func isLeaseHex(s string) bool {
	v, err := strconv.ParseInt(s, 16, 64)
	return err == nil && v != 0 && fmt.Sprintf("%x", v) == s
}

// keyspace is one run of the key-space torture test.
type keyspace struct {
	t         *testing.T
	distlock  string
	worker    string
	logPath   string
	base      string
	endpoints string
	client    *clientv3.Client
	locks     []*ksLock
	oddLease  clientv3.LeaseID // a lease the test holds, for odd keys on a lease
	procCtx   context.Context  // ends every process still running at the end
	logFile   *os.File         // etcd's recipe's records, beside the workers'
	began     time.Time

	// unlockMu lets one --unlock run at a time, so that what vanished
	// from etcd around it is its doing or its owner's.
	unlockMu sync.Mutex

	mu         sync.Mutex
	rnd        *rand.Rand
	runs       []*ksRun
	unlocks    []*ksUnlock
	recipes    []*recipeHold
	hand       []*handKey
	handEver   map[string]bool // every key written by hand
	recipeEver map[string]bool // every key etcd's recipe may have written
	sharedNow  map[*ksLock]int // --shared runs under way, by lock
	ownDeletes []ownDelete
	samples    int
	shapeBad   map[string]string // key -> why, found by the sampler
	notes      []string          // problems found while the workload ran
}

// ksRun is one distlock process: exec mode (a worker under the lock) or
// --lock.
type ksRun struct {
	id          string
	lk          *ksLock
	lockMode    bool          // --lock, not exec mode
	timeout     time.Duration // --timeout; 0 is --nowait
	minInterval time.Duration
	minHold     time.Duration
	millis      int // the worker's time under the lock
	ignoreTerm  bool
	shared      bool // --shared (plain locks only: not with --limit or --min-interval)
	// set is a set of locks of lk's realm, in the canonical order (lk is
	// the first), for a run given --lock-name more than once; nil for one
	// lock (keyspace_sets_test.go).
	set []*ksLock

	start, end int64 // monotonic, around the process
	pid        int
	status     int
	stderr     bytes.Buffer

	// --lock: the key it left, and when the test began to unlock it.
	key        string
	keyRev     int64
	unlockFrom int64
	unlockTo   int64
}

// ksUnlock is one distlock --unlock: plain (the holder, whoever it is) or
// --holder KEY.
type ksUnlock struct {
	lk         *ksLock
	holder     string // --holder, "" for a plain --unlock
	start, end int64
	status     int
	stderr     string
	snapFrom   int64 // the read of etcd before it
	snapTo     int64 // and the one after it
	// before are the create revisions of the lock's own keys in the
	// read before it: the key it removed is one of them.
	before map[int64]bool
	// suspects vanished from etcd around it and are neither the lock's
	// keys nor on a lease that ended; the checker clears those whose
	// owner deleted them itself meanwhile (ownDeletes).
	suspects []string
	snapErr  error
}

// recipeHold is one take of a lock with etcd's recipe
// (concurrency.Mutex), as etcdctl lock takes it: an exclusive holder, its
// key's empty value says nothing of sharing.
type recipeHold struct {
	id       string
	lk       *ksLock
	slash    bool   // on realm+escape(name)+"/": a lock of its own
	key      string // its key: the mutex's prefix plus the session's lease
	rev      int64  // the key's create revision, once it held
	millis   int
	start    int64 // before the session was made
	end      int64 // after the key and the session were let go
	acquired bool
	lost     bool // its key was gone before it let go of it
	err      error
}

// label is the lock the hold's section counts for.
func (r *recipeHold) label() string {
	if r.slash {
		return r.lk.slashLabel()
	}
	return r.lk.label()
}

// handKey is a key the test wrote into the locks' key space by hand.
type handKey struct {
	id         string
	key        string
	lk         *ksLock // the lock under or beside whose prefix it is
	hex        bool    // under the prefix and named by a lease ID: a holder by the grammar
	persistent bool    // there for the whole run
	leased     bool
	put, del   int64 // monotonic: before it was written, after it was deleted
	rev        int64
	gone       bool // deleting it found nothing: someone else had
}

// ownDelete is a key its owner (etcd's recipe, the test by hand) may have
// deleted between from and to.
type ownDelete struct {
	key      string
	from, to int64
}

// TestKeySpaceTorture runs distlock, etcd's recipe and keys written by hand
// at once in nested realms of one etcd, then checks that every lock kept
// to its own keys: see keyspace_check_test.go for what is checked.
func TestKeySpaceTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("the key-space torture test is not short")
	}
	t.Parallel()
	run, seed := round(t)

	dir := t.TempDir()
	cluster, err := etcdtest.FromEnv(filepath.Join(dir, "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	client, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	procCtx, killAll := context.WithCancel(context.Background())
	defer killAll()
	ks := &keyspace{
		t:          t,
		rnd:        rand.New(rand.NewSource(seed)),
		distlock:   build(t, dir, "distlock", "github.com/tinx/distlock"),
		worker:     build(t, dir, "worker", "github.com/tinx/distlock/internal/torture/worker"),
		logPath:    filepath.Join(dir, "sections.log"),
		base:       etcdtest.Realm(t, "/keyspace/"),
		endpoints:  strings.Join(cluster.Endpoints(), ","),
		client:     client,
		procCtx:    procCtx,
		handEver:   map[string]bool{},
		recipeEver: map[string]bool{},
		sharedNow:  map[*ksLock]int{},
		shapeBad:   map[string]string{},
	}
	version := ks.etcdVersion()
	for _, rel := range ksRealms {
		for _, name := range ksNames {
			l := &ksLock{realm: ks.base + rel, rel: rel, name: name, limit: 1}
			if name == ksSemName {
				l.limit = ksSemLimit
			} else {
				l.span = time.Duration(1+ks.intn(3)) * time.Second
			}
			ks.locks = append(ks.locks, l)
		}
	}
	if ks.logFile, err = os.OpenFile(ks.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
		t.Fatal(err)
	}
	defer ks.logFile.Close()
	// Whatever is left under the base goes at the end, checked or not:
	// an etcd named by DISTLOCK_TEST_ETCD outlives the test.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = client.Delete(ctx, ks.base, clientv3.WithPrefix())
	}()
	gctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	lease, err := client.Grant(gctx, 600)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	ks.oddLease = lease.ID
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = client.Revoke(ctx, ks.oddLease)
	}()
	persistent := ks.writePersistentKeys()

	ks.began = time.Now()
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	defer stopSampling()
	var work, sampling sync.WaitGroup
	spawn := func(wg *sync.WaitGroup, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	for i := 0; i < ksHosts; i++ {
		spawn(&work, func() { ks.runHost(workCtx, i) })
	}
	for i := 0; i < ksRecipes; i++ {
		spawn(&work, func() { ks.runRecipe(workCtx, i) })
	}
	spawn(&work, func() { ks.lockCycles(workCtx) })
	spawn(&work, func() { ks.plainUnlocks(workCtx) })
	spawn(&work, func() { ks.handKeys(workCtx) })
	spawn(&sampling, func() { ks.sampleShapes(sampleCtx) })
	// On every way out, even a failed one: no goroutine outlives the
	// test (each of their processes ends within ksProcLimit).
	defer func() {
		stopWork()
		stopSampling()
		work.Wait()
		sampling.Wait()
	}()

	// The workload goes on until there are enough sections, for at
	// least run.least and at most run.most.
	deadline := time.After(run.most)
	tick := time.NewTicker(time.Second)
wait:
	for sections := 0; sections < run.sections || time.Since(ks.began) < run.least; {
		select {
		case <-deadline:
			t.Errorf("only %d critical sections in %v; %d wanted", sections, run.most, run.sections)
			break wait
		case <-tick.C:
			sections = countSections(t, ks.logPath)
		}
	}
	tick.Stop()
	stopWork()
	work.Wait() // every run ended, every --lock unlocked, every rotating key deleted
	workTime := time.Since(ks.began)
	stopSampling()
	sampling.Wait()
	ks.sampleOnce(context.Background())

	// The keys written by hand for the whole run are all still there;
	// then they go, and so must everything else in a while: records and
	// --min-hold keys expire, every other key was released.
	ks.checkPersistent(persistent)
	ks.deleteHand(persistent)
	ctx, cancelLeft := context.WithTimeout(context.Background(), ttl+30*time.Second)
	defer cancelLeft()
	var left []string
	if err := poll.Until(ctx, func() bool {
		if now := ks.keysUnder(ctx); now != nil {
			left = now // the last answer, for the message
		}
		return left != nil && len(left) == 0
	}); err != nil {
		ks.note("left under the base %s after the last run, the last record's span and a TTL: %q; %s", ks.base, left, ks.leasesOf(left))
	}

	rep := ks.check()
	rep.duration = workTime
	rep.etcd = version
	fmt.Print(rep.summary(run, seed))
	// The fault test writes DISTLOCK_TORTURE_SUMMARY itself, and runs
	// after this one in the same go test: this summary goes beside it.
	if w := os.Getenv("DISTLOCK_TORTURE_SUMMARY"); w != "" {
		if err := os.WriteFile(w+".keyspace", []byte(rep.summary(run, seed)), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, p := range rep.errors() {
		t.Error(p)
	}
}

// intn is a random number below n from the run's seeded source.
func (ks *keyspace) intn(n int) int {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.rnd.Intn(n)
}

// between is a random span from lo to hi.
func (ks *keyspace) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(ks.intn(int(hi-lo)/int(time.Millisecond)+1))*time.Millisecond
}

// pick is one of the locks, at random.
func (ks *keyspace) pick() *ksLock { return ks.locks[ks.intn(len(ks.locks))] }

// pickShared is a lock for a --shared run: half the time one that a
// --shared run holds or awaits now, so that shared holders do meet
// (sixteen locks among six hosts seldom bring two together), else any
// plain lock.
func (ks *keyspace) pickShared() *ksLock {
	ks.mu.Lock()
	var busy []*ksLock
	for _, l := range ks.locks {
		if ks.sharedNow[l] > 0 {
			busy = append(busy, l)
		}
	}
	ks.mu.Unlock()
	if len(busy) > 0 && ks.intn(2) == 0 {
		return busy[ks.intn(len(busy))]
	}
	for {
		if l := ks.pick(); l.limit == 1 {
			return l
		}
	}
}

// sharedBusy counts a --shared run on l as under way (by +1) or over (-1).
func (ks *keyspace) sharedBusy(l *ksLock, by int) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.sharedNow[l] += by
}

// note is a problem found while the workload runs.
func (ks *keyspace) note(format string, args ...any) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.notes = append(ks.notes, fmt.Sprintf(format, args...))
}

// etcdVersion is what the etcd says it is, for the summary.
func (ks *keyspace) etcdVersion() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ep := strings.Split(ks.endpoints, ",")[0]
	st, err := ks.client.Status(ctx, ep)
	if err != nil {
		return "etcd of unknown version"
	}
	where := "started by the test"
	if os.Getenv("DISTLOCK_TEST_ETCD") != "" {
		where = "DISTLOCK_TEST_ETCD"
	}
	return fmt.Sprintf("etcd %s (%s)", st.Version, where)
}

// args are the flags of every distlock call on lock l.
func (ks *keyspace) args(l *ksLock) []string {
	// History records, of a shape of their own beside the lock's keys,
	// on a span short enough to be gone by the end's look.
	return []string{"--lock-name=" + l.name, "--prefix=" + l.realm, "--endpoints=" + ks.endpoints, "--dial-timeout=2s", "--history-span=5s"}
}

// exec runs distlock with args to its end, at most ksProcLimit, and says
// when it started and ended on the monotonic clock, its pid and status.
func (ks *keyspace) exec(args []string, stderr *bytes.Buffer) (start, end int64, pid, status int) {
	ctx, cancel := context.WithTimeout(ks.procCtx, ksProcLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, ks.distlock, args...)
	cmd.Env = append(os.Environ(), "DISTLOCK_CONFIG=/dev/null")
	cmd.Stderr = stderr
	start = Mono()
	if err := cmd.Start(); err != nil {
		ks.note("start distlock: %v", err)
		return start, Mono(), 0, -1
	}
	err := cmd.Wait()
	end = Mono()
	status = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		status = 128 + int(ws.Signal())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		ks.note("distlock %q: %v", args, err)
	}
	return start, end, cmd.Process.Pid, status
}

// lockCycles takes a lock with --lock (now and then --lock --shared, on a
// plain lock), leaves it taken a little while, and frees exactly that key
// with --unlock --holder, again and again until ctx ends. A key taken is
// always freed, even after ctx has ended.
func (ks *keyspace) lockCycles(ctx context.Context) {
	for seq := 0; ; seq++ {
		pause(ctx, ks.between(300*time.Millisecond, 1500*time.Millisecond))
		if ctx.Err() != nil {
			return
		}
		l := ks.pick()
		r := &ksRun{id: fmt.Sprintf("o%d", seq), lk: l, lockMode: true, timeout: ksLockWait,
			shared: l.limit == 1 && ks.intn(3) == 0}
		args := append(ks.args(l), "--lock", fmt.Sprintf("--ttl=%v", ttl), fmt.Sprintf("--timeout=%v", r.timeout),
			"--reason=keyspace "+r.id)
		if l.limit > 1 {
			args = append(args, fmt.Sprintf("--limit=%d", l.limit))
		}
		if r.shared {
			args = append(args, "--shared")
		}
		ks.mu.Lock()
		ks.runs = append(ks.runs, r)
		ks.mu.Unlock()
		r.start, r.end, r.pid, r.status = ks.exec(args, &r.stderr)
		if r.status != 0 {
			continue
		}
		// No --unlock runs while the key is looked for: if it is not
		// there, an --unlock before this one took it.
		ks.unlockMu.Lock()
		r.key, r.keyRev = ks.findLockKey(l, r.id)
		ks.unlockMu.Unlock()
		if r.key == "" {
			continue
		}
		pause(ctx, ks.between(200*time.Millisecond, 1500*time.Millisecond))
		u := ks.unlock(l, r.key)
		r.unlockFrom, r.unlockTo = u.start, u.end
	}
}

// findLockKey reads etcd for the key that the --lock run id left under
// lock l: named by a lease ID, on no lease, with the run's reason. It
// returns "" if there is none.
func (ks *keyspace) findLockKey(l *ksLock, id string) (string, int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := ks.client.Get(ctx, l.prefix(), clientv3.WithPrefix())
	if err != nil {
		ks.note("look for the key of --lock %s: %v", id, err)
		return "", 0
	}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), l.prefix())
		if isLeaseHex(rest) && kv.Lease == 0 && bytes.Contains(kv.Value, []byte(`"reason":"keyspace `+id+`"`)) {
			return string(kv.Key), kv.CreateRevision
		}
	}
	return "", 0
}

// plainUnlocks runs a plain --unlock every few seconds, mostly of a lock
// that has a key of its own by the grammar (a holder, going by etcd),
// until ctx ends.
func (ks *keyspace) plainUnlocks(ctx context.Context) {
	for {
		pause(ctx, ks.between(time.Second, 3*time.Second))
		if ctx.Err() != nil {
			return
		}
		l := ks.pick()
		if busy := ks.busyLocks(ctx); len(busy) > 0 && ks.intn(10) < 7 {
			l = busy[ks.intn(len(busy))]
		}
		ks.unlock(l, "")
	}
}

// busyLocks are the locks that have a key of their own grammar now.
func (ks *keyspace) busyLocks(ctx context.Context) []*ksLock {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := ks.client.Get(rctx, ks.base, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil
	}
	var busy []*ksLock
	for _, l := range ks.locks {
		for _, kv := range resp.Kvs {
			if rest, ok := strings.CutPrefix(string(kv.Key), l.prefix()); ok && isLeaseHex(rest) {
				busy = append(busy, l)
				break
			}
		}
	}
	return busy
}

// unlock runs distlock --unlock on lock l (--holder, if holder is not
// ""), one at a time, and reads the base before and after it: whatever
// vanished meanwhile that is not l's own and not on a lease that ended is
// a suspect, for the checker to clear or blame.
func (ks *keyspace) unlock(l *ksLock, holder string) *ksUnlock {
	ks.unlockMu.Lock()
	defer ks.unlockMu.Unlock()
	u := &ksUnlock{lk: l, holder: holder}
	u.snapFrom = Mono()
	before, err := ks.snapshot()
	u.before = map[int64]bool{}
	for key, k := range before {
		if strings.HasPrefix(key, l.prefix()) {
			u.before[k.rev] = true
		}
	}
	args := append(ks.args(l), "--unlock")
	if holder != "" {
		args = append(args, "--holder="+holder)
	}
	var stderr bytes.Buffer
	u.start, u.end, _, u.status = ks.exec(args, &stderr)
	u.stderr = stderr.String()
	after, err2 := ks.snapshot()
	u.snapTo = Mono()
	if err == nil {
		err = err2
	}
	u.snapErr = err
	if err == nil {
		ks.suspects(u, before, after)
	}
	ks.mu.Lock()
	ks.unlocks = append(ks.unlocks, u)
	ks.mu.Unlock()
	return u
}

// snapKey is what a snapshot keeps of a key.
type snapKey struct {
	lease, rev int64
}

// snapshot reads every key under the base.
func (ks *keyspace) snapshot() (map[string]snapKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := ks.client.Get(ctx, ks.base, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	m := make(map[string]snapKey, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = snapKey{kv.Lease, kv.CreateRevision}
	}
	return m, nil
}

// suspects finds the keys that were there before u and are not after it
// (or are there anew): allowed are the keys of u's lock by the grammar (a
// plain --unlock deletes the holder's; --holder only its own key), and
// keys whose lease has ended (their owner released them, or etcd expired
// them). The rest may still have been deleted by their owner: the
// checker looks at ownDeletes.
func (ks *keyspace) suspects(u *ksUnlock, before, after map[string]snapKey) {
	for key, b := range before {
		if a, ok := after[key]; ok && a.rev == b.rev {
			continue
		}
		if u.holder != "" && key == u.holder {
			continue
		}
		if rest, ok := strings.CutPrefix(key, u.lk.prefix()); ok && isLeaseHex(rest) && u.holder == "" {
			continue
		}
		if b.lease != 0 && ks.leaseEnds(b.lease) {
			continue
		}
		u.suspects = append(u.suspects, key)
	}
	sort.Strings(u.suspects)
}

// ownDeleted says that key's owner deleted it (or may have) between from
// and now.
func (ks *keyspace) ownDeleted(key string, from int64) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.ownDeletes = append(ks.ownDeletes, ownDelete{key: key, from: from, to: Mono()})
}

// runRecipe takes locks with etcd's recipe, as etcdctl lock does, until
// ctx ends: on distlock's plain locks by their own prefix (so it must
// exclude distlock's runs), and on realm+escape(name)+"/", a lock of its
// own that distlock's locks must neither block nor be blocked by. While
// it holds, it writes the worker's records itself, with its key's create
// revision as the token.
func (ks *keyspace) runRecipe(ctx context.Context, g int) {
	for seq := 0; ; seq++ {
		pause(ctx, ks.between(200*time.Millisecond, 1200*time.Millisecond))
		if ctx.Err() != nil {
			return
		}
		l := ks.pick()
		rh := &recipeHold{id: fmt.Sprintf("r%d.%d", g, seq), lk: l, slash: l.limit > 1 || ks.intn(3) == 0,
			millis: 20 + ks.intn(600)}
		ks.mu.Lock()
		ks.recipes = append(ks.recipes, rh)
		ks.mu.Unlock()
		ks.recipeHold(ctx, rh)
	}
}

// recipeHold is one take of a lock with etcd's recipe: a session, a mutex
// on its prefix, the records while it holds, then the key deleted by hand
// (so that the test learns whether it was still there) and the session
// closed (its lease revoked).
func (ks *keyspace) recipeHold(ctx context.Context, rh *recipeHold) {
	rh.start = Mono()
	defer func() { rh.end = Mono() }()
	s, err := concurrency.NewSession(ks.client, concurrency.WithTTL(ksRecipeTTL))
	if err != nil {
		rh.err = err
		return
	}
	defer s.Close()
	pfx := rh.lk.realm + rh.lk.seg()
	if rh.slash {
		pfx += "/"
	}
	rh.key = fmt.Sprintf("%s/%x", pfx, s.Lease()) // as concurrency.Mutex names it
	ks.mu.Lock()
	ks.recipeEver[rh.key] = true
	ks.mu.Unlock()
	m := concurrency.NewMutex(s, pfx)
	lctx, cancel := context.WithTimeout(ctx, ksRecipeWait)
	lockFrom := Mono()
	err = m.Lock(lctx)
	cancel()
	if err != nil {
		// The mutex deletes its key itself when its wait fails.
		ks.ownDeleted(rh.key, lockFrom)
		rh.err = err
		if errors.Is(err, concurrency.ErrSessionExpired) {
			rh.lost = true
		}
		return
	}
	rh.acquired = true
	gctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	resp, err := ks.client.Get(gctx, rh.key)
	cancel()
	switch {
	case err != nil:
		rh.err = err
	case len(resp.Kvs) == 0:
		rh.lost = true
	default:
		rh.rev = resp.Kvs[0].CreateRevision
		ks.hold(rh.id, rh.label(), rh.rev, time.Duration(rh.millis)*time.Millisecond)
	}
	from := Mono()
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	del, err := ks.client.Delete(dctx, rh.key)
	cancel()
	ks.ownDeleted(rh.key, from)
	if err == nil && del.Deleted == 0 {
		rh.lost = true
	}
}

// hold writes a worker's records for a holder in this process: enter,
// a beat every 5ms for d, exit.
func (ks *keyspace) hold(id, label string, token int64, d time.Duration) {
	record := func(kind string) {
		line := fmt.Sprintf("%d %s %s %s %d\n", Mono(), id, label, kind, token)
		if _, err := ks.logFile.Write([]byte(line)); err != nil {
			ks.note("write the records of %s: %v", id, err)
		}
	}
	record("enter")
	end := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		<-tick.C
		record("beat")
	}
	record("exit")
}

// oddRests follow a lock's prefix in keys that are no holder or waiter by
// the grammar: not hex, a "/" in it, upper case, a leading zero, nothing
// at all, zero, a trailing "/", past int64, a plus sign, a negative ID
// with a leading zero. ("-1f" is a negative lease ID, which a client may
// choose, as etcd's recipe writes it: a holder.)
var oddRests = []string{"zz", "x/1f", "1F", "01f", "", "0", "1f/", "8000000000000000", "+1f", "-01f", "g1"}

// besideRests follow realm+escape(name) in keys beside a lock's prefix,
// written for the whole run: the bare segment, another segment that
// starts with it, near-records, and records of the right shape on no
// lease (only a lease can end a record: these are none).
var besideRests = []string{"", "0", "!x", "!last-runs", "!stopping:zz", "!stopping:0000000000000000001-1f"}

// oddValue is a value for a key written by hand, by n: empty (etcdctl
// writes that), no JSON, or JSON that looks like a holder's.
func oddValue(n int, id string) string {
	switch n % 4 {
	case 0:
		return ""
	case 1:
		return "not json"
	case 2:
		return `{"host":"odd","pid":1,"mode":"lock","reason":"odd ` + id + `"}`
	}
	return `{"host":"odd","pid":1,"mode":"exec","limit":2,"reason":"odd ` + id + `"}`
}

// holderOf is the lock whose holder or waiter key is by the grammar,
// or nil. The names "a" and "b" are hex digits: realm+"a/"+"b" is a key
// beside the lock "b" of the realm B+"a/", and a holder of the lock "a"
// of B (the rest of it after B+"a/" is the lease ID "b").
func (ks *keyspace) holderOf(key string) *ksLock {
	for _, l := range ks.locks {
		if rest, ok := strings.CutPrefix(key, l.prefix()); ok && isLeaseHex(rest) {
			return l
		}
	}
	return nil
}

// writePersistentKeys writes the keys that stay beside every lock's
// prefix for the whole run; none that is a holder of another lock by the
// grammar, which would block that lock for the whole run.
func (ks *keyspace) writePersistentKeys() []*handKey {
	var keys []*handKey
	for _, l := range ks.locks {
		for i, rest := range besideRests {
			hk := &handKey{id: fmt.Sprintf("k%d", len(ks.hand)), key: l.realm + l.seg() + rest, lk: l, persistent: true}
			if ks.holderOf(hk.key) != nil {
				continue
			}
			if !ks.putHand(hk, oddValue(i, hk.id)) {
				ks.t.Fatalf("write %s by hand: it exists already", hk.key)
			}
			keys = append(keys, hk)
		}
	}
	return keys
}

// putHand writes a key by hand, only if it is not there.
func (ks *keyspace) putHand(hk *handKey, value string) bool {
	var opts []clientv3.OpOption
	if hk.leased {
		opts = append(opts, clientv3.WithLease(ks.oddLease))
	}
	ks.mu.Lock()
	ks.handEver[hk.key] = true
	ks.mu.Unlock()
	hk.put = Mono()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := ks.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(hk.key), "=", 0)).
		Then(clientv3.OpPut(hk.key, value, opts...)).
		Commit()
	if err != nil {
		ks.note("write %s by hand: %v", hk.key, err)
		return false
	}
	if !resp.Succeeded {
		return false
	}
	hk.rev = resp.Header.Revision
	ks.mu.Lock()
	ks.hand = append(ks.hand, hk)
	ks.mu.Unlock()
	return true
}

// deleteHand deletes keys written by hand, each saying whether it was
// still there.
func (ks *keyspace) deleteHand(keys []*handKey) {
	for _, hk := range keys {
		from := Mono()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := ks.client.Delete(ctx, hk.key)
		cancel()
		hk.del = Mono()
		ks.ownDeleted(hk.key, from)
		switch {
		case err != nil:
			ks.note("delete %s by hand: %v", hk.key, err)
		case resp.Deleted == 0:
			hk.gone = true
		}
	}
}

// handKeys writes keys of odd shapes under the locks' prefixes, and now
// and then one named by a lease ID on no lease (a holder by the grammar,
// which blocks its lock by design), each for a short while, until ctx
// ends; then it deletes those still there.
func (ks *keyspace) handKeys(ctx context.Context) {
	type due struct {
		hk *handKey
		at time.Time
	}
	var pending []due
	defer func() {
		for _, d := range pending {
			ks.deleteHand([]*handKey{d.hk})
		}
	}()
	next := time.Now()
	for {
		wake := next
		for _, d := range pending {
			if d.at.Before(wake) {
				wake = d.at
			}
		}
		pause(ctx, time.Until(wake))
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		kept := pending[:0]
		for _, d := range pending {
			if d.at.After(now) {
				kept = append(kept, d)
				continue
			}
			ks.deleteHand([]*handKey{d.hk})
		}
		pending = kept
		if now.Before(next) {
			continue
		}
		next = now.Add(ks.between(150*time.Millisecond, 600*time.Millisecond))
		l := ks.pick()
		hk := &handKey{lk: l}
		ks.mu.Lock()
		hk.id = fmt.Sprintf("k%d", len(ks.hand))
		ks.mu.Unlock()
		var value string
		// Long enough that a wait for one shows past ksBound.
		life := ks.between(500*time.Millisecond, 3*time.Second)
		if ks.intn(3) == 0 {
			hk.hex = true
			hk.key = fmt.Sprintf("%s%x", l.prefix(), 1+ks.intn(1<<30)*ks.intn(1<<30))
			life = ks.between(200*time.Millisecond, time.Second)
			if l.limit > 1 {
				// A semaphore's holder says its limit; a key that
				// does not would be etcdctl's, which takes the lock
				// alone.
				value = fmt.Sprintf(`{"host":"hand","pid":1,"mode":"lock","limit":%d,"reason":"hand %s"}`, l.limit, hk.id)
			} else if ks.intn(2) == 0 {
				value = `{"host":"hand","pid":1,"mode":"lock","reason":"hand ` + hk.id + `"}`
			}
		} else {
			hk.key = l.prefix() + oddRests[ks.intn(len(oddRests))]
			hk.leased = ks.intn(4) == 0
			value = oddValue(ks.intn(4), hk.id)
			if ks.holderOf(hk.key) != nil {
				continue // foreign to l, a holder of a lock it is nested in: not odd
			}
		}
		if ks.putHand(hk, value) {
			pending = append(pending, due{hk, time.Now().Add(life)})
		}
	}
}

// checkPersistent marks every key written by hand for the whole run that
// is not there as written (gone), for the checker to blame.
func (ks *keyspace) checkPersistent(keys []*handKey) {
	now, err := ks.snapshot()
	if err != nil {
		ks.note("read the base at the end: %v", err)
		return
	}
	for _, hk := range keys {
		if got, ok := now[hk.key]; !ok || got.rev != hk.rev {
			hk.gone = true
		}
	}
}

// keysUnder lists the keys under the base, or nil if etcd did not answer.
func (ks *keyspace) keysUnder(ctx context.Context) []string {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := ks.client.Get(rctx, ks.base, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil
	}
	left := []string{}
	for _, kv := range resp.Kvs {
		left = append(left, string(kv.Key))
	}
	return left
}

// sampleShapes reads the base every 200ms until ctx ends and checks the
// shape of every key (sampleOnce).
func (ks *keyspace) sampleShapes(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			ks.sampleOnce(ctx)
		}
	}
}

// sampleOnce checks that every key under the base is one the test wrote
// (by hand, or etcd's recipe) or of a shape distlock may write: a realm's
// lock prefix and a lease ID, its !last-run record, its stopping record
// (19 digits, "-", a lease ID) or a history record (19 digits). Each key found wrong is said once.
func (ks *keyspace) sampleOnce(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := ks.client.Get(rctx, ks.base, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.samples++
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		if ks.handEver[key] || ks.recipeEver[key] || ks.shapeBad[key] != "" || ks.distlockShape(key) {
			continue
		}
		ks.shapeBad[key] = fmt.Sprintf("+%v", time.Since(ks.began).Round(time.Millisecond))
	}
}

// distlockShape reports whether key is of one of the exact shapes
// distlock writes for one of the test's locks.
func (ks *keyspace) distlockShape(key string) bool {
	for _, l := range ks.locks {
		rest, ok := strings.CutPrefix(key, l.realm+l.seg())
		if !ok {
			continue
		}
		if rest == "!last-run" {
			return true
		}
		if digits, ok := strings.CutPrefix(rest, "!history:"); ok && len(digits) == 19 && strings.Trim(digits, "0123456789") == "" {
			return true
		}
		if hex, ok := strings.CutPrefix(rest, "/"); ok && isLeaseHex(hex) {
			return true
		}
		if rec, ok := strings.CutPrefix(rest, "!stopping:"); ok {
			digits, hex, ok := strings.Cut(rec, "-")
			if ok && len(digits) == 19 && strings.Trim(digits, "0123456789") == "" && isLeaseHex(hex) {
				return true
			}
		}
	}
	return false
}

// leasesOf says, for the first few of keys, the lease each is on and
// what etcd says is left of it.
func (ks *keyspace) leasesOf(keys []string) string {
	var b strings.Builder
	for _, key := range keys[:min(len(keys), 3)] {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := ks.client.Get(ctx, key)
		if err == nil && len(resp.Kvs) == 1 {
			kv := resp.Kvs[0]
			ttl, terr := ks.client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
			if terr == nil {
				fmt.Fprintf(&b, "%s: lease %x, %ds left of %ds, value %s; ", key, kv.Lease, ttl.TTL, ttl.GrantedTTL, kv.Value)
			}
		}
		cancel()
	}
	return b.String()
}

// leaseEnds reports whether lease ends within a few seconds: a distlock
// that lets its lock go deletes its key in one transaction (with its
// history record) and revokes its lease right after, so a key its owner
// released may be gone a moment before its lease is.
func (ks *keyspace) leaseEnds(lease int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return poll.Until(ctx, func() bool {
		resp, err := ks.client.TimeToLive(ctx, clientv3.LeaseID(lease))
		return err == nil && resp.TTL == -1
	}) == nil
}
