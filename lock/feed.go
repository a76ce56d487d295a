package lock

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A feed (--status --follow, --list --follow) keeps a model of one lock, or
// of every lock of a realm, from a read and the watch events after it, and
// says what each revision changed. Only keys of the grammar's exact shapes
// count (see keys.go); whatever else the watched range holds, another
// realm's keys among it, is passed by.

// Kinds of Change.
const (
	ChangeQueued   = "queued"   // a waiter's key appeared
	ChangeAcquired = "acquired" // a key came to hold the lock
	ChangeReleased = EndReleased
	ChangeUnlocked = EndUnlocked
	// ChangeExpired: a holder's key went without a history record
	// completed in the same transaction: its lease ran out (or someone
	// deleted it by hand).
	ChangeExpired  = "expired"
	ChangeLeft     = "left"     // a waiter's key went before it held the lock
	ChangeStopping = "stopping" // --unlock left a stopping record
	ChangeStopped  = "stopped"  // a stopping record went: its holder let go
)

// Change is one thing that happened to a lock, as a feed tells it.
type Change struct {
	Kind     string
	Name     string // the lock's name; its segment if Escape makes no such segment
	Entry    Entry  // the key (or stopping record) it is about
	Position int    // ChangeQueued: its place in the line, 1 first
	// UnlockedBy is who ran the --unlock, if its history record says.
	UnlockedBy *Info
	Revision   int64
}

// Feed is the model of what a feed follows.
type Feed struct {
	realm string
	seg   string // "": every lock of the realm
	locks map[string]*fedLock
}

// fedLock is one lock's keys and stopping records, by key.
type fedLock struct {
	entries, stopping map[string]Entry
}

// NewFeed follows the lock named name of realm, or with name "" every
// lock of the realm.
func NewFeed(realm, name string) *Feed {
	f := &Feed{realm: realm, locks: map[string]*fedLock{}}
	if name != "" {
		f.seg = Escape(name)
	}
	return f
}

// Range is the start of the key range a feed reads and watches: every key
// with it as prefix.
func (f *Feed) Range() string { return f.realm + f.seg }

// Kinds of key, as keyKind says.
const (
	keyOther = iota
	keyQueue
	keyStopping
	keyHistory
)

// keyKind says which of the shapes a feed heeds key has, and whose lock's
// segment it is under.
func (f *Feed) keyKind(key string) (seg string, kind int) {
	rest, ok := strings.CutPrefix(key, f.realm)
	i := strings.IndexAny(rest, "/!")
	if !ok || i <= 0 || (f.seg != "" && rest[:i] != f.seg) {
		return "", keyOther
	}
	seg, base := rest[:i], f.realm+rest[:i]
	switch {
	case inQueue(base+"/", key):
		return seg, keyQueue
	case isStoppingKey(base+stoppingSuffix, key):
		return seg, keyStopping
	}
	if _, ok := historyToken(base+historySuffix, key); ok {
		return seg, keyHistory
	}
	return "", keyOther
}

// Load makes the model what kvs, a read of the feed's Range, say.
func (f *Feed) Load(kvs []*mvccpb.KeyValue) {
	f.locks = map[string]*fedLock{}
	for _, kv := range kvs {
		f.put(kv)
	}
}

// lock is the model of the lock whose segment is seg.
func (f *Feed) lock(seg string) *fedLock {
	l := f.locks[seg]
	if l == nil {
		l = &fedLock{entries: map[string]Entry{}, stopping: map[string]Entry{}}
		f.locks[seg] = l
	}
	return l
}

// put takes kv into the model, and says which lock's and whether it is a
// key or record new to it.
func (f *Feed) put(kv *mvccpb.KeyValue) (seg string, added bool) {
	seg, kind := f.keyKind(string(kv.Key))
	switch kind {
	case keyQueue:
		l := f.lock(seg)
		_, had := l.entries[string(kv.Key)]
		l.entries[string(kv.Key)] = parseEntry(kv)
		return seg, !had
	case keyStopping:
		recs := parseStopping(f.realm+seg+stoppingSuffix, []*mvccpb.KeyValue{kv})
		if len(recs) == 0 {
			return "", false
		}
		l := f.lock(seg)
		_, had := l.stopping[string(kv.Key)]
		l.stopping[string(kv.Key)] = recs[0]
		return seg, !had
	}
	return "", false
}

// ordered is m's entries, oldest key first.
func ordered(m map[string]Entry) []Entry {
	es := slices.Collect(maps.Values(m))
	slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.CreateRevision, b.CreateRevision) })
	return es
}

// queue is the lock seg as a Queue.
func (l *fedLock) queue() Queue {
	return Queue{Entries: ordered(l.entries), Stopping: ordered(l.stopping)}
}

// Queue is the lock named name as the model has it (no foreign keys).
func (f *Feed) Queue(name string) Queue {
	if l := f.locks[Escape(name)]; l != nil {
		return l.queue()
	}
	return Queue{}
}

// ReadFeed reads the feed's range as of one revision, in pages of at most
// pageSize keys, each bounded by rpcTimeout, loads the model from it, and
// returns what it read and its revision: a watch goes on from the next.
func ReadFeed(ctx context.Context, client *clientv3.Client, f *Feed, pageSize int, rpcTimeout time.Duration) ([]*mvccpb.KeyValue, int64, error) {
	var kvs []*mvccpb.KeyValue
	rev, err := readPaged(ctx, client, f.Range(), pageSize, rpcTimeout, func(kv *mvccpb.KeyValue) { kvs = append(kvs, kv) })
	if err != nil {
		return nil, 0, err
	}
	f.Load(kvs)
	return kvs, rev, nil
}

// ListRead calls found with every lock that kvs, a read of a whole realm
// in key order, find taken, as List does.
func ListRead(realm string, kvs []*mvccpb.KeyValue, found func(Lock)) {
	ls := &lister{realm: realm, found: found}
	for _, kv := range kvs {
		ls.add(kv)
	}
	for len(ls.open) > 0 {
		ls.closeLast()
	}
}

// CompletedRecord reads kv, found under the history prefix hp (see
// HistoryPrefix), as a history record completed by a release or an
// --unlock: the fencing token of the holder it completes, and the record.
// ok is false for any other key or value, and for a record begun and not
// yet completed.
func CompletedRecord(hp string, kv *mvccpb.KeyValue) (token int64, r *Record, ok bool) {
	token, ok = historyToken(hp, string(kv.Key))
	if !ok {
		return 0, nil, false
	}
	var rec Record
	if json.Unmarshal(kv.Value, &rec) != nil || (rec.Outcome != EndReleased && rec.Outcome != EndUnlocked) {
		return 0, nil, false
	}
	return token, &rec, true
}

// Apply takes the events of a watch of the feed's range into the model and
// returns what they changed, revision by revision. The events are as a
// watch delivers them: in the order of their revisions.
func (f *Feed) Apply(events []*clientv3.Event) []Change {
	var changes []Change
	for len(events) > 0 {
		n, rev := 1, events[0].Kv.ModRevision
		for n < len(events) && events[n].Kv.ModRevision == rev {
			n++
		}
		changes = append(changes, f.applyRevision(rev, events[:n])...)
		events = events[n:]
	}
	return changes
}

// revision is what one revision did to one lock.
type revision struct {
	before                    map[string]bool // the keys that held the lock
	added, removed            []Entry
	newStopping, goneStopping []Entry
	completed                 map[int64]*Record // history records completed, by token
}

// applyRevision takes the events of revision rev into the model.
func (f *Feed) applyRevision(rev int64, events []*clientv3.Event) []Change {
	revs := map[string]*revision{}
	at := func(seg string) *revision {
		r := revs[seg]
		if r == nil {
			r = &revision{before: f.lock(seg).holding(), completed: map[int64]*Record{}}
			revs[seg] = r
		}
		return r
	}
	for _, ev := range events {
		key := string(ev.Kv.Key)
		seg, kind := f.keyKind(key)
		if kind == keyOther {
			continue
		}
		r := at(seg)
		l := f.lock(seg)
		switch {
		case kind == keyHistory && ev.Type == clientv3.EventTypePut:
			if token, rec, ok := CompletedRecord(f.realm+seg+historySuffix, ev.Kv); ok {
				r.completed[token] = rec
			}
		case kind == keyQueue && ev.Type == clientv3.EventTypeDelete:
			if e, had := l.entries[key]; had {
				r.removed = append(r.removed, e)
				delete(l.entries, key)
			}
		case kind == keyStopping && ev.Type == clientv3.EventTypeDelete:
			if e, had := l.stopping[key]; had {
				r.goneStopping = append(r.goneStopping, e)
				delete(l.stopping, key)
			}
		case kind == keyQueue:
			if _, added := f.put(ev.Kv); added {
				r.added = append(r.added, l.entries[key])
			}
		case kind == keyStopping:
			if _, added := f.put(ev.Kv); added {
				r.newStopping = append(r.newStopping, l.stopping[key])
			}
		}
	}
	var changes []Change
	for _, seg := range slices.Sorted(maps.Keys(revs)) {
		changes = append(changes, f.changes(seg, rev, revs[seg])...)
	}
	return changes
}

// holding is the set of keys that hold the lock (not its stopping
// records).
func (l *fedLock) holding() map[string]bool {
	holders, _ := Split(ordered(l.entries), ordered(l.stopping))
	set := map[string]bool{}
	for _, e := range holders {
		set[e.Key] = true
	}
	return set
}

// changes says what r did to the lock seg: the keys that went, the
// stopping records that came and went, the keys that came to hold it, and
// those that joined the line.
func (f *Feed) changes(seg string, rev int64, r *revision) []Change {
	name := f.nameOf(seg)
	var cs []Change
	add := func(kind string, e Entry) *Change {
		cs = append(cs, Change{Kind: kind, Name: name, Entry: e, Revision: rev})
		return &cs[len(cs)-1]
	}
	for _, e := range r.removed {
		if !r.before[e.Key] {
			add(ChangeLeft, e)
			continue
		}
		kind, by := ChangeExpired, (*Info)(nil)
		if rec := r.completed[e.CreateRevision]; rec != nil {
			kind, by = rec.Outcome, rec.UnlockedBy
		} else if slices.ContainsFunc(r.newStopping, func(s Entry) bool { return s.CreateRevision == e.CreateRevision }) {
			kind = ChangeUnlocked // by a distlock that keeps no history
		}
		add(kind, e).UnlockedBy = by
	}
	for _, e := range r.newStopping {
		add(ChangeStopping, e)
	}
	for _, e := range r.goneStopping {
		add(ChangeStopped, e)
	}
	l := f.lock(seg)
	holders, waiters := Split(ordered(l.entries), ordered(l.stopping))
	for _, e := range holders {
		if !r.before[e.Key] {
			add(ChangeAcquired, e)
		}
	}
	for i, e := range waiters {
		if slices.ContainsFunc(r.added, func(a Entry) bool { return a.Key == e.Key }) {
			add(ChangeQueued, e).Position = i + 1
		}
	}
	if len(l.entries) == 0 && len(l.stopping) == 0 {
		delete(f.locks, seg)
	}
	return cs
}

// nameOf is the name of the lock whose keys' segment is seg, or seg if
// Escape makes no such segment (etcdctl lock on a name of its own).
func (f *Feed) nameOf(seg string) string {
	if name, err := Unescape(seg); err == nil {
		return name
	}
	return seg
}
