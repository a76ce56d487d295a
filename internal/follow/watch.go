package follow

import (
	"context"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// watch prints the changes after revision rev until the feed must start
// afresh (it returns why), ctx ends, or etcd has been out of reach for too
// long (an error). The watch requires a leader, so that a member cut off
// from the others ends it rather than keep it silent; it is opened apart,
// since opening waits for etcd's word that the watch exists, while the
// probes count how long etcd has not answered. (etcd's client returns the
// watch's channel once etcd has confirmed the watch.) A watch that etcd
// has not confirmed within RPCTimeout while it answers the probes is taken
// for lost and the feed starts afresh: it must never go silent while etcd
// answers.
func (fl *follower) watch(ctx context.Context, rev int64) (string, error) {
	wctx, cancel := context.WithCancel(fl.ownStream(clientv3.WithRequireLeader(ctx)))
	defer cancel()
	opened := make(chan clientv3.WatchChan, 1)
	go func() {
		opened <- fl.Client.Watch(wctx, fl.feed.Range(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	}()
	began := time.Now()
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
			if events == nil && time.Since(began) > fl.RPCTimeout {
				return fmt.Sprintf("etcd answers, but has not started the watch in %v", fl.RPCTimeout), nil
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

// ownStream gives each watch a grpc stream of its own. etcd's client puts
// the watches whose contexts carry the same metadata on one stream and
// registers them there one at a time, each after etcd confirmed the one
// before: if an outage swallowed a watch's confirmation, every later
// watch on that stream waits for it forever, even once that watch is
// given up.
func (fl *follower) ownStream(ctx context.Context) context.Context {
	fl.watches++
	return metadata.AppendToOutgoingContext(ctx, "distlock-follow-watch", strconv.FormatUint(fl.watches, 10))
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
