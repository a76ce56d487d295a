package torture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/lock"
)

// sharedPercent is how many of the runs on a plain lock alone take it
// with --shared; the others hold it alone. The semaphore and the set have
// no shared holders: --shared goes with neither --limit nor a set.
const sharedPercent = 40

// host is a simulated machine: its own proxies to every member, one
// distlock at a time.
type host struct {
	id      int
	proxies []*etcdtest.Proxy
	busy    sync.Mutex // one fault on its links at a time

	mu  sync.Mutex
	cur *run
}

// run is one distlock process and what became of it.
type run struct {
	id         string
	host       int
	lock       string   // as the worker names it: for a set, its locks joined by "+"
	locks      []string // the lock, or the set's locks in the set's order
	shared     bool     // --shared
	ignoreTerm bool
	millis     int
	pid        int

	mu     sync.Mutex // the process and a fault that kills it
	done   bool
	killed bool // SIGKILLed by a fault while it ran
	status int
	stderr bytes.Buffer
}

// runHost starts distlock after distlock on host h until ctx ends.
func (tt *torture) runHost(ctx context.Context, h *host) {
	for seq := 0; ctx.Err() == nil; seq++ {
		r, args := tt.newRun(h, seq)
		cmd := exec.Command(tt.distlock, args...)
		cmd.Env = append(os.Environ(), "DISTLOCK_CONFIG=/dev/null")
		cmd.Stderr = &r.stderr
		r.mu.Lock()
		if err := cmd.Start(); err != nil {
			r.mu.Unlock()
			tt.t.Errorf("start distlock: %v", err)
			return
		}
		r.pid = cmd.Process.Pid
		r.mu.Unlock()
		tt.mu.Lock()
		tt.runs = append(tt.runs, r)
		tt.mu.Unlock()
		h.mu.Lock()
		h.cur = r
		h.mu.Unlock()

		err := cmd.Wait()
		r.mu.Lock()
		r.done = true
		r.status = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.status = 128 + int(ws.Signal())
		}
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			tt.t.Errorf("distlock %s: %v", r.id, err)
		}
		r.mu.Unlock()
		h.mu.Lock()
		h.cur = nil
		h.mu.Unlock()
	}
}

// newRun picks the seq'th run of host h at random: its lock and mode, how
// long its command holds the lock, whether it ignores SIGTERM; and the
// arguments of its distlock.
func (tt *torture) newRun(h *host, seq int) (*run, []string) {
	r := &run{id: fmt.Sprintf("h%d.%d", h.id, seq), host: h.id}
	args := tt.pickLocks(r)
	// Most sections are short; some hold the lock long enough for a
	// fault to take it away, some outlast the TTL, so that the lease
	// must be kept alive through them.
	switch n := tt.intn(100); {
	case n < 55:
		r.millis = 20 + tt.intn(130)
	case n < 85:
		r.millis = 150 + tt.intn(450)
	case n < 94:
		r.millis = 1000 + tt.intn(int(ttl/time.Millisecond)-1000)
	default:
		r.millis = int(ttl/time.Millisecond) + 200 + tt.intn(1300)
	}
	r.ignoreTerm = tt.intn(3) == 0
	term, mode := "obey-term", "exclusive"
	if r.ignoreTerm {
		term = "ignore-term"
	}
	if r.shared {
		mode = "shared"
	}
	var eps []string
	for _, p := range h.proxies {
		eps = append(eps, p.URL())
	}
	args = append(args,
		"--endpoints="+strings.Join(eps, ","),
		"--prefix="+tt.realm,
		fmt.Sprintf("--ttl=%v", ttl),
		fmt.Sprintf("--kill-after=%v", killAfter),
		fmt.Sprintf("--timeout=%v", waitLimit),
		"--dial-timeout=2s",
		// History records too, on a span that ends before the last look.
		"--history-span=2s",
		"--reason=torture "+r.id,
		"--", tt.worker, tt.logPath, r.id, r.lock, strconv.Itoa(r.millis), term, mode)
	return r, args
}

// pickLocks picks run r's lock at random (the semaphore a quarter of the
// time, the set as often, a plain lock alone otherwise, sometimes
// --shared) and returns the arguments that take it. A set's locks are
// named in either order: distlock takes them in the canonical one, which
// is the order of the tokens that the worker records.
func (tt *torture) pickLocks(r *run) []string {
	var args []string
	switch n := tt.intn(12); {
	case n < 3:
		r.locks = []string{semName}
		args = []string{"--lock-name=" + semName, fmt.Sprintf("--limit=%d", semLimit)}
	case n < 6:
		names := slices.Clone(setNames)
		if tt.intn(2) == 0 {
			slices.Reverse(names)
		}
		for _, name := range names {
			args = append(args, "--lock-name="+name)
		}
		r.locks = lock.SetOrder(tt.realm, names)
	default:
		r.locks = []string{mutexName}
		if n < 8 {
			r.locks = []string{mutex2Name}
		}
		args = []string{"--lock-name=" + r.locks[0]}
		if tt.intn(100) < sharedPercent {
			r.shared = true
			args = append(args, "--shared")
		}
	}
	r.lock = strings.Join(r.locks, "+")
	return args
}
