package lock

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Modes a holder can be in, as stored in Info.Mode.
const (
	ModeExec = "exec" // distlock runs a command while it holds the lock
	ModeLock = "lock" // taken with --lock: held until someone runs --unlock
)

// Info is what a holder or waiter tells everyone who finds its key: the JSON
// value of the key.
type Info struct {
	Reason string    `json:"reason"`
	Host   string    `json:"host"`
	PID    int       `json:"pid"`
	User   string    `json:"user"`
	Mode   string    `json:"mode"`
	Since  time.Time `json:"since"`
	// Limit is how many may hold the lock at once (--limit), stored only
	// when it is more than one: a plain lock's value stays as it was.
	Limit int `json:"limit,omitempty"`
}

// Entry is one key under a lock: the holder (the first entry) or a waiter;
// or the stopping record of a holder that --unlock removed (Stopping).
type Entry struct {
	Key            string
	Lease          int64
	CreateRevision int64 // of a stopping record: that of the key it was
	// Info is nil when the value is not distlock's JSON, as for a key
	// written by etcdctl lock.
	Info *Info
	// Stopping marks a holder whose key --unlock deleted and that has not
	// yet stopped (and released its lease): it still takes its slot.
	Stopping bool
}

// limit is how many may hold the lock at once by this entry's account: its
// --limit, 1 for a plain distlock key, 0 when it does not say (etcdctl's).
func (e Entry) limit() int {
	switch {
	case e.Info == nil:
		return 0
	case e.Info.Limit > 1:
		return e.Info.Limit
	}
	return 1
}

// Limit is how many may hold the lock whose entries these are, holders
// first: what the oldest entry that says so says, or 1.
func Limit(entries []Entry) int {
	for _, e := range entries {
		if n := e.limit(); n > 0 {
			return n
		}
	}
	return 1
}

// parseEntry is the Entry of one key under a lock.
func parseEntry(kv *mvccpb.KeyValue) Entry {
	e := Entry{Key: string(kv.Key), Lease: kv.Lease, CreateRevision: kv.CreateRevision}
	var info Info
	if err := json.Unmarshal(kv.Value, &info); err == nil && (info.Host != "" || info.Mode != "") {
		e.Info = &info
	}
	return e
}

// Describe says who this entry is in one phrase, for messages such as "lock
// "x" is held by host web1, pid 4711, since ..., reason "...".".
func (e Entry) Describe() string {
	if e.Info == nil {
		return fmt.Sprintf("key %s (no details: not written by distlock)", shown(e.Key)) + e.StoppingNote()
	}
	i := e.Info
	var b strings.Builder
	fmt.Fprintf(&b, "host %s, pid %d", shown(i.Host), i.PID)
	if i.User != "" {
		fmt.Fprintf(&b, ", user %s", shown(i.User))
	}
	if !i.Since.IsZero() {
		fmt.Fprintf(&b, ", since %s", i.Since.Local().Format(time.RFC3339))
	}
	if i.Reason != "" {
		fmt.Fprintf(&b, ", reason %q", i.Reason)
	} else {
		b.WriteString(", no reason given")
	}
	if i.Mode == ModeLock {
		b.WriteString(" (taken with --lock)")
	}
	b.WriteString(e.StoppingNote())
	return b.String()
}

// shown is s as Describe writes it: as it is, or quoted if it is not
// printable UTF-8, since anyone may have written it, newlines and terminal
// escapes included.
func shown(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// StoppingNote is what Describe adds for a holder that is being stopped,
// for lines that describe a holder in their own way.
func (e Entry) StoppingNote() string {
	if !e.Stopping {
		return ""
	}
	return " (unlocked; stopping its command)"
}

func jsonValue(info Info) (string, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return "", fmt.Errorf("encode lock details: %w", err)
	}
	return string(b), nil
}

// now is the time stored as Info.Since: UTC, whole seconds.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Second)
}
