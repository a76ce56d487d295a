package follow

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// watch prints the changes after revision rev until the feed must start
// afresh (it returns why), ctx ends, or etcd has been out of reach for too
// long (an error). The watch requires a leader, so that a member cut off
// from the others ends it rather than keep it silent; it is opened apart,
// since opening waits for etcd, while the probes count how long etcd has
// not answered.
func (fl *follower) watch(ctx context.Context, rev int64) (string, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opened := make(chan clientv3.WatchChan, 1)
	go func() {
		opened <- fl.Client.Watch(wctx, fl.feed.Range(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	}()
	probes := fl.probe(wctx)
	var events clientv3.WatchChan
	for {
		select {
		case <-ctx.Done():
			return "", nil
		case events = <-opened:
		case p := <-probes:
			if p.err != nil {
				if err := fl.lost(p.err); err != nil {
					return "", err
				}
				continue
			}
			fl.seen(p.term)
			if !fl.down.IsZero() {
				fl.back()
				return "etcd was out of reach", nil
			}
		case resp, ok := <-events:
			if !ok && ctx.Err() != nil {
				return "", nil
			}
			if why, err := fl.took(resp, ok, rev); why != "" || err != nil {
				return why, err
			}
		}
	}
}

// took prints what one watch response changed; or it returns why the
// feed must start afresh (the watch ended, or etcd compacted the
// revisions it was to bring), or, when etcd has been out of reach for too
// long, an error.
func (fl *follower) took(resp clientv3.WatchResponse, ok bool, rev int64) (string, error) {
	switch {
	case !ok:
		return "the watch ended", fl.lost(fmt.Errorf("the watch ended"))
	case resp.CompactRevision != 0:
		return fmt.Sprintf("etcd compacted its history past revision %d, up to %d", rev, resp.CompactRevision), nil
	case resp.Err() != nil:
		return fmt.Sprintf("the watch was cut off (%v)", resp.Err()), fl.lost(resp.Err())
	}
	fl.seen(resp.Header.RaftTerm)
	for _, c := range fl.feed.Apply(resp.Events) {
		fl.print.Change(c, time.Now())
	}
	return "", nil
}

// probeResult is what one probe found: the raft term of etcd's answer, or
// the error.
type probeResult struct {
	term uint64
	err  error
}

// probe asks etcd every probeEvery, until ctx ends, for one key of the
// feed's range: a linearizable read, which only a member with a leader
// answers.
func (fl *follower) probe(ctx context.Context) <-chan probeResult {
	results := make(chan probeResult)
	go func() {
		for {
			pctx, cancel := context.WithTimeout(ctx, fl.RPCTimeout)
			resp, err := fl.Client.Get(pctx, fl.feed.Range(), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
			cancel()
			r := probeResult{err: err}
			if err == nil {
				r.term = resp.Header.RaftTerm
			}
			select {
			case results <- r:
			case <-ctx.Done():
				return
			}
			select {
			case <-time.After(probeEvery):
			case <-ctx.Done():
				return
			}
		}
	}()
	return results
}
