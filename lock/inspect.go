package lock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/untrusted"
)

// Entries lists the holders and waiters of a lock, holder first, then the
// waiters in the order they will get it. Foreign keys under its prefix
// are left out.
func Entries(ctx context.Context, client *clientv3.Client, realm, name string) ([]Entry, error) {
	pfx := Prefix(realm, name)
	resp, err := client.Get(ctx, pfx,
		clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	entries, _ := sortQueue(pfx, resp.Kvs)
	return entries, nil
}

// parseStopping returns the records among kvs (read under a stopping
// prefix sp), oldest key first, each with the create revision of the key
// it was. A key there that is not on the lease its name says, or has
// another name, is not distlock's and is passed by: only a lease can end
// a record. So is one whose value is not distlock's: only a distlock
// holder stops when --unlock deletes its key and then lets its lease go
// (a record that an earlier distlock left for a holder of etcd's recipe
// would otherwise last as long as that holder's session).
func parseStopping(sp string, kvs []*mvccpb.KeyValue) []Entry {
	var recs []Entry
	for _, kv := range kvs {
		rev, ok := stoppingOf(sp, kv)
		if !ok {
			continue
		}
		e := parseEntry(kv)
		if e.Info == nil {
			continue
		}
		e.CreateRevision, e.Stopping = rev, true
		recs = append(recs, e)
	}
	return recs
}

// opStopping reads the stopping records under sp.
func opStopping(sp string) clientv3.Op { return clientv3.OpGet(sp, clientv3.WithPrefix()) }

// opQueue reads a lock's keys under pfx, oldest first.
func opQueue(pfx string) clientv3.Op {
	return clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
}

// Queue is a lock as one read found it.
type Queue struct {
	// Entries are the holders and waiters, oldest first.
	Entries []Entry
	// Stopping are the records of holders that --unlock removed and that
	// are still stopping their commands.
	Stopping []Entry
	// Foreign are the other keys under the lock's prefix, oldest first:
	// another realm's, another tool's, or written by hand. They take no
	// part in the lock.
	Foreign []Entry
}

// ReadQueue reads a lock's keys and its stopping records, as of one
// revision.
func ReadQueue(ctx context.Context, client *clientv3.Client, realm, name string) (Queue, error) {
	pfx, sp := Prefix(realm, name), StoppingPrefix(realm, name)
	resp, err := client.Txn(ctx).Then(opQueue(pfx), opStopping(sp)).Commit()
	if err != nil {
		return Queue{}, err
	}
	var q Queue
	q.Entries, q.Foreign = sortQueue(pfx, resp.Responses[0].GetResponseRange().Kvs)
	q.Stopping = parseStopping(sp, resp.Responses[1].GetResponseRange().Kvs)
	return q, nil
}

// Holders is every holder of a lock and its waiters, from its entries
// and its stopping records (see Split): the holders being stopped after
// --unlock are among the holders, and the holders are oldest first, by
// the create revision of their keys.
func Holders(entries, stopping []Entry) (holders, waiters []Entry) {
	holding, waiters := Split(entries, stopping)
	holders = slices.Concat(stopping, holding)
	slices.SortStableFunc(holders, func(a, b Entry) int { return cmp.Compare(a.CreateRevision, b.CreateRevision) })
	return holders, waiters
}

// Split divides a lock's entries, oldest first, into those that hold it
// and those that wait, given its stopping records: a key holds if fewer
// than the lock's limit stand before it, counting the keys created before
// it and the records of such keys. The records themselves hold too, and
// are in neither list.
func Split(entries, stopping []Entry) (holders, waiters []Entry) {
	n := Limit(append(entries[:len(entries):len(entries)], stopping...))
	i := 0
	for i < len(entries) && canHold(entries[i], entries[:i], stopping, n) {
		i++
	}
	return entries[:i], entries[i:]
}

// countBefore counts the records of keys created before rev.
func countBefore(stopping []Entry, rev int64) int {
	n := 0
	for _, r := range stopping {
		if r.CreateRevision < rev {
			n++
		}
	}
	return n
}

// recordsBefore is the records of keys created before rev.
func recordsBefore(rev int64, stopping []Entry) []Entry {
	var before []Entry
	for _, r := range stopping {
		if r.CreateRevision < rev {
			before = append(before, r)
		}
	}
	return before
}

// Unlocked is what Unlock or UnlockKey did.
type Unlocked struct {
	// Removed is the key that was deleted, or that went by itself while
	// it was being deleted; nil if there was none.
	Removed *Entry
	// Stopping says that Removed belonged to a live distlock holder, so a
	// stopping record keeps its place taken until it has stopped its
	// command and released its lease, or its lease (Removed.Lease) has
	// expired.
	Stopping bool
	// Pending, when Unlock found no holder to remove, are the holders
	// removed before and still stopping: the lock is as good as unlocked.
	Pending []Entry
}

// Unlock deletes the key of the oldest holder of the lock, in whichever
// mode it was taken. A distlock holder that is still on the lease its key
// is named after is a live process that may be running a command: its
// key makes way for a stopping record, so the next holder starts only
// once that holder has stopped. If every slot of the lock is taken by
// such records already, nothing is deleted (Pending): the next waiter in
// line is nobody's to remove. A key of etcd's own recipe (etcdctl lock)
// is just deleted: its holder never learns of it and never lets its
// lease go, so a record would only keep the lock taken for as long as
// that holder's session lives.
func Unlock(ctx context.Context, client *clientv3.Client, realm, name string, by ...UnlockBy) (*Unlocked, error) {
	return unlock(ctx, client, realm, name, "", by)
}

// KeyOf turns what --holder names, a key as --status shows it or its last
// part (the lease ID in hex), into a key of lock name, or says why not:
// a holder's or waiter's key, or the stopping record of a holder that
// --unlock removed already.
func KeyOf(realm, name, key string) (string, error) {
	pfx, sp := Prefix(realm, name), StoppingPrefix(realm, name)
	if !strings.Contains(key, "/") {
		key = pfx + key
	}
	if inQueue(pfx, key) || isStoppingKey(sp, key) {
		return key, nil
	}
	shown := untrusted.Word(key, untrusted.MaxKey)
	if other, ok := EtcdctlLock(key); ok && strings.HasPrefix(key, pfx) {
		return "", fmt.Errorf("%s is not a key of lock %q: it belongs to etcdctl lock %s, a lock of its own", shown, name, untrusted.Quote(other, untrusted.MaxKey))
	}
	return "", fmt.Errorf("%s is not a key of lock %q: its keys are %s followed by a lease ID in lower-case hex", shown, name, untrusted.Word(pfx, untrusted.MaxKey))
}

// UnlockKey deletes one key of the lock, a holder's or a waiter's (see
// KeyOf). A holder's makes way for a stopping record, as with Unlock; a
// waiter's simply goes, and the waiter gives up when its turn comes
// (ErrPlaceLost). Removed is nil if there was no such key.
func UnlockKey(ctx context.Context, client *clientv3.Client, realm, name, key string, by ...UnlockBy) (*Unlocked, error) {
	return unlock(ctx, client, realm, name, key, by)
}

// maxUnlockTries bounds how often unlock looks again at a lock whose keys
// changed under it. Each try is lost only to a change that cannot repeat
// for long: the key moved to another lease (at most twice), or a key
// ahead of a waiter left.
const maxUnlockTries = 20

// unlock deletes key, or the oldest holder if key is "". It reads the lock
// and its records, decides whether the key holds (Split's rule), and
// deletes it in a transaction that checks that what it decided on is
// still so; if not, it reads again.
func unlock(ctx context.Context, client *clientv3.Client, realm, name, key string, by []UnlockBy) (*Unlocked, error) {
	pfx, sp := Prefix(realm, name), StoppingPrefix(realm, name)
	rec := newUnlockRecorder(client, realm, name, by)
	defer func() { rec.dropUnused(ctx) }()
	var target *Entry                      // the key to delete, once chosen
	budget := timeLeft(ctx, 5*time.Second) // for settling a lost delete: as long as the caller gave us
	var lost *lostDelete
	defer func() { lost.end() }()
	for try := 0; try < maxUnlockTries; try++ {
		resp, err := client.Txn(lost.bound(ctx)).Then(opQueue(pfx), opStopping(sp)).Commit()
		if err != nil && lost.retry() {
			continue
		}
		if err != nil {
			return nil, lost.wrap(err)
		}
		kvs := onlyQueue(pfx, resp.Responses[0].GetResponseRange().Kvs)
		recs := parseStopping(sp, resp.Responses[1].GetResponseRange().Kvs)
		if isStoppingKey(sp, key) {
			return stoppingAlready(recs, key), nil
		}
		entries := parseEntries(kvs)
		i := find(entries, key, target)
		if i < 0 {
			return notThere(target, key, recs), nil
		}
		kv, e := kvs[i], entries[i]
		holders, _ := Split(entries, recs)
		if i >= len(holders) && key == "" && target == nil {
			// The oldest key waits for holders being stopped.
			return &Unlocked{Pending: recs}, nil
		}
		target = &e
		var ok, stopping bool
		unlockStep("delete")
		if i < len(holders) {
			ok, stopping, err = rec.deleteHolder(lost.bound(ctx), client, sp, kv)
		} else {
			ok, err = deleteWaiter(lost.bound(ctx), client, kv, entries[:i], recs, Limit(append(entries[:len(entries):len(entries)], recs...)))
		}
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			continue // the lease went meanwhile, and the key with it or off it: look again
		case err != nil && lost == nil:
			// No answer, but etcd may have applied the delete: an error
			// now would have the operator unlock again, and free the
			// next holder. Look again, on time of our own. (A refusal,
			// such as no permission, comes again, and costs only time.)
			lost = settle(ctx, budget, fmt.Errorf("delete %s: %w", untrusted.Word(e.Key, untrusted.MaxKey), err))
			continue
		case err != nil:
			return nil, lost.wrap(err)
		case ok:
			e.Stopping = stopping
			return &Unlocked{Removed: &e, Stopping: stopping}, nil
		}
	}
	return nil, lost.gaveUp(fmt.Errorf("delete %s: lock %q kept changing while it was being unlocked", untrusted.Word(target.Key, untrusted.MaxKey), name))
}

// parseEntries is the Entry of each of kvs.
func parseEntries(kvs []*mvccpb.KeyValue) []Entry {
	entries := make([]Entry, 0, len(kvs))
	for _, kv := range kvs {
		entries = append(entries, parseEntry(kv))
	}
	return entries
}

// find is the index among entries of the key to delete: the one chosen
// before (target: the same key, created at the same revision), else key,
// else the oldest; -1 if there is none.
func find(entries []Entry, key string, target *Entry) int {
	for i, e := range entries {
		switch {
		case target != nil:
			if e.Key == target.Key && e.CreateRevision == target.CreateRevision {
				return i
			}
		case key == "" || e.Key == key:
			return i
		}
	}
	return -1
}

// notThere is what unlock comes to when find finds nothing.
func notThere(target *Entry, key string, recs []Entry) *Unlocked {
	switch {
	case target != nil:
		// It went while we were at it (released, expired, deleted by
		// our own delete whose answer was lost, or unlocked by someone
		// else, who may have left a record): the lock we were asked to
		// free is free of it, and the next one in the queue is left
		// alone.
		for _, r := range recs {
			if r.CreateRevision == target.CreateRevision {
				target.Stopping = true
			}
		}
		return &Unlocked{Removed: target, Stopping: target.Stopping}
	case key != "":
		return &Unlocked{}
	}
	return &Unlocked{Pending: recs} // free, or only stopping
}

// unlockStep is a seam for tests: unlock calls it with "delete" before
// each delete, and with "settle" when one went unanswered.
var unlockStep = func(step string) {}

// lostDelete is an unlock whose delete went unanswered: it looks again,
// with time of its own, to learn whether the key went. On a nil one, its
// methods leave unlock as it is.
type lostDelete struct {
	err    error // the delete's, with the key
	ctx    context.Context
	cancel context.CancelFunc
	wait   backoff
}

// timeLeft is how long ctx has left, or def if it has no deadline.
func timeLeft(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return def
}

// settle starts looking again after err, for budget.
func settle(ctx context.Context, budget time.Duration, err error) *lostDelete {
	unlockStep("settle")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	return &lostDelete{err: err, ctx: sctx, cancel: cancel}
}

// bound is the context of unlock's next call to etcd.
func (l *lostDelete) bound(ctx context.Context) context.Context {
	if l == nil {
		return ctx
	}
	return l.ctx
}

// retry reports, after a read failed, whether to read again: while
// settling, as long as its time lasts.
func (l *lostDelete) retry() bool { return l != nil && l.wait.wait(l.ctx) }

// wrap is the error unlock returns: while settling, the lost delete's,
// what went wrong after it, and that it may have been applied.
func (l *lostDelete) wrap(err error) error {
	if l == nil {
		return err
	}
	return fmt.Errorf("%w (then: %v); etcd may have deleted it all the same: see --status before unlocking again", l.err, err)
}

// gaveUp is the error of an unlock that ran out of tries.
func (l *lostDelete) gaveUp(err error) error {
	if l == nil {
		return fmt.Errorf("%w; try again", err)
	}
	return l.wrap(err)
}

// end lets the settling time go.
func (l *lostDelete) end() {
	if l != nil {
		l.cancel()
	}
}

// stoppingAlready is what unlocking key, the stopping record of a holder
// that --unlock removed before, comes to: nothing more to do, and the
// lock is as good as unlocked if the record is still there.
func stoppingAlready(recs []Entry, key string) *Unlocked {
	for _, r := range recs {
		if r.Key == key {
			return &Unlocked{Pending: []Entry{r}}
		}
	}
	return &Unlocked{}
}

// deleteHolder deletes a holder's key kv, as long as it is the same key
// (create revision) on the same lease. If that lease is the one the key
// is named after and the value is distlock's, a live distlock keeps it,
// one that stops its command when it sees its key go and only then
// revokes the lease: the stopping record goes on that lease in the same
// transaction. A key off its lease (--lock detached it, --min-hold moved
// it) has no process behind it, nothing to stop; a key of etcd's recipe
// has a process that never hears of the deletion and would keep a record
// for as long as its session lives, stopping nothing. also go in the same
// transaction (the holding's history record), as long as guard holds too.
// ok is false if the key, or what guard compares, changed: look again.
func deleteHolder(ctx context.Context, client *clientv3.Client, sp string, kv *mvccpb.KeyValue, guard []clientv3.Cmp, also ...clientv3.Op) (ok, stopping bool, err error) {
	key := string(kv.Key)
	ops := append([]clientv3.Op{clientv3.OpDelete(key)}, also...)
	stopping = named(key, kv.Lease) && parseEntry(kv).Info != nil
	if stopping {
		ops = append(ops, clientv3.OpPut(stoppingKey(sp, kv.CreateRevision, kv.Lease), string(kv.Value), clientv3.WithLease(clientv3.LeaseID(kv.Lease))))
	}
	// A key still on its lease means the lease exists: etcd deletes a
	// lease's keys in the same step as the lease. So the put cannot fail
	// for want of the lease (if it does anyway, the caller looks again).
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", kv.CreateRevision),
		clientv3.Compare(clientv3.LeaseValue(key), "=", kv.Lease)}, guard...)
	resp, err := client.Txn(ctx).
		If(cmps...).
		Then(ops...).
		Commit()
	if err != nil {
		return false, false, err
	}
	return resp.Succeeded, stopping, nil
}

// deleteWaiter deletes the key kv of a waiter, which has no command to
// stop, without a record, as long as it still waits: as long as limit of
// what stands before it are all still there. Those are the keys just
// ahead of it, nearest first, then the records of keys created before it:
// the holders at the head of the queue come and go the most, and need not
// be looked at while limit keys behind them stand before kv. ok is false
// if not: look again. (A Txn has room for so many compares; past
// maxWaiterCompares, a waiter that takes the lock in the instant of its
// deletion stops without a record.)
func deleteWaiter(ctx context.Context, client *clientv3.Client, kv *mvccpb.KeyValue, ahead, recs []Entry, limit int) (ok bool, err error) {
	key := string(kv.Key)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", kv.CreateRevision)}
	if parseEntry(kv).shared() {
		// A shared waiter waits as long as the newest exclusive key
		// ahead of it, or else an exclusive record, is there.
		limit = 1
		if x := lastExclusive(ahead); x != nil {
			ahead = []Entry{*x}
		} else {
			ahead, recs = nil, exclusiveRecords(kv.CreateRevision, recs)
		}
	}
	for i := len(ahead) - 1; i >= 0 && len(cmps) <= limit; i-- {
		e := ahead[i]
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(e.Key), "=", e.CreateRevision))
	}
	for _, r := range recs {
		if r.CreateRevision < kv.CreateRevision {
			// A record's name is never used again: existing is enough.
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(r.Key), "!=", 0))
		}
	}
	cmps = cmps[:min(len(cmps), limit+1, maxWaiterCompares)]
	resp, err := client.Txn(ctx).If(cmps...).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// maxWaiterCompares keeps deleteWaiter's Txn well below etcd's default
// limit of 128 operations.
const maxWaiterCompares = 64

// Lock is one lock found in a realm, with its entries, holder first, and
// its stopping records.
type Lock struct {
	Name     string
	Entries  []Entry
	Stopping []Entry
	// Foreign says that the keys' segment is not one that Escape makes
	// (etcdctl lock on a name of its own under the realm): Name is the
	// segment as found, which may read like another lock's name.
	Foreign bool
	seg     string // the name as it is escaped in keys
}

// Segment is the lock's name as its keys spell it (Escape(Name) for a
// lock that is not Foreign): two names that print alike differ here.
func (l Lock) Segment() string { return l.seg }

// List calls found with every lock in the realm that is taken, by a holder
// or by a holder that --unlock removed and that is still stopping. It reads
// the realm in pages of at most pageSize keys, each request bounded by
// rpcTimeout, all as of the revision of the first page, so that what it
// finds is one snapshot however many keys there are; and it hands on each
// lock as soon as its last key has been read, so that only the lock at
// hand (and the stopping records of locks whose keys come later) is held
// in memory. The locks come in the order of their keys: by escaped name,
// each followed by "/" (so "a-b" comes before "a").
func List(ctx context.Context, client *clientv3.Client, realm string, pageSize int, rpcTimeout time.Duration, found func(Lock)) error {
	ls := &lister{realm: realm, found: found}
	if _, err := readPaged(ctx, client, realm, pageSize, rpcTimeout, ls.add); err != nil {
		return err
	}
	for len(ls.open) > 0 {
		ls.closeLast()
	}
	return nil
}

// readPaged hands each key under prefix to each, in key order, read in
// pages of at most pageSize keys, each request bounded by rpcTimeout, all
// as of the revision of the first page, which it returns.
func readPaged(ctx context.Context, client *clientv3.Client, prefix string, pageSize int, rpcTimeout time.Duration, each func(*mvccpb.KeyValue)) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from, rev := prefix, int64(0)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(max(pageSize, 1)))} // etcd takes a limit of 0 for none
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		pctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		resp, err := client.Get(pctx, from, opts...)
		cancel()
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			each(kv)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// lister sorts a realm's keys, read in etcd's order, into locks. A lock's
// keys are realm+seg+"/...", all together in that order. Its stopping
// records, realm+seg+"!stopping:...", come before them, and between the
// two come only the keys of locks whose escaped names start with seg and
// go on with a byte below "/" ("%", "-", "."): open is that nest of locks
// whose keys are still being read, innermost last.
type lister struct {
	realm string
	found func(Lock)
	open  []*Lock
}

// add takes the next key of the realm.
func (ls *lister) add(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	for len(ls.open) > 0 && key >= ls.realm+ls.open[len(ls.open)-1].seg+"0" { // "0" follows "/"
		ls.closeLast() // key comes after every key of it
	}
	rest := strings.TrimPrefix(key, ls.realm)
	if seg, _, ok := strings.Cut(rest, "/"); ok {
		// An empty segment is no lock of this realm: etcdctl lock
		// REALM, with its trailing slash, writes there.
		if seg != "" && inQueue(ls.realm+seg+"/", key) {
			l := ls.lockOf(seg)
			l.Entries = append(l.Entries, parseEntry(kv))
		}
		return // else foreign: another realm's below, another tool's
	}
	if seg, _, ok := strings.Cut(rest, stoppingSuffix); ok && seg != "" {
		if recs := parseStopping(ls.realm+seg+stoppingSuffix, []*mvccpb.KeyValue{kv}); len(recs) > 0 {
			l := ls.lockOf(seg)
			l.Stopping = append(l.Stopping, recs...) // oldest first, as the names sort
		}
	}
	// anything else is not a lock's key (the last-run record)
}

// closeLast hands on the innermost open lock, if it is taken.
func (ls *lister) closeLast() {
	l := ls.open[len(ls.open)-1]
	ls.open = ls.open[:len(ls.open)-1]
	slices.SortStableFunc(l.Entries, func(a, b Entry) int { return cmp.Compare(a.CreateRevision, b.CreateRevision) })
	if len(l.Entries) > 0 || len(l.Stopping) > 0 {
		ls.found(*l)
	}
}

// lockOf is the open lock of segment seg, opened now if need be.
func (ls *lister) lockOf(seg string) *Lock {
	for i := len(ls.open) - 1; i >= 0; i-- {
		if ls.open[i].seg == seg {
			return ls.open[i]
		}
	}
	l := &Lock{seg: seg}
	if name, err := Unescape(seg); err == nil {
		l.Name = name
	} else {
		l.Name, l.Foreign = seg, true
	}
	ls.open = append(ls.open, l)
	return l
}
