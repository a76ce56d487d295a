package bench

import (
	"strings"
	"testing"
)

// Three processes of a tool, one after the other on one lock: 10 takes it
// at once, 11 and 12 wait. Times in ns; the lines of one process come
// out together, as a stamped process writes them at its end.
const threeRuns = `command-start 10 1000
command-exit 10 2000
forked 10 900
exit-seen 10 2100
release-sent 10 2200
release-done 10 3000 41
revoke-sent 10 3100
revoke-done 10 3900 41
woken 11 3050 41
turn 11 3300 41
forked 11 3700
command-start 11 3800
command-exit 11 3900
exit-seen 11 4000
revoke-sent 11 4100
revoke-done 11 5000 43
woken 12 5100 43
turn 12 5200 43
forked 12 5500
command-start 12 5600
command-exit 12 5700
`

func TestHandoffsOf(t *testing.T) {
	steps, err := parseSteps([]byte(threeRuns))
	if err != nil {
		t.Fatal(err)
	}
	hs, err := handoffsOf(steps, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []handoff{
		// The transaction woke 11 (revision 41), not the revoke after
		// it, which deleted nothing and answers with the same revision.
		{exit: 2000, exitSeen: 2100, sent: 2200, answered: 3000, woken: 3050, turn: 3300, forked: 3700, started: 3800, released: 41, wokenBy: 41},
		// Without a history record the revoke deletes the key.
		{exit: 3900, exitSeen: 4000, sent: 4100, answered: 5000, woken: 5100, turn: 5200, forked: 5500, started: 5600, released: 43, wokenBy: 43},
	}
	if len(hs) != len(want) {
		t.Fatalf("%d handoffs, want %d: %+v", len(hs), len(want), hs)
	}
	for i := range want {
		if hs[i] != want[i] {
			t.Errorf("handoff %d:\n got %+v\nwant %+v", i, hs[i], want[i])
		}
		if !hs[i].byRelease() {
			t.Errorf("handoff %d: not woken by its release", i)
		}
	}
	// Phase d of the first: from the release's send to the wake.
	if d, ok := phases[3].span(hs[0]); !ok || d != 0.00085 {
		t.Errorf("phase %q of the first handoff: %v, %v; want 0.00085 ms", phases[3].label, d, ok)
	}
}

// A tool that stamps nothing (etcdctl): the handoffs have the command's
// moments only, and the phases between the tool's moments are missing.
func TestHandoffsOfCommandsOnly(t *testing.T) {
	steps, err := parseSteps([]byte("command-start 7 100\ncommand-exit 7 200\ncommand-start 8 450\ncommand-exit 8 500\n"))
	if err != nil {
		t.Fatal(err)
	}
	hs, err := handoffsOf(steps, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0] != (handoff{exit: 200, started: 450}) {
		t.Fatalf("handoffs %+v", hs)
	}
	if _, ok := phases[0].span(hs[0]); ok {
		t.Error("phase a has a length without the tool's stamps")
	}
	if hs[0].byRelease() {
		t.Error("woken by the release, without revisions")
	}
}

func TestHandoffsOfRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, stamps string
		n            int
		errContains  string
	}{
		{"held twice", "command-start 7 100\ncommand-exit 7 300\ncommand-start 8 250\ncommand-exit 8 400\n", 2, "held twice"},
		{"a command missing", "command-start 7 100\ncommand-exit 7 300\n", 2, "1 commands ran, want 2"},
		{"no exit", "command-start 7 100\nforked 7 90\n", 1, "no start or no exit"},
		{"two starts", "command-start 7 100\ncommand-start 7 200\ncommand-exit 7 300\n", 1, "two commands"},
		{"a bad line", "command-start 7\n", 1, "stamp line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := parseSteps([]byte(tc.stamps))
			if err == nil {
				_, err = handoffsOf(steps, tc.n)
			}
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Errorf("error %v, want one that says %q", err, tc.errContains)
			}
		})
	}
}

func TestSpread(t *testing.T) {
	s := spreadOf([]float64{5, 1, 4, 2, 3})
	if s != (spread{n: 5, med: 3, q1: 2, q3: 4, min: 1, max: 5}) {
		t.Errorf("spread %+v", s)
	}
	if got := s.String(); got != "3.00 [2.00-4.00] (1.00-5.00)" {
		t.Errorf("String %q", got)
	}
	if got := spreadOf(nil).String(); got != "-" {
		t.Errorf("String of nothing %q", got)
	}
}

// TestFastest: the fastest handoff takes, phase by phase, the least of the
// three tools' medians, whichever tool it is, and without e leaves e out.
func TestFastest(t *testing.T) {
	// One handoff each, in ns: a, b, e, f1, f2 and d (from the release sent).
	one := func(a, b, d, e, f1, f2 int64) handoff {
		h := handoff{exit: 1_000_000, released: 7, wokenBy: 7}
		h.exitSeen = h.exit + a
		h.sent = h.exitSeen + b
		h.woken = h.sent + d
		h.answered = h.woken
		h.turn = h.woken + e
		h.forked = h.turn + f1
		h.started = h.forked + f2
		return h
	}
	ps := newPhaseBursts(nil, 2)
	ps.handoffs["distlock"] = []handoff{one(1e6, 0.4e6, 2e6, 1e6, 2e6, 6e6)}
	ps.handoffs["ctlmirror"] = []handoff{one(2e6, 0, 1e6, 2e6, 1e6, 5e6)}
	ps.handoffs["floor"] = []handoff{one(3e6, 0.1e6, 3e6, 0.5e6, 3e6, 7e6)}
	whole, noRead := ps.fastest()
	// a 1 (distlock), b 0 (ctlmirror), d 1 (ctlmirror), e 0.5 (floor),
	// f1 1 (ctlmirror), f2 5 (ctlmirror).
	if whole != 8.5 || noRead != 8 {
		t.Errorf("fastest = %v, %v; want 8.5, 8", whole, noRead)
	}
	delete(ps.handoffs, "distlock")
	ps.handoffs["ctlmirror"] = nil
	ps.handoffs["floor"] = nil
	if whole, noRead := ps.fastest(); whole != 0 || noRead != 0 {
		t.Errorf("fastest with no handoffs = %v, %v; want 0, 0", whole, noRead)
	}
}
