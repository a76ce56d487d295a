package show

import (
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/lock"
)

// TestHolderText: what --status says each kind of holder is, from its key
// alone: no etcd needed.
func TestHolderText(t *testing.T) {
	since := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	now := since.Add(90 * time.Second)
	expires := since.Add(10 * time.Minute)
	info := func(mode, reason, command string, expires time.Time) *lock.Info {
		return &lock.Info{Host: "node-3", PID: 4711, User: "root", Mode: mode, Since: since, Reason: reason, Command: command, Expires: expires}
	}
	leases := map[int64]time.Duration{1: 27 * time.Second, 2: 8*time.Minute + 29*time.Second, 3: -time.Second}
	tests := []struct {
		name string
		e    lock.Entry
		want string
	}{
		{"running, command", lock.Entry{Lease: 1, Info: info(lock.ModeExec, "", "pg_dump", time.Time{})},
			`host node-3, pid 4711, user root, since SINCE, no reason given: running "pg_dump"; held for 1m30s; its lease has 27s left, renewed while it runs`},
		{"running, reason", lock.Entry{Lease: 1, Info: info(lock.ModeExec, "nightly", "", time.Time{})},
			`host node-3, pid 4711, user root, since SINCE, reason "nightly": running its command; held for 1m30s; its lease has 27s left, renewed while it runs`},
		{"manual", lock.Entry{Info: info(lock.ModeLock, "disk swap", "", time.Time{})},
			`host node-3, user root, since SINCE, reason "disk swap": a manual lock (--lock), until --unlock; held for 1m30s`},
		{"manual, expires", lock.Entry{Lease: 2, Info: info(lock.ModeLock, "disk swap", "", expires)},
			`host node-3, user root, since SINCE, reason "disk swap": a manual lock (--lock) that expires at EXPIRES or later (--expire); held for 1m30s; its lease has 8m29s left`},
		{"min-hold", lock.Entry{Lease: 2, Info: info(lock.ModeExec, "", "warm-caches", expires)},
			`host node-3, user root, since SINCE, no reason given: its command "warm-caches" ended; kept for --min-hold until EXPIRES or later; held for 1m30s; its lease has 8m29s left`},
		{"stopping", lock.Entry{Lease: 1, Stopping: true, Info: info(lock.ModeExec, "x", "", time.Time{})},
			`host node-3, pid 4711, user root, since SINCE, reason "x": unlocked; stopping its command; held for 1m30s; its lease has 27s left`},
		{"lease just expired", lock.Entry{Lease: 3, Info: info(lock.ModeExec, "x", "", time.Time{})},
			`host node-3, pid 4711, user root, since SINCE, reason "x": running its command; held for 1m30s; its lease has just expired`},
		{"lease unknown", lock.Entry{Lease: 9, Info: info(lock.ModeExec, "x", "", time.Time{})},
			`host node-3, pid 4711, user root, since SINCE, reason "x": running its command; held for 1m30s; what is left of its lease is unknown (etcd did not say in time)`},
		{"etcdctl lock", lock.Entry{Key: "/distlock/x/9", Lease: 1},
			`key /distlock/x/9 (no details: not written by distlock): its lease has 27s left`},
		{"a clock ahead", lock.Entry{Info: &lock.Info{Host: "h", Mode: lock.ModeLock, Since: now.Add(time.Hour)}},
			`host h, since AHEAD, no reason given: a manual lock (--lock), until --unlock; held for 0s`},
	}
	at := func(t time.Time) string { return t.Local().Format(time.RFC3339) }
	times := strings.NewReplacer("SINCE", at(since), "EXPIRES", at(expires), "AHEAD", at(now.Add(time.Hour)))
	for _, tt := range tests {
		if got, want := holderText(tt.e, now, leases), times.Replace(tt.want); got != want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, want)
		}
	}
}
