package torture

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"
)

// summary is the report as the test prints it.
func (rep *report) summary(run length, seed int64) string {
	var b strings.Builder
	total := 0
	for _, n := range rep.sections {
		total += n
	}
	fmt.Fprintf(&b, "torture (%s run, seed %d): %d hosts, 3 etcd members, %v of faults, %s/%s\n",
		run.name, seed, hosts, rep.duration.Round(time.Second), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "  critical sections: %d (%q %d, %q %d, of them --shared %d, at most %d at once; %q with --limit %d: %d; the set %s: %d) in %d distlock runs\n",
		total, mutexName, rep.sections[mutexName], mutex2Name, rep.sections[mutex2Name], rep.shared, rep.mostShared,
		semName, semLimit, rep.sections[semName], setLabel(), rep.sections[setLabel()], rep.runs)
	fmt.Fprintf(&b, "  sets of locks (%s): %d distlock runs, %d critical sections, %d faults aimed at a set's holder\n",
		setLabel(), rep.setRuns, rep.sections[setLabel()], rep.setFaults)
	fmt.Fprintf(&b, "  faults: %s\n", counted(rep.faults))
	fmt.Fprintf(&b, "  lock losses detected: %d; commands cut off: %d\n", rep.losses, rep.killed)
	fmt.Fprintf(&b, "  waiters that lost their place to an outage and queued again: %d, of which %d then ran their command\n", rep.requeued, rep.rejoined)
	var codes []int
	for c := range rep.statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d: %d", c, rep.statuses[c]))
	}
	fmt.Fprintf(&b, "  distlock exit statuses: %s\n", strings.Join(parts, ", "))
	if rep.gap >= 0 {
		fmt.Fprintf(&b, "  gap from a cut-off command's last sign of life to the next command it excluded, under each plain lock: smallest %v (%s), median %v, over %d\n",
			rep.gap.Round(time.Millisecond), rep.gapRun, rep.gaps[len(rep.gaps)/2].Round(time.Millisecond), len(rep.gaps))
	}
	if n := len(rep.handoff); n > 0 {
		fmt.Fprintf(&b, "  handoff under the plain locks (the last command's exit to the next one's enter): median %v, 90th percentile %v\n",
			rep.handoff[n/2].Round(time.Millisecond), rep.handoff[n*9/10].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  leases revoked by hand under a running command: %d, which lived on at most %v\n",
		rep.revoked, rep.afterRev.Round(time.Millisecond))
	fmt.Fprintf(&b, "  longest silence of a running command (heartbeat every 5ms): %v\n", rep.silence.Round(time.Millisecond))
	fmt.Fprintf(&b, "  overlaps: %d; problems: %d\n", rep.overlaps, len(rep.problems))
	return b.String()
}

// counted says the faults: their total, then each kind's count.
func counted(faults map[string]int) string {
	var kinds []string
	for k := range faults {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	total := 0
	var parts []string
	for _, k := range kinds {
		total += faults[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, faults[k]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
