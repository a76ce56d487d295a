// Package lock is distlock's etcd lock recipe: it queues a waiter under the
// lock's prefix, waits for its turn by watching only its predecessor, holds
// the lock while proving its lease alive, and releases, detaches or inspects
// it.
//
// The layout is etcd's own (concurrency.Mutex, etcdctl lock): one key per
// holder or waiter, PREFIX + Escape(name) + "/" + lease ID in %x, the lowest
// create revision holds the lock. Where that recipe is weak this one is not:
// a holder is told when its key is deleted, and the lease deadline is counted
// from the last acknowledged send, not from the last reply.
package lock
