package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// runStatus is --status: the holder and the waiters of one lock. A holder
// that --unlock removed and that is still stopping its command holds it
// until it has stopped, and is shown as holding it.
func runStatus(ctx context.Context, j *job, stdout io.Writer, asJSON bool) error {
	rctx, cancel := context.WithTimeout(ctx, j.lock.RPCTimeout)
	defer cancel()
	q, err := lock.ReadQueue(rctx, j.client, j.lock.Realm, j.lock.Name)
	entries, stopping := q.Entries, q.Stopping
	if err != nil {
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	}
	last, err := lock.ReadLastRun(rctx, j.client, j.lock.Realm, j.lock.Name)
	if err != nil {
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	}
	free := len(entries) == 0 && len(stopping) == 0
	if asJSON {
		s := lockStatus(j.lock.Name, entries, stopping)
		s.LastRun = lastRunStatus(last)
		s.ForeignKeys = foreignJSON(j.lock.Realm, j.lock.Name, q.Foreign)
		writeJSON(stdout, s)
	} else if free {
		fmt.Fprintf(stdout, "lock %s is free\n", lockLabel(j.lock.Name))
	} else if holders, waiters := lock.Holders(entries, stopping); len(holders) == 1 && limit(entries, stopping) == 1 {
		fmt.Fprintf(stdout, "lock %s is held by %s\n", lockLabel(j.lock.Name), holders[0].Describe())
		for i, e := range waiters {
			fmt.Fprintf(stdout, "  waiter %d: %s\n", i+1, e.Describe())
		}
	} else {
		fmt.Fprintf(stdout, "lock %s (--limit %d) is held by %d:\n", lockLabel(j.lock.Name), limit(entries, stopping), len(holders))
		for i, e := range holders {
			fmt.Fprintf(stdout, "  holder %d: %s: %s\n", i+1, untrusted.Word(e.Key, untrusted.MaxKey), e.Describe())
		}
		for i, e := range waiters {
			fmt.Fprintf(stdout, "  waiter %d: %s: %s\n", i+1, untrusted.Word(e.Key, untrusted.MaxKey), e.Describe())
		}
	}
	if !asJSON {
		sayForeign(stdout, j.lock.Realm, j.lock.Name, q.Foreign)
	}
	if last != nil && !asJSON {
		fmt.Fprintf(stdout, "last successful run: %s\n", last.Describe())
	}
	if free {
		return errFree
	}
	return nil
}

// listPageSize is how many keys --list asks etcd for at a time.
const listPageSize = 1000

// runList is --list: every lock in the realm that has a holder, one line
// (or one JSON object) each, written as the realm is read page by page.
// If etcd fails half-way, what was written stays, --json's array is left
// open, and the status is 69.
func runList(ctx context.Context, j *job, stdout io.Writer, asJSON bool) error {
	n := 0
	err := lock.List(ctx, j.client, j.lock.Realm, listPageSize, j.lock.RPCTimeout, func(l lock.Lock) {
		n++
		if asJSON {
			sep := ",\n  "
			if n == 1 {
				sep = "[\n  "
			}
			st := lockStatus(l.Name, l.Entries, l.Stopping)
			st.Foreign = l.Foreign
			b, _ := json.MarshalIndent(st, "  ", "  ")
			io.WriteString(stdout, sep)
			stdout.Write(untrusted.JSON(b))
			return
		}
		holders, waiters := lock.Holders(l.Entries, l.Stopping)
		held := holders[0].Describe()
		if len(holders) > 1 {
			held = fmt.Sprintf("%s, and %d more (--limit %d)", held, len(holders)-1, limit(l.Entries, l.Stopping))
		}
		fmt.Fprintf(stdout, "%s\t%s\t%d waiting\n", listedName(l), held, len(waiters))
	})
	if err != nil {
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	}
	switch {
	case asJSON && n == 0:
		io.WriteString(stdout, "[]\n")
	case n == 0 && report.IsTerminal(stdout):
		// A person at a terminal is told; a script reads no lines.
		fmt.Fprintf(stdout, "no lock is held in the realm %s\n", untrusted.Word(j.lock.Realm, untrusted.MaxKey))
	case asJSON:
		io.WriteString(stdout, "\n]\n")
	}
	return nil
}

// shownName is a lock name found in etcd as --list shows it: as it is if
// it is a name distlock accepts (what --lock-name takes to name it), else
// escaped and quoted, as a key that someone else wrote may be anything.
func shownName(name string) string {
	if lock.ValidateName(name) == nil && !strings.HasPrefix(name, `"`) {
		return name
	}
	return untrusted.Quote(name, untrusted.MaxKey)
}

// lockLabel is a lock's name as --status shows it: quoted, and for a name
// beyond ASCII, which another name may look like (Cyrillic "а" and Latin
// "a"), with the segment its keys spell it as.
func lockLabel(name string) string {
	return fmt.Sprintf("%q", name) + segmentNote(name, lock.Escape(name))
}

// segmentNote is what a name beyond ASCII is shown with: its keys' segment.
func segmentNote(name, seg string) string {
	for _, r := range name {
		if r >= utf8.RuneSelf {
			return fmt.Sprintf(" (keys %s/)", untrusted.Word(seg, untrusted.MaxKey))
		}
	}
	return ""
}

// maxForeignShown is how many foreign keys --status names one by one.
const maxForeignShown = 5

// sayForeign tells which keys under the lock's prefix take no part in it,
// so that nobody reads one as a holder. A key named PREFIX/ID is etcd's
// recipe's under the name with the trailing slash, a lock of its own.
func sayForeign(w io.Writer, realm, name string, foreign []lock.Entry) {
	for i, e := range foreign {
		if i == maxForeignShown {
			fmt.Fprintf(w, "  not counted: %d more keys that are not this lock's\n", len(foreign)-i)
			return
		}
		fmt.Fprintf(w, "  not counted: key %s %s\n", untrusted.Word(e.Key, untrusted.MaxKey), foreignWhose(realm, name, e.Key))
	}
}

// foreignWhose says whose a foreign key under the lock's prefix is.
func foreignWhose(realm, name, key string) string {
	pfx := lock.Prefix(realm, name)
	other, ok := lock.EtcdctlLock(key)
	switch {
	case ok && other == pfx:
		return fmt.Sprintf("belongs to etcdctl lock %s, a lock of its own (etcdctl lock %s shares this one)",
			untrusted.Quote(other, untrusted.MaxKey), untrusted.Quote(strings.TrimSuffix(pfx, "/"), untrusted.MaxKey))
	case ok:
		return fmt.Sprintf("belongs to another lock: of a realm below this one, or etcdctl lock %s", untrusted.Quote(other, untrusted.MaxKey))
	}
	return "is not a holder's or waiter's: it does not end in a lease ID"
}

// listedName is how --list shows a lock's name: a segment of keys that
// distlock did not write is quoted and marked, so that it cannot pass for
// the lock whose name it spells.
func listedName(l lock.Lock) string {
	if !l.Foreign && utf8.ValidString(l.Name) && !norm.NFC.IsNormalString(l.Name) {
		return untrusted.Quote(l.Name, untrusted.MaxKey) + segmentNote(l.Name, l.Segment()) +
			" (not in Unicode NFC: an older distlock's lock, which --lock-name cannot name now; free it with etcdctl del)"
	}
	if l.Foreign {
		return untrusted.Quote(l.Name, untrusted.MaxKey) + " (not a distlock lock name: keys under it were written by another tool)"
	}
	return shownName(l.Name) + segmentNote(l.Name, l.Segment())
}

// limit is how many may hold the lock, by what its keys and records say.
func limit(entries, stopping []lock.Entry) int {
	return lock.Limit(append(entries[:len(entries):len(entries)], stopping...))
}

type statusJSON struct {
	Name string `json:"name"`
	// Foreign (--list): the name is a segment of keys that another tool
	// wrote, not a distlock lock name (lock.Lock.Foreign).
	Foreign bool `json:"foreign,omitempty"`
	Held    bool `json:"held"` // Holder != nil
	Limit   int  `json:"limit"`
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
	// ForeignKeys (--status) are the keys under the lock's prefix that
	// take no part in it (lock.Queue.Foreign).
	ForeignKeys []foreignKeyJSON `json:"foreign_keys,omitempty"`
}

type foreignKeyJSON struct {
	Key            string `json:"key"`
	CreateRevision int64  `json:"create_revision"`
	Whose          string `json:"whose"`
}

func foreignJSON(realm, name string, foreign []lock.Entry) []foreignKeyJSON {
	var js []foreignKeyJSON
	for _, e := range foreign {
		js = append(js, foreignKeyJSON{Key: untrusted.Cut(e.Key, untrusted.MaxKey), CreateRevision: e.CreateRevision, Whose: foreignWhose(realm, name, e.Key)})
	}
	return js
}

type entryJSON struct {
	Key            string     `json:"key"` // of a holder being stopped: its stopping record
	CreateRevision int64      `json:"create_revision"`
	Info           *lock.Info `json:"info"`
	// Stopping marks a holder that --unlock removed and that is still
	// stopping its command.
	Stopping bool `json:"stopping"`
}

// toJSON is entries as --json shows them: what others wrote is cut where
// the text cuts it (encoding/json escapes it).
func toJSON(entries []lock.Entry) []entryJSON {
	js := []entryJSON{}
	for _, e := range entries {
		js = append(js, entryJSON{Key: untrusted.Cut(e.Key, untrusted.MaxKey), CreateRevision: e.CreateRevision, Info: cutInfo(e.Info), Stopping: e.Stopping})
	}
	return js
}

// cutInfo is a copy of i with its text cut as the text output cuts it.
func cutInfo(i *lock.Info) *lock.Info {
	if i == nil {
		return nil
	}
	c := *i
	c.Reason = untrusted.Cut(c.Reason, untrusted.MaxReason)
	c.Host = untrusted.Cut(c.Host, untrusted.MaxWord)
	c.User = untrusted.Cut(c.User, untrusted.MaxWord)
	c.Mode = untrusted.Cut(c.Mode, untrusted.MaxWord)
	return &c
}

func lockStatus(name string, entries, stopping []lock.Entry) statusJSON {
	holders, waiters := lock.Holders(entries, stopping)
	s := statusJSON{Name: untrusted.Cut(name, untrusted.MaxKey), Limit: limit(entries, stopping),
		Holders: toJSON(holders), Waiters: toJSON(waiters), Stopping: toJSON(stopping)}
	if len(s.Holders) > 0 {
		s.Holder = &s.Holders[0]
	}
	s.Held = s.Holder != nil
	return s
}

// writeJSON writes v as indented JSON, with what a terminal could act on
// escaped (untrusted.JSON).
func writeJSON(w io.Writer, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return
	}
	_, _ = w.Write(append(untrusted.JSON(b), '\n'))
}
