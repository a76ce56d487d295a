package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/lock"
)

// runStatus is --status: the holder and the waiters of one lock. A holder
// that --unlock removed and that is still stopping its command holds it
// until it has stopped, and is shown as holding it.
func runStatus(ctx context.Context, c *config, client *clientv3.Client, stdout io.Writer, out *reporter) error {
	rctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	entries, stopping, err := lock.Queue(rctx, client, c.prefix, c.lockName)
	if err != nil {
		out.about(evEtcdError).fail("%v", etcdError(c, err))
		return err
	}
	last, err := lock.ReadLastRun(rctx, client, c.prefix, c.lockName)
	if err != nil {
		out.about(evEtcdError).fail("%v", etcdError(c, err))
		return err
	}
	free := len(entries) == 0 && len(stopping) == 0
	if c.json {
		s := lockStatus(c.lockName, entries, stopping)
		s.LastRun = lastRunStatus(last)
		writeJSON(stdout, s)
	} else if free {
		fmt.Fprintf(stdout, "lock %q is free\n", c.lockName)
	} else if holders, waiters := split(entries, stopping); len(holders) == 1 && limit(entries, stopping) == 1 {
		fmt.Fprintf(stdout, "lock %q is held by %s\n", c.lockName, holders[0].Describe())
		for i, e := range waiters {
			fmt.Fprintf(stdout, "  waiter %d: %s\n", i+1, e.Describe())
		}
	} else {
		fmt.Fprintf(stdout, "lock %q (--limit %d) is held by %d:\n", c.lockName, limit(entries, stopping), len(holders))
		for i, e := range holders {
			fmt.Fprintf(stdout, "  holder %d: %s: %s\n", i+1, e.Key, e.Describe())
		}
		for i, e := range waiters {
			fmt.Fprintf(stdout, "  waiter %d: %s: %s\n", i+1, e.Key, e.Describe())
		}
	}
	if last != nil && !c.json {
		fmt.Fprintf(stdout, "last successful run: %s\n", last.Describe())
	}
	if free {
		return errFree
	}
	return nil
}

// runList is --list: every lock in the realm that has a holder.
func runList(ctx context.Context, c *config, client *clientv3.Client, stdout io.Writer, out *reporter) error {
	rctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	locks, err := lock.List(rctx, client, c.prefix)
	if err != nil {
		out.about(evEtcdError).fail("%v", etcdError(c, err))
		return err
	}
	if c.json {
		all := []statusJSON{}
		for _, l := range locks {
			all = append(all, lockStatus(l.Name, l.Entries, l.Stopping))
		}
		writeJSON(stdout, all)
		return nil
	}
	for _, l := range locks {
		holders, waiters := split(l.Entries, l.Stopping)
		held := holders[0].Describe()
		if len(holders) > 1 {
			held = fmt.Sprintf("%s, and %d more (--limit %d)", held, len(holders)-1, limit(l.Entries, l.Stopping))
		}
		fmt.Fprintf(stdout, "%s\t%s\t%d waiting\n", l.Name, held, len(waiters))
	}
	return nil
}

// split divides a lock's entries into its holders and its waiters. The
// holders being stopped after --unlock are among the holders, which are
// oldest first: by the create revision of their keys.
func split(entries, stopping []lock.Entry) (holders, waiters []lock.Entry) {
	holding, waiters := lock.Split(entries, stopping)
	holders = slices.Concat(stopping, holding)
	slices.SortStableFunc(holders, func(a, b lock.Entry) int { return cmp.Compare(a.CreateRevision, b.CreateRevision) })
	return holders, waiters
}

// limit is how many may hold the lock, by what its keys and records say.
func limit(entries, stopping []lock.Entry) int {
	return lock.Limit(append(entries[:len(entries):len(entries)], stopping...))
}

type statusJSON struct {
	Name  string `json:"name"`
	Held  bool   `json:"held"` // Holder != nil
	Limit int    `json:"limit"`
	// Holders are every holder, oldest first (by the create revision of
	// its key), as the text shows them: the holders being stopped after
	// --unlock among them, marked. Holder is the first of them.
	Holder  *entryJSON  `json:"holder"`
	Holders []entryJSON `json:"holders"`
	Waiters []entryJSON `json:"waiters"`
	// Stopping are holders that --unlock removed and that are still
	// stopping their commands: each keeps a slot taken until then. They
	// are among Holders too.
	Stopping []entryJSON `json:"stopping"`
	// LastRun is --status's alone, and only when there is a record.
	LastRun *lastRunJSON `json:"last_run,omitempty"`
}

type entryJSON struct {
	Key            string     `json:"key"` // of a holder being stopped: its stopping record
	CreateRevision int64      `json:"create_revision"`
	Info           *lock.Info `json:"info"`
	// Stopping marks a holder that --unlock removed and that is still
	// stopping its command.
	Stopping bool `json:"stopping"`
}

func toJSON(entries []lock.Entry) []entryJSON {
	js := []entryJSON{}
	for _, e := range entries {
		js = append(js, entryJSON{Key: e.Key, CreateRevision: e.CreateRevision, Info: e.Info, Stopping: e.Stopping})
	}
	return js
}

func lockStatus(name string, entries, stopping []lock.Entry) statusJSON {
	holders, waiters := split(entries, stopping)
	s := statusJSON{Name: name, Limit: limit(entries, stopping),
		Holders: toJSON(holders), Waiters: toJSON(waiters), Stopping: toJSON(stopping)}
	if len(s.Holders) > 0 {
		s.Holder = &s.Holders[0]
	}
	s.Held = s.Holder != nil
	return s
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
