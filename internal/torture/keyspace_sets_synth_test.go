package torture

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ksSetRec is a made-up record of the realm /k/, whose locks "a", "a-b" and
// "a/b" are all plain (canonical order: "a/b", "a-b", "a"); times in
// milliseconds. Its id says what it is: "h..." a distlock exec run, on
// one lock or a set; "o..." a --lock hold; "r..." etcd's recipe's hold.
type ksSetRec struct {
	id          string
	names       []string // its lock, or its set's locks in the order given
	shared      bool
	enter, last int64   // its section; for a run that gave up, its start and end
	tokens      []int64 // by names
	queued      int64   // when a distlock run started, if not 50ms before enter
	gaveUp      bool    // a distlock run that exited 75, --timeout last-enter
	told        string  // a set's lock field, if not what distlock should say
	requeued    bool    // its keys are newer than any --unlock that removed it
	stderr      string
}

// ksSetUnlock is a made-up plain --unlock of the lock name that removed id.
type ksSetUnlock struct {
	name, id   string
	start, end int64
}

// ksSetKeyspace is the run as the checker sees it.
func ksSetKeyspace(t *testing.T, recs []ksSetRec, unlocks []ksSetUnlock) *keyspace {
	const ms = 1_000_000
	ks := &keyspace{t: t, logPath: filepath.Join(t.TempDir(), "sections.log"), shapeBad: map[string]string{}}
	byName := map[string]*ksLock{}
	for _, name := range []string{"a", "a-b", "a/b"} {
		byName[name] = &ksLock{realm: "/k/", name: name, limit: 1}
		ks.locks = append(ks.locks, byName[name])
	}
	var log strings.Builder
	reasons := map[string]string{}
	for i, rec := range recs {
		var given []*ksLock
		tokenOf := map[*ksLock]int64{}
		for j, name := range rec.names {
			given = append(given, byName[name])
			if j < len(rec.tokens) {
				tokenOf[byName[name]] = rec.tokens[j]
			}
		}
		l, lease := given[0], 0x1000+i
		key := fmt.Sprintf("%s%x", l.prefix(), lease)
		reasons[rec.id] = fmt.Sprintf(`host h, pid 1, reason "keyspace %s"`, rec.id)
		switch rec.id[0] {
		case 'o':
			ks.runs = append(ks.runs, &ksRun{id: rec.id, lk: l, lockMode: true, shared: rec.shared, start: (rec.enter - 50) * ms,
				end: rec.enter * ms, key: key, keyRev: tokenOf[l], unlockFrom: rec.last * ms, unlockTo: (rec.last + 10) * ms})
			continue
		case 'r':
			ks.recipes = append(ks.recipes, &recipeHold{id: rec.id, lk: l, key: key, rev: tokenOf[l], acquired: true,
				start: (rec.enter - 50) * ms, end: (rec.last + 10) * ms})
			reasons[rec.id] = "key " + key + " (no details: not written by distlock)"
			fmt.Fprintf(&log, "%d %s %s enter %d\n%d %s %s exit %d\n", rec.enter*ms, rec.id, l.label(), tokenOf[l], rec.last*ms, rec.id, l.label(), tokenOf[l])
			continue
		}
		ks.runs = append(ks.runs, ksSetExecRun(rec, given, tokenOf, lease, &log))
	}
	for _, u := range unlocks {
		before := map[int64]bool{}
		for _, rec := range recs {
			if i := slices.Index(rec.names, u.name); rec.id == u.id && i >= 0 && i < len(rec.tokens) && !rec.requeued {
				before[rec.tokens[i]] = true
			}
		}
		ks.unlocks = append(ks.unlocks, &ksUnlock{lk: byName[u.name], start: u.start * ms, end: u.end * ms, before: before,
			stderr: fmt.Sprintf("distlock: released lock %q, held by %s\n", u.name, reasons[u.id])})
	}
	if err := os.WriteFile(ks.logPath, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return ks
}

// ksSetExecRun is the distlock exec run of rec, on the locks given with
// their tokens, and its records in log (none if it gave up). A set's keys
// are named after lease.
func ksSetExecRun(rec ksSetRec, given []*ksLock, tokenOf map[*ksLock]int64, lease int, log *strings.Builder) *ksRun {
	const ms = 1_000_000
	r := &ksRun{id: rec.id, lk: given[0], shared: rec.shared, timeout: ksWait, start: (rec.enter - 50) * ms, end: (rec.last + 10) * ms}
	r.stderr.WriteString(rec.stderr)
	if len(given) > 1 {
		r.set = ksSetOrder(given)
		r.lk = r.set[0]
	}
	if rec.queued != 0 {
		r.start = rec.queued * ms
	}
	if rec.gaveUp {
		r.start, r.end, r.status, r.timeout = rec.enter*ms, rec.last*ms, 75, time.Duration(rec.last-rec.enter)*time.Millisecond
		return r
	}
	field, token := r.lk.label(), tokenOf[r.lk]
	if len(r.set) > 0 {
		var tokens, keys []string
		for _, m := range r.set {
			tokens = append(tokens, fmt.Sprint(tokenOf[m]))
			keys = append(keys, fmt.Sprintf("%s%x", m.prefix(), lease))
		}
		field = ksSetLabel(r.set) + "=" + strings.Join(tokens, ",") + "=" + strings.Join(keys, ",")
		if rec.told != "" {
			field = rec.told
		}
	}
	fmt.Fprintf(log, "%d %s %s enter %d\n%d %s %s exit %d\n", rec.enter*ms, rec.id, field, token, rec.last*ms, rec.id, field, token)
	return r
}

// ksSetKinds are the kinds of problems the set cases count.
var ksSetKinds = []string{"overlap", "token", "blocked", "named", "set"}

// ksSetWants are the problems a set case expects, by kind; none by default.
type ksSetWants map[string]int

// ksAB is a set of two, given in the order that is not the canonical one
// ("a/b", then "a").
var ksAB = []string{"a", "a/b"}

// ksSetCases are the made-up runs of TestKeySpaceCheckSets.
var ksSetCases = []struct {
	name    string
	recs    []ksSetRec
	unlocks []ksSetUnlock
	want    ksSetWants
}{
	{name: "set beside etcd's recipe on its first lock",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 100, tokens: []int64{10, 11}},
			{id: "r0", names: []string{"a/b"}, enter: 50, last: 150, tokens: []int64{12}}},
		want: ksSetWants{"overlap": 1}},
	{name: "set beside etcd's recipe on its second lock",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 100, tokens: []int64{10, 11}},
			{id: "r0", names: []string{"a"}, enter: 50, last: 150, tokens: []int64{12}}},
		want: ksSetWants{"overlap": 1}},
	{name: "set beside a run of a lock not in it",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 100, tokens: []int64{10, 11}},
			{id: "h1", names: []string{"a-b"}, enter: 50, last: 150, tokens: []int64{12}},
			{id: "r0", names: []string{"a-b"}, enter: 200, last: 250, tokens: []int64{13}}}},
	{name: "set beside a shared run on one of its locks",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 100, tokens: []int64{10, 11}},
			{id: "h1", names: []string{"a"}, shared: true, enter: 50, last: 150, tokens: []int64{12}}},
		want: ksSetWants{"overlap": 1}},
	{name: "set of three beside a --lock hold",
		recs: []ksSetRec{{id: "o0", names: []string{"a-b"}, enter: 0, last: 200, tokens: []int64{10}},
			{id: "h0", names: []string{"a", "a-b", "a/b"}, enter: 50, last: 100, tokens: []int64{11, 12, 13}}},
		want: ksSetWants{"overlap": 1}},
	{name: "two sets that share a lock, at once",
		recs: []ksSetRec{{id: "h0", names: []string{"a", "a-b"}, enter: 0, last: 100, tokens: []int64{10, 11}},
			{id: "h1", names: []string{"a-b", "a/b"}, enter: 50, last: 150, tokens: []int64{12, 13}}},
		want: ksSetWants{"overlap": 1}},
	{name: "sets of three one after another",
		recs: []ksSetRec{{id: "h0", names: []string{"a", "a-b", "a/b"}, enter: 0, last: 100, tokens: []int64{10, 11, 12}},
			{id: "h1", names: []string{"a/b", "a", "a-b"}, enter: 110, last: 200, tokens: []int64{15, 13, 14}}}},
	{name: "--unlock of one lock cuts the set under it",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 500, tokens: []int64{10, 11}},
			{id: "r0", names: []string{"a"}, enter: 200, last: 300, tokens: []int64{12}}},
		unlocks: []ksSetUnlock{{"a", "h0", 100, 120}}},
	{name: "--unlock of one lock does not cut the set under the other",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 500, tokens: []int64{10, 11}},
			{id: "r0", names: []string{"a/b"}, enter: 200, last: 300, tokens: []int64{12}}},
		unlocks: []ksSetUnlock{{"a", "h0", 100, 120}},
		want:    ksSetWants{"overlap": 1}},
	{name: "set entered after the --unlock began counts whole beside distlock",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 105, last: 500, tokens: []int64{10, 11}},
			{id: "h1", names: []string{"a"}, enter: 200, last: 300, tokens: []int64{12}}},
		unlocks: []ksSetUnlock{{"a", "h0", 100, 120}},
		want:    ksSetWants{"overlap": 1}},
	{name: "set entered after the --unlock began, beside etcd's recipe that it let in",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 105, last: 500, tokens: []int64{10, 11}},
			{id: "r0", names: []string{"a"}, enter: 200, last: 300, tokens: []int64{12}}},
		unlocks: []ksSetUnlock{{"a", "h0", 100, 120}}},
	{name: "run entered after the --unlock ended, beside etcd's recipe that it let in",
		recs: []ksSetRec{{id: "h0", names: []string{"a-b"}, enter: 322, last: 344, tokens: []int64{838}},
			{id: "r0", names: []string{"a-b"}, enter: 304, last: 550, tokens: []int64{840}}},
		unlocks: []ksSetUnlock{{"a-b", "h0", 111, 274}}},
	{name: "run entered after the --unlock began, beside etcd's recipe and distlock",
		recs: []ksSetRec{{id: "h0", names: []string{"a-b"}, enter: 322, last: 344, tokens: []int64{838}},
			{id: "r0", names: []string{"a-b"}, enter: 304, last: 550, tokens: []int64{840}},
			{id: "h1", names: []string{"a-b"}, enter: 330, last: 340, tokens: []int64{841}}},
		unlocks: []ksSetUnlock{{"a-b", "h0", 111, 274}},
		want:    ksSetWants{"overlap": 1}},
	{name: "run entered after the --unlock began, and lived on past the TTL",
		recs: []ksSetRec{{id: "h0", names: []string{"a-b"}, enter: 322, last: 9000, tokens: []int64{838}},
			{id: "r0", names: []string{"a-b"}, enter: 304, last: 550, tokens: []int64{840}}},
		unlocks: []ksSetUnlock{{"a-b", "h0", 111, 274}},
		want:    ksSetWants{"overlap": 1}},
	{name: "set knocked back by an --unlock while it gathered, queued again and ran long",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 2000, last: 9000, tokens: []int64{20, 21}, requeued: true},
			{id: "r0", names: []string{"a"}, enter: 9100, last: 9200, tokens: []int64{22}}},
		unlocks: []ksSetUnlock{{"a", "h0", 100, 120}}},
	{name: "token of a set's lock below an earlier holder's",
		recs: []ksSetRec{{id: "h1", names: []string{"a"}, enter: 0, last: 50, tokens: []int64{20}},
			{id: "h0", names: ksAB, enter: 60, last: 100, tokens: []int64{15, 16}}},
		want: ksSetWants{"token": 1}},
	{name: "keys told in the order given, not the canonical one",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 100, tokens: []int64{11, 10},
			told: "[]a%2Fb&[]a=10,11=/k/a/1000,/k/a%2Fb/1000"}},
		want: ksSetWants{"set": 1}},
	{name: "keys told on two leases",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 100, tokens: []int64{11, 10},
			told: "[]a%2Fb&[]a=10,11=/k/a%2Fb/1000,/k/a/1001"}},
		want: ksSetWants{"set": 1}},
	{name: "DISTLOCK_FENCING_TOKEN not the first of the tokens",
		recs: []ksSetRec{{id: "h0", names: ksAB, enter: 0, last: 100, tokens: []int64{11, 10},
			told: "[]a%2Fb&[]a=11,10=/k/a%2Fb/1000,/k/a/1000"}},
		want: ksSetWants{"set": 1}},
	{name: "run behind a set that an --unlock knocked back",
		recs: []ksSetRec{{id: "h1", names: []string{"a/b"}, enter: 0, last: 3000, tokens: []int64{5}},
			{id: "h2", names: []string{"a"}, queued: 100, enter: 2520, last: 2600, tokens: []int64{12}},
			{id: "h0", names: ksAB, queued: 1, enter: 3050, last: 3200, tokens: []int64{20, 21}}},
		unlocks: []ksSetUnlock{{"a", "h0", 2500, 2520}}},
	{name: "set kept waiting with nothing ahead",
		recs: []ksSetRec{{id: "h0", names: ksAB, queued: 1, enter: 4000, last: 4100, tokens: []int64{10, 11}}},
		want: ksSetWants{"blocked": 1}},
	{name: "set waiting behind a holder of its second lock",
		recs: []ksSetRec{{id: "h1", names: []string{"a"}, enter: 0, last: 3000, tokens: []int64{5}},
			{id: "h0", names: ksAB, queued: 100, enter: 3050, last: 3100, tokens: []int64{6, 7}}}},
	{name: "set gave up behind a holder of its second lock",
		recs: []ksSetRec{{id: "h1", names: []string{"a"}, enter: 0, last: 3000, tokens: []int64{5}},
			{id: "h0", names: ksAB, enter: 100, last: 2100, gaveUp: true,
				stderr: `distlock: lock "a" is held by host h, pid 1, reason "keyspace h1"; waiting`}}},
	{name: "set gave up with nothing of its locks in the way",
		recs: []ksSetRec{{id: "h1", names: []string{"a-b"}, enter: 0, last: 3000, tokens: []int64{5}},
			{id: "h0", names: ksAB, enter: 100, last: 2100, gaveUp: true,
				stderr: `distlock: lock "a" is held by host h, pid 1, reason "keyspace h1"; waiting`}},
		want: ksSetWants{"blocked": 1, "named": 1}},
	{name: "set told of a lock not in it",
		recs: []ksSetRec{{id: "h1", names: []string{"a-b"}, enter: 0, last: 3000, tokens: []int64{5}},
			{id: "h0", names: ksAB, enter: 100, last: 2100, gaveUp: true,
				stderr: `distlock: lock "a-b" is held by host h, pid 1, reason "keyspace h1"; waiting`}},
		want: ksSetWants{"blocked": 1, "named": 1}},
}

// TestKeySpaceCheckSets runs the key-space checker on made-up sets of
// locks: a set's section lives beside no section of any of its locks
// (distlock's, shared or exclusive, a --lock hold, etcd's recipe), and
// beside those of other locks freely; a plain --unlock of one of its
// locks cuts it under that lock only; tokens grow per lock; what the
// command was told is in the canonical order and on one lease; a set's
// wait and a wait behind a set are bounded as any other's.
func TestKeySpaceCheckSets(t *testing.T) {
	for _, tc := range ksSetCases {
		t.Run(tc.name, func(t *testing.T) {
			rep := ksSetKeyspace(t, tc.recs, tc.unlocks).check()
			got := map[string][]string{}
			for _, p := range rep.problems {
				got[p.kind] = append(got[p.kind], p.text)
			}
			for _, kind := range ksSetKinds {
				if len(got[kind]) != tc.want[kind] {
					t.Errorf("%d problems of kind %s, want %d:\n%s", len(got[kind]), kind, tc.want[kind], strings.Join(got[kind], "\n"))
				}
			}
			if rep.overlaps != tc.want["overlap"] {
				t.Errorf("%d overlaps counted, want %d", rep.overlaps, tc.want["overlap"])
			}
		})
	}
}
