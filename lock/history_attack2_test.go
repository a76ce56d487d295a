package lock

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/tinx/distlock/internal/poll"
)

// clientLosingAnswers is a client of the etcd at endpoint whose calls for
// which lose says so reach etcd and are served there, but whose answers
// never come back: such a call ends only with its context, as one sent
// to a member that froze after it had read the request.
func clientLosingAnswers(t *testing.T, endpoint string, lose func(method string, req any) bool) *clientv3.Client {
	t.Helper()
	drop := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err != nil || !lose(method, req) {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return clientWith(t, endpoint, drop)
}

// waitBegun waits until the begun record of h is in etcd.
func waitBegun(t *testing.T, client *clientv3.Client, req Request, h *Holder) {
	t.Helper()
	hk := HistoryKey(req.Realm, req.Name, h.FencingToken)
	poll.For(t, "the begun record", 10*time.Second, func() bool {
		resp, err := client.Get(context.Background(), hk, clientv3.WithCountOnly())
		return err == nil && resp.Count == 1
	})
}

// TestUnlockedHolderReleasesDespiteLostTimeToLive: a holder whose key an
// --unlock removed (its stopping record on the holder's lease keeps the
// lock taken until that lease goes) looks, on release, whether its
// history lease is empty. That look is housekeeping: if its answer never
// comes, the revoke of the holder's lease, which lets the next holder
// in, must still be made within the release's time, not left to the
// lease's TTL.
func TestUnlockedHolderReleasesDespiteLostTimeToLive(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	client := newClient(t, endpoint)
	var losing atomic.Bool // until the release has been made: the test's cleanup releases again
	losing.Store(true)
	holding := clientLosingAnswers(t, endpoint, func(method string, req any) bool {
		r, ok := req.(*pb.LeaseTimeToLiveRequest)
		return ok && method == "/etcdserverpb.Lease/LeaseTimeToLive" && r.Keys && losing.Load()
	})
	req := request(t, "ttl-lost")
	req.TTL = 30 * time.Second // longer than the test: only a revoke ends the lease
	req.History = time.Hour
	h := mustAcquire(t, holding, req)
	waitBegun(t, client, req, h)
	by := UnlockBy{Info: Info{Host: "admin", User: "alice"}, History: time.Hour}
	done, err := Unlock(context.Background(), client, req.Realm, req.Name, by)
	if err != nil || done.Removed == nil || !done.Stopping {
		t.Fatalf("Unlock = %+v, %v; want the holder removed, stopping", done, err)
	}
	select {
	case <-h.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the holder did not learn that its key was deleted")
	}
	h.Ending("lost", 70)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // as distlock's release: one RPC timeout for it all
	defer cancel()
	rerr := h.Release(ctx)
	losing.Store(false)
	ttl, err := client.TimeToLive(context.Background(), h.lease.id)
	if err != nil || ttl.TTL != -1 {
		t.Errorf("the holder's lease after Release (%v): %+v, %v; want it revoked, its stopping record gone", rerr, ttl, err)
	}
	if rerr != nil {
		t.Errorf("Release = %v; want the lease revoked", rerr)
	}
}

// TestUnlockDespiteLostReadOfBegunRecord: --unlock reads the record the
// holder began, to keep what only the holder knew. That read is best
// effort: a read whose answer never comes must not use up the unlock's
// time and make it fail.
func TestUnlockDespiteLostReadOfBegunRecord(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	client := newClient(t, endpoint)
	req := request(t, "get-lost")
	req.History = time.Hour
	unlocking := clientLosingAnswers(t, endpoint, func(method string, r any) bool {
		g, ok := r.(*pb.RangeRequest)
		return ok && method == "/etcdserverpb.KV/Range" && strings.HasPrefix(string(g.Key), HistoryPrefix(req.Realm, req.Name))
	})
	h := mustAcquire(t, client, req)
	waitBegun(t, client, req, h)
	by := UnlockBy{Info: Info{Host: "admin", User: "alice"}, History: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second) // as --unlock's: one RPC timeout
	defer cancel()
	done, err := Unlock(ctx, unlocking, req.Realm, req.Name, by)
	if err != nil || done.Removed == nil || done.Removed.Key != h.Key {
		t.Fatalf("Unlock = %+v, %v; want the holder %s removed", done, err, h.Key)
	}
	got, err := History(context.Background(), client, req.Realm, req.Name, 5, time.Second)
	if err != nil || len(got) != 1 || got[0].Record == nil || got[0].Record.Outcome != EndUnlocked {
		t.Errorf("history after the unlock: %+v, %v; want the unlocked record", got, err)
	}
}

// isBegunTxn says whether req is the transaction that begins a holder's
// records (beginHistory): each of its steps puts a record only while the
// key is ours and no record is there yet.
func isBegunTxn(req any) bool {
	txn, ok := req.(*pb.TxnRequest)
	if !ok || len(txn.Success) == 0 {
		return false
	}
	for _, op := range txn.Success {
		inner := op.GetRequestTxn()
		if inner == nil || len(inner.Compare) != 2 || len(inner.Success) != 1 ||
			!strings.Contains(string(inner.Success[0].GetRequestPut().GetKey()), historySuffix) {
			return false
		}
	}
	return true
}

// TestUnlockKeepsRecordBegunAfterItsRead: the holder of a set begins its
// records just after an --unlock of one of its locks has read that there
// is none, and before the unlock deletes the key. The unlock's record
// then replaces the begun one: it must still say what the begun one
// says, that the lock was one of a set, not what the key says.
func TestUnlockKeepsRecordBegunAfterItsRead(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	client := newClient(t, endpoint)
	reqs := setRequests(t, "sa", "sb")
	for i := range reqs {
		reqs[i].History = time.Hour
	}
	target := reqs[1]
	hk := ""
	read := make(chan struct{}) // the unlock has read the (absent) record
	var once sync.Once
	// The holder's begun records wait for the unlock's read: the
	// request is held back, not the answer.
	holding := clientHolding(t, endpoint, func(req any) bool { return isBegunTxn(req) }, read)
	unlocking := clientAfterAnswer(t, endpoint, func(req any) bool {
		g, ok := req.(*pb.RangeRequest)
		return ok && hk != "" && string(g.Key) == hk
	}, func() {
		once.Do(func() { close(read) })
		poll.For(t, "the begun record", 10*time.Second, func() bool {
			resp, err := client.Get(context.Background(), hk, clientv3.WithCountOnly())
			return err == nil && resp.Count == 1
		})
	})
	h, err := AcquireSet(context.Background(), holding, reqs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Release(context.Background()) })
	var member *Holder
	for _, m := range h.Set() {
		if m.req.Name == target.Name {
			member = m
		}
	}
	hk = HistoryKey(target.Realm, target.Name, member.FencingToken)
	by := UnlockBy{Info: Info{Host: "admin", User: "alice"}, History: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if done, err := Unlock(ctx, unlocking, target.Realm, target.Name, by); err != nil || done.Removed == nil {
		t.Fatalf("Unlock = %+v, %v; want the set's key removed", done, err)
	}
	resp, err := client.Get(context.Background(), hk)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the record %s: %v", hk, err)
	}
	var r Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil || r.Outcome != EndUnlocked || r.Kind != KindSet || len(r.Set) != 1 || r.Set[0] != "sa" {
		t.Errorf("the unlocked record %s (%v); want it unlocked, of a set with sa", resp.Kvs[0].Value, err)
	}
}

// clientHolding is a client of the etcd at endpoint that sends a request
// for which hold says so only once until is closed (10 s at most).
func clientHolding(t *testing.T, endpoint string, hold func(req any) bool, until <-chan struct{}) *clientv3.Client {
	t.Helper()
	return clientWith(t, endpoint, func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if hold(req) {
			select {
			case <-until:
			case <-time.After(10 * time.Second):
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// clientAfterAnswer is a client of the etcd at endpoint that runs then
// after the answer to a request for which match says so has come, and
// before the caller has it.
func clientAfterAnswer(t *testing.T, endpoint string, match func(req any) bool, then func()) *clientv3.Client {
	t.Helper()
	return clientWith(t, endpoint, func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil && match(req) {
			then()
		}
		return err
	})
}

// clientWith is a client of the etcd at endpoint whose calls go through i.
func clientWith(t *testing.T, endpoint string, i grpc.UnaryClientInterceptor) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(i)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestUnlockDespiteLostGrantOfRecordLease: --unlock grants its record a
// lease first; a grant whose answer never comes must leave the unlock's
// delete its time, as a lost read of the begun record does. The unlock
// goes on without a record of its own.
func TestUnlockDespiteLostGrantOfRecordLease(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	client := newClient(t, endpoint)
	req := request(t, "grant-lost")
	unlocking := clientLosingAnswers(t, endpoint, func(method string, _ any) bool {
		return method == "/etcdserverpb.Lease/LeaseGrant"
	})
	h := mustAcquire(t, client, req)
	by := UnlockBy{Info: Info{Host: "admin", User: "alice"}, History: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second) // as --unlock's: one RPC timeout
	defer cancel()
	done, err := Unlock(ctx, unlocking, req.Realm, req.Name, by)
	if err != nil || done.Removed == nil || done.Removed.Key != h.Key {
		t.Fatalf("Unlock = %+v, %v; want the holder %s removed", done, err, h.Key)
	}
}
