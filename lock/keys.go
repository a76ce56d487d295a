package lock

import (
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The key grammar. Every key distlock writes or trusts has one of these
// exact shapes, all under a realm that ends in "/":
//
//	realm + seg + "/" + ID                       a holder or waiter
//	realm + seg + "!stopping:" + REV + "-" + ID  a holder that --unlock removed
//	realm + seg + "!last-run"                    the last successful run
//
// where seg is Escape(name), ID a lease ID as etcd's recipe writes it
// (lower-case hex, no leading zero) and REV a create revision in 19
// digits. A key is trusted by its whole shape, never by where it starts:
// a realm may lie below a lock's prefix (the lock "staging" of realm
// /distlock/ has the prefix /distlock/staging/, where the realm
// /distlock/staging/ keeps its keys), and other tools write where they
// like. Since Escape writes neither "/" nor "!", no key of one shape in
// one realm has another shape, or this one, in another realm; every other
// key is foreign: never counted, waited for, deleted or read as a record.

// Prefix is the key prefix under which the lock named name lives in realm:
// realm + Escape(name) + "/". The realm is expected to end in "/".
func Prefix(realm, name string) string {
	return realm + Escape(name) + "/"
}

// queueKey is the key of the holder or waiter on lease id under pfx.
func queueKey(pfx string, id int64) string {
	return pfx + strconv.FormatInt(id, 16)
}

// leaseOf returns the lease that rest, a key's part after a lock's
// prefix, names if it is exactly a lease ID as etcd's recipe writes it:
// fmt's %x of a lease ID other than 0 (etcd grants positive ones; a
// client may choose a negative one, and the recipe writes "-" and hex).
func leaseOf(rest string) (int64, bool) {
	if rest == "" || len(rest) > len("-8000000000000000") {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 16, 64)
	return id, err == nil && id != 0 && strconv.FormatInt(id, 16) == rest
}

// inQueue reports whether key is a holder's or waiter's key under pfx.
func inQueue(pfx, key string) bool {
	rest, ok := strings.CutPrefix(key, pfx)
	if !ok {
		return false
	}
	_, ok = leaseOf(rest)
	return ok
}

// named reports whether a key's last part names lease: the key is on
// the lease it was created with (etcd's recipe and distlock name it so).
func named(key string, lease int64) bool {
	id, ok := leaseOf(key[strings.LastIndexByte(key, '/')+1:])
	return ok && id == lease
}

// sortQueue divides kvs, read under pfx, into the entries of holders and
// waiters and the foreign keys, each in the order of kvs.
func sortQueue(pfx string, kvs []*mvccpb.KeyValue) (entries, foreign []Entry) {
	for _, kv := range kvs {
		if inQueue(pfx, string(kv.Key)) {
			entries = append(entries, parseEntry(kv))
		} else {
			foreign = append(foreign, parseEntry(kv))
		}
	}
	return entries, foreign
}

// onlyQueue is kvs, read under pfx, without the foreign keys.
func onlyQueue(pfx string, kvs []*mvccpb.KeyValue) []*mvccpb.KeyValue {
	if allInQueue(pfx, kvs) {
		return kvs
	}
	var own []*mvccpb.KeyValue
	for _, kv := range kvs {
		if inQueue(pfx, string(kv.Key)) {
			own = append(own, kv)
		}
	}
	return own
}

// allInQueue reports whether every key of kvs is a holder's or waiter's
// under pfx.
func allInQueue(pfx string, kvs []*mvccpb.KeyValue) bool {
	for _, kv := range kvs {
		if !inQueue(pfx, string(kv.Key)) {
			return false
		}
	}
	return true
}

// EtcdctlLock is the name that etcd's recipe (etcdctl lock NAME) gives
// the lock a foreign key belongs to, if its last part is a lease ID: the
// key without it and its "/". A key under PREFIX+"foo/" named
// PREFIX+"foo//694d" belongs to etcdctl lock PREFIX+"foo/", a lock of its
// own. ok is false if the key is of no such lock.
func EtcdctlLock(key string) (name string, ok bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return "", false
	}
	if _, ok := leaseOf(key[i+1:]); !ok {
		return "", false
	}
	return key[:i], true
}

// A distlock holder whose key --unlock deleted still runs its command
// until it has stopped it, and only then revokes its lease. So that nobody
// takes its place before that, the key is deleted in one transaction with
// a stopping record: the key's value, on the key's lease, which etcd
// deletes when that holder releases or its lease expires. Every waiter
// counts each record as a slot taken. The record is named after the
// deleted key's create revision (zero-padded, so that the names sort as
// the numbers do), then its lease: a waiter counts only the records of
// keys that were ahead of its own, one key range, so it never waits for a
// key that queued after it; and whoever must free a dead machine's lock
// at once sees which lease to revoke.
const stoppingSuffix = "!stopping:"

// revDigits is how many digits a stopping record gives a create revision.
const revDigits = 19

// StoppingPrefix is where the stopping records of the lock named name live.
func StoppingPrefix(realm, name string) string {
	return realm + Escape(name) + stoppingSuffix
}

// stoppingKey is the record of the deleted key created at rev on lease.
func stoppingKey(sp string, rev, lease int64) string {
	return fmt.Sprintf("%s-%x", stoppingBefore(sp, rev), lease)
}

// stoppingBefore is the end (exclusive) of the range of records of keys
// created before rev.
func stoppingBefore(sp string, rev int64) string {
	return fmt.Sprintf("%s%0*d", sp, revDigits, rev)
}

// stoppingOf returns the create revision of the key that the record kv,
// read under the stopping prefix sp, stands for, if kv has a record's
// exact shape: REV "-" ID, on the lease ID names. Only a lease can end a
// record, so one on another lease, or none, is not distlock's.
func stoppingOf(sp string, kv *mvccpb.KeyValue) (int64, bool) {
	key := string(kv.Key)
	if !isStoppingKey(sp, key) {
		return 0, false
	}
	digits, id := key[len(sp):len(sp)+revDigits], key[len(sp)+revDigits+1:]
	rev, err := strconv.ParseInt(digits, 10, 64)
	if lease, _ := leaseOf(id); err != nil || lease != kv.Lease {
		return 0, false
	}
	return rev, true
}

// The record of a lock's last successful run lives beside the lock's
// queue, never in it: etcd's recipe takes every key under Prefix(realm,
// name) for a holder or a waiter.
const lastRunSuffix = "!last-run"

// LastRunKey is the key of the record of the last successful run of the
// lock named name in realm.
func LastRunKey(realm, name string) string {
	return realm + Escape(name) + lastRunSuffix
}

// isStoppingKey reports whether key has the shape of a stopping record
// under sp, whatever lease it is on.
func isStoppingKey(sp, key string) bool {
	name, ok := strings.CutPrefix(key, sp)
	if !ok {
		return false
	}
	if len(name) < revDigits+2 || name[revDigits] != '-' || strings.Trim(name[:revDigits], "0123456789") != "" {
		return false
	}
	_, ok = leaseOf(name[revDigits+1:])
	return ok
}
