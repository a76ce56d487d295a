package torture

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// synthSec is a made-up section of the lock "a" of the realm /k/, times
// in milliseconds: a distlock run's (id "h..."), a --lock hold's ("o..."),
// or etcd's recipe's ("r...").
type synthSec struct {
	id          string
	shared      bool
	enter, last int64
	token       int64
}

// synthUnlock is a made-up plain --unlock of that lock that removed id.
type synthUnlock struct {
	id         string
	start, end int64
}

// synthRun is what a made-up key-space run is made of: sections, plain
// --unlocks, distlock runs that gave up (75; enter and last are their
// start and end, and their --timeout the time between), and when runs
// that held started (by default 50ms before they entered).
type synthRun struct {
	secs    []synthSec
	unlocks []synthUnlock
	gaveUp  []synthSec
	queued  map[string]int64
}

// keyspace is the run as the checker sees it: the workers' and the
// recipe's records in the log, the runs and holds they belong to, the
// --unlock calls and what they said.
func (sr synthRun) keyspace(t *testing.T) *keyspace {
	const ms = 1_000_000
	l := &ksLock{realm: "/k/", name: "a", limit: 1}
	ks := &keyspace{t: t, locks: []*ksLock{l}, logPath: filepath.Join(t.TempDir(), "sections.log"), shapeBad: map[string]string{}}
	var log strings.Builder
	reasons := map[string]string{}
	for _, s := range sr.secs {
		from, ok := sr.queued[s.id]
		if !ok {
			from = s.enter - 50
		}
		key := fmt.Sprintf("%s%x", l.prefix(), s.token)
		switch s.id[0] {
		case 'o':
			ks.runs = append(ks.runs, &ksRun{id: s.id, lk: l, lockMode: true, shared: s.shared, start: from * ms,
				end: s.enter * ms, key: key, keyRev: s.token, unlockFrom: s.last * ms, unlockTo: (s.last + 10) * ms})
		case 'r':
			ks.recipes = append(ks.recipes, &recipeHold{id: s.id, lk: l, key: key, rev: s.token, acquired: true,
				start: (s.enter - 50) * ms, end: (s.last + 10) * ms})
			reasons[s.id] = "key " + key + " (no details: not written by distlock)"
		default:
			ks.runs = append(ks.runs, &ksRun{id: s.id, lk: l, shared: s.shared, millis: int(s.last - s.enter),
				timeout: ksWait, start: from * ms, end: (s.last + 10) * ms})
		}
		if reasons[s.id] == "" {
			reasons[s.id] = fmt.Sprintf(`host h, pid 1, reason "keyspace %s"`, s.id)
		}
		if s.id[0] != 'o' {
			fmt.Fprintf(&log, "%d %s %s enter %d\n%d %s %s exit %d\n", s.enter*ms, s.id, l.label(), s.token, s.last*ms, s.id, l.label(), s.token)
		}
	}
	for _, g := range sr.gaveUp {
		ks.runs = append(ks.runs, &ksRun{id: g.id, lk: l, shared: g.shared, timeout: time.Duration(g.last-g.enter) * time.Millisecond,
			start: g.enter * ms, end: g.last * ms, status: 75})
	}
	for _, u := range sr.unlocks {
		ks.unlocks = append(ks.unlocks, &ksUnlock{lk: l, start: u.start * ms, end: u.end * ms,
			stderr: fmt.Sprintf("distlock: released lock %q, held by %s\n", l.name, reasons[u.id])})
	}
	if err := os.WriteFile(ks.logPath, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestKeySpaceCheckShared runs the key-space checker on made-up sections
// of one plain lock: an exclusive section (distlock's without --shared,
// --lock's, etcd's recipe's) lives beside nothing, a shared one only
// beside shared ones, and a holder removed by a plain --unlock counts as
// it did before --shared; a shared run waits only for exclusive holders.
func TestKeySpaceCheckShared(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secs    []synthSec
		unlocks []synthUnlock
		gaveUp  []synthSec
		queued  map[string]int64

		overlaps, token, blocked int
	}{
		{name: "exclusive beside shared",
			secs:     []synthSec{{"h0", true, 0, 100, 10}, {"h1", false, 50, 150, 11}},
			overlaps: 1},
		{name: "shared beside exclusive",
			secs:     []synthSec{{"h0", false, 0, 100, 10}, {"h1", true, 50, 150, 11}},
			overlaps: 1},
		{name: "shared beside shared",
			secs: []synthSec{{"h0", true, 0, 100, 10}, {"h1", true, 50, 150, 11}, {"h2", true, 60, 70, 12}}},
		{name: "shared beside etcd's recipe",
			secs:     []synthSec{{"h0", true, 0, 100, 10}, {"r0", false, 50, 150, 11}},
			overlaps: 1},
		{name: "shared --lock beside shared runs",
			secs: []synthSec{{"o0", true, 0, 200, 10}, {"h0", true, 50, 100, 11}, {"h1", true, 20, 300, 12}}},
		{name: "exclusive --lock beside a shared run",
			secs:     []synthSec{{"o0", false, 0, 200, 10}, {"h0", true, 50, 100, 11}},
			overlaps: 1},
		{name: "exclusive after shared ones",
			secs: []synthSec{{"h0", true, 0, 100, 10}, {"h1", true, 10, 120, 11}, {"h2", false, 130, 200, 12}}},
		{name: "shared holder cut by --unlock, exclusive next",
			secs:    []synthSec{{"h0", true, 0, 500, 10}, {"h1", false, 200, 300, 11}},
			unlocks: []synthUnlock{{"h0", 100, 120}}},
		{name: "shared run entered after --unlock began counts whole",
			secs:     []synthSec{{"h0", true, 105, 500, 10}, {"h1", false, 200, 300, 11}},
			unlocks:  []synthUnlock{{"h0", 100, 120}},
			overlaps: 1},
		{name: "etcd's recipe entered as --unlock ran, shared next",
			secs:    []synthSec{{"r0", false, 105, 400, 10}, {"h1", true, 130, 200, 11}},
			unlocks: []synthUnlock{{"r0", 100, 120}}},
		{name: "etcd's recipe beside a shared holder that --unlock cut",
			secs:    []synthSec{{"h0", true, 0, 400, 10}, {"r0", false, 150, 300, 11}},
			unlocks: []synthUnlock{{"h0", 100, 120}}},
		{name: "shared tokens need not grow",
			secs: []synthSec{{"h0", true, 0, 50, 12}, {"h1", true, 60, 100, 10}}},
		{name: "exclusive token below a shared one's",
			secs:  []synthSec{{"h0", true, 0, 50, 12}, {"h1", false, 60, 100, 10}},
			token: 1},
		{name: "shared token below an exclusive one's",
			secs:  []synthSec{{"h0", false, 0, 50, 12}, {"h1", true, 60, 100, 10}},
			token: 1},
		{name: "shared run kept waiting behind shared holders",
			secs:    []synthSec{{"h0", true, 0, 3000, 10}, {"h1", true, 2900, 3000, 11}},
			queued:  map[string]int64{"h1": 100},
			blocked: 1},
		{name: "shared run waiting behind an exclusive holder",
			secs:   []synthSec{{"h0", false, 0, 3000, 10}, {"h1", true, 3050, 3100, 11}},
			queued: map[string]int64{"h1": 100}},
		{name: "shared run gave up behind shared holders",
			secs:    []synthSec{{"h0", true, 0, 3000, 10}},
			gaveUp:  []synthSec{{"h1", true, 100, 2100, 0}},
			blocked: 1},
		{name: "shared run gave up behind an exclusive holder",
			secs:   []synthSec{{"h0", false, 0, 3000, 10}},
			gaveUp: []synthSec{{"h1", true, 100, 2100, 0}}},
		{name: "exclusive run gave up behind a shared holder",
			secs:   []synthSec{{"h0", true, 0, 3000, 10}},
			gaveUp: []synthSec{{"h1", false, 100, 2100, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := synthRun{tc.secs, tc.unlocks, tc.gaveUp, tc.queued}.keyspace(t).check()
			got := map[string][]string{}
			for _, p := range rep.problems {
				got[p.kind] = append(got[p.kind], p.text)
			}
			if len(got["overlap"]) != tc.overlaps || rep.overlaps != tc.overlaps || len(got["token"]) != tc.token || len(got["blocked"]) != tc.blocked {
				t.Errorf("overlaps %d (counted %d), token problems %d, waits %d; want %d, %d and %d\n%s",
					len(got["overlap"]), rep.overlaps, len(got["token"]), len(got["blocked"]), tc.overlaps, tc.token, tc.blocked,
					strings.Join(append(append(got["overlap"], got["token"]...), got["blocked"]...), "\n"))
			}
		})
	}
}

// TestKeySpaceCheckSharedTogether: a round in which enough shared
// sections ran, but never two at once, is reported; one in which two met
// is not.
func TestKeySpaceCheckSharedTogether(t *testing.T) {
	for _, met := range []bool{false, true} {
		var secs []synthSec
		for i := range int64(ksSharedLeast) {
			secs = append(secs, synthSec{fmt.Sprintf("h%d", i), true, i * 100, i*100 + 50, 10 + i})
		}
		if met {
			secs[1].enter = 40
		}
		var got []string
		for _, p := range (synthRun{secs: secs}).keyspace(t).check().problems {
			if p.kind == "shared" {
				got = append(got, p.text)
			}
		}
		if want := map[bool]int{false: 1, true: 0}[met]; len(got) != want {
			t.Errorf("shared sections that met: %v; %d problems of kind shared, want %d: %q", met, len(got), want, got)
		}
	}
}
