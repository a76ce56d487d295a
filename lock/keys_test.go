package lock

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestKeyGrammar: under a lock's prefix, only a lease ID exactly as etcd's
// recipe writes it (%x of a positive ID) is a holder's or waiter's key;
// the keys of realms below, of etcdctl lock with a trailing slash, and of
// anything written by hand are not.
func TestKeyGrammar(t *testing.T) {
	pfx := Prefix("/distlock/", "staging")
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{pfx + "694d7f1a2b3c4d5e", true},
		{pfx + "1", true},
		{pfx + "7fffffffffffffff", true},
		{pfx + "8000000000000000", false}, // past int64: no lease ID
		{pfx + "10000000000000000", false},
		{pfx + "0", false},
		{pfx + "01f", false}, // %x writes no leading zero
		{pfx + "1F", false},
		{pfx + "+1f", false},
		{pfx + "-1f", true}, // a lease a client chose, negative: the recipe writes it so
		{pfx + "-01f", false},
		{pfx + "-0", false},
		{pfx + "-8000000000000000", true},
		{pfx + "-8000000000000001", false},
		{pfx + "zz", false},
		{pfx, false},
		{pfx + "/694d", false},           // etcdctl lock /distlock/staging/
		{pfx + "deploy/694d", false},     // the lock deploy of realm /distlock/staging/
		{pfx + "deploy!last-run", false}, // its record
		{pfx + "deploy!stopping:0000000000000000042-694d", false},
		{pfx + "694d/", false},
		{pfx + "694d ", false},
		{"/distlock/stagingx/694d", false},
		{"/distlock/staging694d", false},
	} {
		if got := inQueue(pfx, tc.key); got != tc.want {
			t.Errorf("inQueue(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

// TestStoppingRecordShape: a stopping record is REV (19 digits) "-" ID on
// the lease ID names, and nothing else.
func TestStoppingRecordShape(t *testing.T) {
	sp := StoppingPrefix("/distlock/", "db")
	for _, tc := range []struct {
		key   string
		lease int64
		rev   int64
		want  bool
	}{
		{stoppingKey(sp, 42, 0x694d), 0x694d, 42, true},
		{stoppingKey(sp, 42, 0x694d), 0x694e, 0, false}, // on another lease
		{stoppingKey(sp, 42, 0x694d), 0, 0, false},
		{sp + "+000000000000000042-694d", 0x694d, 0, false},
		{sp + "00000000000000000042-694d", 0x694d, 0, false},
		{sp + "000000000000000042-694d", 0x694d, 0, false},
		{sp + "0000000000000000042-0694d", 0x694d, 0, false},
		{sp + "0000000000000000042-694d/x", 0x694d, 0, false},
		{sp + "0000000000000000042_694d", 0x694d, 0, false},
		{"/distlock/db/x!stopping:0000000000000000042-694d", 0x694d, 0, false},
	} {
		rev, ok := stoppingOf(sp, &mvccpb.KeyValue{Key: []byte(tc.key), Lease: tc.lease})
		if ok != tc.want || rev != tc.rev {
			t.Errorf("stoppingOf(%q, lease %x) = %d, %v; want %d, %v", tc.key, tc.lease, rev, ok, tc.rev, tc.want)
		}
	}
}

// TestEtcdctlLock: a foreign key that ends in a lease ID names the lock
// etcd's recipe would take under the rest of it.
func TestEtcdctlLock(t *testing.T) {
	for _, tc := range []struct{ key, name string }{
		{"/distlock/foo//694d", "/distlock/foo/"},
		{"/distlock/staging/deploy/694d", "/distlock/staging/deploy"},
		{"/distlock/foo/zz", ""},
		{"694d", ""},
	} {
		name, ok := EtcdctlLock(tc.key)
		if name != tc.name || ok != (tc.name != "") {
			t.Errorf("EtcdctlLock(%q) = %q, %v; want %q", tc.key, name, ok, tc.name)
		}
	}
}

// TestRealmsDoNotMeet: every key a lock of one realm can have is foreign
// to every lock of a realm that nests with it, whichever is the outer.
func TestRealmsDoNotMeet(t *testing.T) {
	realms := []string{"/distlock/", "/distlock/staging/", "/distlock/staging/deploy/", "/distlock/a%2Fb/"}
	names := []string{"staging", "deploy", "a/b", "a", "b", "694d", "staging!stopping:"}
	for _, r1 := range realms {
		for _, n1 := range names {
			keys := []string{queueKey(Prefix(r1, n1), 0x694d), stoppingKey(StoppingPrefix(r1, n1), 42, 0x694d), LastRunKey(r1, n1)}
			for _, r2 := range realms {
				for _, n2 := range names {
					if r1 == r2 && n1 == n2 {
						continue
					}
					for _, k := range keys {
						if inQueue(Prefix(r2, n2), k) || isStoppingKey(StoppingPrefix(r2, n2), k) || k == LastRunKey(r2, n2) {
							t.Errorf("key %q of lock %q in realm %s is taken for one of lock %q in realm %s", k, n1, r1, n2, r2)
						}
					}
				}
			}
		}
	}
}
