package lock

import (
	"context"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Entries lists the keys of a lock, holder first, then the waiters in the
// order they will get it.
func Entries(ctx context.Context, client *clientv3.Client, realm, name string) ([]Entry, error) {
	resp, err := client.Get(ctx, Prefix(realm, name),
		clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	entries := make([]Entry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		entries = append(entries, parseEntry(kv))
	}
	return entries, nil
}

// Unlock deletes the key of whoever holds the lock, in whichever mode it was
// taken. It returns the holder it removed, or nil if the lock was free.
func Unlock(ctx context.Context, client *clientv3.Client, realm, name string) (*Entry, error) {
	pfx := Prefix(realm, name)
	resp, err := client.Get(ctx, pfx, clientv3.WithFirstCreate()...)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	kv := resp.Kvs[0]
	holder := parseEntry(kv)
	// Delete exactly the holder we saw. If it released the lock in the
	// meantime, the next one in the queue is left alone: the lock we were
	// asked to free is free.
	_, err = client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(holder.Key), "=", holder.CreateRevision)).
		Then(clientv3.OpDelete(holder.Key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("delete %s: %w", holder.Key, err)
	}
	return &holder, nil
}

// KeyOf turns what --holder names, a key as --status shows it or its last
// part (the lease ID in hex), into a key of lock name, or says why not.
func KeyOf(realm, name, key string) (string, error) {
	pfx := Prefix(realm, name)
	if !strings.Contains(key, "/") {
		key = pfx + key
	}
	if rest, ok := strings.CutPrefix(key, pfx); !ok || rest == "" || strings.Contains(rest, "/") {
		return "", fmt.Errorf("%s is not a key of lock %q (they start with %s)", key, name, pfx)
	}
	return key, nil
}

// UnlockKey deletes one key of a lock, a holder's or a waiter's, and
// returns what it held, or nil if there was no such key.
func UnlockKey(ctx context.Context, client *clientv3.Client, key string) (*Entry, error) {
	resp, err := client.Delete(ctx, key, clientv3.WithPrevKV())
	if err != nil {
		return nil, fmt.Errorf("delete %s: %w", key, err)
	}
	if len(resp.PrevKvs) == 0 {
		return nil, nil
	}
	kv := resp.PrevKvs[0]
	e := parseEntry(kv)
	return &e, nil
}

// Lock is one lock found in a realm, with its entries, holder first.
type Lock struct {
	Name    string
	Entries []Entry
}

// List finds every lock in the realm that has a holder, sorted by name.
func List(ctx context.Context, client *clientv3.Client, realm string) ([]Lock, error) {
	resp, err := client.Get(ctx, realm, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	byName := map[string]*Lock{}
	var names []string
	for _, kv := range resp.Kvs {
		seg, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), realm), "/")
		if !ok {
			continue // not a lock's key
		}
		name, err := Unescape(seg)
		if err != nil {
			name = seg
		}
		l := byName[name]
		if l == nil {
			l = &Lock{Name: name}
			byName[name] = l
			names = append(names, name)
		}
		l.Entries = append(l.Entries, parseEntry(kv))
	}
	sort.Strings(names)
	locks := make([]Lock, 0, len(names))
	for _, n := range names {
		locks = append(locks, *byName[n])
	}
	return locks, nil
}
