package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// reportBurst is how many processes start at once in the report's bursts.
const reportBurst = 20

// BenchmarkReport: the figures of docs/performance.md's first table, each
// with its spread over the iterations, and the handoff split into its
// phases for distlock and for etcdctl lock side by side, written as one
// text: to the file DISTLOCK_BENCH_REPORT names, or to stdout. Each
// iteration runs a round trip of distlock, etcdctl lock, floor and
// ctlmirror (as BenchmarkRoundTrip does), a burst of 20 of distlock, of
// etcdctl and of floor (as BenchmarkBurst does), and a stamped burst of 20
// of distlock built with stamps, distlock without, ctlmirror, etcdctl and
// floor built with stamps (see handoff_test.go). floor keeps none of
// distlock's promises: what it reaches is what the fewest calls reach. scripts/bench-report runs it; -benchtime=20x
// gives 20 iterations.
func BenchmarkReport(b *testing.B) {
	began := time.Now()
	loadBefore := loadavg()
	e := setup(b)
	if e.etcdctl == "" {
		b.Fatal("the report compares with etcdctl lock: install it (Debian: apt-get install etcd-client)")
	}
	realm := e.realm(b)
	stampedTools := e.stampedTools(b, realm+"stamped/")
	unstamped := e.tools(b, realm+"unstamped/", false)[0]
	unstamped.name = "unstamped"
	rt := newRoundTrips(append(append(e.tools(b, realm+"rt/", true), e.mirrorTool(realm+"rt/")), e.startTools()...))
	bs := newBursts(e.tools(b, realm+"burst/", true), reportBurst) // floor too: what the fewest calls reach
	ps := newPhaseBursts(append(stampedTools, unstamped, e.stampedFloorTool(realm+"stamped/")), reportBurst)
	rp := newRTPhases(e.rtPhaseTools(realm + "rt-stamped/"))
	out, err := e.outputFile("report.out")
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	for i := 0; b.Loop(); i++ {
		for _, add := range []func(*env, int, *os.File) error{rt.add, bs.add, ps.add, rp.add} {
			if err := add(e, i, out); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()

	var text bytes.Buffer
	trueWall, _, _, _ := rt.series("true")
	writeMachine(&text, e, began, loadBefore, loadavg(), spreadOf(trueWall), rt.pairs)
	writeFigures(&text, rt, bs)
	writeMirrorCheck(&text, rt, ps)
	writePhases(&text, ps)
	writeRoundTripPhases(&text, rp)
	if path := os.Getenv("DISTLOCK_BENCH_REPORT"); path != "" {
		if err := os.WriteFile(path, text.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	} else {
		os.Stdout.Write(append([]byte("\n"), text.Bytes()...))
	}
	b.ReportMetric(median(rt.x["distlock/etcdctl"]), "x-etcdctl")
	b.ReportMetric(median(rt.x["distlock/floor"]), "x-floor")
	b.ReportMetric(median(bs.xWall), "x-etcdctl-wall")
	b.ReportMetric(median(bs.xGap), "x-etcdctl-handoff")
	b.ReportMetric(0, "ns/op") // an iteration is a dozen runs and bursts: its time says nothing
}

// writeMachine says which machine, build and etcd the figures describe.
func writeMachine(w *bytes.Buffer, e *env, began time.Time, loadBefore, loadAfter string, startTrue spread, iterations int) {
	fmt.Fprintf(w, "distlock benchmark report: %d iterations in %v\n\n", iterations, time.Since(began).Round(time.Second))
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	rows := [][]string{
		{"machine", fmt.Sprintf("%d cores, %s, kernel %s", runtime.NumCPU(), cpuModel(), unix.ByteSliceToString(uts.Release[:]))},
		{"load", fmt.Sprintf("%s at the start, %s at the end (1, 5, 15 minutes)", loadBefore, loadAfter)},
		{"a process", fmt.Sprintf("/bin/true started and reaped by measure: %s ms", startTrue.short())},
		{"date", began.UTC().Format("2006-01-02 15:04 MST")},
		{"commit", commit()},
		{"Go", runtime.Version() + ", every Go program built with it, without cgo"},
		{"etcd", e.etcd.about + ", one member"},
		{"etcd's data", e.etcd.data},
		{"etcdctl", e.etcdctl + ", " + firstLine(exec.Command(e.etcdctl, "version"))},
	}
	writeTable(w, nil, rows)
	w.WriteString("\n")
}

// writeFigures writes the first table of docs/performance.md: medians,
// spreads, targets.
func writeFigures(w *bytes.Buffer, rt *roundTrips, bs *bursts) {
	fmt.Fprintf(w, "The figures: median [quartiles] (least-most) over the iterations. A ratio\n"+
		"is taken within an iteration, where the tools ran one after the other.\n\n")
	wall := func(name string) []float64 { xs, _, _, _ := rt.series(name); return xs }
	_, _, rss, _ := rt.series("distlock")
	rows := [][]string{
		{"round trip `-- true`, ms: distlock", spreadOf(wall("distlock")).String(), "", ""},
		{"  etcdctl lock", spreadOf(wall("etcdctl")).String(), "", ""},
		{"  floor", spreadOf(wall("floor")).String(), "", ""},
		target("  distlock / etcdctl", rt.x["distlock/etcdctl"], 0.85),
		target("  distlock / floor", rt.x["distlock/floor"], 1.05),
		{fmt.Sprintf("%d at once on one lock, wall, ms: distlock", bs.n), spreadOf(bs.walls["distlock"]).String(), "", ""},
		{"  etcdctl lock", spreadOf(bs.walls["etcdctl"]).String(), "", ""},
		target("  distlock / etcdctl", bs.xWall, 0.80),
		{"  floor / etcdctl (no promises kept: the yardstick)", spreadOf(bs.floorWall).String(), "", ""},
		target("peak RSS of distlock supervising `true`, MiB", rss, 15),
		{"handoff in those bursts, ms: distlock", spreadOf(bs.gaps["distlock"]).String(), "", ""},
		{"  etcdctl lock", spreadOf(bs.gaps["etcdctl"]).String(), "", ""},
		target("  distlock / etcdctl (each pair's medians)", bs.xGap, 0.80),
		{"  floor / etcdctl (each pair's medians; the yardstick)", spreadOf(bs.floorGap).String(), "", ""},
	}
	writeTable(w, []string{"figure", "median [quartiles] (least-most)", "target", "met"}, rows)
	fmt.Fprintf(w, "\n%d round trips and %d bursts of %d of each tool; a handoff is from one command's exit\n"+
		"to the next one's start, as the commands stamp them.\n\n", rt.pairs, bs.count, bs.n)
}

// target is a row of a ratio or size with its target, at most limit.
func target(label string, xs []float64, limit float64) []string {
	s := spreadOf(xs)
	met := "no"
	if s.med <= limit {
		met = "yes"
	}
	return []string{label, s.String(), fmt.Sprintf("<= %g", limit), met}
}

// writeMirrorCheck says whether ctlmirror stands for etcdctl lock: its
// round trip and handoff against etcdctl's, paired, and the requests
// each makes of etcd.
func writeMirrorCheck(w *bytes.Buffer, rt *roundTrips, ps *phaseBursts) {
	w.WriteString("Does ctlmirror (etcdctl lock's calls, with stamps) stand for etcdctl lock? Paired, in the same iterations:\n\n")
	xRT, xGap := spreadOf(rt.x["ctlmirror/etcdctl"]), spreadOf(ps.xGap["ctlmirror"])
	perAcq := func(name string) string {
		return byMethod(ps.etcd[name].requests, float64(ps.n*ps.count))
	}
	rows := [][]string{
		{"round trip, ctlmirror / etcdctl", xRT.String()},
		{"  the start alone (version), ctlmirror / etcdctl", spreadOf(rt.x["ctlmirror version/etcdctl version"]).String()},
		{"  the round trip less the start, ctlmirror / etcdctl", spreadOf(rt.x["lock part"]).String()},
		{fmt.Sprintf("handoff in stamped bursts of %d, ctlmirror / etcdctl", ps.n), xGap.String()},
		{"  handoff, ms: ctlmirror", spreadOf(ps.gaps["ctlmirror"]).String()},
		{"  etcdctl lock", spreadOf(ps.gaps["etcdctl"]).String()},
		{"etcd requests per run: ctlmirror", fmt.Sprintf("%.2f: %s", total(ps.etcd["ctlmirror"].requests)/float64(ps.n*ps.count), perAcq("ctlmirror"))},
		{"  etcdctl lock", fmt.Sprintf("%.2f: %s", total(ps.etcd["etcdctl"].requests)/float64(ps.n*ps.count), perAcq("etcdctl"))},
	}
	writeTable(w, nil, rows)
	// What the phases below split is the handoff: that is where
	// ctlmirror must stand for etcdctl. Its round trip is said too, but
	// ctlmirror copies etcdctl's calls, not its start (a larger program,
	// cobra's commands, an older Go, the dynamic loader).
	verdict := "for the handoff, which the phases below split, ctlmirror stands for etcdctl lock: its median is within 10% of etcdctl's"
	if !near(xGap.med, 0.10) {
		verdict = "for the handoff, ctlmirror does NOT stand for etcdctl lock here (its median more than 10% from etcdctl's): read the phases with care"
	}
	if lockPart := spreadOf(rt.x["lock part"]); near(xRT.med, 0.10) {
		verdict += ";\n   so does its round trip (within 10%)"
	} else {
		verdict += fmt.Sprintf(";\n   its round trip does not: it starts in %s of etcdctl's time, and the rest takes %s of etcdctl's",
			num(spreadOf(rt.x["ctlmirror version/etcdctl version"]).med), num(lockPart.med))
	}
	fmt.Fprintf(w, "\n=> %s.\n\n", verdict)
}

// near says whether x is within frac of 1.
func near(x, frac float64) bool { return x >= 1-frac && x <= 1+frac }

// total is the sum of counts.
func total(counts map[string]float64) float64 {
	t := 0.0
	for _, c := range counts {
		t += c
	}
	return t
}

// writePhases writes the handoff's phases, distlock beside etcdctl
// (ctlmirror), and what checks them.
func writePhases(w *bytes.Buffer, ps *phaseBursts) {
	fmt.Fprintf(w, "The handoff's phases, ms: median [quartiles] over the handoffs of %d stamped bursts of %d\n"+
		"of each tool whose waiter was woken by the release (etcd's revisions say which), stamped\n"+
		"on CLOCK_MONOTONIC by distlock (built with -tags %s), ctlmirror for etcdctl\n"+
		"lock and floor (the fewest calls, no promises kept: its release is the revoke), and by\n"+
		"the command (mark, holding the lock for %v) for the first and last moments.\n\n",
		ps.count, ps.n, stampTag, markHold())
	var rows [][]string
	for _, p := range phases {
		d, f, c := spreadOf(ps.spans("distlock", p)), spreadOf(ps.spans("floor", p)), spreadOf(ps.spans("ctlmirror", p))
		rows = append(rows, []string{p.label, d.short(), c.short(), fmt.Sprintf("%+.2f", d.med-c.med), f.short(), fmt.Sprintf("%+.2f", d.med-f.med)})
	}
	woken := func(name string) string { w, all := ps.byRelease(name); return fmt.Sprintf("%d of %d", w, all) }
	rows = append(rows, []string{"waiter woken by the release's own revision", woken("distlock"), woken("ctlmirror"), "", woken("floor"), ""})
	fsync := func(name string) string {
		m := ps.etcd[name]
		if m.fsyncs == 0 {
			return "none"
		}
		return fmt.Sprintf("%.2f (%.1f a run)", 1000*m.fsyncSeconds/m.fsyncs, m.fsyncs/float64(ps.n*ps.count))
	}
	rows = append(rows, []string{"etcd's WAL fsync, mean ms (fsyncs a run)", fsync("distlock"), fsync("ctlmirror"), "", fsync("floor"), ""})
	writeTable(w, []string{"phase", "distlock", "etcdctl (ctlmirror)", "distlock - etcdctl", "floor", "distlock - floor"}, rows)
	fmt.Fprintf(w, "\nc and d both follow the release's commit, side by side: a handoff is a+b+d+e+f (f = f1+f2),\n"+
		"though the medians of the parts need not add up to the median of the whole. The stamps'\n"+
		"own cost, the stamped distlock's median handoff over the unstamped one's, per iteration:\n%s.\n",
		spreadOf(ps.stampCost()).String())
	whole, noRead := ps.fastest()
	if ctl := spreadOf(ps.gaps["etcdctl"]).med; ctl > 0 && whole > 0 {
		fmt.Fprintf(w, "\nA tool as fast as the fastest of the three in every phase (a+b+d+e+f1+f2, each the least\n"+
			"of the three medians) would hand off in %.2f ms, %.2f of etcdctl lock's median (%.2f ms);\n"+
			"without e, the read after the wake (the recipe wakes one waiter per release, which then\n"+
			"reads whether it is first), in %.2f ms, %.2f of etcdctl lock's.\n",
			whole, whole/ctl, ctl, noRead, noRead/ctl)
	}
}

// fastest is the handoff of a tool as fast as the fastest of distlock,
// ctlmirror and floor in each phase: the least of their medians of a, b,
// d, e, f1 and f2, added up; and the same without e. Zero if a phase has
// no figures.
func (ps *phaseBursts) fastest() (whole, noRead float64) {
	for _, p := range phases {
		key := strings.Fields(p.label)[0]
		if !slices.Contains([]string{"a", "b", "d", "e", "f1", "f2"}, key) {
			continue
		}
		least, found := 0.0, false
		for _, tool := range []string{"distlock", "ctlmirror", "floor"} {
			if s := spreadOf(ps.spans(tool, p)); s.n > 0 && (!found || s.med < least) {
				least, found = s.med, true
			}
		}
		if !found {
			return 0, 0
		}
		whole += least
		if key != "e" {
			noRead += least
		}
	}
	return whole, noRead
}

// stampCost is, per iteration, the stamped distlock's median handoff over
// the unstamped one's.
func (ps *phaseBursts) stampCost() []float64 {
	var xs []float64
	for i := range ps.xGap["distlock"] {
		if i < len(ps.xGap["unstamped"]) {
			xs = append(xs, ps.xGap["distlock"][i]/ps.xGap["unstamped"][i])
		}
	}
	return xs
}

// spread is a sample's median, quartiles and extremes.
type spread struct {
	n                     int
	med, q1, q3, min, max float64
}

// spreadOf describes xs (which it leaves as they are).
func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return spread{n: len(s), med: quantile(s, 0.5), q1: quantile(s, 0.25), q3: quantile(s, 0.75), min: s[0], max: s[len(s)-1]}
}

// quantile is the q-quantile of sorted, between the two nearest values.
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

func (s spread) String() string {
	if s.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s-%s)", s.short(), num(s.min), num(s.max))
}

// short is the median and the quartiles.
func (s spread) short() string {
	if s.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%s [%s-%s]", num(s.med), num(s.q1), num(s.q3))
}

// num is x with two decimals, or none from 100 on.
func num(x float64) string {
	if x >= 100 || x <= -100 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

// writeTable writes rows in aligned columns, under head if it has one.
func writeTable(w *bytes.Buffer, head []string, rows [][]string) {
	all := rows
	if head != nil {
		all = append([][]string{head}, rows...)
	}
	var widths []int
	for _, r := range all {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, r := range all {
		var line strings.Builder
		for i, c := range r {
			line.WriteString(c)
			if i < len(r)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))+2))
			}
		}
		w.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "CPU model unknown"
}

// loadavg is the load averages over 1, 5 and 15 minutes.
func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// commit is the work tree's commit, and whether it has changes beside it.
func commit() string {
	rev := firstLine(exec.Command("git", "rev-parse", "--short", "HEAD"))
	status, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	switch {
	case err != nil:
		return rev
	case len(bytes.TrimSpace(status)) > 0:
		return rev + " with uncommitted changes"
	}
	return rev
}

// firstLine is the first line of what cmd prints, or why there is none.
func firstLine(cmd *exec.Cmd) string {
	out, err := cmd.Output()
	if err != nil {
		return fmt.Sprintf("(%s: %v)", strings.Join(cmd.Args, " "), err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
