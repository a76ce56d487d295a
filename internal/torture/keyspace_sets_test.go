package torture

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Sets of locks in the key-space torture test: now and then a host's
// exec run gives --lock-name two or three times, for plain locks of one
// realm (never the semaphore: a set goes with neither --limit nor
// --shared, --min-interval or --min-hold), in a random order. distlock
// takes them in the canonical order, by the locks' key prefixes byte by
// byte, on one lease, before the command starts. The worker cannot say
// more than DISTLOCK_FENCING_TOKEN, so a shell in front of it
// (ksSetShim) puts the set's label, every token and every key distlock
// gave the command into the lock field of its records; the checker
// (keyspace_sets_check_test.go) counts the section under each lock of
// the set.

// ksSetPercent of the hosts' exec runs take a set.
const ksSetPercent = 15

// ksSetShim runs the worker for a set: sh -c ksSetShim WORKER LOG RUN
// LABEL MILLISECONDS TERM. The worker's lock field becomes
// LABEL=T1,T2=K1,K2: the set's label, DISTLOCK_FENCING_TOKENS and
// DISTLOCK_HELD_KEYS, each joined by commas (neither tokens nor keys of
// the test's realms hold a comma or a blank). The shell execs the worker,
// so that distlock's signals reach it.
const ksSetShim = `w=$0 log=$1 id=$2 label=$3 ms=$4 term=$5
set -f
IFS=' '
set -- $DISTLOCK_FENCING_TOKENS
IFS=,
tokens="$*"
IFS='
'
set -- $DISTLOCK_HELD_KEYS
IFS=,
exec "$w" "$log" "$id" "$label=$tokens=$*" "$ms" "$term"`

// ksSetOrder is the canonical order of a set of locks of one realm: by
// their key prefixes, byte by byte. Written here again, so that the test
// does not take the code under test at its word.
func ksSetOrder(locks []*ksLock) []*ksLock {
	sorted := slices.Clone(locks)
	slices.SortFunc(sorted, func(a, b *ksLock) int { return strings.Compare(a.prefix(), b.prefix()) })
	return sorted
}

// ksSetLabel names a set in the summary and the problems: its locks'
// labels in the canonical order, joined by "&" (not "+", which the
// fault test's records use for sets of their own: readSections would
// split these).
func ksSetLabel(set []*ksLock) string {
	var labels []string
	for _, l := range set {
		labels = append(labels, l.label())
	}
	return strings.Join(labels, "&")
}

// label is the lock of run r, or its set, for a problem's text.
func (r *ksRun) label() string {
	if len(r.set) > 0 {
		return ksSetLabel(r.set)
	}
	return r.lk.label()
}

// pickSet is two or three of the plain locks of a realm picked at
// random, in a random order: the order of the command line.
func (ks *keyspace) pickSet() []*ksLock {
	rel := ksRealms[ks.intn(len(ksRealms))]
	var plain []*ksLock
	for _, l := range ks.locks {
		if l.rel == rel && l.limit == 1 {
			plain = append(plain, l)
		}
	}
	ks.mu.Lock()
	ks.rnd.Shuffle(len(plain), func(i, j int) { plain[i], plain[j] = plain[j], plain[i] })
	ks.mu.Unlock()
	return plain[:min(len(plain), 2+ks.intn(2))]
}

// runSet runs r (its wait, its time under the locks, how it takes SIGTERM
// already drawn) on a set of locks.
func (ks *keyspace) runSet(r *ksRun) {
	given := ks.pickSet()
	r.set = ksSetOrder(given)
	r.lk = r.set[0]
	args := []string{"--prefix=" + r.lk.realm, "--endpoints=" + ks.endpoints, "--dial-timeout=2s", "--history-span=5s"}
	for _, l := range given {
		args = append(args, "--lock-name="+l.name)
	}
	args = append(args, ks.runArgs(r)...)
	args = append(args, "--", "/bin/sh", "-c", ksSetShim,
		ks.worker, ks.logPath, r.id, ksSetLabel(r.set), strconv.Itoa(r.millis), r.term())
	ks.start(r, args)
}

// ksSetTold is what a set's command was told, read from its records' lock
// field (ksSetShim): the label, the tokens and the keys.
type ksSetTold struct {
	label  string
	tokens []int64
	keys   []string
}

// parseKsSetTold reads a set's lock field; it says what is wrong with it,
// if anything, for run r.
func parseKsSetTold(r *ksRun, field string) (ksSetTold, error) {
	parts := strings.Split(field, "=")
	if len(parts) != 3 {
		return ksSetTold{}, fmt.Errorf("the lock field %q of its records is not LABEL=TOKENS=KEYS", field)
	}
	told := ksSetTold{label: parts[0], keys: strings.Split(parts[2], ",")}
	for _, t := range strings.Split(parts[1], ",") {
		v, err := strconv.ParseInt(t, 10, 64)
		if err != nil || v <= 0 {
			return told, fmt.Errorf("DISTLOCK_FENCING_TOKENS %q: %q is no fencing token", parts[1], t)
		}
		told.tokens = append(told.tokens, v)
	}
	switch {
	case told.label != ksSetLabel(r.set):
		return told, fmt.Errorf("its records name %q, not its set", told.label)
	case len(told.tokens) != len(r.set):
		return told, fmt.Errorf("DISTLOCK_FENCING_TOKENS has %d tokens, for %d locks", len(told.tokens), len(r.set))
	case len(told.keys) != len(r.set):
		return told, fmt.Errorf("DISTLOCK_HELD_KEYS has %d keys, for %d locks: %q", len(told.keys), len(r.set), told.keys)
	}
	var lease string
	for i, l := range r.set {
		hex, ok := strings.CutPrefix(told.keys[i], l.prefix())
		switch {
		case !ok || !isLeaseHex(hex):
			return told, fmt.Errorf("DISTLOCK_HELD_KEYS %q: key %d is not one of lock %s, the %s in the canonical order",
				told.keys, i+1, l.label(), ksOrdinal(i))
		case i > 0 && hex != lease:
			return told, fmt.Errorf("DISTLOCK_HELD_KEYS %q: the keys are named after more than one lease", told.keys)
		}
		lease = hex
	}
	return told, nil
}

// ksOrdinal is "first", "second" or "third".
func ksOrdinal(i int) string {
	if i < 3 {
		return []string{"first", "second", "third"}[i]
	}
	return fmt.Sprintf("%dth", i+1)
}
