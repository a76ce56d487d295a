package show

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// Feed writes what --follow prints: the state of the lock (or the realm)
// as --status (or --list) shows it, then one line for each change; with
// JSON, one object a line, the state's "event" being "state".
type Feed struct {
	w      io.Writer
	realm  string
	asJSON bool
}

// NewFeed is a feed of realm's locks that writes to w, as JSON if asJSON.
func NewFeed(w io.Writer, realm string, asJSON bool) *Feed {
	return &Feed{w: w, realm: realm, asJSON: asJSON}
}

// stateJSON is the state of a lock or a realm, on one line.
type stateJSON struct {
	Event string        `json:"event"` // "state"
	Time  time.Time     `json:"time"`
	Lock  *statusJSON   `json:"lock,omitempty"`  // --status --follow
	Locks *[]statusJSON `json:"locks,omitempty"` // --list --follow: the held ones, [] for none
}

// Status writes the state of one lock.
func (f *Feed) Status(s *Status) {
	if !f.asJSON {
		s.WriteText(f.w)
		return
	}
	st := lockStatus(s.Name, s.Queue.Entries, s.Queue.Stopping, s.Now, s.Leases)
	st.LastRun = lastRunStatus(s.LastRun)
	f.line(stateJSON{Event: "state", Time: s.Now.UTC(), Lock: &st})
}

// List writes the state of the realm: the locks that are held.
func (f *Feed) List(locks []lock.Lock) {
	if !f.asJSON {
		ls := NewList(f.w, false)
		for _, l := range locks {
			ls.Add(l)
		}
		ls.End(f.realm, true)
		return
	}
	now := time.Now()
	held := []statusJSON{}
	for _, l := range locks {
		s := lockStatus(l.Name, l.Entries, l.Stopping, now, nil)
		s.Foreign = l.Foreign
		held = append(held, s)
	}
	f.line(stateJSON{Event: "state", Time: now.UTC(), Locks: &held})
}

// changeJSON is one change, on one line.
type changeJSON struct {
	Event        string     `json:"event"` // lock.Change* kinds
	Time         time.Time  `json:"time"`
	Lock         string     `json:"lock"`
	Revision     int64      `json:"revision"`
	Key          string     `json:"key"`
	FencingToken int64      `json:"fencing_token"`
	Info         *lock.Info `json:"info"`
	Position     int        `json:"position,omitempty"`
	UnlockedBy   *lock.Info `json:"unlocked_by,omitempty"`
}

// Change writes one change, seen at now.
func (f *Feed) Change(c lock.Change, now time.Time) {
	if f.asJSON {
		f.line(changeJSON{Event: c.Kind, Time: now.UTC(), Lock: untrusted.Cut(c.Name, untrusted.MaxKey), Revision: c.Revision,
			Key: untrusted.Cut(c.Entry.Key, untrusted.MaxKey), FencingToken: c.Entry.CreateRevision,
			Info: cutInfo(c.Entry.Info), Position: c.Position, UnlockedBy: cutInfo(c.UnlockedBy)})
		return
	}
	fmt.Fprintf(f.w, "%s lock %s %s\n", now.Local().Format(time.RFC3339), lockLabel(c.Name), changeText(c))
}

// changeText says what c did, after the lock's name.
func changeText(c lock.Change) string {
	who := c.Entry.Who()
	token := fmt.Sprintf(" (fencing token %d)", c.Entry.CreateRevision)
	switch c.Kind {
	case lock.ChangeQueued:
		return fmt.Sprintf("queued: %s, waiter %d", who, c.Position)
	case lock.ChangeAcquired:
		return "acquired by " + who + token
	case lock.ChangeReleased:
		return "released by " + who + token
	case lock.ChangeUnlocked:
		by := ""
		if c.UnlockedBy != nil {
			who := *c.UnlockedBy
			who.Since = time.Time{} // the line's own time says when
			by = " by " + lock.Entry{Info: &who}.Who()
		}
		return fmt.Sprintf("unlocked%s (--unlock): it was held by %s%s", by, who, token)
	case lock.ChangeExpired:
		return fmt.Sprintf("expired: the key of %s went with its lease, no release recorded%s", who, token)
	case lock.ChangeLeft:
		return "left the line: " + who + " waits no longer"
	case lock.ChangeStopping:
		return "stopping: " + who + " is stopping its command after --unlock, and holds the lock until it has"
	case lock.ChangeStopped:
		return "stopped: " + who + " has let go after --unlock"
	}
	return untrusted.Word(c.Kind, untrusted.MaxWord) + ": " + who
}

// line writes v as JSON on one line, with what a terminal could act on
// escaped (untrusted.JSON).
func (f *Feed) line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	_, _ = f.w.Write(append(untrusted.JSON(b), '\n'))
}

// StatusOf is lock name of realm as --status shows it, with its queue as
// q (a feed's read) and the record of its last run and its holders'
// leases read now, each in timeout; either one that etcd does not say in
// time is left out.
func StatusOf(ctx context.Context, client *clientv3.Client, realm, name string, q lock.Queue, timeout time.Duration) *Status {
	s := &Status{Realm: realm, Name: name, Queue: q}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s.LastRun, _ = lock.ReadLastRun(rctx, client, realm, name)
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	holders, _ := s.split()
	s.Leases = lock.LeasesLeft(lctx, client, holders)
	s.Now = time.Now()
	return s
}
