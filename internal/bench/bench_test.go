// Package bench measures distlock as users run it: the built binary as a
// whole process against a real etcd, side by side with `etcdctl lock` and
// with floor (./floor), a holder that makes the fewest clientv3 calls a
// correct one needs. Every figure is printed through b.ReportMetric:
//
//   - BenchmarkRoundTrip: the uncontended round trip `-- true`. Each
//     iteration runs distlock, etcdctl lock and floor once each, in an
//     order of its own (order), each started by measure (./measure), which reaps it and every
//     descendant that outlives it and reads their cost from the kernel.
//     The figures are medians over the iterations: wall time until the
//     process ended (ms/TOOL); CPU, user + system of the process and all
//     its descendants (cpu-ms/TOOL); peak RSS, the largest of them
//     (MiB-peak/TOOL; measure says why the test does not read it itself);
//     and the per-iteration ratios distlock/etcdctl (x-etcdctl) and
//     distlock/floor (x-floor).
//   - BenchmarkBurst/N=2,10,20,50,200: N processes started at once on one
//     lock, each running the torture test's worker, which records its start
//     and end with the machine's monotonic clock. A distlock burst and an
//     etcdctl burst alternate. Figures: wall until all have exited
//     (ms-wall/TOOL, and the median per-pair ratio x-etcdctl-wall), the
//     median handoff gap from one command's exit to the next command's
//     start (ms-gap/TOOL), and the etcd requests per acquisition of distlock
//     (req/acq): the growth of the member's grpc_server_msg_received_total,
//     summed over all methods (every unary call, and every message on a
//     stream: each keepalive, each watch created), divided by N, with the
//     methods in the log. Sizes above 10 also report x-req-vs-N10, req/acq
//     over that of N=10 in the same run, which should stay within 1.10. The
//     commands' records are checked too: one at a time, and every one ran.
//   - BenchmarkBurstShared/shared,mixed/N=10,50: N distlocks at once on
//     one lock with --shared (mixed: every fifth without), distlock alone;
//     ms-wall and req/acq as above, and the records checked: every command
//     ran, and an exclusive one beside none.
//   - BenchmarkBurstSet/N=10,50: N distlocks at once, each taking the
//     same set of two locks; ms-wall, and req/acq per set; the records
//     checked: every command ran, one at a time.
//   - BenchmarkLossMargin/ttl=5s,15s,30s: a distlock holder reaches etcd
//     through a proxy that is then cut. While its command (which ignores
//     SIGTERM, so that --kill-after=1s has to SIGKILL it) lives, the test
//     asks etcd for the lease's remaining TTL over and over; each answer
//     bounds the lease's expiry from below (time of asking + whole seconds
//     left). ms-margin is the latest such bound minus the moment the test
//     saw the command gone: how long before etcd could have given the lock
//     to someone else the command was dead, at worst. It must be positive.
//     It takes about a TTL per ttl and is skipped with -short.
//   - BenchmarkReport: one text (scripts/bench-report prints it) with the
//     machine, the build and etcd it describes, RoundTrip's and Burst's
//     figures at N=20 with their spread, and the handoff split into
//     phases, distlock beside etcdctl lock: from stamps (internal/stamp)
//     of a distlock built with -tags distlock_stamps and of ctlmirror
//     (./ctlmirror), which makes etcdctl lock's calls, checked against
//     etcdctl itself in the same run (handoff_test.go). Its commands
//     exit at once; DISTLOCK_BENCH_HOLD=5ms, say, makes each hold the
//     lock that long. DISTLOCK_BENCH_STAMPED=/path/to/distlock puts
//     another stamped build in place of this tree's, to see a change in
//     the phases.
//
// etcd is Debian's etcd-server (`etcd` on PATH) as one member on free
// ports, or, without it or with DISTLOCK_BENCH_ETCD=embedded, one member of
// the module's own etcd (internal/devetcd) in a process of its own; each
// benchmark logs which. Its data is on disk (the test's temporary
// folder), or with DISTLOCK_BENCH_DATA=tmpfs in /dev/shm, where an fsync
// costs nothing. The etcdctl comparisons need `etcdctl` on PATH
// (Debian's etcd-client) and are skipped, with a log line, without it.
// distlock, floor, measure, devetcd and the worker are built without the
// race detector, as users run them.
//
// Run them on an otherwise idle machine; all, or one at a time:
//
//	go test -run '^$' -bench . ./internal/bench/
//	go test -run '^$' -bench RoundTrip -benchtime=100x ./internal/bench/
//	go test -run '^$' -bench 'Burst/N=200' ./internal/bench/
//	go test -run '^$' -bench . -short ./internal/bench/   # without LossMargin
//	scripts/bench-report tmpfs                             # BenchmarkReport, 20 iterations
package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.close()
	}
	os.Exit(code)
}

// env is what every benchmark shares: the programs, built once, and etcd,
// started once, on the first benchmark that asks.
type env struct {
	dir      string
	distlock string
	floor    string
	measure  string
	worker   string
	etcdctl  string // "" if it is not installed
	etcd     *server
	seq      int // numbers the realms, files and runs of this test binary
	runID    string

	// For the handoff's phases, built on first use (stampedTools):
	// distlock with stamps, etcdctl lock's flow with stamps, and the
	// command that stamps its start and exit.
	stamped, ctlmirror, mark string
	// For the round trip's phases: floor with stamps (rtPhaseTools).
	stampedFloor string
}

var (
	setupOnce sync.Once
	shared    *env
	setupErr  error
)

// setup returns the shared env, building and starting it on first use.
func setup(b *testing.B) *env {
	b.Helper()
	setupOnce.Do(func() { shared, setupErr = newEnv() })
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	b.Logf("etcd: %s at %s, its data %s", shared.etcd.about, shared.etcd.endpoint, shared.etcd.data)
	return shared
}

func newEnv() (*env, error) {
	dir, err := os.MkdirTemp("", "distlock-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, runID: strconv.FormatInt(time.Now().UnixNano(), 36)}
	for _, p := range []struct {
		bin *string
		pkg string
	}{
		{&e.distlock, "github.com/tinx/distlock"},
		{&e.floor, "github.com/tinx/distlock/internal/bench/floor"},
		{&e.measure, "github.com/tinx/distlock/internal/bench/measure"},
		{&e.worker, "github.com/tinx/distlock/internal/torture/worker"},
	} {
		if *p.bin, err = build(dir, p.pkg); err != nil {
			e.close()
			return nil, err
		}
	}
	if path, err := exec.LookPath("etcdctl"); err == nil {
		e.etcdctl = path
	}
	if e.etcd, err = startEtcd(dir); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// close stops etcd and removes everything the benchmarks wrote.
func (e *env) close() {
	if e.etcd != nil {
		e.etcd.stop()
	}
	os.RemoveAll(e.dir)
}

// releaseTags are the build tags of scripts/build-static: grpc without
// its request tracing, which takes about 1 MiB off a run's peak RSS.
const releaseTags = "grpcnotrace"

// build builds a command of the module without the race detector and
// without cgo, with the releases' tags, as releases are built, into dir;
// with tags, if any, besides.
func build(dir, pkg string, tags ...string) (string, error) {
	// go test puts the go command that runs it first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	if len(tags) > 0 {
		bin += "-" + strings.Join(tags, "-")
	}
	args := []string{"build", "-o", bin, "-tags", strings.Join(append([]string{releaseTags}, tags...), ",")}
	// Without cgo, as releases are built: a static binary starts without
	// the dynamic loader, and distlock starts one process more (the
	// watchdog) than the others.
	cmd := exec.Command(goTool, append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// next is a number not used before in this test binary.
func (e *env) next() int {
	e.seq++
	return e.seq
}

// realm is a key prefix of its own for one benchmark run.
func (e *env) realm(b *testing.B) string {
	name := strings.NewReplacer("/", "_", "=", "").Replace(b.Name())
	return fmt.Sprintf("/bench/%s/%s-%d/", e.runID, name, e.next())
}

// path is a fresh file name under the env's folder.
func (e *env) path(what string) string {
	return filepath.Join(e.dir, fmt.Sprintf("%s-%d", what, e.next()))
}

// A tool is one way to run a command under a lock.
type tool struct {
	name string
	argv func(lockName string, command ...string) []string
}

// tools are distlock, etcdctl lock (if installed) and floor, each with a
// realm of its own under realm.
func (e *env) tools(b *testing.B, realm string, withFloor bool) []tool {
	ts := []tool{{"distlock", func(name string, command ...string) []string {
		return append([]string{e.distlock, "--endpoints=" + e.etcd.endpoint,
			"--prefix=" + realm + "distlock/", "--lock-name=" + name, "--"}, command...)
	}}}
	if e.etcdctl != "" {
		ts = append(ts, tool{"etcdctl", func(name string, command ...string) []string {
			return append([]string{e.etcdctl, "--endpoints=" + e.etcd.endpoint, "lock", realm + "etcdctl/" + name}, command...)
		}})
	} else {
		b.Log("etcdctl is not on PATH (Debian: apt-get install etcd-client): the etcdctl comparisons are skipped")
	}
	// Another build of distlock to pair with this one, to measure a
	// change: DISTLOCK_BENCH_BEFORE=/path/to/the/old/binary.
	if before := os.Getenv("DISTLOCK_BENCH_BEFORE"); before != "" {
		ts = append(ts, tool{"before", func(name string, command ...string) []string {
			return append([]string{before, "--endpoints=" + e.etcd.endpoint,
				"--prefix=" + realm + "before/", "--lock-name=" + name, "--"}, command...)
		}})
	}
	if withFloor {
		ts = append(ts, tool{"floor", func(name string, command ...string) []string {
			return append([]string{e.floor, "--endpoints=" + e.etcd.endpoint,
				"--prefix=" + realm + "floor/", "--lock-name=" + name, "--"}, command...)
		}})
	}
	return ts
}

// stampTag is the build tag that turns distlock's stamps on
// (internal/stamp).
const stampTag = "distlock_stamps"

// stampedTools are the tools of the handoff's phases, each with a realm
// of its own under realm: distlock built with stamps (named "distlock"),
// ctlmirror (etcdctl lock's calls, stamped) and etcdctl itself, whose
// handoffs only its command stamps.
func (e *env) stampedTools(b *testing.B, realm string) []tool {
	if e.stamped == "" {
		// A stamped build of another tree, to measure a change by its
		// phases: DISTLOCK_BENCH_STAMPED=/path/to/it.
		e.stamped = os.Getenv("DISTLOCK_BENCH_STAMPED")
		for _, p := range []struct {
			bin *string
			pkg string
		}{
			{&e.stamped, "github.com/tinx/distlock"},
			{&e.ctlmirror, "github.com/tinx/distlock/internal/bench/ctlmirror"},
			{&e.mark, "github.com/tinx/distlock/internal/bench/mark"},
			{&e.stampedFloor, "github.com/tinx/distlock/internal/bench/floor"},
		} {
			if *p.bin != "" {
				continue
			}
			bin, err := build(e.dir, p.pkg, stampTag)
			if err != nil {
				b.Fatal(err)
			}
			*p.bin = bin
		}
	}
	ts := []tool{{"distlock", func(name string, command ...string) []string {
		return append([]string{e.stamped, "--endpoints=" + e.etcd.endpoint,
			"--prefix=" + realm + "distlock/", "--lock-name=" + name, "--"}, command...)
	}}, e.mirrorTool(realm)}
	if e.etcdctl != "" {
		ts = append(ts, tool{"etcdctl", func(name string, command ...string) []string {
			return append([]string{e.etcdctl, "--endpoints=" + e.etcd.endpoint, "lock", realm + "etcdctl/" + name}, command...)
		}})
	}
	return ts
}

// rtPhaseTools are the stamped distlock and the stamped floor, for the
// round trip's phases, each with a realm of its own under realm; built by
// stampedTools.
func (e *env) rtPhaseTools(realm string) []tool {
	return []tool{{"distlock", func(name string, command ...string) []string {
		return append([]string{e.stamped, "--endpoints=" + e.etcd.endpoint,
			"--prefix=" + realm + "distlock/", "--lock-name=" + name, "--"}, command...)
	}}, {"floor", func(name string, command ...string) []string {
		return append([]string{e.stampedFloor, "--endpoints=" + e.etcd.endpoint,
			"--prefix=" + realm + "floor/", "--lock-name=" + name, "--"}, command...)
	}}}
}

// stampedFloorTool is floor built with stamps, with a realm of its own
// under realm; built by stampedTools.
func (e *env) stampedFloorTool(realm string) tool {
	return tool{"floor", func(name string, command ...string) []string {
		return append([]string{e.stampedFloor, "--endpoints=" + e.etcd.endpoint,
			"--prefix=" + realm + "floor/", "--lock-name=" + name, "--"}, command...)
	}}
}

// mirrorTool is ctlmirror, with a realm of its own under realm; built by
// stampedTools.
func (e *env) mirrorTool(realm string) tool {
	return tool{"ctlmirror", func(name string, command ...string) []string {
		return append([]string{e.ctlmirror, "--endpoints=" + e.etcd.endpoint, "lock", realm + "ctlmirror/" + name}, command...)
	}}
}

// has says whether ts holds a tool of that name.
func has(ts []tool, name string) bool {
	for _, t := range ts {
		if t.name == name {
			return true
		}
	}
	return false
}

// processEnv is this process's environment without distlock's and
// etcdctl's settings, so that only the flags count, and with no config file.
func processEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISTLOCK_") && !strings.HasPrefix(kv, "ETCDCTL_") {
			env = append(env, kv)
		}
	}
	return append(env, "DISTLOCK_CONFIG=/dev/null", "ETCDCTL_API=3")
}

// command is argv ready to start, its output appended to out.
func command(argv []string, out *os.File) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = processEnv()
	cmd.Stdout, cmd.Stderr = out, out
	return cmd
}

// cost is what a finished process took, as measure (./measure) saw it.
type cost struct {
	wall     time.Duration // until it was reaped
	cpu      time.Duration // user + system of it and all its descendants
	maxRSS   int64         // KiB: the largest of it and its descendants
	lingered int           // descendants that outlived it
}

// measured runs argv under measure, with env besides, and returns what
// it cost.
func (e *env) measured(argv []string, out *os.File, env ...string) (cost, error) {
	result := filepath.Join(e.dir, "measure.result")
	cmd := command(append([]string{e.measure, result, "--"}, argv...), out)
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Run(); err != nil {
		return cost{}, fmt.Errorf("%s: %v\n%s", filepath.Base(argv[0]), err, tail(out))
	}
	data, err := os.ReadFile(result)
	if err != nil {
		return cost{}, err
	}
	var c cost
	var wall, cpu int64
	if _, err := fmt.Sscan(string(data), &wall, &cpu, &c.maxRSS, &c.lingered); err != nil {
		return cost{}, fmt.Errorf("measure's result %q: %w", data, err)
	}
	c.wall, c.cpu = time.Duration(wall), time.Duration(cpu)
	return c, nil
}

// outputFile is a fresh file for the output of processes.
func (e *env) outputFile(what string) (*os.File, error) {
	return os.OpenFile(e.path(what), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
}

// tail is the end of what processes wrote to out, for a failure message.
func tail(out *os.File) string {
	b, _ := os.ReadFile(out.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// median is the middle value of xs (the mean of the middle two for an
// even count); xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// order is the order in which iteration i runs n tools: a permutation of
// its own, the same in every run. A tool is slower after some tools than
// after others (etcdctl leaves its lease to etcd and its connection's
// end to etcd's cores): in a rotating order each tool follows the same
// one most of the time, and a build paired with itself measured 0.964
// of itself that way.
func order(i, n int) []int {
	return rand.New(rand.NewPCG(uint64(i), 0x6f72646572)).Perm(n)
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
