package lock

import (
	"strings"
	"testing"
	"unicode"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// FuzzHolderValue: whatever anyone wrote as a key's value under a lock,
// distlock reads it without panicking, and describes its writer in one
// line with no control characters, fit for a terminal.
func FuzzHolderValue(f *testing.F) {
	for _, v := range []string{
		"",
		`{"reason":"deploy","host":"web1","pid":4711,"user":"ops","mode":"exec","since":"2026-01-02T03:04:05Z"}`,
		`{"host":"web1","mode":"lock","limit":3}`,
		`{"host":"web1","pid":"x"}`,
		`{"host":"web1","since":"yesterday"}`,
		`{"host":"web1","limit":-5}`,
		`{"host":"web1\nFAKE","user":"\u001b[31m","mode":"exec"}`,
		`null`, `[]`, `"x"`, `{`, "\xff\xfe",
	} {
		f.Add([]byte(v), []byte("/distlock/x/694d7d3b1a2b"))
	}
	f.Fuzz(func(t *testing.T, value, key []byte) {
		e := parseEntry(&mvccpb.KeyValue{Key: key, Value: value, Lease: 1, CreateRevision: 2})
		if e.Info != nil && e.Info.Host == "" && e.Info.Mode == "" {
			t.Fatalf("%q: details without a host or a mode: %+v", value, *e.Info)
		}
		if n := Limit([]Entry{e}); n < 1 {
			t.Fatalf("%q: Limit = %d", value, n)
		}
		for _, s := range []Entry{e, {Key: e.Key, Info: e.Info, Stopping: true}} {
			d := s.Describe()
			if i := strings.IndexFunc(d, unicode.IsControl); i >= 0 {
				t.Fatalf("%q: Describe() = %q, with a control character at %d", value, d, i)
			}
		}
	})
}

// TestDescribeQuotesWhatIsNotPrintable: what FuzzHolderValue asks of
// Describe, as a user sees it.
func TestDescribeQuotesWhatIsNotPrintable(t *testing.T) {
	tests := []struct{ value, key, want string }{
		{`{"host":"web1","user":"ops","pid":7,"mode":"exec"}`, "k", `host web1, pid 7, user ops, no reason given`},
		{`{"host":"web1\nFAKE","user":"\u001b[31m","pid":7,"mode":"exec"}`, "k", `host "web1\nFAKE", pid 7, user "\x1b[31m", no reason given`},
		{`{"host":"h\u00a0","mode":"exec"}`, "k", `host "h\u00a0", pid 0, no reason given`},
		{``, "/distlock/x/\x1b[2J", `key "/distlock/x/\x1b[2J" (no details: not written by distlock)`},
	}
	for _, tt := range tests {
		e := parseEntry(&mvccpb.KeyValue{Key: []byte(tt.key), Value: []byte(tt.value)})
		if got := e.Describe(); got != tt.want {
			t.Errorf("%s: Describe() = %s, want %s", tt.value, got, tt.want)
		}
	}
}
