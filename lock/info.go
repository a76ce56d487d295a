package lock

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/tinx/distlock/internal/untrusted"
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
	// Shared marks a shared holder (--shared): shared holders hold the
	// lock together, everyone else alone. A key that does not say so,
	// etcdctl's among them, is exclusive.
	Shared bool `json:"shared,omitempty"`
	// Command is the name of the command that runs under the lock (the
	// base name of its first word), stored when no reason is given, so
	// that --status can say what runs. Never its arguments: they may hold
	// what others should not read.
	Command string `json:"command,omitempty"`
	// Expires is set once the holder has left its key on a lease that
	// nobody keeps alive (--lock --expire, or --min-hold after the command
	// ended): the moment etcd removes the key at the earliest, by the
	// writer's clock. A leader change renews the lease, so it may be later.
	Expires time.Time `json:"expires,omitzero"`
}

// What a holder is, by what its key says (Entry.State).
const (
	StateRunning  = "running"  // exec mode: its command runs
	StateManual   = "manual"   // taken with --lock: a manual lock
	StateMinHold  = "min_hold" // its command ended; kept for --min-hold until Info.Expires
	StateStopping = "stopping" // unlocked by --unlock; still stopping its command
	StateUnknown  = "unknown"  // its key says nothing distlock understands
)

// State says what a holder is: one of the State constants. (A waiter's
// key says what it will be.)
func (e Entry) State() string {
	switch {
	case e.Stopping:
		return StateStopping
	case e.Info == nil:
		return StateUnknown
	case e.Info.Mode == ModeLock:
		return StateManual
	case e.Info.Mode == ModeExec && !e.Info.Expires.IsZero():
		return StateMinHold
	case e.Info.Mode == ModeExec:
		return StateRunning
	}
	return StateUnknown
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

// parseEntry is the Entry of one key under a lock. Anyone who may write
// to the realm may have written its value: it is read leniently (see
// decodeLenient), and it is distlock's if it is a JSON object that names
// a host or a mode.
func parseEntry(kv *mvccpb.KeyValue) Entry {
	e := Entry{Key: string(kv.Key), Lease: kv.Lease, CreateRevision: kv.CreateRevision}
	var info Info
	ok := decodeLenient(kv.Value, map[string]any{
		"reason": &info.Reason, "host": &info.Host, "pid": &info.PID, "user": &info.User,
		"mode": &info.Mode, "since": &info.Since, "limit": &info.Limit,
		"command": &info.Command, "expires": &info.Expires, "shared": &info.Shared,
	})
	if ok && (info.Host != "" || info.Mode != "") {
		e.Info = &info
	}
	return e
}

// decodeLenient reads the JSON object data field by field: each of fields
// (by its exact name) that data has with a value of the right type is
// set, and one of another type ("pid": "abc", "since": "not a time") is
// left at its zero, so that one bad field does not hide the others. It
// reports whether data is a JSON object at all.
func decodeLenient(data []byte, fields map[string]any) bool {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil || obj == nil {
		return false
	}
	for name, field := range fields {
		if raw, ok := obj[name]; ok {
			_ = json.Unmarshal(raw, field)
		}
	}
	return true
}

// Describe says who this entry is in one phrase, for messages such as "lock
// "x" is held by host web1, pid 4711, since ..., reason "...".". What the
// key and its value say is shown as package untrusted shows it: escaped,
// and cut when long.
func (e Entry) Describe() string {
	if e.Info == nil {
		return e.Who() + e.StoppingNote()
	}
	s := e.who(true)
	if e.Info.Mode == ModeLock {
		s += " (taken with --lock)"
	}
	if e.Info.Shared {
		s += " (shared)"
	}
	return s + e.StoppingNote()
}

// Who says who holds or awaits the lock by this entry, as Describe does,
// but without the pid of a holder whose process has gone (a manual lock,
// or one kept for --min-hold after its command ended) and without notes.
func (e Entry) Who() string {
	if e.Info == nil {
		return fmt.Sprintf("key %s (no details: not written by distlock)", untrusted.Word(e.Key, untrusted.MaxKey))
	}
	st := e.State()
	return e.who(st != StateManual && st != StateMinHold)
}

// who is host, pid (if withPID), user, since, and the reason.
func (e Entry) who(withPID bool) string {
	i := e.Info
	var b strings.Builder
	fmt.Fprintf(&b, "host %s", untrusted.Word(i.Host, untrusted.MaxWord))
	if withPID {
		fmt.Fprintf(&b, ", pid %d", i.PID)
	}
	if i.User != "" {
		fmt.Fprintf(&b, ", user %s", untrusted.Word(i.User, untrusted.MaxWord))
	}
	if !i.Since.IsZero() {
		fmt.Fprintf(&b, ", since %s", i.Since.Local().Format(time.RFC3339))
	}
	if i.Reason != "" {
		fmt.Fprintf(&b, ", reason %s", untrusted.Quote(i.Reason, untrusted.MaxReason))
	} else {
		b.WriteString(", no reason given")
	}
	return b.String()
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
