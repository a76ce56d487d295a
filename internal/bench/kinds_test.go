package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkBurstShared: N distlocks started at once on one lock with
// --shared, so that they all hold it together (shared), and the same with
// every fifth one exclusive (mixed). Figures as BenchmarkBurst's for
// distlock alone (etcdctl has no shared lock): wall until all have
// exited (ms-wall) and etcd requests per acquisition (req/acq). The
// records are checked: every command ran once, and an exclusive one
// beside nothing.
func BenchmarkBurstShared(b *testing.B) {
	for _, mix := range []struct {
		name  string
		every int // every that-many-th run is exclusive; 0: none
	}{{"shared", 0}, {"mixed", 5}} {
		for _, n := range []int{10, 50} {
			b.Run(fmt.Sprintf("%s/N=%d", mix.name, n), func(b *testing.B) {
				kindBench(b, n, "shared.out", "acquisition", func(i int) ([]string, bool) {
					if mix.every > 0 && i%mix.every == mix.every-1 {
						return []string{"--lock-name=burst"}, true
					}
					return []string{"--lock-name=burst", "--shared"}, false
				})
			})
		}
	}
}

// BenchmarkBurstSet: N distlocks started at once, each taking the same
// set of two locks (--lock-name=a --lock-name=b): ms-wall and req/acq
// (per run, that is per set of two), and the records checked: every
// command ran, and one at a time.
func BenchmarkBurstSet(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			kindBench(b, n, "set.out", "set acquired", func(int) ([]string, bool) {
				return []string{"--lock-name=b", "--lock-name=a"}, true
			})
		})
	}
}

// kindBench runs bursts of n (kindBurst with args) for b, and reports
// their median wall and etcd requests per run (each a what), with the
// methods in the log.
func kindBench(b *testing.B, n int, outName, what string, args func(i int) ([]string, bool)) {
	e := setup(b)
	if err := roomFor(n); err != nil {
		b.Fatalf("N=%d cannot run here: %v", n, err)
	}
	realm := e.realm(b)
	out, err := e.outputFile(outName)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	var walls, reqs []float64
	perMethod := map[string]float64{}
	for b.Loop() {
		r, err := e.kindBurst(realm, n, out, args)
		if err != nil {
			b.Fatal(err)
		}
		walls = append(walls, ms(r.wall))
		total := 0.0
		for m, c := range r.requests {
			total += c
			perMethod[m] += c
		}
		reqs = append(reqs, total/float64(n))
	}
	b.ReportMetric(median(walls), "ms-wall")
	b.ReportMetric(median(reqs), "req/acq")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d bursts; requests per %s, by method: %s", len(walls), what, byMethod(perMethod, float64(n*len(walls))))
}

// kindBurst starts n distlocks at once, the i-th with the lock flags
// args(i) gives (and whether that run holds alone), waits for all, and
// checks the workers' records.
func (e *env) kindBurst(realm string, n int, out *os.File, args func(i int) ([]string, bool)) (burstResult, error) {
	var r burstResult
	logPath := e.path("kinds.log")
	_ = os.Remove(logPath)
	before, err := e.etcd.requests()
	if err != nil {
		return r, err
	}
	exclusive := map[string]bool{}
	start := time.Now()
	var failed []string
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("s-%d", i)
		flags, alone := args(i)
		exclusive[id] = alone
		argv := append([]string{e.distlock, "--endpoints=" + e.etcd.endpoint, "--prefix=" + realm + "kinds/"}, flags...)
		// The worker checks a set's keys and tokens: it is told the
		// set's names in their order, joined by "+".
		label := "burst"
		if sets := lockNames(flags); len(sets) > 1 {
			label = strings.Join(sets, "+")
		}
		cmd := command(append(argv, "--", e.worker, logPath, id, label, "0", "obey-term"), out)
		if err := cmd.Start(); err != nil {
			return r, fmt.Errorf("start process %d of %d: %w", i+1, n, err)
		}
		go func() { done <- cmd.Wait() }()
	}
	limit := time.After(60*time.Second + time.Duration(n)*time.Second)
	for i := 0; i < n; i++ {
		select {
		case err := <-done:
			if err != nil {
				failed = append(failed, err.Error())
			}
		case <-limit:
			return r, fmt.Errorf("not done in time\n%s", tail(out))
		}
	}
	r.wall = time.Since(start)
	if len(failed) > 0 {
		return r, fmt.Errorf("%d of %d failed: %s\n%s", len(failed), n, strings.Join(failed, "; "), tail(out))
	}
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
	return r, checkShared(logPath, n, exclusive)
}

// checkShared reads the workers' records of a shared burst: each of the n
// commands ran once, and an exclusive one (by its run's name) beside no
// other.
func checkShared(logPath string, n int, exclusive map[string]bool) error {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	type record struct {
		at        int64
		run, kind string
	}
	var recs []record
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line) // MONO RUN LOCK KIND [TOKEN]
		if len(f) < 4 {
			return fmt.Errorf("worker record %q", line)
		}
		at, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return fmt.Errorf("worker record %q: %w", line, err)
		}
		if f[3] == "enter" || f[3] == "exit" {
			recs = append(recs, record{at, f[1], f[3]})
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].at < recs[j].at })
	inside, ran := map[string]bool{}, map[string]bool{}
	for _, rec := range recs {
		if rec.kind == "exit" {
			delete(inside, rec.run)
			continue
		}
		for other := range inside {
			if exclusive[rec.run] || exclusive[other] {
				return fmt.Errorf("%s entered while %s was inside, and one of them is exclusive", rec.run, other)
			}
		}
		if ran[rec.run] {
			return fmt.Errorf("%s ran twice", rec.run)
		}
		inside[rec.run], ran[rec.run] = true, true
	}
	if len(ran) != n {
		return fmt.Errorf("%d of %d commands ran", len(ran), n)
	}
	return nil
}

// lockNames are the names of the --lock-name flags among flags, sorted
// as a set's are for names of one realm without escapes.
func lockNames(flags []string) []string {
	var names []string
	for _, f := range flags {
		if n, ok := strings.CutPrefix(f, "--lock-name="); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// BenchmarkBurstHistory: N distlocks at once on one lock, with history
// records (the default span) and without (--history-span=0), one burst
// of each in turn, the order alternating: ms-wall of each, their ratio
// (median of the pairs), and the etcd requests per run of each.
func BenchmarkBurstHistory(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			e := setup(b)
			realm := e.realm(b)
			out, err := e.outputFile("history.out")
			if err != nil {
				b.Fatal(err)
			}
			defer out.Close()
			kinds := []struct {
				name string
				flag string
			}{{"with", "--history-span=168h"}, {"without", "--history-span=0"}}
			walls, reqs := map[string][]float64{}, map[string][]float64{}
			var ratios []float64
			for i := 0; b.Loop(); i++ {
				got := map[string]float64{}
				for k := range kinds {
					kind := kinds[(i+k)%len(kinds)]
					r, err := e.kindBurst(realm, n, out, func(int) ([]string, bool) {
						return []string{"--lock-name=burst", kind.flag}, true
					})
					if err != nil {
						b.Fatal(err)
					}
					got[kind.name] = ms(r.wall)
					walls[kind.name] = append(walls[kind.name], ms(r.wall))
					total := 0.0
					for _, c := range r.requests {
						total += c
					}
					reqs[kind.name] = append(reqs[kind.name], total/float64(n))
				}
				ratios = append(ratios, got["with"]/got["without"])
			}
			b.ReportMetric(median(walls["with"]), "ms-wall-with")
			b.ReportMetric(median(walls["without"]), "ms-wall-without")
			b.ReportMetric(median(ratios), "x-wall")
			b.ReportMetric(median(reqs["with"]), "req/run-with")
			b.ReportMetric(median(reqs["without"]), "req/run-without")
			b.ReportMetric(0, "ns/op")
		})
	}
}
