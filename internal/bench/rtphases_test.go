package bench

import (
	"bytes"
	"fmt"
	"os"

	"github.com/tinx/distlock/internal/stamp"
)

// The uncontended round trip `-- true` is split into phases the same way
// as the handoff: distlock built with stamps and floor built with stamps
// (./floor) stamp the steps they share, and measure (./measure) stamps
// the moment before its fork and the one after its reap.

// rtPhase is a part of a round trip, from one step to another.
type rtPhase struct{ label, from, to string }

// rtPhaseList are the parts of a round trip that the report shows, in
// order; the last is the whole.
var rtPhaseList = []rtPhase{
	{"start: exec, Go's runtime, package init", "spawn", "main"},
	{"started -> lease granted (flags, dial, grant)", "main", "granted"},
	{"granted -> the lock is ours (queued)", "granted", "turn"},
	{"ours -> fork/exec returned", "turn", "forked"},
	{"fork/exec returned -> command's exit seen", "forked", "exit-seen"},
	{"exit seen -> the lease's revoke answered", "exit-seen", "revoke-done"},
	{"revoke answered -> reaped (clean-up, exit)", "revoke-done", "reaped"},
	{"round trip: spawn -> reaped", "spawn", "reaped"},
}

// rtPhases collects stamped round trips, one of each tool per iteration,
// in the iteration's order.
type rtPhases struct {
	tools []tool
	spans map[string]map[string][]float64 // by tool, by phase label: ms
	count int
}

func newRTPhases(tools []tool) *rtPhases {
	return &rtPhases{tools: tools, spans: map[string]map[string][]float64{}}
}

func (r *rtPhases) add(e *env, i int, out *os.File) error {
	for _, k := range order(i, len(r.tools)) {
		t := r.tools[k]
		path := e.path("rt-stamps")
		if _, err := e.measured(t.argv("rt", "true"), out, stamp.FileVar+"="+path); err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		steps, err := parseSteps(data)
		if err != nil {
			return err
		}
		at := map[string]int64{} // the first of each step: the program's, measure's
		for _, s := range steps {
			if _, seen := at[s.name]; !seen {
				at[s.name] = s.at
			}
		}
		if r.spans[t.name] == nil {
			r.spans[t.name] = map[string][]float64{}
		}
		for _, p := range rtPhaseList {
			from, to := at[p.from], at[p.to]
			if from == 0 || to == 0 {
				return fmt.Errorf("%s's round trip stamped no %q or no %q", t.name, p.from, p.to)
			}
			r.spans[t.name][p.label] = append(r.spans[t.name][p.label], float64(to-from)/1e6)
		}
	}
	r.count++
	return nil
}

// writeRoundTripPhases writes the round trip's phases, distlock beside
// floor.
func writeRoundTripPhases(w *bytes.Buffer, r *rtPhases) {
	fmt.Fprintf(w, "\nThe uncontended round trip's phases (`-- true`), ms: median [quartiles] over %d stamped\n"+
		"round trips of each, distlock and floor both built with -tags %s; spawn and reaped\n"+
		"are measure's, before its fork and after its reap.\n\n", r.count, stampTag)
	var rows [][]string
	for _, p := range rtPhaseList {
		d, f := spreadOf(r.spans["distlock"][p.label]), spreadOf(r.spans["floor"][p.label])
		rows = append(rows, []string{p.label, d.short(), f.short(), fmt.Sprintf("%+.2f", d.med-f.med)})
	}
	writeTable(w, []string{"phase", "distlock", "floor", "difference"}, rows)
}
