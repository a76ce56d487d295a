// Command floor is the benchmarks' yardstick (see internal/bench): a lock
// holder that makes the fewest clientv3 calls a correct one needs, and does
// nothing else.
//
//	floor --endpoints URLS --prefix PREFIX --lock-name NAME -- COMMAND [ARG...]
//
// It grants a lease and keeps it alive, queues and reads the owner in one
// Txn, waits on its predecessor as etcd's concurrency.Mutex does, runs the
// command, and revokes the lease. It does not supervise: no process group,
// no kill when the lease is lost, no signal forwarding, no logging.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/stamp"
)

// leaseTTL is distlock's default --ttl, in seconds.
const leaseTTL = 30

func main() {
	stamp.At("main")
	status := run(os.Args[1:])
	stamp.Flush()
	os.Exit(status)
}

func run(args []string) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	endpoints := fs.String("endpoints", "http://127.0.0.1:2379", "etcd client URLs, comma-separated")
	prefix := fs.String("prefix", "/floor/", "the realm every key lives under")
	name := fs.String("lock-name", "", "the lock")
	if err := fs.Parse(args); err != nil {
		return 64
	}
	command := fs.Args() // flag stops at "--" and drops it
	if *name == "" || len(command) == 0 {
		fmt.Fprintln(os.Stderr, "usage: floor --endpoints URLS --prefix PREFIX --lock-name NAME -- COMMAND [ARG...]")
		return 64
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*endpoints, ","),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		return 69
	}
	defer client.Close()
	status, err := holdWhile(client, *prefix+*name+"/", command)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		return 69
	}
	return status
}

// holdWhile takes the lock under pfx, runs command while holding it, and
// releases it; it returns the command's exit status.
func holdWhile(client *clientv3.Client, pfx string, command []string) (int, error) {
	ctx := context.Background()
	grant, err := client.Grant(ctx, leaseTTL)
	stamp.At("granted")
	if err != nil {
		return 0, err
	}
	// Kept alive from the start, not from the acquisition: a waiter whose
	// lease expires loses its place in the line.
	kctx, stopKeepAlive := context.WithCancel(ctx)
	defer stopKeepAlive()
	acks, err := client.KeepAlive(kctx, grant.ID)
	if err != nil {
		return 0, err
	}
	go func() {
		for range acks {
		}
	}()

	key := fmt.Sprintf("%s%x", pfx, grant.ID)
	// One Txn queues us and reads the owner: the key with the lowest
	// create revision under the prefix.
	resp, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, "", clientv3.WithLease(grant.ID)),
			clientv3.OpGet(pfx, clientv3.WithFirstCreate()...)).
		Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("key %s of a fresh lease exists already", key)
	}
	myRev := resp.Header.Revision
	owner := resp.Responses[1].GetResponseRange().Kvs
	if len(owner) == 0 || owner[0].CreateRevision != myRev {
		if err := waitDeletes(ctx, client, pfx, myRev-1); err != nil {
			return 0, err
		}
	}
	stamp.At("turn")

	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	status := 0
	err = cmd.Start()
	stamp.At("forked")
	if err == nil {
		err = cmd.Wait()
		stamp.At("exit-seen")
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			status = 127
			fmt.Fprintln(os.Stderr, "floor:", err)
		} else if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = 128 + int(ws.Signal())
		} else {
			status = ee.ExitCode()
		}
	}

	stopKeepAlive()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stamp.At("revoke-sent")
	revoked, err := client.Revoke(rctx, grant.ID)
	if err != nil {
		return status, fmt.Errorf("revoke: %w", err)
	}
	stamp.AtRev("revoke-done", revoked.Header.Revision)
	return status, nil
}

// waitDeletes waits until every key under pfx created at or before
// maxCreateRev is gone, watching only the youngest of them at a time:
// etcd's own recipe (concurrency.waitDeletes).
func waitDeletes(ctx context.Context, client *clientv3.Client, pfx string, maxCreateRev int64) error {
	opts := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(maxCreateRev))
	for {
		resp, err := client.Get(ctx, pfx, opts...)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		if err := waitDelete(ctx, client, string(resp.Kvs[0].Key), resp.Header.Revision); err != nil {
			return err
		}
	}
}

// waitDelete waits until key is deleted at or after revision rev.
func waitDelete(ctx context.Context, client *clientv3.Client, key string, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range client.Watch(wctx, key, clientv3.WithRev(rev)) {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				stamp.AtRev("woken", ev.Kv.ModRevision)
				return nil
			}
		}
	}
	return errors.New("watch on " + key + " ended")
}
