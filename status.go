package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/lock"
)

// runStatus is --status: the holder and the waiters of one lock.
func runStatus(ctx context.Context, c *config, client *clientv3.Client, stdout io.Writer, out *reporter) error {
	rctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()
	entries, err := lock.Entries(rctx, client, c.prefix, c.lockName)
	if err != nil {
		out.fail("%v", etcdError(c, err))
		return err
	}
	if c.json {
		writeJSON(stdout, lockStatus(c.lockName, entries))
	} else if len(entries) == 0 {
		fmt.Fprintf(stdout, "lock %q is free\n", c.lockName)
	} else {
		fmt.Fprintf(stdout, "lock %q is held by %s\n", c.lockName, entries[0].Describe())
		for i, e := range entries[1:] {
			fmt.Fprintf(stdout, "  waiter %d: %s\n", i+1, e.Describe())
		}
	}
	if len(entries) == 0 {
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
		out.fail("%v", etcdError(c, err))
		return err
	}
	if c.json {
		all := []statusJSON{}
		for _, l := range locks {
			all = append(all, lockStatus(l.Name, l.Entries))
		}
		writeJSON(stdout, all)
		return nil
	}
	for _, l := range locks {
		fmt.Fprintf(stdout, "%s\t%s\t%d waiting\n", l.Name, l.Entries[0].Describe(), len(l.Entries)-1)
	}
	return nil
}

type statusJSON struct {
	Name    string      `json:"name"`
	Held    bool        `json:"held"`
	Holder  *entryJSON  `json:"holder"`
	Waiters []entryJSON `json:"waiters"`
}

type entryJSON struct {
	Key            string     `json:"key"`
	CreateRevision int64      `json:"create_revision"`
	Info           *lock.Info `json:"info"`
}

func lockStatus(name string, entries []lock.Entry) statusJSON {
	s := statusJSON{Name: name, Waiters: []entryJSON{}}
	for i, e := range entries {
		j := entryJSON{Key: e.Key, CreateRevision: e.CreateRevision, Info: e.Info}
		if i == 0 {
			s.Held, s.Holder = true, &j
			continue
		}
		s.Waiters = append(s.Waiters, j)
	}
	return s
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
