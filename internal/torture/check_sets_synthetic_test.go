package torture

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// held is one synthetic section under a lock or a set of locks: its
// worker's records from ms from to ms to, a beat every 5 ms between, and
// "exit" at to if it ended of its own accord.
type held struct {
	run    string
	lock   string // a lock, or a set's locks joined by "+"
	tokens string // a token for each lock, joined by ","
	mode   string // shared or exclusive
	from   int64
	to     int64
	exited bool
}

// lines are the records that the worker would write for h.
func (h held) lines() []string {
	rec := func(ms int64, kind string) string {
		return fmt.Sprintf("%d %s %s %s %s %s", ms*int64(time.Millisecond), h.run, h.lock, kind, h.tokens, h.mode)
	}
	out := []string{rec(h.from, "enter")}
	for ms := h.from + 5; ms < h.to; ms += 5 {
		out = append(out, rec(ms, "beat"))
	}
	if h.exited {
		return append(out, rec(h.to, "exit"))
	}
	return append(out, rec(h.to, "beat"))
}

// checkHeld runs the checker on a log of sections, each from a distlock
// run that exited 0 (or 70, having said it lost the lock, when it was cut
// off), as the torture test would.
func checkHeld(t *testing.T, hs []held) *report {
	t.Helper()
	tt := &torture{t: t, logPath: filepath.Join(t.TempDir(), "sections.log"), faults: map[string]int{}}
	var log []string
	for i, h := range hs {
		log = append(log, h.lines()...)
		r := &run{id: h.run, lock: h.lock, locks: strings.Split(h.lock, "+"), shared: h.mode == "shared", pid: 1000 + i, done: true}
		if !h.exited {
			r.status = 70
			r.stderr.WriteString("distlock: lost lock\n")
		}
		tt.runs = append(tt.runs, r)
	}
	// One section after the other: the checker orders them by their stamps.
	if err := os.WriteFile(tt.logPath, []byte(strings.Join(log, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return tt.check()
}

const set = mutexName + "+" + mutex2Name

// A set's section overlaps no section of any of its locks, shared or not,
// and no other set's; beside other locks it may live.
func TestCheckerSetSections(t *testing.T) {
	tests := []struct {
		name     string
		held     []held
		overlaps []string // a lock each overlap is under
	}{
		{"beside an exclusive section of one of its locks", []held{
			{"s", set, "10,11", "exclusive", 0, 100, true},
			{"b", mutex2Name, "12", "exclusive", 50, 150, true},
		}, []string{mutex2Name}},
		{"beside a shared section of one of its locks", []held{
			{"a", mutexName, "10", "shared", 0, 100, true},
			{"s", set, "11,12", "exclusive", 99, 150, true},
		}, []string{mutexName}},
		{"beside another set", []held{
			{"s", set, "10,11", "exclusive", 0, 100, true},
			{"t", set, "12,13", "exclusive", 50, 150, true},
		}, []string{mutexName, mutex2Name}},
		{"beside the semaphore's holders", []held{
			{"s", set, "10,11", "exclusive", 0, 100, true},
			{"a", semName, "5", "exclusive", 20, 80, true},
			{"b", semName, "6", "exclusive", 30, 90, true},
		}, nil},
		{"beside a plain lock not in the set", []held{
			{"s", set, "10,11", "exclusive", 0, 100, true},
			{"a", "other", "12", "exclusive", 0, 100, true},
		}, nil},
		{"between sections of its locks", []held{
			{"a", mutexName, "10", "exclusive", 0, 50, true},
			{"b", mutex2Name, "11", "shared", 0, 55, true},
			{"s", set, "12,13", "exclusive", 60, 100, true},
			{"c", mutex2Name, "14", "shared", 110, 150, true},
			{"d", mutexName, "15", "exclusive", 110, 150, true},
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := checkHeld(t, tc.held)
			if rep.overlaps != len(tc.overlaps) || len(rep.problems) != len(tc.overlaps) {
				t.Fatalf("overlaps %d, problems %q; want overlaps under %q", rep.overlaps, rep.problems, tc.overlaps)
			}
			for _, name := range tc.overlaps {
				if !strings.Contains(strings.Join(rep.problems, "\n"), fmt.Sprintf("lock %q: 2 commands lived at once", name)) {
					t.Errorf("problems %q; want an overlap under %q", rep.problems, name)
				}
			}
			if rep.sections[set] != 1 && rep.sections[set] != 2 || rep.setRuns != rep.sections[set] {
				t.Errorf("set sections %d, set runs %d; want the set's", rep.sections[set], rep.setRuns)
			}
		})
	}
}

// A set's fencing token under each lock is compared with that lock's
// earlier tokens: its own for that lock, not the first of the set's.
func TestCheckerSetTokens(t *testing.T) {
	tests := []struct {
		name string
		held []held
		bad  string // the lock with a token problem, if any
	}{
		{"each lock's own token", []held{
			{"a", mutex2Name, "12", "exclusive", 0, 50, true},
			{"s", set, "11,13", "exclusive", 60, 100, true},
		}, ""},
		{"below an earlier token of its second lock", []held{
			{"a", mutex2Name, "20", "exclusive", 0, 50, true},
			{"s", set, "10,15", "exclusive", 60, 100, true},
		}, mutex2Name},
		{"a lock's token after the set is below the set's", []held{
			{"s", set, "10,15", "exclusive", 0, 50, true},
			{"a", mutexName, "12", "shared", 60, 100, true},
			{"b", mutex2Name, "14", "shared", 60, 100, true},
		}, mutex2Name},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := checkHeld(t, tc.held)
			want := 0
			if tc.bad != "" {
				want = 1
			}
			if len(rep.problems) != want || want == 1 && !strings.Contains(rep.problems[0], fmt.Sprintf("lock %q: command", tc.bad)) {
				t.Errorf("problems %q; want a token problem under %q: %v", rep.problems, tc.bad, want == 1)
			}
		})
	}
}

// A set's handoff runs from the last of its locks to fall free; none is
// counted when the command that held that one was cut off. After a set's
// command is cut off, the gap runs under each of its locks.
func TestCheckerSetHandoffsAndGaps(t *testing.T) {
	rep := checkHeld(t, []held{
		{"a", mutexName, "10", "exclusive", 0, 50, true},
		{"b", mutex2Name, "11", "exclusive", 0, 80, true},
		{"s", set, "12,13", "exclusive", 90, 120, true}, // 10 after b
		{"c", mutexName, "14", "exclusive", 125, 130, true},
		{"d", mutex2Name, "15", "exclusive", 127, 200, false}, // cut off
		{"t", set, "16,17", "exclusive", 210, 250, false},     // after d: no handoff; cut off
		{"e", mutexName, "18", "exclusive", 270, 280, true},
		{"f", mutex2Name, "19", "exclusive", 300, 310, true},
	})
	if len(rep.problems) > 0 {
		t.Fatalf("problems: %q", rep.problems)
	}
	handoffs := []time.Duration{5 * time.Millisecond, 7 * time.Millisecond, 10 * time.Millisecond}
	gaps := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond}
	if fmt.Sprint(rep.handoff) != fmt.Sprint(handoffs) || fmt.Sprint(rep.gaps) != fmt.Sprint(gaps) {
		t.Errorf("handoffs %v, gaps %v; want %v and %v", rep.handoff, rep.gaps, handoffs, gaps)
	}
	if rep.sections[set] != 2 || rep.setRuns != 2 || rep.sections[mutexName] != 3 {
		t.Errorf("sections %v, set runs %d; want the set 2, %q 3, and 2", rep.sections, rep.setRuns, mutexName)
	}
}

func TestReadSectionsSets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sections.log")
	log := "1 s mutex+mutex2 enter 7,9 exclusive\n2 s mutex+mutex2 exit 7,9 exclusive\n"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	secs, err := readSections(path)
	if s := secs["s"]; err != nil || s == nil || fmt.Sprint(s.locks, s.tokens, s.token) != "[mutex mutex2] [7 9] 7" {
		t.Fatalf("sections %v, error %v; want s under mutex and mutex2 with tokens 7 and 9", secs, err)
	}
	for _, bad := range []string{"1 s mutex+mutex2 enter 7 exclusive\n", "1 s mutex enter 7,9 exclusive\n", "1 s mutex+mutex2 enter 7,x\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readSections(path); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("%q: error %v, want malformed", bad, err)
		}
	}
}
