package main

import (
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tinx/distlock/internal/held"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
)

// commandEnv is distlock's environment plus what the command may want to
// know about its lock, replacing values an outer distlock set. The etcd
// password is not passed on: see settings.WithoutSecrets. more are
// further variables for it (the socket of --held).
func commandEnv(h *lock.Holder, more ...string) []string {
	var env, keys, tokens []string
	for _, kv := range settings.WithoutSecrets(os.Environ()) {
		if name, _, _ := strings.Cut(kv, "="); !slices.Contains(heldVars, name) {
			env = append(env, kv)
		}
	}
	for _, m := range h.Set() {
		keys, tokens = append(keys, m.Key), append(tokens, strconv.FormatInt(m.FencingToken, 10))
	}
	env = append(env,
		"DISTLOCK_HELD_KEY="+h.Key,
		"DISTLOCK_FENCING_TOKEN="+strconv.FormatInt(h.FencingToken, 10),
		"DISTLOCK_HELD_KEYS="+strings.Join(keys, "\n"),
		"DISTLOCK_FENCING_TOKENS="+strings.Join(tokens, " "))
	return append(env, more...)
}

// heldVars are the variables that tell the command of its locks: the
// first lock's key and token, and every lock's, in the set's order (keys
// a line each, tokens separated by spaces); and where --held asks.
var heldVars = []string{"DISTLOCK_HELD_KEY", "DISTLOCK_FENCING_TOKEN", "DISTLOCK_HELD_KEYS", "DISTLOCK_FENCING_TOKENS", held.Var}
