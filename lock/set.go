package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A set of locks is taken one lock after the other, in one order that
// every caller uses (the caller sorts them: see SetOrder), so that two
// sets that share locks never wait for each other in a circle. The set
// has one lease: one keepalive, one deadline, and a key named after it
// under each lock's prefix. Revoking it gives every lock of the set back
// at once, the ones gathered so far when the set is not complete.
//
// While the set is gathered, a lock already taken may be lost (its key
// deleted by --unlock): then the set is given back whole and queued for
// again from the first lock, so that it never keeps a place in a later
// lock's queue while it has lost an earlier one.

// errMemberLost means that a lock of the set, taken already, was lost
// while the set was being gathered.
var errMemberLost = errors.New("lost while the others of the set were gathered")

// gatherError is what kept the set from being gathered, and at which
// lock.
type gatherError struct {
	req *Request
	err error
}

func (e *gatherError) Error() string { return e.err.Error() }
func (e *gatherError) Unwrap() error { return e.err }

// gather takes the locks of reqs one after the other on the lease l, each
// wait under wctx and ended as soon as a lock taken before is lost.
func gather(ctx, wctx context.Context, client *clientv3.Client, reqs []Request, l *lease) (*Holder, error) {
	var set []*Holder
	gctx, cancel := context.WithCancelCause(wctx)
	defer cancel(nil)
	for i := range reqs {
		h, err := acquire(ctx, gctx, client, &reqs[i], l)
		if err == nil && errors.Is(context.Cause(gctx), errMemberLost) {
			h.stopWatching(ctx)
			err = context.Cause(gctx) // lost an earlier one just now
		}
		if err != nil {
			for _, m := range set {
				m.stopWatching(ctx)
			}
			if cause := context.Cause(gctx); errors.Is(cause, errMemberLost) {
				err = cause // which lock, rather than how the wait ended
			}
			return nil, &gatherError{req: &reqs[i], err: err}
		}
		set = append(set, h)
		context.AfterFunc(h.held, func() { cancel(fmt.Errorf("lock %q: %w", reqs[i].Name, errMemberLost)) })
	}
	for i, m := range set {
		if m.held.Err() != nil { // lost as the last one came: look again
			m := &gatherError{req: &reqs[i], err: fmt.Errorf("lock %q: %w", reqs[i].Name, errMemberLost)}
			for _, h := range set {
				h.stopWatching(ctx)
			}
			return nil, m
		}
	}
	first := set[0]
	first.more = set[1:]
	for _, m := range first.more {
		context.AfterFunc(m.held, func() { first.lose(&setMemberLost{m}) })
	}
	return first, nil
}

// setMemberLost is the cause of a set's end when one of its other locks
// was lost: Err asks that lock why.
type setMemberLost struct{ h *Holder }

func (e *setMemberLost) Error() string { return context.Cause(e.h.held).Error() }

// Set is every lock the holder holds, the first (the Holder itself) first:
// one for a single lock.
func (h *Holder) Set() []*Holder { return append([]*Holder{h}, h.more...) }

// Name is the name of the lock this holder holds.
func (h *Holder) Name() string { return h.req.Name }

// SetOrder is the order in which every caller takes a set of locks of one
// realm: by their keys' prefixes, byte by byte (the escaped names), which
// every host computes alike whatever its locale.
func SetOrder(realm string, names []string) []string {
	sorted := slices.Clone(names)
	slices.SortFunc(sorted, func(a, b string) int { return strings.Compare(Prefix(realm, a), Prefix(realm, b)) })
	return sorted
}

// errSet refuses what only a single lock can do (keep it beyond the
// process, hold it for --min-hold, record its run) to a set.
var errSet = errors.New("not for a set of locks")

// single is nil for a single lock, errSet for a set.
func (h *Holder) single() error {
	if len(h.more) > 0 {
		return errSet
	}
	return nil
}
