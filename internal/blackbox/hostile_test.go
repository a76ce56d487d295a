package blackbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/lock"
)

// runCaptured runs distlock with args and the extra environment env in
// the test's realm against endpoint, and returns its stdout, its stderr
// and its exit status.
func runCaptured(t *testing.T, endpoint string, env []string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	return runCapturedWithin(t, 60*time.Second, endpoint, env, args...)
}

// runCapturedWithin is runCaptured with a deadline of its own.
func runCapturedWithin(t *testing.T, limit time.Duration, endpoint string, env []string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command("distlock", args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(append(os.Environ(),
		"DISTLOCK_ENDPOINTS="+endpoint,
		"DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null"), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("distlock %q still ran after %v; stderr:\n%s", args, limit, e.String())
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// terminalUnsafe says what in s a terminal could act on, or "" if
// nothing: a control character other than newline and tab, DEL, a C1
// control, a bidi or other invisible format character, or bytes that
// are not UTF-8.
func terminalUnsafe(s string) string {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\ufffd"):
			return "invalid UTF-8 at byte " + strconv.Itoa(i)
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || !unicode.IsPrint(r) && r != ' ':
			return "the character " + strconv.QuoteRune(r) + " at byte " + strconv.Itoa(i)
		}
	}
	return ""
}

func longestLine(s string) (n int) {
	for _, l := range strings.Split(s, "\n") {
		n = max(n, len(l))
	}
	return n
}

// hostileReason is a reason that tries everything on the terminal: colour,
// an OSC 8 hyperlink, a C1 CSI that clears the screen, a bell, backspaces
// and a carriage return that would overwrite what came before, a bidi
// override, and a megabyte more. (Bytes that are not UTF-8 cannot be in
// a reason: JSON's decoder makes them U+FFFD. They can be in keys.)
var hostileReason = "\x1b[31mred\x1b[0m \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ \u009b2J\a\b\b\rfake \u202eexe.txt " + strings.Repeat("x", 1<<20)

// reasonMark is the mark of hostileReason cut at 200 bytes.
var reasonMark = fmt.Sprintf("…(+%d bytes)", len(hostileReason)-200)

// TestHostileValues: whatever others wrote under the realm, --status,
// --list (text and JSON), the conflict line, the waiting line and --unlock
// show it escaped and cut, never crash, and --json stays valid JSON.
func TestHostileValues(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	realm := testRealm(t)
	ctx := context.Background()
	holder, _ := json.Marshal(map[string]any{
		"host": "\x1b[2Jweb1, pid 1", "pid": 4711, "user": "root\u202e" + strings.Repeat("u", 5000),
		"mode": "exec", "since": "2024-01-01T00:00:00Z", "reason": hostileReason,
	})
	values := []string{
		string(holder),
		"",                            // no value
		strings.Repeat("\x1b", 1<<20), // a megabyte of escapes
		"\xff\xfe\x1b[31m not JSON",   // nor UTF-8
		`[1, 2, 3]`, `42`, `null`, `"a string"`,
		`{"host": {"nested": [1, 2]}, "pid": "abc"}`,
		`{"host": "h2\u0007", "pid": "abc", "since": "not a time", "limit": "many", "user": 12}`,
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000), // nested past encoding/json's depth
	}
	for i, v := range values {
		// One transaction each: the queue's order is the order written.
		// Named as leases are (1, 2, ... b): other keys are foreign.
		if _, err := client.Put(ctx, lock.Prefix(realm, "h")+strconv.FormatInt(int64(i+1), 16), v); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := client.Grant(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Revoke(context.Background(), lease.ID) })
	run, _ := json.Marshal(map[string]any{"host": "\x1b[1mbuild", "pid": 9, "reason": hostileReason, "duration": "1s\x1b[8m", "started": "yesterday"})
	if _, err := client.Put(ctx, lock.LastRunKey(realm, "h"), string(run), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	// Locks whose names (or keys) are what no --lock-name could be.
	for _, key := range []string{
		realm + "%1B%5B2J/1",                     // escaped: the name is ESC [ 2 J
		realm + "\x1b[2Jraw\u202e/1",             // not escaped at all
		realm + "%FF%FE/1",                       // not UTF-8
		realm + strings.Repeat("n", 5000) + "/1", // long
		realm + "%22quoted%22/1",                 // starts with a quote
	} {
		if _, err := client.Put(ctx, key, `{"host":"h","mode":"exec"}`); err != nil {
			t.Fatal(err)
		}
	}

	ep := testEtcd(t).Endpoint()
	check := func(what, out string) {
		t.Helper()
		if bad := terminalUnsafe(out); bad != "" {
			t.Errorf("%s shows %s:\n%.3000q", what, bad, out)
		}
		if n := longestLine(out); n > 20000 {
			t.Errorf("%s has a line of %d bytes", what, n)
		}
	}

	out, errOut, status := runCaptured(t, ep, nil, "--lock-name=h", "--status")
	if status != 0 || errOut != "" {
		t.Fatalf("--status: exit %d, stderr %q", status, errOut)
	}
	check("--status", out)
	for _, want := range []string{
		`lock "h" is held by host "\x1b[2Jweb1, pid 1", pid 4711, user "root\u202euuu`,
		`"…(+4907 bytes), since 2024-01-01T`,
		`reason "\x1b[31mred\x1b[0m \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ \u009b2J\a\b\b\rfake \u202eexe.txt xxx`,
		`x"` + reasonMark + ": running its command; held for ",
		"  waiter 1: key " + realm + "h/2 (no details: not written by distlock)\n",
		"  waiter 9: host \"h2\\a\", pid 0, no reason given\n",
		`last successful run: host "\x1b[1mbuild", pid 9, took "1s\x1b[8m", reason "\x1b[31mred`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--status does not show\n%s\nin:\n%.3000s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != len(values)+1 {
		t.Errorf("--status: %d lines, want %d (holder, %d waiters, last run)", n, len(values)+1, len(values)-1)
	}

	out, errOut, status = runCaptured(t, ep, nil, "--lock-name=h", "--status", "--json")
	if status != 0 || errOut != "" {
		t.Fatalf("--status --json: exit %d, stderr %q", status, errOut)
	}
	check("--status --json", out)
	var st struct {
		Holder struct {
			Info struct{ Host, User, Reason string }
		}
		Waiters []struct{ Info *struct{ Host string } }
		LastRun struct{ Run struct{ Reason string } } `json:"last_run"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("--status --json is not JSON: %v\n%.2000s", err, out)
	}
	if r := st.Holder.Info.Reason; !strings.HasPrefix(r, "\x1b[31mred") || !strings.HasSuffix(r, "x"+reasonMark) {
		t.Errorf("--status --json: reason %.300q, want the first 200 bytes and the mark", r)
	}
	if u := st.Holder.Info.User; len(u) > 150 || !strings.HasSuffix(u, "…(+4907 bytes)") {
		t.Errorf("--status --json: user %q, want it cut at 100 bytes", u)
	}
	if len(st.Waiters) != len(values)-1 || st.Waiters[8].Info == nil || st.Waiters[8].Info.Host != "h2\a" {
		t.Errorf("--status --json: waiters %+v", st.Waiters)
	}
	if r := st.LastRun.Run.Reason; !strings.HasSuffix(r, reasonMark) {
		t.Errorf("--status --json: last run's reason %.300q, want it cut", r)
	}

	out, errOut, status = runCaptured(t, ep, nil, "--list")
	if status != 0 || errOut != "" {
		t.Fatalf("--list: exit %d, stderr %q", status, errOut)
	}
	check("--list", out)
	for _, want := range []string{
		"\"\\x1b[2J\"\thost h, pid 0, no reason given\t0 waiting\n",
		"\"\\x1b[2Jraw\\u202e\" (not a distlock lock name: keys under it were written by another tool)\thost h,",
		"\"\\xff\\xfe\" (keys %FF%FE/)\thost h,", // beyond ASCII: the segment too
		"\"" + strings.Repeat("n", 1024) + "\"…(+3976 bytes)\thost h,",
		"\"\\\"quoted\\\"\"\thost h,",
		"h\thost \"\\x1b[2Jweb1, pid 1\", pid 4711,",
		"\t10 waiting\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--list does not show\n%q\nin:\n%.3000s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 6 {
		t.Errorf("--list: %d lines, want 6", n)
	}

	out, errOut, status = runCaptured(t, ep, nil, "--list", "--json")
	if status != 0 || errOut != "" {
		t.Fatalf("--list --json: exit %d, stderr %q", status, errOut)
	}
	check("--list --json", out)
	var list []struct{ Name string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("--list --json is not JSON: %v\n%.2000s", err, out)
	}
	names := map[string]bool{}
	for _, l := range list {
		names[l.Name] = true
	}
	for _, want := range []string{"\x1b[2J", "\x1b[2Jraw\u202e", "\ufffd\ufffd", strings.Repeat("n", 1024) + "…(+3976 bytes)", `"quoted"`, "h"} {
		if !names[want] {
			t.Errorf("--list --json has no lock %q: %v", want, names)
		}
	}

	_, errOut, status = runCaptured(t, ep, nil, "--lock-name=h", "--nowait", "--", "true")
	check("the conflict line", errOut)
	if status != exitConflict || strings.Count(errOut, "\n") != 1 ||
		!strings.HasPrefix(errOut, `distlock: lock "h" is held by host "\x1b[2Jweb1, pid 1", pid 4711,`) ||
		!strings.HasSuffix(errOut, "x\""+reasonMark+"; not waiting (--nowait)\n") {
		t.Errorf("--nowait: exit %d, stderr %.3000q", status, errOut)
	}
	_, errOut, status = runCaptured(t, ep, nil, "--lock-name=h", "--timeout=0.2", "--", "true")
	check("the waiting line", errOut)
	if status != exitConflict || strings.Count(errOut, "\n") != 2 || !strings.Contains(errOut, "bytes); waiting\n") {
		t.Errorf("--timeout: exit %d, stderr %.3000q", status, errOut)
	}
	// The same lines as JSON: its fields from etcd cut and escaped too.
	for _, args := range [][]string{{"--nowait"}, {"--timeout=0.2"}} {
		_, errOut, status = runCaptured(t, ep, nil, append([]string{"--lock-name=h", "--log-format=json"}, append(args, "--", "true")...)...)
		check("--log-format json "+args[0], errOut)
		if status != exitConflict {
			t.Errorf("--log-format json %s: exit %d", args[0], status)
		}
		for _, line := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
			var l struct{ Holder, Reason, Holder_Key string }
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Errorf("--log-format json %s: a line that is no JSON object (%v): %.300q", args[0], err, line)
			} else if !strings.HasSuffix(l.Reason, reasonMark) || !strings.HasPrefix(l.Holder, "\x1b[2Jweb1") {
				t.Errorf("--log-format json %s: holder %q, reason %.300q; want them from etcd, the reason cut", args[0], l.Holder, l.Reason)
			}
		}
	}
	_, errOut, status = runCaptured(t, ep, nil, "--lock-name=h", "--unlock")
	check("--unlock", errOut)
	if status != 0 || !strings.HasPrefix(errOut, `distlock: released lock "h", held by host "\x1b[2Jweb1, pid 1", pid 4711,`) {
		t.Errorf("--unlock: exit %d, stderr %.3000q", status, errOut)
	}
}

// hugeListLimit bounds the --list of TestListHugeRealm: 13 s alone
// under the race detector, and past 60 s once in the whole run, six tests
// at once beside the other packages.
const hugeListLimit = 3 * time.Minute

// TestListHugeRealm: --list on a realm of 100,000 keys (20,000 locks of a
// holder and four waiters) shows every lock, once, with its holder and its
// count of waiters; --list --json does the same as one valid array, on a
// realm of 3,000 keys (three of the pages --list reads; the same reads as
// the text, so the JSON of 100,000 keys took another 13 s of the race
// detector's time for nothing more). That etcd is read in pages is
// TestListPages's, in the lock package.
func TestListHugeRealm(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100,000 keys")
	}
	t.Parallel()
	const hugeLocks, perLock = 20000, 5
	client := testClient(t)
	ep := testEtcd(t).Endpoint()

	realm := fillRealm(t, client, testRealm(t), hugeLocks, perLock)
	out, errOut, status := runCapturedWithin(t, hugeListLimit, ep, nil, "--list")
	if status != 0 || errOut != "" {
		t.Fatalf("--list: exit %d, stderr %q", status, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != hugeLocks {
		t.Fatalf("--list: %d lines, want %d", len(lines), hugeLocks)
	}
	for i, l := range lines {
		want := fmt.Sprintf("lock-%05d\thost h0, pid 1, reason \"r%d\"\t%d waiting", i, i, perLock-1)
		if l != want {
			t.Fatalf("--list line %d: %q, want %q", i+1, l, want)
		}
	}

	const locks = 600
	realm = fillRealm(t, client, realm+"json/", locks, perLock)
	out, errOut, status = runCapturedWithin(t, hugeListLimit, ep, []string{"DISTLOCK_PREFIX=" + realm}, "--list", "--json")
	if status != 0 || errOut != "" {
		t.Fatalf("--list --json: exit %d, stderr %q", status, errOut)
	}
	var list []struct {
		Name    string
		Holder  struct{ Info struct{ Host, Reason string } }
		Waiters []struct{ Info struct{ PID int } }
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("--list --json is not JSON: %v", err)
	}
	if len(list) != locks {
		t.Fatalf("--list --json: %d locks, want %d", len(list), locks)
	}
	for i, l := range list {
		if l.Name != fmt.Sprintf("lock-%05d", i) || l.Holder.Info.Host != "h0" || l.Holder.Info.Reason != fmt.Sprint("r", i) ||
			len(l.Waiters) != perLock-1 || l.Waiters[perLock-2].Info.PID != perLock {
			t.Fatalf("--list --json element %d: %+v", i, l)
		}
	}
}

// fillRealm writes, under realm, locks lock-00000 on of perLock keys
// each: holder h0 (pid 1, reason rN), then waiters h1 (pid 2) and on, in
// transactions of 128 keys. It returns realm.
func fillRealm(t *testing.T, client *clientv3.Client, realm string, locks, perLock int) string {
	t.Helper()
	var ops []clientv3.Op
	flush := func() {
		if _, err := client.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	// Each lock's holder first: a round of transactions per place in line.
	for j := range perLock {
		for i := range locks {
			v := fmt.Sprintf(`{"host":"h%d","pid":%d,"mode":"exec","reason":"r%d"}`, j, j+1, i)
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%slock-%05d/%x", realm, i, 0xff-j), v))
			if len(ops) == 128 {
				flush()
			}
		}
	}
	if len(ops) > 0 {
		flush()
	}
	return realm
}

// TestOwnLinesOneLine: distlock's own lines stay one line each, with
// nothing a terminal would act on, whatever the user gave it to name (a
// command, a path).
func TestOwnLinesOneLine(t *testing.T) {
	t.Parallel()
	ep := testEtcd(t).Endpoint()
	for _, tc := range []struct {
		args   []string
		status int
	}{
		{[]string{"--lock-name=own", "--", "no\nsuch\x1b[2J\u009bcommand\u202e"}, exitNotFound},
		{[]string{"--lock-name=own", "--config=/nonexistent/\x1b[2J\nx.yaml", "--", "true"}, exitUsage},
		{[]string{"--lock-name=own", "--log-format=json", "--", "no\nsuch\u009bcommand"}, exitNotFound},
	} {
		_, errOut, status := runCaptured(t, ep, nil, tc.args...)
		if status != tc.status || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d (want %d), stderr not one line: %q", tc.args, status, tc.status, errOut)
		}
		if bad := terminalUnsafe(errOut); bad != "" {
			t.Errorf("%q: stderr shows %s: %q", tc.args, bad, errOut)
		}
	}
}
