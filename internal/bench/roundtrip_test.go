package bench

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// BenchmarkRoundTrip: the uncontended round trip `-- true`, distlock,
// etcdctl lock and floor paired in every iteration (see the package doc).
func BenchmarkRoundTrip(b *testing.B) {
	e := setup(b)
	rt := newRoundTrips(e.tools(b, e.realm(b), true))
	out, err := e.outputFile("roundtrip.out")
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	for i := 0; b.Loop(); i++ {
		if err := rt.add(e, i, out); err != nil {
			b.Fatal(err)
		}
	}
	rt.report(b)
}

// roundTrips collects paired round trips `-- true`: each iteration runs
// every tool once.
type roundTrips struct {
	tools []tool
	costs map[string][]cost
	// x holds the per-iteration ratios of wall times, by pairing
	// ("distlock/etcdctl").
	x     map[string][]float64
	pairs int
}

// pairings are the ratios of round trips that are kept, where both
// tools ran.
var pairings = [][2]string{{"distlock", "etcdctl"}, {"distlock", "floor"}, {"distlock", "before"}, {"before", "floor"}, {"ctlmirror", "etcdctl"},
	{"ctlmirror version", "etcdctl version"}}

func newRoundTrips(tools []tool) *roundTrips {
	return &roundTrips{tools: tools, costs: map[string][]cost{}, x: map[string][]float64{}}
}

// add runs a round trip of every tool, in the i-th iteration's order,
// each under measure.
func (r *roundTrips) add(e *env, i int, out *os.File) error {
	got := map[string]cost{}
	for _, k := range order(i, len(r.tools)) {
		t := r.tools[k]
		c, err := e.measured(t.argv("rt", "true"), out)
		if err != nil {
			return err
		}
		got[t.name] = c
		r.costs[t.name] = append(r.costs[t.name], c)
	}
	for _, p := range pairings {
		a, okA := got[p[0]]
		b, okB := got[p[1]]
		if okA && okB {
			r.x[p[0]+"/"+p[1]] = append(r.x[p[0]+"/"+p[1]], ratio(a.wall, b.wall))
		}
	}
	// The lock's part of ctlmirror's round trip over etcdctl's: each
	// less the program's start alone (etcdctl starts slower).
	if m, e := got["ctlmirror"].wall-got["ctlmirror version"].wall, got["etcdctl"].wall-got["etcdctl version"].wall; got["ctlmirror version"].wall > 0 && got["etcdctl version"].wall > 0 && e > 0 {
		r.x["lock part"] = append(r.x["lock part"], ratio(m, e))
	}
	r.pairs++
	return nil
}

// startTools are what the report's round trips take as the machine's
// and the programs' start: /bin/true, and etcdctl and ctlmirror that
// start and exit (version).
func (e *env) startTools() []tool {
	fixed := func(name string, argv ...string) tool {
		return tool{name, func(string, ...string) []string { return argv }}
	}
	return []tool{fixed("true", "/bin/true"), fixed("etcdctl version", e.etcdctl, "version"), fixed("ctlmirror version", e.ctlmirror, "version")}
}

// series are one tool's walls (ms), CPU (ms) and peak RSS (MiB), one per
// iteration, and how many of its runs left a process behind.
func (r *roundTrips) series(name string) (wall, cpu, rss []float64, lingered int) {
	for _, c := range r.costs[name] {
		wall = append(wall, ms(c.wall))
		cpu = append(cpu, ms(c.cpu))
		rss = append(rss, float64(c.maxRSS)/1024)
		if c.lingered > 0 {
			lingered++
		}
	}
	return wall, cpu, rss, lingered
}

// report reports the medians as BenchmarkRoundTrip's metrics.
func (r *roundTrips) report(b *testing.B) {
	for _, t := range r.tools {
		wall, cpu, rss, lingered := r.series(t.name)
		if lingered > 0 {
			b.Logf("%s left a process running after it ended (counted in its CPU) in %d of %d runs", t.name, lingered, len(wall))
		}
		b.ReportMetric(median(wall), "ms/"+t.name)
		b.ReportMetric(median(cpu), "cpu-ms/"+t.name)
		b.ReportMetric(median(rss), "MiB-peak/"+t.name)
	}
	for _, p := range pairings {
		xs := r.x[p[0]+"/"+p[1]]
		switch {
		case len(xs) == 0:
		case p[0] == "distlock":
			b.ReportMetric(median(xs), "x-"+p[1])
		case p[0] == "before":
			b.ReportMetric(median(xs), "x-before-vs-"+p[1])
		}
	}
	b.ReportMetric(0, "ns/op") // an iteration is three runs: its time says nothing
	b.Logf("%d paired iterations (-benchtime=100x for steadier medians)", r.pairs)
}

// ratio is a/b.
func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		panic(fmt.Sprintf("ratio %v/%v", a, b))
	}
	return float64(a) / float64(b)
}
