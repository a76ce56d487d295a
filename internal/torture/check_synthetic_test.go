package torture

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// life is one synthetic section under the plain lock: its worker's
// records from ms from to ms to, a beat every 5 ms between, and "exit" at
// to if it ended of its own accord.
type life struct {
	run    string
	mode   string // shared or exclusive
	token  int64
	from   int64
	to     int64
	exited bool
}

// held is l as a section of any lock.
func (l life) held() held {
	return held{l.run, mutexName, fmt.Sprint(l.token), l.mode, l.from, l.to, l.exited}
}

// checkLives runs the checker on a log of lives, each from a distlock run
// that exited 0 (or 70, having said it lost the lock, when it was cut
// off), as the torture test would.
func checkLives(t *testing.T, lives []life) *report {
	t.Helper()
	var hs []held
	for _, l := range lives {
		hs = append(hs, l.held())
	}
	return checkHeld(t, hs)
}

func TestCheckerSharedSections(t *testing.T) {
	tests := []struct {
		name     string
		lives    []life
		overlaps int
		most     int // the most shared sections at once
	}{
		{"shared beside shared", []life{
			{"a", "shared", 10, 0, 100, true},
			{"b", "shared", 11, 50, 150, true},
			{"c", "shared", 12, 60, 70, true},
			{"d", "exclusive", 13, 170, 200, true},
		}, 0, 3},
		{"exclusive, then shared, one after the other", []life{
			{"a", "exclusive", 10, 0, 100, true},
			{"b", "shared", 11, 110, 150, true},
			{"c", "exclusive", 12, 160, 200, true},
		}, 0, 1},
		{"an exclusive section enters beside a shared one", []life{
			{"a", "shared", 10, 0, 100, true},
			{"b", "exclusive", 11, 50, 150, true},
		}, 1, 1},
		{"a shared section enters beside an exclusive one", []life{
			{"a", "exclusive", 10, 0, 100, true},
			{"b", "shared", 11, 99, 150, true},
		}, 1, 1},
		{"an exclusive section in the middle of shared ones", []life{
			{"a", "shared", 10, 0, 100, true},
			{"b", "shared", 11, 20, 100, true},
			{"c", "exclusive", 12, 30, 40, true},
		}, 1, 2},
		{"two exclusive sections", []life{
			{"a", "exclusive", 10, 0, 100, true},
			{"b", "exclusive", 11, 50, 150, true},
		}, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := checkLives(t, tc.lives)
			if rep.overlaps != tc.overlaps || rep.mostShared != tc.most {
				t.Errorf("overlaps %d, most shared at once %d; want %d and %d; problems: %q",
					rep.overlaps, rep.mostShared, tc.overlaps, tc.most, rep.problems)
			}
			if tc.overlaps == 0 && len(rep.problems) > 0 {
				t.Errorf("problems: %q", rep.problems)
			}
			for _, p := range rep.problems {
				if !strings.Contains(p, "lived at once") {
					t.Errorf("a problem other than the overlap: %q", p)
				}
			}
		})
	}
}

// Shared holders' tokens are the queue's order and are not compared with
// each other's; an exclusive holder's are, with shared ones too.
func TestCheckerSharedTokens(t *testing.T) {
	tests := []struct {
		name  string
		lives []life
		bad   bool
	}{
		{"a shared holder that queued later ends first", []life{
			{"a", "shared", 12, 0, 20, true},
			{"b", "shared", 11, 30, 60, true},
		}, false},
		{"an exclusive holder after a shared one with a higher token", []life{
			{"a", "shared", 12, 0, 20, true},
			{"b", "exclusive", 11, 30, 60, true},
		}, true},
		{"a shared holder after an exclusive one with a higher token", []life{
			{"a", "exclusive", 12, 0, 20, true},
			{"b", "shared", 11, 30, 60, true},
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := checkLives(t, tc.lives)
			bad := len(rep.problems) == 1 && strings.Contains(rep.problems[0], "fencing token")
			if bad != tc.bad || !tc.bad && len(rep.problems) > 0 {
				t.Errorf("problems: %q; want a token problem: %v", rep.problems, tc.bad)
			}
		})
	}
}

// The gap after a cut-off shared section runs to the next exclusive one,
// and a handoff is measured only when the lock as a whole falls free.
func TestCheckerSharedGapsAndHandoffs(t *testing.T) {
	rep := checkLives(t, []life{
		{"a", "exclusive", 10, 0, 100, true},
		{"b", "shared", 11, 110, 200, false}, // cut off
		{"c", "shared", 12, 120, 230, true},
		{"d", "shared", 13, 205, 215, true}, // joins c after b's end, ends before c
		{"e", "exclusive", 14, 245, 300, true},
		{"f", "exclusive", 15, 307, 320, true},
	})
	if len(rep.problems) > 0 {
		t.Fatalf("problems: %q", rep.problems)
	}
	if rep.gap != 45*time.Millisecond || rep.gapRun != "b" || len(rep.gaps) != 1 {
		t.Errorf("gaps %v, smallest %v after %s; want one of 45ms after b", rep.gaps, rep.gap, rep.gapRun)
	}
	want := []time.Duration{7 * time.Millisecond, 10 * time.Millisecond, 15 * time.Millisecond}
	if fmt.Sprint(rep.handoff) != fmt.Sprint(want) {
		t.Errorf("handoffs %v, want %v", rep.handoff, want)
	}
	if rep.shared != 3 || rep.mostShared != 2 {
		t.Errorf("shared sections %d, at most %d at once; want 3 and 2", rep.shared, rep.mostShared)
	}
}

func TestReadSectionsModes(t *testing.T) {
	tests := []struct {
		name   string
		log    string
		shared bool
		err    string
	}{
		{"no mode is exclusive (the key-space test's records)", "1 a mutex enter 5\n2 a mutex exit 5\n", false, ""},
		{"exclusive", "1 a mutex enter 5 exclusive\n2 a mutex exit 5 exclusive\n", false, ""},
		{"shared", "1 a mutex enter 5 shared\n2 a mutex exit 5 shared\n", true, ""},
		{"another word", "1 a mutex enter 5 sharde\n", false, "malformed"},
		{"the mode changes", "1 a mutex enter 5 shared\n2 a mutex exit 5 exclusive\n", false, "another mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sections.log")
			if err := os.WriteFile(path, []byte(tc.log), 0o644); err != nil {
				t.Fatal(err)
			}
			secs, err := readSections(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one that says %q", err, tc.err)
				}
				return
			}
			if err != nil || secs["a"] == nil || secs["a"].shared != tc.shared || !secs["a"].exited {
				t.Errorf("sections %v, error %v; want a, shared %v, exited", secs, err, tc.shared)
			}
		})
	}
}

// A command whose lease was revoked by hand counts up to the revocation,
// for shared sections as for exclusive ones.
func TestCheckOverlapRevoked(t *testing.T) {
	a := &section{run: "a", lock: mutexName, enter: 0, last: 100}
	until := map[string]int64{"a": 50}
	for _, tc := range []struct {
		enter    int64
		overlaps int
	}{{60, 0}, {40, 1}} {
		b := &section{run: "b", lock: mutexName, shared: true, enter: tc.enter, last: 200}
		rep := &report{}
		rep.checkOverlap(mutexName, 1, []*section{a, b}, until)
		if rep.overlaps != tc.overlaps {
			t.Errorf("shared section entering at %d beside one revoked at 50: overlaps %d, want %d; problems %q",
				tc.enter, rep.overlaps, tc.overlaps, rep.problems)
		}
	}
}
