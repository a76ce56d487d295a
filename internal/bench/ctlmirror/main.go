// Command ctlmirror does what `etcdctl lock NAME COMMAND [ARG...]` of
// etcd 3.4 (Debian's etcd-client) does, call for call, with the stamps
// of internal/stamp at the steps of a handoff, for the handoff benchmark
// (internal/bench): etcdctl itself cannot be stamped.
//
//	ctlmirror [--endpoints URLS] [--dial-timeout D] [--ttl SECONDS] lock NAME COMMAND [ARG...]
//	ctlmirror version
//
// version starts and exits, as `etcdctl version` does: the benchmark
// takes the cost of starting each program out of their round trips.
//
// As etcdctl does: a session (a lease of --ttl, 10 s, kept alive), then
// etcd 3.4's concurrency.Mutex.Lock: one Txn that queues under NAME/ and
// reads the owner; if another key is older, waitDeletes: read the newest
// older key, watch it until it is deleted, read again, until none is left
// (3.4 has no read of its own key after that; 3.5 and later do). The
// command runs through os/exec with ETCD_LOCK_KEY and ETCD_LOCK_REV, then
// Unlock deletes the key, and the process exits without revoking the
// lease (etcdctl never closes the session; the lease runs out by itself).
// Exit status: 0, or 1 when the command failed or etcd refused, as
// etcdctl 3.4's.
//
// Build it with -tags distlock_stamps, as the benchmark does; without the
// tag it keeps no stamps and is etcdctl's flow alone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc/grpclog"

	"github.com/tinx/distlock/internal/stamp"
)

func main() {
	status := run(os.Args[1:])
	stamp.Flush()
	os.Exit(status)
}

func run(args []string) int {
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	fs := flag.NewFlagSet("ctlmirror", flag.ContinueOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "etcd client URLs, comma-separated")
	dialTimeout := fs.Duration("dial-timeout", 2*time.Second, "as etcdctl's")
	ttl := fs.Int("ttl", 10, "the session's lease TTL in seconds, as etcdctl lock's")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 1 && rest[0] == "version" {
		fmt.Println("ctlmirror: etcdctl lock's calls, stamped")
		return 0
	}
	if len(rest) < 3 || rest[0] != "lock" {
		fmt.Fprintln(os.Stderr, "usage: ctlmirror [--endpoints URLS] lock NAME COMMAND [ARG...]")
		return 2
	}
	// etcdctl's client: its dial timeout and keepalive defaults.
	client, err := clientv3.New(clientv3.Config{
		Endpoints:            strings.Split(*endpoints, ","),
		DialTimeout:          *dialTimeout,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 6 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	if err := lockAndRun(client, *ttl, rest[1], rest[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}

// lockAndRun is etcdctl 3.4's lockUntilSignal with a command.
func lockAndRun(client *clientv3.Client, ttl int, name string, command []string) error {
	s, err := concurrency.NewSession(client, concurrency.WithTTL(ttl))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
	}()
	key, hdr, err := lock(ctx, client, s.Lease(), name+"/")
	if err != nil {
		return err
	}

	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append([]string{"ETCD_LOCK_KEY=" + key, fmt.Sprintf("ETCD_LOCK_REV=%d", hdr.Revision)}, os.Environ()...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// cmd.Run, in its two halves, for the stamps between them.
	err = cmd.Start()
	stamp.At("forked")
	if err == nil {
		err = cmd.Wait()
		stamp.At("exit-seen")
	}
	stamp.At("release-sent")
	resp, unlockErr := client.Delete(context.TODO(), key)
	if unlockErr == nil {
		stamp.AtRev("release-done", resp.Header.Revision)
	}
	if err != nil {
		return err
	}
	return unlockErr
}

// lock is etcd 3.4's concurrency.Mutex.Lock on the prefix pfx, for the
// lease: it returns our key and the header of the answer that found the
// lock ours.
func lock(ctx context.Context, client *clientv3.Client, lease clientv3.LeaseID, pfx string) (string, *etcdserverpb.ResponseHeader, error) {
	key := fmt.Sprintf("%s%x", pfx, lease)
	resp, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, "", clientv3.WithLease(lease)), clientv3.OpGet(pfx, clientv3.WithFirstCreate()...)).
		Else(clientv3.OpGet(key), clientv3.OpGet(pfx, clientv3.WithFirstCreate()...)).
		Commit()
	if err != nil {
		return "", nil, err
	}
	myRev := resp.Header.Revision
	if !resp.Succeeded {
		myRev = resp.Responses[0].GetResponseRange().Kvs[0].CreateRevision
	}
	// No key under the prefix is older than ours: the lock is ours.
	owner := resp.Responses[1].GetResponseRange().Kvs
	if len(owner) == 0 || owner[0].CreateRevision == myRev {
		return key, resp.Header, nil
	}
	hdr, err := waitDeletes(ctx, client, pfx, myRev-1)
	if err != nil {
		_, _ = client.Delete(client.Ctx(), key)
		return "", nil, err
	}
	return key, hdr, nil
}

// waitDeletes returns once no key under pfx created at or before
// maxCreateRev is left, watching the newest of them at a time.
func waitDeletes(ctx context.Context, client *clientv3.Client, pfx string, maxCreateRev int64) (*etcdserverpb.ResponseHeader, error) {
	opts := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(maxCreateRev))
	for {
		resp, err := client.Get(ctx, pfx, opts...)
		if err != nil {
			return nil, err
		}
		if len(resp.Kvs) == 0 {
			stamp.AtRev("turn", resp.Header.Revision)
			return resp.Header, nil
		}
		if err := waitDelete(ctx, client, string(resp.Kvs[0].Key), resp.Header.Revision); err != nil {
			return nil, err
		}
	}
}

// waitDelete watches key from revision rev until it is deleted.
func waitDelete(ctx context.Context, client *clientv3.Client, key string, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wr clientv3.WatchResponse
	for wr = range client.Watch(wctx, key, clientv3.WithRev(rev)) {
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				stamp.AtRev("woken", ev.Kv.ModRevision)
				return nil
			}
		}
	}
	if err := wr.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("lost watcher waiting for delete")
}
