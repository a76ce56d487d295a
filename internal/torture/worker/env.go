package main

import (
	"fmt"
	"strconv"
	"strings"
)

// tokens reads the fencing tokens that distlock gave the command of
// lockName (a name, or a set's names joined by "+") and returns them as
// the worker records them: joined by ",", in the set's order. It holds
// distlock to what the reference promises: DISTLOCK_FENCING_TOKENS and
// DISTLOCK_HELD_KEYS have a token and a key for each lock, the first of
// them are DISTLOCK_FENCING_TOKEN and DISTLOCK_HELD_KEY, the keys are
// named after one lease (a set has one) and come in the canonical order
// (by their prefixes, byte by byte). LOCK "-" is a lock of another tool
// (etcdctl lock, beside distlock in the benchmarks): it gives the command
// no token, and nothing is checked.
func tokens(lockName string, getenv func(string) string) (string, error) {
	if lockName == "-" {
		return "", nil
	}
	if strings.Contains(lockName, "=") {
		// A set that its caller records in a way of its own (the
		// key-space test: LABEL=TOKENS=KEYS, checked there).
		return getenv("DISTLOCK_FENCING_TOKEN"), nil
	}
	names := strings.Split(lockName, "+")
	toks := strings.Fields(getenv("DISTLOCK_FENCING_TOKENS"))
	keys := strings.Split(getenv("DISTLOCK_HELD_KEYS"), "\n")
	if len(toks) != len(names) || len(keys) != len(names) {
		return "", fmt.Errorf("%q names %d lock(s), but DISTLOCK_FENCING_TOKENS=%q and DISTLOCK_HELD_KEYS=%q",
			lockName, len(names), getenv("DISTLOCK_FENCING_TOKENS"), getenv("DISTLOCK_HELD_KEYS"))
	}
	for _, tok := range toks {
		if n, err := strconv.ParseInt(tok, 10, 64); err != nil || n <= 0 {
			return "", fmt.Errorf("DISTLOCK_FENCING_TOKENS=%q: %q is no fencing token", getenv("DISTLOCK_FENCING_TOKENS"), tok)
		}
	}
	if first := getenv("DISTLOCK_FENCING_TOKEN"); first != toks[0] {
		return "", fmt.Errorf("DISTLOCK_FENCING_TOKEN=%q is not the first of DISTLOCK_FENCING_TOKENS=%q", first, getenv("DISTLOCK_FENCING_TOKENS"))
	}
	if first := getenv("DISTLOCK_HELD_KEY"); first != keys[0] {
		return "", fmt.Errorf("DISTLOCK_HELD_KEY=%q is not the first of DISTLOCK_HELD_KEYS=%q", first, getenv("DISTLOCK_HELD_KEYS"))
	}
	if err := oneLeaseInOrder(keys); err != nil {
		return "", fmt.Errorf("DISTLOCK_HELD_KEYS=%q: %w", getenv("DISTLOCK_HELD_KEYS"), err)
	}
	return strings.Join(toks, ","), nil
}

// oneLeaseInOrder checks that the keys end in one lease's ID and that
// their prefixes (all but that ID) grow byte by byte.
func oneLeaseInOrder(keys []string) error {
	cut := func(key string) (prefix, lease string) {
		i := strings.LastIndexByte(key, '/')
		return key[:i+1], key[i+1:]
	}
	prefix0, lease0 := cut(keys[0])
	if prefix0 == "" || lease0 == "" {
		return fmt.Errorf("%q is not PREFIX/LEASE", keys[0])
	}
	last := prefix0
	for _, key := range keys[1:] {
		prefix, lease := cut(key)
		if lease != lease0 {
			return fmt.Errorf("%q and %q are not named after one lease", keys[0], key)
		}
		if prefix <= last {
			return fmt.Errorf("%q does not come after %q in the canonical order", prefix, last)
		}
		last = prefix
	}
	return nil
}
