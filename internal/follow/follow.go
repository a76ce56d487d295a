// Package follow is --status --follow and --list --follow: the state of a
// lock (or of every lock of a realm), then a line for each change as a
// watch of etcd brings it, until the caller's context ends.
//
// etcd's client resumes a broken watch by itself, and a watch on a member
// cut off from the others may stay silent: so whether etcd can be reached
// is asked apart from the watch, once a second, by a linearizable read
// (which needs a leader). An outage is said once, when it begins, and
// again when etcd answers; then the state is read and printed afresh, as
// it is when etcd has compacted the revisions the watch was to go on from.
package follow

import (
	"context"
	"fmt"
	"io"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/show"
	"github.com/tinx/distlock/lock"
)

// Config is what to follow, and how.
type Config struct {
	Client      *clientv3.Client
	Realm, Name string // Name "": every lock of the realm
	JSON        bool
	RPCTimeout  time.Duration // bounds each request
	// GiveUp is how long etcd may stay out of reach before Run gives up.
	GiveUp time.Duration
	Out    io.Writer
	// Warn and Info say what happens to the feed itself (on stderr).
	Warn, Info func(format string, args ...any)
}

// probeEvery is how often etcd is asked whether it answers.
const probeEvery = time.Second

// pageSize is how many keys a read of the state asks for at a time.
const pageSize = 1000

// follower is one run of a feed.
type follower struct {
	Config
	feed    *lock.Feed
	print   *show.Feed
	down    time.Time // when etcd stopped answering; zero while it answers
	term    uint64    // the highest raft term seen
	watches uint64    // how many watches were opened, each on a grpc stream of its own
}

// Run prints the state, then the changes, until ctx ends (nil) or etcd
// stays out of reach for longer than GiveUp (an error that says so). If
// the first read of the state fails, Run returns its error.
func Run(ctx context.Context, c Config) error {
	fl := &follower{Config: c, feed: lock.NewFeed(c.Realm, c.Name), print: show.NewFeed(c.Out, c.Realm, c.JSON)}
	rev, err := fl.state(ctx)
	if err != nil {
		return err
	}
	for {
		again, err := fl.watch(ctx, rev)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if rev, err = fl.resync(ctx, again); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// state reads the state, takes it into the feed and prints it, and returns
// the revision it was read at.
func (fl *follower) state(ctx context.Context) (int64, error) {
	kvs, rev, err := lock.ReadFeed(ctx, fl.Client, fl.feed, pageSize, fl.RPCTimeout)
	if err != nil {
		return 0, err
	}
	if fl.Name != "" {
		fl.print.Status(show.StatusOf(ctx, fl.Client, fl.Realm, fl.Name, fl.feed.Queue(fl.Name), fl.RPCTimeout))
		return rev, nil
	}
	var locks []lock.Lock
	lock.ListRead(fl.Realm, kvs, func(l lock.Lock) { locks = append(locks, l) })
	fl.print.List(locks)
	return rev, nil
}

// resync says that changes may have been missed, and why, then reads
// and prints the state afresh, as often as it takes, until etcd has stayed
// out of reach for too long.
func (fl *follower) resync(ctx context.Context, why string) (int64, error) {
	fl.Warn("may have missed changes: %s; the state now follows", why)
	for {
		rev, err := fl.state(ctx)
		if err == nil {
			fl.back()
			return rev, nil
		}
		if ctx.Err() != nil {
			return 0, nil
		}
		if err := fl.lost(err); err != nil {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, nil
		case <-time.After(probeEvery):
		}
	}
}

// lost notes that etcd did not answer (err), saying so if it did until
// now, and returns an error once it has not answered for GiveUp.
func (fl *follower) lost(err error) error {
	if fl.down.IsZero() {
		fl.down = time.Now()
		fl.Warn("etcd does not answer (%v); still following, for up to %v", err, fl.GiveUp)
		return nil
	}
	if gone := time.Since(fl.down); gone > fl.GiveUp {
		return fmt.Errorf("etcd has not answered for %v: %w", gone.Round(time.Second), err)
	}
	return nil
}

// back notes that etcd answers again, if it did not.
func (fl *follower) back() {
	if !fl.down.IsZero() {
		fl.Info("etcd answers again, after %v", time.Since(fl.down).Round(time.Second))
		fl.down = time.Time{}
	}
}

// seen notes the raft term of an answer, saying when it shows that etcd
// has elected another leader.
func (fl *follower) seen(term uint64) {
	if fl.term != 0 && term > fl.term {
		fl.Info("etcd has a new leader (raft term %d); still following", term)
	}
	fl.term = max(fl.term, term)
}

// GiveUpAfter times --dial-timeout is how long a feed that may wait
// forever (no --timeout) lets etcd stay out of reach: half a minute by
// default, long enough for a few elections of a leader (each takes about
// a second) or a member's restart, short enough that a script that
// watches a lock learns that it sees nothing any more.
const GiveUpAfter = 6
