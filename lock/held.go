package lock

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// HeldKey is a key a holder was given, with its fencing token.
type HeldKey struct {
	Name  string // the lock's name
	Key   string
	Token int64 // the key's create revision when it was taken
}

// NotHeldError says which key is no longer held, and why.
type NotHeldError struct {
	Name string
	Why  string
}

func (e *NotHeldError) Error() string { return fmt.Sprintf("lock %q: %s", e.Name, e.Why) }

// StillHeld reads every key of keys in one linearizable transaction: nil
// if each is still there with its fencing token and no stopping record
// names it, a *NotHeldError for the first that is not, or etcd's error.
// A key is trusted by its shape: one that is not a holder's key under its
// lock's prefix in realm is not held.
func StillHeld(ctx context.Context, client *clientv3.Client, realm string, keys []HeldKey) error {
	var ops []clientv3.Op
	for _, k := range keys {
		pfx := Prefix(realm, k.Name)
		if !inQueue(pfx, k.Key) || k.Token <= 0 {
			return &NotHeldError{k.Name, "not a holder's key of this lock: " + k.Key}
		}
		lease, _ := leaseOf(strings.TrimPrefix(k.Key, pfx))
		record := stoppingKey(StoppingPrefix(realm, k.Name), k.Token, lease)
		ops = append(ops, clientv3.OpGet(k.Key), clientv3.OpGet(record, clientv3.WithCountOnly()))
	}
	resp, err := client.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return err
	}
	for i, k := range keys {
		kvs := resp.Responses[2*i].GetResponseRange().Kvs
		stopping := resp.Responses[2*i+1].GetResponseRange().Count > 0
		switch {
		case stopping:
			return &NotHeldError{k.Name, "it was unlocked from elsewhere (a stopping record names the key)"}
		case len(kvs) == 0:
			return &NotHeldError{k.Name, "its key is gone"}
		case kvs[0].CreateRevision != k.Token:
			return &NotHeldError{k.Name, fmt.Sprintf("its key was taken again (fencing token %d, not %d)", kvs[0].CreateRevision, k.Token)}
		}
	}
	return nil
}
