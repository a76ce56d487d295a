package show

import (
	"encoding/json"
	"io"
	"time"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

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

	// A holder's alone: what it is (lock.State*: running, manual,
	// min_hold, stopping, unknown; until when is the info's expires), how
	// long it has held the lock, and, for --status and a key on a lease,
	// what etcd says is left of the lease (-1: it just expired).
	State            string `json:"state,omitempty"`
	HeldSeconds      *int64 `json:"held_seconds,omitempty"`
	LeaseLeftSeconds *int64 `json:"lease_left_seconds,omitempty"`
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

// holdersJSON is toJSON with what --status says of each holder; leases
// is nil where they were not asked about (--list).
func holdersJSON(holders []lock.Entry, now time.Time, leases map[int64]time.Duration) []entryJSON {
	js := toJSON(holders)
	for i, e := range holders {
		js[i].State = e.State()
		if held, ok := heldFor(e, now); ok {
			js[i].HeldSeconds = seconds(held)
		}
		if left, ok := leases[e.Lease]; ok && e.Lease != 0 {
			js[i].LeaseLeftSeconds = seconds(left)
		}
	}
	return js
}

func seconds(d time.Duration) *int64 {
	s := int64(d / time.Second)
	return &s
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
	c.Command = untrusted.Cut(c.Command, untrusted.MaxWord)
	return &c
}

func lockStatus(name string, entries, stopping []lock.Entry, now time.Time, leases map[int64]time.Duration) statusJSON {
	holders, waiters := lock.Holders(entries, stopping)
	s := statusJSON{Name: untrusted.Cut(name, untrusted.MaxKey), Limit: limit(entries, stopping),
		Holders: holdersJSON(holders, now, leases), Waiters: toJSON(waiters), Stopping: holdersJSON(stopping, now, leases)}
	if len(s.Holders) > 0 {
		s.Holder = &s.Holders[0]
	}
	s.Held = s.Holder != nil
	return s
}

// lastRunJSON is --status --json's record of the last successful run.
type lastRunJSON struct {
	Key string    `json:"key"`
	Run *lock.Run `json:"run"` // null when the record is not distlock's JSON
	// ExpiresIn is what etcd says is left of the record's lease.
	ExpiresIn int64 `json:"expires_in_seconds"`
}

// lastRunStatus is the record as --json shows it: what others wrote is
// cut where the text cuts it.
func lastRunStatus(last *lock.LastRun) *lastRunJSON {
	if last == nil {
		return nil
	}
	var run *lock.Run
	if last.Run != nil {
		r := *last.Run
		r.Host = untrusted.Cut(r.Host, untrusted.MaxWord)
		r.User = untrusted.Cut(r.User, untrusted.MaxWord)
		r.Reason = untrusted.Cut(r.Reason, untrusted.MaxReason)
		r.Duration = untrusted.Cut(r.Duration, untrusted.MaxWord)
		run = &r
	}
	return &lastRunJSON{Key: last.Key, Run: run, ExpiresIn: int64(last.Left / time.Second)}
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
