package bench

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// burstSizes are the numbers of processes started at once.
var burstSizes = []int{2, 10, 20, 50, 200}

// BenchmarkBurst: N processes at once on one lock, a distlock burst and an
// etcdctl burst alternating (see the package doc).
func BenchmarkBurst(b *testing.B) {
	reqPerAcq := map[int]float64{}
	for _, n := range burstSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			e := setup(b) // here, not in the parent: a parent's log shows only with -v
			if err := roomFor(n); err != nil {
				b.Fatalf("N=%d cannot run here: %v", n, err) // not Skip: a skip is silent without -v
			}
			reqPerAcq[n] = burstBench(b, e, n)
			if base, ok := reqPerAcq[10]; ok && n > 10 && base > 0 {
				b.ReportMetric(reqPerAcq[n]/base, "x-req-vs-N10")
				b.Logf("distlock's etcd requests per acquisition: %.2f at N=10, %.2f at N=%d (%+.0f%%; the issue's target: within 10%%)",
					base, reqPerAcq[n], n, 100*(reqPerAcq[n]/base-1))
			}
		})
	}
}

// burstBench runs the bursts of n for b and returns distlock's median
// requests per acquisition.
func burstBench(b *testing.B, e *env, n int) float64 {
	bs := newBursts(e.tools(b, e.realm(b), false), n)
	out, err := e.outputFile("burst.out")
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	for i := 0; b.Loop(); i++ {
		if err := bs.add(e, i, out); err != nil {
			b.Fatal(err)
		}
	}

	for _, t := range bs.tools {
		b.ReportMetric(median(bs.walls[t.name]), "ms-wall/"+t.name)
		b.ReportMetric(median(bs.gaps[t.name]), "ms-gap/"+t.name)
	}
	if len(bs.xWall) > 0 {
		b.ReportMetric(median(bs.xWall), "x-etcdctl-wall")
	}
	if len(bs.xBefore) > 0 {
		b.ReportMetric(median(bs.xBefore), "x-before-wall")
	}
	perAcq := median(bs.reqs)
	b.ReportMetric(perAcq, "req/acq")
	b.ReportMetric(0, "ns/op") // an iteration is two bursts: its time says nothing
	b.Logf("%d bursts of each; distlock's requests per acquisition by method: %s", bs.count, byMethod(bs.perMethod, float64(n*bs.count)))
	return perAcq
}

// bursts collects bursts of n at once on one lock, one of each tool per
// iteration: walls and handoff gaps (ms), the per-iteration ratios, and
// distlock's etcd requests per acquisition.
type bursts struct {
	tools []tool
	n     int
	walls map[string][]float64
	gaps  map[string][]float64 // every handoff of every burst
	// xWall and xBefore: distlock's wall over etcdctl's and over the
	// other build's; xGap: distlock's median handoff over etcdctl's.
	xWall, xBefore, xGap []float64
	// floorWall and floorGap: the same of floor, where it runs too.
	floorWall, floorGap []float64
	reqs                []float64 // per acquisition, one per burst
	perMethod           map[string]float64
	count               int
}

func newBursts(tools []tool, n int) *bursts {
	return &bursts{tools: tools, n: n, walls: map[string][]float64{}, gaps: map[string][]float64{}, perMethod: map[string]float64{}}
}

// add runs a burst of every tool, in the i-th iteration's order.
func (bs *bursts) add(e *env, i int, out *os.File) error {
	got := map[string]burstResult{}
	gapMedian := map[string]float64{}
	for k := range bs.tools {
		t := bs.tools[order(i, len(bs.tools))[k]]
		r, err := e.burst(t, bs.n, out, t.name == "distlock")
		if err != nil {
			return fmt.Errorf("%s, %d at once: %w", t.name, bs.n, err)
		}
		got[t.name] = r
		bs.walls[t.name] = append(bs.walls[t.name], ms(r.wall))
		var gaps []float64
		for _, g := range r.gaps {
			gaps = append(gaps, ms(g))
		}
		bs.gaps[t.name] = append(bs.gaps[t.name], gaps...)
		gapMedian[t.name] = median(gaps)
	}
	if has(bs.tools, "etcdctl") {
		bs.xWall = append(bs.xWall, ratio(got["distlock"].wall, got["etcdctl"].wall))
		if gapMedian["etcdctl"] > 0 {
			bs.xGap = append(bs.xGap, gapMedian["distlock"]/gapMedian["etcdctl"])
		}
		if has(bs.tools, "floor") {
			bs.floorWall = append(bs.floorWall, ratio(got["floor"].wall, got["etcdctl"].wall))
			if gapMedian["etcdctl"] > 0 {
				bs.floorGap = append(bs.floorGap, gapMedian["floor"]/gapMedian["etcdctl"])
			}
		}
	}
	if has(bs.tools, "before") {
		bs.xBefore = append(bs.xBefore, ratio(got["distlock"].wall, got["before"].wall))
	}
	total := 0.0
	for m, c := range got["distlock"].requests {
		total += c
		bs.perMethod[m] += c
	}
	bs.reqs = append(bs.reqs, total/float64(bs.n))
	bs.count++
	return nil
}

// burstResult is one burst: the wall time until every process had ended,
// the gaps from each command's exit to the next command's start, and the
// requests etcd received meanwhile, by method (if they were counted).
type burstResult struct {
	wall     time.Duration
	gaps     []time.Duration
	requests map[string]float64
}

// burst starts n processes of t at once on one lock, each running the
// worker, waits for all, and checks the workers' records.
func (e *env) burst(t tool, n int, out *os.File, countRequests bool) (burstResult, error) {
	var r burstResult
	logPath := e.path("burst.log")
	var before map[string]float64
	if countRequests {
		var err error
		if before, err = e.etcd.requests(); err != nil {
			return r, err
		}
	}

	// The worker checks what distlock tells its command; etcdctl and
	// floor tell it nothing.
	lockArg := "burst"
	if t.name == "etcdctl" || t.name == "floor" {
		lockArg = "-"
	}
	var argvs [][]string
	for i := 0; i < n; i++ {
		argvs = append(argvs, t.argv("burst", e.worker, logPath, fmt.Sprintf("%s-%d", t.name, i), lockArg, "0", "obey-term"))
	}
	var err error
	if r.wall, err = atOnce(argvs, nil, out); err != nil {
		return r, err
	}

	if countRequests {
		after, err := e.etcd.requests()
		if err != nil {
			return r, err
		}
		r.requests = map[string]float64{}
		for m, c := range after {
			if d := c - before[m]; d > 0 {
				r.requests[m] = d
			}
		}
	}
	r.gaps, err = handoffs(logPath, n)
	return r, err
}

// atOnce starts a process for each of argvs at once, with extraEnv added
// to their environment and their output appended to out, and waits for
// all: the wall time from the first start until the last has ended. Any
// that fails fails the whole.
func atOnce(argvs [][]string, extraEnv []string, out *os.File) (time.Duration, error) {
	var cmds []*exec.Cmd
	killAll := func() {
		for _, c := range cmds {
			_ = c.Process.Kill() // fails only for one that has ended
		}
	}
	start := time.Now()
	for i, argv := range argvs {
		cmd := command(argv, out)
		cmd.Env = append(cmd.Env, extraEnv...)
		if err := cmd.Start(); err != nil {
			killAll()
			for _, c := range cmds {
				_ = c.Wait()
			}
			return 0, fmt.Errorf("start process %d of %d: %w", i+1, len(argvs), err)
		}
		cmds = append(cmds, cmd)
	}
	// Every handoff takes milliseconds; a burst that is not done long
	// after is stuck, and is ended rather than waited for forever.
	limit := 60*time.Second + time.Duration(len(argvs))*time.Second
	deadline := time.AfterFunc(limit, killAll)
	var failed []string
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			failed = append(failed, fmt.Sprintf("process %d: %v", i, err))
		}
	}
	wall := time.Since(start)
	if !deadline.Stop() {
		return wall, fmt.Errorf("not done after %v: killed\n%s", limit, tail(out))
	}
	if len(failed) > 0 {
		return wall, fmt.Errorf("%d of %d failed: %s\n%s", len(failed), len(argvs), strings.Join(failed, "; "), tail(out))
	}
	return wall, nil
}

// handoffs reads the workers' records of one burst, checks that the n
// commands ran one at a time and each ran once, and returns the gaps from
// each command's exit to the next one's start.
func handoffs(logPath string, n int) ([]time.Duration, error) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return nil, err
	}
	type record struct {
		at   int64
		run  string
		kind string
	}
	var recs []record
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line) // MONO RUN LOCK KIND [TOKEN]: etcdctl gives no token
		if len(f) < 4 {
			return nil, fmt.Errorf("worker record %q", line)
		}
		at, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("worker record %q: %w", line, err)
		}
		if f[3] == "enter" || f[3] == "exit" {
			recs = append(recs, record{at, f[1], f[3]})
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].at < recs[j].at })
	var gaps []time.Duration
	holder := ""
	ran := map[string]bool{}
	var lastExit int64
	for _, rec := range recs {
		switch rec.kind {
		case "enter":
			if holder != "" {
				return nil, fmt.Errorf("%s started while %s ran: the lock was held twice", rec.run, holder)
			}
			if ran[rec.run] {
				return nil, fmt.Errorf("%s started twice", rec.run)
			}
			holder, ran[rec.run] = rec.run, true
			if lastExit != 0 {
				gaps = append(gaps, time.Duration(rec.at-lastExit))
			}
		case "exit":
			if holder != rec.run {
				return nil, fmt.Errorf("%s exited while %q held the lock", rec.run, holder)
			}
			holder, lastExit = "", rec.at
		}
	}
	if len(ran) != n || holder != "" {
		return nil, fmt.Errorf("%d of %d commands ran, %q did not exit", len(ran), n, holder)
	}
	return gaps, nil
}

// byMethod lists counts divided by per, largest first.
func byMethod(counts map[string]float64, per float64) string {
	var methods []string
	for m := range counts {
		methods = append(methods, m)
	}
	sort.Slice(methods, func(i, j int) bool { return counts[methods[i]] > counts[methods[j]] })
	var parts []string
	for _, m := range methods {
		parts = append(parts, fmt.Sprintf("%s %.2f", m, counts[m]/per))
	}
	return strings.Join(parts, ", ")
}

// roomFor checks that the processes this test starts (etcd among them)
// get limits that let n lock processes run at once: each is a distlock
// or etcdctl, its watchdog, its command, a dozen threads, and a connection
// or two to etcd. Go raises its own soft limit on open files but not its
// children's, so the limits are read by a child, from /proc/self/limits.
func roomFor(n int) error {
	out, err := exec.Command("cat", "/proc/self/limits").Output()
	if err != nil {
		return fmt.Errorf("read the limits: %w", err)
	}
	for _, l := range []struct {
		name string // as /proc/PID/limits names it
		need int
	}{
		{"Max open files", 4*n + 256},
		{"Max processes", 40 * n}, // threads count too
	} {
		if l.name == "Max processes" && os.Geteuid() == 0 {
			continue // root is not held to it
		}
		soft := ""
		for _, line := range strings.Split(string(out), "\n") {
			if rest, ok := strings.CutPrefix(line, l.name+" "); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					soft = f[0]
				}
			}
		}
		if soft == "unlimited" {
			continue
		}
		have, err := strconv.Atoi(soft)
		if err != nil {
			return fmt.Errorf("read the limits: no %q in /proc/self/limits", l.name)
		}
		if have < l.need {
			return fmt.Errorf("%s is %d for the processes started here, %d needed: raise it (ulimit) before running the benchmark", l.name, have, l.need)
		}
	}
	return nil
}
