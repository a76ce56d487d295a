package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRoundTrip: the uncontended round trip `-- true`, distlock,
// etcdctl lock and floor paired in every iteration (see the package doc).
func BenchmarkRoundTrip(b *testing.B) {
	e := setup(b)
	tools := e.tools(b, e.realm(b), true)
	out, err := e.outputFile("roundtrip.out")
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()

	costs := map[string][]cost{}
	var xEtcdctl, xFloor, xBefore []float64
	for i := 0; b.Loop(); i++ {
		got := map[string]cost{}
		for k := range tools {
			t := tools[(i+k)%len(tools)] // rotate who goes first
			c, err := e.measured(t.argv("rt", "true"), out)
			if err != nil {
				b.Fatal(err)
			}
			got[t.name] = c
			costs[t.name] = append(costs[t.name], c)
		}
		xFloor = append(xFloor, ratio(got["distlock"].wall, got["floor"].wall))
		if has(tools, "etcdctl") {
			xEtcdctl = append(xEtcdctl, ratio(got["distlock"].wall, got["etcdctl"].wall))
		}
		if has(tools, "before") {
			xBefore = append(xBefore, ratio(got["distlock"].wall, got["before"].wall))
		}
	}

	for _, t := range tools {
		var wall, cpu, rss []float64
		lingered := 0
		for _, c := range costs[t.name] {
			wall = append(wall, ms(c.wall))
			cpu = append(cpu, ms(c.cpu))
			rss = append(rss, float64(c.maxRSS)/1024)
			if c.lingered > 0 {
				lingered++
			}
		}
		if lingered > 0 {
			b.Logf("%s left a process running after it ended (counted in its CPU) in %d of %d runs", t.name, lingered, len(wall))
		}
		b.ReportMetric(median(wall), "ms/"+t.name)
		b.ReportMetric(median(cpu), "cpu-ms/"+t.name)
		b.ReportMetric(median(rss), "MiB-peak/"+t.name)
	}
	if len(xEtcdctl) > 0 {
		b.ReportMetric(median(xEtcdctl), "x-etcdctl")
	}
	b.ReportMetric(median(xFloor), "x-floor")
	if len(xBefore) > 0 {
		b.ReportMetric(median(xBefore), "x-before")
	}
	b.ReportMetric(0, "ns/op") // an iteration is three runs: its time says nothing
	b.Logf("%d paired iterations (-benchtime=100x for steadier medians)", len(xFloor))
}

// ratio is a/b.
func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		panic(fmt.Sprintf("ratio %v/%v", a, b))
	}
	return float64(a) / float64(b)
}
