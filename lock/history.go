package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/stamp"
)

// The history of a lock: one record for each time the lock was held (by a
// distlock command, --lock, or a set or shared holder), beside the lock's
// keys, never among them:
//
//	realm + seg + "!history:" + TOKEN
//
// where TOKEN is the holder's fencing token (its key's create revision) in
// 19 digits, so that the records sort in the order the lock was taken and
// no host's clock names them. A record is begun when the lock is taken and
// completed when it is let go, in the same transaction that deletes the
// holder's key (a release, or an --unlock, which says who took the lock
// away and why). A record that was never completed says how far it is
// known: its distlock died, or etcd removed its key when the lease ran out
// (an --expire that lapsed, a --min-hold that ended). Each record is on a
// lease of its own that nobody keeps alive, of the history span: etcd
// removes it then.
const historySuffix = "!history:"

// HistoryPrefix is where the history records of the lock named name live.
func HistoryPrefix(realm, name string) string {
	return realm + Escape(name) + historySuffix
}

// HistoryKey is the key of the record of the holder of the lock named name
// whose fencing token is token.
func HistoryKey(realm, name string, token int64) string {
	return fmt.Sprintf("%s%0*d", HistoryPrefix(realm, name), revDigits, token)
}

// historyToken returns the fencing token that key, read under the history
// prefix hp, names, if key has a record's exact shape.
func historyToken(hp, key string) (int64, bool) {
	digits, ok := strings.CutPrefix(key, hp)
	if !ok || len(digits) != revDigits || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	token, err := strconv.ParseInt(digits, 10, 64)
	return token, err == nil && token > 0
}

// How a run that held the lock ended, as its history record says
// (Record.Outcome). A record without one was never completed.
const (
	EndReleased = "released" // its distlock let the lock go
	EndUnlocked = "unlocked" // --unlock took it away (Record.UnlockedBy)
)

// Record is the history record of one holding of a lock: the JSON value of
// its history key. Values are untrusted, as every value in etcd.
type Record struct {
	Info
	// Kind is exclusive, shared, limit or set.
	Kind         string    `json:"kind"`
	FencingToken int64     `json:"fencing_token"`
	Key          string    `json:"key"`
	Waiting      time.Time `json:"waiting_since,omitzero"` // when it began to wait
	Acquired     time.Time `json:"acquired"`
	Released     time.Time `json:"released,omitzero"`
	// Outcome is one of the End constants once the record is completed;
	// for a command, Ended says how the command ended (report's outcome
	// words: success, failure, signal, lost, overran, ...) and ExitStatus
	// distlock's exit status.
	Outcome    string `json:"outcome,omitempty"`
	Ended      string `json:"ended,omitempty"`
	ExitStatus *int   `json:"exit_status,omitempty"`
	// UnlockedBy is who ran the --unlock that took the lock away.
	UnlockedBy *Info `json:"unlocked_by,omitempty"`
	// Set names the other locks of a set of locks taken together.
	Set []string `json:"set,omitempty"`
}

// Kinds of holding, as Record.Kind says.
const (
	KindExclusive = "exclusive"
	KindShared    = "shared"
	KindLimit     = "limit"
	KindSet       = "set"
)

// HistoryEntry is a record as read from etcd.
type HistoryEntry struct {
	Token  int64
	Key    string
	Record *Record // nil if the value is not a record distlock can read
	Raw    []byte
	// ModRevision is the revision of the record's last write: the same as
	// that of the deletion of the holder's key when it was completed in
	// that transaction.
	ModRevision int64
}

// parseHistory reads kv, found under the history prefix hp, if its key
// has a record's exact shape.
func parseHistory(hp string, kv *mvccpb.KeyValue) (HistoryEntry, bool) {
	token, ok := historyToken(hp, string(kv.Key))
	if !ok {
		return HistoryEntry{}, false
	}
	e := HistoryEntry{Token: token, Key: string(kv.Key), Raw: kv.Value, ModRevision: kv.ModRevision}
	var r Record
	if json.Unmarshal(kv.Value, &r) == nil {
		e.Record = &r
	}
	return e, true
}

// history is a holding's record in the making (Request.History > 0): the
// lease it lives on, granted as the lock is taken, and how the holding
// ended, once the caller knows (Holder.Ending).
type history struct {
	span    time.Duration
	waiting time.Time
	claimed atomic.Bool   // someone is getting the lease (claimLease)
	granted chan struct{} // closed once the lease's grant has ended, granted or not
	done    chan struct{} // closed when begin has ended
	lease   clientv3.LeaseID
	ended   string
	status  *int
}

// startHistory begins the record of every lock of the set h holds, off
// the path to the command's start: the lease's grant and the write run
// beside the command, and what lets the lock go waits for them first.
func (h *Holder) startHistory(waiting time.Time) {
	if h.req.History <= 0 {
		return
	}
	h.hist = &history{span: h.req.History, waiting: waiting, granted: make(chan struct{}), done: make(chan struct{})}
	go h.beginHistory()
}

// beginHistory grants the records' lease and writes each record, only
// while the key is still ours and no record is there yet: an --unlock
// that came first has written its own, complete.
func (h *Holder) beginHistory() {
	defer close(h.hist.done)
	late := h.req.gate.tooLate() // whatever waits for the lease opens it (historyLease, historyWritten)
	ctx, cancel := context.WithTimeout(context.Background(), h.req.RPCTimeout)
	defer cancel()
	h.claimLease(ctx)
	<-h.hist.granted // by this call, or one that does not wait for it (historyLease)
	lease := h.hist.lease
	if lease == 0 || late {
		return // no record yet: nothing in etcd says more than the keys, or the caller writes it
	}
	var ops []clientv3.Op
	for _, m := range h.Set() {
		hk := HistoryKey(m.req.Realm, m.req.Name, m.FencingToken)
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(m.Key), "=", m.FencingToken),
				clientv3.Compare(clientv3.CreateRevision(hk), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(hk, h.recordOf(m, time.Time{}, nil), clientv3.WithLease(lease))}, nil))
	}
	_, _ = h.client.Txn(ctx).Then(ops...).Commit()
}

// claimLease gets the records' lease, the one granted while the lock was
// waited for or a new one, unless another call is getting it already.
func (h *Holder) claimLease(ctx context.Context) {
	if !h.hist.claimed.CompareAndSwap(false, true) {
		return
	}
	defer close(h.hist.granted)
	lease := h.req.early.take(h.client)
	if lease == 0 {
		if g, err := h.client.Grant(ctx, wholeSeconds(h.hist.span)); err == nil {
			lease = g.ID
		}
	}
	h.hist.lease = lease
}

// Ending tells the holder how its command ended (report's outcome word)
// and distlock's exit status, for the history record that letting the
// lock go completes.
func (h *Holder) Ending(ended string, status int) {
	if h.hist != nil {
		h.hist.ended, h.hist.status = ended, &status
	}
}

// historyLease waits, within ctx, for the records' lease: 0 if there is
// none. Letting the lock go needs the lease only: the begun record, if its
// write is still on its way, finds the key gone and writes nothing, and
// if it came first, the complete one replaces it.
func (h *Holder) historyLease(ctx context.Context) clientv3.LeaseID {
	if h.hist == nil {
		return 0
	}
	h.req.gate.openUp(true)
	ctx, cancel := h.historyWait(ctx)
	defer cancel()
	if h.req.early.ended() {
		// Nothing to wait for but, perhaps, a grant within ctx: here
		// and now, not after beginHistory has had its turn.
		h.claimLease(ctx)
	}
	select {
	case <-h.hist.granted:
		return h.hist.lease
	case <-ctx.Done():
		return 0
	}
}

// historyWritten waits, within ctx, until the begun records are written
// (or could not be): before this process goes, leaving the lock taken.
func (h *Holder) historyWritten(ctx context.Context) {
	if h.hist != nil {
		h.req.gate.openUp(true)
		ctx, cancel := h.historyWait(ctx)
		defer cancel()
		select {
		case <-h.hist.done:
		case <-ctx.Done():
		}
	}
}

// historyWait bounds a wait for the record's lease or write to half an
// RPCTimeout, within ctx: what lets the lock go or keeps it must keep time
// of its own for its own request when etcd is slow to grant.
func (h *Holder) historyWait(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, h.req.RPCTimeout/2)
}

// recordOf is the history record of m, a lock of the set h holds, as a
// JSON value; released zero while it holds, end nil until the command
// has ended (beginHistory, which runs beside the command, never reads
// what Ending writes).
func (h *Holder) recordOf(m *Holder, released time.Time, end *history) string {
	r := Record{Info: m.req.Info, Kind: KindExclusive, FencingToken: m.FencingToken, Key: m.Key,
		Waiting: h.hist.waiting.UTC().Truncate(time.Second), Acquired: m.Since}
	r.Info.Since = m.Since
	if m.req.limit() > 1 {
		r.Info.Limit = m.req.limit()
	}
	switch {
	case len(h.more) > 0:
		r.Kind = KindSet
		for _, o := range h.Set() {
			if o != m {
				r.Set = append(r.Set, o.req.Name)
			}
		}
	case m.req.shared():
		r.Kind = KindShared
	case m.req.limit() > 1:
		r.Kind = KindLimit
	}
	if !released.IsZero() {
		r.Released, r.Outcome = released.UTC().Truncate(time.Second), EndReleased
	}
	if end != nil {
		r.Ended, r.ExitStatus = end.ended, end.status
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// releaseOps delete every key of the set h holds that is still ours and
// complete its record, on lease, in one transaction: the next holder
// learns of the release and finds the record in the same revision.
func (h *Holder) releaseOps(lease clientv3.LeaseID) []clientv3.Op {
	released := time.Now()
	var ops []clientv3.Op
	for _, m := range h.Set() {
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(m.Key), "=", m.FencingToken)},
			[]clientv3.Op{clientv3.OpDelete(m.Key),
				clientv3.OpPut(HistoryKey(m.req.Realm, m.req.Name, m.FencingToken), h.recordOf(m, released, h.hist), clientv3.WithLease(lease))},
			nil))
	}
	return ops
}

// completeHistory lets the lock go with its records completed, if there
// are records; the lease's revoke follows as ever. It returns the records'
// lease if none of the keys was ours to let go, for dropEmptyHistoryLease
// after that revoke: what frees the lock comes first.
func (h *Holder) completeHistory(ctx context.Context) (unused clientv3.LeaseID) {
	lease := h.historyLease(ctx)
	if lease == 0 {
		return 0
	}
	ops := h.releaseOps(lease)
	stamp.At("release-sent")
	resp, err := h.client.Txn(ctx).Then(ops...).Commit()
	if err == nil {
		stamp.AtRev("release-done", resp.Header.Revision)
	}
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The records' lease ran out (a holding longer than the history
		// span), and with it the whole transaction: the keys are still
		// there. A new lease for the completed records, and again.
		if lease = h.regrantHistory(ctx); lease != 0 {
			resp, err = h.client.Txn(ctx).Then(h.releaseOps(lease)...).Commit()
		}
	}
	if err == nil && lease != 0 && !anyApplied(resp) {
		return lease
	}
	return 0
}

// anyApplied says whether any of the transactions in resp (releaseOps)
// found its key still ours.
func anyApplied(resp *clientv3.TxnResponse) bool {
	for _, r := range resp.Responses {
		if r.GetResponseTxn().GetSucceeded() {
			return true
		}
	}
	return false
}

// dropEmptyHistoryLease revokes the records' lease if no key is on it: the
// lock was no longer ours to let go (an --unlock wrote the records on a
// lease of its own, or the key lapsed before the begun record was
// written), and the lease would stay, empty, for the history span. A
// begun record still on it, of a lock that lapsed, stays. Best effort;
// nothing for a lease 0.
func (h *Holder) dropEmptyHistoryLease(ctx context.Context, lease clientv3.LeaseID) {
	if lease == 0 {
		return
	}
	ttl, err := h.client.TimeToLive(ctx, lease, clientv3.WithAttachedKeys())
	if err == nil && ttl.TTL > 0 && len(ttl.Keys) == 0 {
		_, _ = h.client.Revoke(ctx, lease)
	}
}

// regrantHistory grants the records a new lease of the history span when
// theirs ran out, within half an RPC timeout: 0 if etcd grants none. It
// returns it, and leaves h.hist.lease as it was: beginHistory, which the
// release may have woken a moment ago, reads that without waiting for
// anything the release does after the grant.
func (h *Holder) regrantHistory(ctx context.Context) clientv3.LeaseID {
	gctx, cancel := h.historyWait(ctx)
	defer cancel()
	g, err := h.client.Grant(gctx, wholeSeconds(h.hist.span))
	if err != nil {
		return 0
	}
	return g.ID
}

// UnlockBy is who runs an --unlock, for the history record of the holding
// it ends, and how long etcd keeps that record (History; 0 writes none).
type UnlockBy struct {
	Info    Info
	History time.Duration
}

// unlockRecorder writes the record of the holding an unlock ends, in the
// transaction that deletes the holder's key, on a lease it grants once.
type unlockRecorder struct {
	client      *clientv3.Client
	realm, name string
	by          UnlockBy
	lease       clientv3.LeaseID
	maybeUsed   bool // a record on lease was, or may have been, written
}

// sent notes how a delete that carried the record ended: applied, or
// with no answer (it may have been). A lease etcd did not find may be the
// record's (a history span shorter than the unlock's tries): the next
// try grants another, and this one, if it holds nothing, goes.
func (u *unlockRecorder) sent(ctx context.Context, ok bool, err error) {
	switch {
	case u == nil || u.lease == 0:
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		u.dropUnused(ctx)
		u.lease, u.maybeUsed = 0, false
	case ok || err != nil:
		u.maybeUsed = true
	}
}

// dropUnused revokes the record's lease if no record was written on it,
// as far as etcd answered (the key went before the delete, say): else it
// would stay, empty, for the history span. Within ctx, best effort.
func (u *unlockRecorder) dropUnused(ctx context.Context) {
	if u == nil || u.lease == 0 || u.maybeUsed {
		return
	}
	_, _ = u.client.Revoke(ctx, u.lease)
}

// newUnlockRecorder is the recorder of an unlock of the lock name by the
// first of by; without one, it writes nothing.
func newUnlockRecorder(client *clientv3.Client, realm, name string, by []UnlockBy) *unlockRecorder {
	if len(by) == 0 || by[0].History <= 0 {
		return nil
	}
	return &unlockRecorder{client: client, realm: realm, name: name, by: by[0]}
}

// ops is the write of the record of the holder kv, ended by this unlock;
// none if the record's lease cannot be had (the unlock goes on without).
// guard, for the delete's transaction, holds while the record the holder
// began is as the write read it: one begun after the read makes the
// delete look again, not replace it unread.
func (u *unlockRecorder) ops(ctx context.Context, kv *mvccpb.KeyValue) (ops []clientv3.Op, guard []clientv3.Cmp) {
	if u == nil {
		return nil, nil
	}
	if u.lease == 0 {
		// A quarter of the time left at most, as keepBegun's read: an
		// answer that never comes leaves the delete its time.
		gctx, cancel := context.WithTimeout(ctx, timeLeft(ctx, 4*time.Second)/4)
		g, err := u.client.Grant(gctx, wholeSeconds(u.by.History))
		cancel()
		if err != nil {
			return nil, nil
		}
		u.lease = g.ID
	}
	r := Record{Kind: KindExclusive, FencingToken: kv.CreateRevision, Key: string(kv.Key),
		Released: now(), Outcome: EndUnlocked, UnlockedBy: &u.by.Info}
	if e := parseEntry(kv); e.Info != nil {
		r.Info, r.Acquired = *e.Info, e.Info.Since
		switch {
		case e.Info.Shared:
			r.Kind = KindShared
		case e.Info.Limit > 1:
			r.Kind = KindLimit
		}
	}
	key := HistoryKey(u.realm, u.name, kv.CreateRevision)
	if rev, ok := u.keepBegun(ctx, key, &r); ok {
		guard = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}
	}
	b, _ := json.Marshal(r)
	return []clientv3.Op{clientv3.OpPut(key, string(b), clientv3.WithLease(u.lease))}, guard
}

// deleteHolder deletes the holder kv (deleteHolder, with sp its lock's
// stopping prefix), with the record of the holding it ends written in the
// same transaction, if u writes records.
func (u *unlockRecorder) deleteHolder(ctx context.Context, client *clientv3.Client, sp string, kv *mvccpb.KeyValue) (ok, stopping bool, err error) {
	record, guard := u.ops(ctx, kv)
	ok, stopping, err = deleteHolder(ctx, client, sp, kv, guard, record...)
	u.sent(ctx, ok, err)
	return ok, stopping, err
}

// keepBegun carries over into r what only the holder knew, from the
// record it began at key, if any: the kind of holding (its key does not
// say that it is one of a set), the other locks of its set, and when it
// began to wait. A kind that is none of distlock's is not carried over.
// Best effort: without an answer, r stays as the key says; and it waits
// for one a quarter of the time ctx leaves at most, so that a read whose
// answer never comes leaves the unlock's delete its time. It returns the
// mod revision of the record it read (0: there was none) if etcd answered.
func (u *unlockRecorder) keepBegun(ctx context.Context, key string, r *Record) (rev int64, ok bool) {
	gctx, cancel := context.WithTimeout(ctx, timeLeft(ctx, 4*time.Second)/4)
	defer cancel()
	resp, err := u.client.Get(gctx, key)
	switch {
	case err != nil:
		return 0, false
	case len(resp.Kvs) != 1:
		return 0, true
	}
	rev = resp.Kvs[0].ModRevision
	var begun Record
	if json.Unmarshal(resp.Kvs[0].Value, &begun) != nil || begun.FencingToken != r.FencingToken {
		return rev, true
	}
	switch begun.Kind {
	case KindExclusive, KindShared, KindLimit, KindSet:
		r.Kind, r.Set = begun.Kind, begun.Set
	}
	r.Waiting = begun.Waiting
	return rev, true
}

// History reads the last count records of the lock name, newest first,
// in one request bounded by rpcTimeout. Keys under the history prefix
// that are not of a record's exact shape are passed over (so fewer may
// come back).
func History(ctx context.Context, client *clientv3.Client, realm, name string, count int, rpcTimeout time.Duration) ([]HistoryEntry, error) {
	hp := HistoryPrefix(realm, name)
	rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := client.Get(rctx, hp, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(count)))
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	for _, kv := range resp.Kvs {
		if e, ok := parseHistory(hp, kv); ok {
			out = append(out, e)
		}
	}
	return out, nil
}
