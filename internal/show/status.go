// Package show writes what --status and --list find in etcd: lines for
// people, JSON for scripts. What others wrote in etcd is shown as package
// untrusted shows it: escaped, and cut when long.
package show

import (
	"context"
	"fmt"
	"io"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// Status is one lock as --status shows it: its holders and waiters, the
// record of its last successful run, and what is left of the holders'
// leases, as read at Now.
type Status struct {
	Realm, Name string
	Queue       lock.Queue
	LastRun     *lock.LastRun // nil: no record
	// Leases is what etcd says is left of each holder's lease (see
	// lock.LeasesLeft).
	Leases map[int64]time.Duration
	Now    time.Time
}

// ReadStatus reads lock name of realm: its queue and the record of its
// last run in one RPC timeout, then what is left of its holders' leases
// in another. A lease that etcd does not say about in time is shown as
// unknown, not as an error.
func ReadStatus(ctx context.Context, client *clientv3.Client, realm, name string, timeout time.Duration) (*Status, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := &Status{Realm: realm, Name: name}
	var err error
	if s.Queue, err = lock.ReadQueue(rctx, client, realm, name); err != nil {
		return nil, err
	}
	if s.LastRun, err = lock.ReadLastRun(rctx, client, realm, name); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	holders, _ := s.split()
	s.Leases = lock.LeasesLeft(lctx, client, holders)
	s.Now = time.Now()
	return s, nil
}

// Free says whether nobody holds the lock, nor is still stopping after
// --unlock.
func (s *Status) Free() bool { return len(s.Queue.Entries) == 0 && len(s.Queue.Stopping) == 0 }

// split is the holders (those being stopped among them) and the waiters.
func (s *Status) split() (holders, waiters []lock.Entry) {
	return lock.Holders(s.Queue.Entries, s.Queue.Stopping)
}

// WriteText writes the status for people: who holds the lock and what each
// holder is, who waits, keys that take no part, and the last run.
func (s *Status) WriteText(w io.Writer) {
	q := s.Queue
	holders, waiters := s.split()
	n := limit(q.Entries, q.Stopping)
	switch {
	case s.Free():
		fmt.Fprintf(w, "lock %s is free\n", lockLabel(s.Name))
	case len(holders) == 1 && n == 1:
		fmt.Fprintf(w, "lock %s is held by %s\n", lockLabel(s.Name), holderText(holders[0], s.Now, s.Leases))
		for i, e := range waiters {
			fmt.Fprintf(w, "  waiter %d: %s\n", i+1, e.Describe())
		}
	default:
		if n == 1 { // shared holders
			fmt.Fprintf(w, "lock %s is held by %d, shared:\n", lockLabel(s.Name), len(holders))
		} else {
			fmt.Fprintf(w, "lock %s (--limit %d) is held by %d:\n", lockLabel(s.Name), n, len(holders))
		}
		for i, e := range holders {
			fmt.Fprintf(w, "  holder %d: %s: %s\n", i+1, untrusted.Word(e.Key, untrusted.MaxKey), holderText(e, s.Now, s.Leases))
		}
		for i, e := range waiters {
			fmt.Fprintf(w, "  waiter %d: %s: %s\n", i+1, untrusted.Word(e.Key, untrusted.MaxKey), e.Describe())
		}
	}
	sayForeign(w, s.Realm, s.Name, q.Foreign)
	if s.LastRun != nil {
		fmt.Fprintf(w, "last successful run: %s\n", s.LastRun.Describe())
	}
}

// WriteJSON writes the status for scripts, as one JSON object.
func (s *Status) WriteJSON(w io.Writer) {
	st := lockStatus(s.Name, s.Queue.Entries, s.Queue.Stopping, s.Now, s.Leases)
	st.LastRun = lastRunStatus(s.LastRun)
	st.ForeignKeys = foreignJSON(s.Realm, s.Name, s.Queue.Foreign)
	writeJSON(w, st)
}

// limit is how many may hold the lock, by what its keys and records say.
func limit(entries, stopping []lock.Entry) int {
	return lock.Limit(append(entries[:len(entries):len(entries)], stopping...))
}
