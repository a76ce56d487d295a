package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/untrusted"
)

// ErrNotHeld means the lock's key is no longer ours (deleted, or its lease
// gone), so nothing may be written in its name.
var ErrNotHeld = errors.New("the lock is no longer ours")

// Run is what the record of a successful run tells, as JSON. Its times are
// the recording host's and only for people: how old the record is, etcd
// alone decides, by the record's lease.
type Run struct {
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	User     string    `json:"user"`
	Reason   string    `json:"reason"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Duration string    `json:"duration"` // a Go duration: "1m2.5s"
}

// LastRun is the record of a lock's last successful run, as etcd keeps it.
type LastRun struct {
	Key string
	// Run is nil when the value is not distlock's JSON.
	Run *Run
	// Granted is the TTL of the record's lease as etcd granted it, Left
	// what etcd says is left of it, in whole seconds rounded down.
	Granted, Left time.Duration
}

// ReadLastRun returns the record of the lock's last successful run, or nil
// if there is none. A record on no lease is no record: only a lease that
// etcd expires may say how old a run is.
func ReadLastRun(ctx context.Context, client *clientv3.Client, realm, name string) (*LastRun, error) {
	key := LastRunKey(realm, name)
	resp, err := client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read the last run: %w", err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return nil, nil
	}
	kv := resp.Kvs[0]
	ttl, err := client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		return nil, fmt.Errorf("read the last run's lease: %w", err)
	}
	if ttl.TTL < 0 {
		return nil, nil // expired between the two calls
	}
	r := &LastRun{
		Key:     key,
		Granted: time.Duration(ttl.GrantedTTL) * time.Second,
		Left:    time.Duration(ttl.TTL) * time.Second,
	}
	r.Run = parseRun(kv.Value)
	return r, nil
}

// parseRun is the run a record's value tells of, or nil if the value is
// not distlock's JSON.
func parseRun(value []byte) *Run {
	var run Run
	ok := decodeLenient(value, map[string]any{
		"host": &run.Host, "pid": &run.PID, "user": &run.User, "reason": &run.Reason,
		"started": &run.Started, "ended": &run.Ended, "duration": &run.Duration,
	})
	if !ok || run.Host == "" {
		return nil
	}
	return &run
}

// ForgetLastRun deletes the record of the lock's last successful run, so
// that the next run with --min-interval runs whenever the last one was.
// It deletes the one key LastRunKey(realm, name), by its exact name:
// nothing of another lock or another realm, which never has that key
// (see the key grammar in keys.go). It returns the record it deleted,
// whatever lease it was on, with no Granted or Left; or nil if there was
// none.
func ForgetLastRun(ctx context.Context, client *clientv3.Client, realm, name string) (*LastRun, error) {
	key := LastRunKey(realm, name)
	resp, err := client.Delete(ctx, key, clientv3.WithPrevKV())
	if err != nil {
		return nil, fmt.Errorf("forget the last run: %w", err)
	}
	if len(resp.PrevKvs) == 0 {
		return nil, nil
	}
	return &LastRun{Key: key, Run: parseRun(resp.PrevKvs[0].Value)}, nil
}

// Within reports whether the run may have been recorded less than span ago,
// by etcd's count alone. etcd rounds what is left down to whole seconds, so
// the record's age is more than Granted-Left-1s and at most Granted-Left;
// a run is counted as recent unless even the least it can be is span. A
// record written with the same span is recent for as long as it exists.
func (r *LastRun) Within(span time.Duration) bool {
	return r.Granted-r.Left-time.Second < span
}

// Describe says who ran the lock's command, when and for how long, and for
// how long etcd keeps the record, in one phrase.
func (r *LastRun) Describe() string {
	return fmt.Sprintf("%s; etcd keeps the record for %v more", r.DescribeRun(), r.Left)
}

// DescribeRun says who ran the lock's command, when and for how long, in
// one phrase.
func (r *LastRun) DescribeRun() string {
	var b strings.Builder
	if r.Run == nil {
		fmt.Fprintf(&b, "key %s (no details: not written by distlock)", untrusted.Word(r.Key, untrusted.MaxKey))
	} else {
		run := r.Run
		fmt.Fprintf(&b, "host %s, pid %d", untrusted.Word(run.Host, untrusted.MaxWord), run.PID)
		if run.User != "" {
			fmt.Fprintf(&b, ", user %s", untrusted.Word(run.User, untrusted.MaxWord))
		}
		if !run.Ended.IsZero() {
			fmt.Fprintf(&b, ", ended %s", run.Ended.Local().Format(time.RFC3339))
		}
		if run.Duration != "" {
			fmt.Fprintf(&b, ", took %s", untrusted.Word(run.Duration, untrusted.MaxWord))
		}
		if run.Reason != "" {
			fmt.Fprintf(&b, ", reason %s", untrusted.Quote(run.Reason, untrusted.MaxReason))
		}
	}
	return b.String()
}

// RecordRun writes the record of a successful run that started at started
// and just ended, on a lease of span (whole seconds, rounded up; etcd may
// grant more) that etcd expires. It writes only while the lock's key is
// still ours, in the same transaction; otherwise it writes nothing and
// returns ErrNotHeld. Each call to etcd is bounded by the Request's
// RPCTimeout.
func (h *Holder) RecordRun(ctx context.Context, span time.Duration, started time.Time) error {
	if err := h.single(); err != nil {
		return err
	}
	ended := time.Now()
	value, err := json.Marshal(Run{
		Host:     h.req.Info.Host,
		PID:      h.req.Info.PID,
		User:     h.req.Info.User,
		Reason:   h.req.Info.Reason,
		Started:  started.UTC().Truncate(time.Second),
		Ended:    ended.UTC().Truncate(time.Second),
		Duration: ended.Sub(started).Round(time.Millisecond).String(),
	})
	if err != nil {
		return fmt.Errorf("encode the run: %w", err)
	}
	gctx, cancel := context.WithTimeout(ctx, h.req.RPCTimeout)
	defer cancel()
	lease, err := h.client.Grant(gctx, wholeSeconds(span))
	if err != nil {
		return fmt.Errorf("record the run: %w", err)
	}
	recordGranted()
	tctx, cancel := context.WithTimeout(ctx, h.req.RPCTimeout)
	defer cancel()
	resp, err := h.client.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.FencingToken)).
		Then(clientv3.OpPut(LastRunKey(h.req.Realm, h.req.Name), string(value), clientv3.WithLease(lease.ID))).
		Commit()
	if err == nil && resp.Succeeded {
		return nil
	}
	// Nothing written, or nothing known: a record on a lease that is gone
	// is no record at all, whichever of the two etcd applied first.
	rerr := h.revoke(ctx, lease.ID)
	switch {
	case err != nil && rerr != nil:
		return fmt.Errorf("record the run: %w: %w", ErrMaybeRecorded, err)
	case err != nil:
		return fmt.Errorf("record the run: %w", err)
	}
	return ErrNotHeld
}

// recordGranted is a seam for tests: RecordRun calls it once the
// record's lease is granted.
var recordGranted = func() {}

// ErrMaybeRecorded means that etcd did not answer whether it wrote the
// record of a run, nor whether it revoked the record's lease afterwards:
// the record may be there, until its lease expires.
var ErrMaybeRecorded = errors.New("etcd did not answer whether the record was written")

// release revokes the holder's lease, each call bounded by RPCTimeout.
func (h *Holder) release(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.req.RPCTimeout)
	defer cancel()
	return h.Release(rctx)
}

// revoke revokes a lease of ours that holds nothing we want, if etcd
// answers in time; otherwise it expires by itself.
func (h *Holder) revoke(ctx context.Context, id clientv3.LeaseID) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.req.RPCTimeout)
	defer cancel()
	_, err := h.client.Revoke(rctx, id)
	return err
}

// wholeSeconds is d as a lease TTL: whole seconds, rounded up.
func wholeSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
