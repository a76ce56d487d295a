package blackbox

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/report"
)

// jsonLines parses each of stderr's lines but the ones in verbatim (the
// command's own, which must be there, as written) as one of distlock's
// JSON lines, holds it to the fields every line has, and returns them.
func jsonLines(t *testing.T, stderr, lockName string, verbatim ...string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, text := range strings.SplitAfter(stderr, "\n") {
		if text == "" {
			continue
		}
		if !strings.HasSuffix(text, "\n") {
			t.Errorf("stderr ends in half a line: %q", text)
		}
		text = strings.TrimSuffix(text, "\n")
		if i := slices.Index(verbatim, text); i >= 0 {
			verbatim = slices.Delete(verbatim, i, i+1)
			continue
		}
		var line map[string]any
		if err := json.Unmarshal([]byte(text), &line); err != nil {
			t.Errorf("stderr line %q is not JSON: %v", text, err)
			continue
		}
		ts, _ := line["time"].(string)
		if when, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.Contains(ts, ".") || time.Since(when) > time.Minute {
			t.Errorf("line %q: time %q is not a recent RFC 3339 time with a fraction of a second", text, ts)
		}
		if level := line["level"]; level != "error" && level != "info" && level != "debug" {
			t.Errorf("line %q: level %v", text, level)
		}
		if line["lock"] != lockName {
			t.Errorf("line %q: lock %v, want %q", text, line["lock"], lockName)
		}
		if ev, _ := line["event"].(string); !regexp.MustCompile(`^[a-z_]+$`).MatchString(ev) {
			t.Errorf("line %q: event %q", text, ev)
		}
		if msg, _ := line["msg"].(string); msg == "" || strings.HasPrefix(msg, "distlock:") {
			t.Errorf("line %q: msg %q", text, msg)
		}
		lines = append(lines, line)
	}
	if len(verbatim) > 0 {
		t.Errorf("the command's lines %q are not on stderr as written:\n%s", verbatim, stderr)
	}
	return lines
}

// events are the lines' events, in order.
func events(lines []map[string]any) []string {
	var evs []string
	for _, l := range lines {
		evs = append(evs, l["event"].(string))
	}
	return evs
}

// TestLogFormatJSON: with --log-format json every line of distlock's is a
// JSON object, in a normal run and in a conflict, and the command's own
// stderr passes through as it is. A run that went well says its steps at
// info, so that a log shipper sees every run: acquired, ended (with its
// status), released; the text format says nothing of them.
func TestLogFormatJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	status, stderr := runHost(t, dir, nil, "--lock-name=j", "--log-format=json", "--",
		"sh", "-c", `echo 'plain words, not JSON' >&2; echo '{"half": ' >&2; exit 4`)
	if status != 4 {
		t.Fatalf("exit %d, stderr %q", status, stderr)
	}
	lines := jsonLines(t, stderr, "j", "plain words, not JSON", `{"half": `)
	want := []string{string(report.EventAcquired), string(report.EventEnded), string(report.EventReleased)}
	if evs := events(lines); !slices.Equal(evs, want) {
		t.Errorf("events %q, want %q", evs, want)
	}
	for _, l := range lines {
		if l["level"] != "info" {
			t.Errorf("a step of the run not at info: %v", l)
		}
		if l["event"] == string(report.EventAcquired) && (l["fencing_token"] == nil || l["key"] == nil) {
			t.Errorf("acquired without its key and token: %v", l)
		}
		if l["event"] == string(report.EventEnded) && l["exit_status"] != 4.0 {
			t.Errorf("ended: %v", l)
		}
		if l["event"] == string(report.EventReleased) && l["key"] == nil {
			t.Errorf("released without its key: %v", l)
		}
	}
	// In text, a run that went well says nothing; --quiet JSON neither.
	if status, stderr := runHost(t, dir, nil, "--lock-name=j", "--", "true"); status != 0 || stderr != "" {
		t.Errorf("text: exit %d, stderr %q; want 0 and nothing", status, stderr)
	}
	if status, stderr := runHost(t, dir, nil, "--lock-name=j", "--log-format=json", "--quiet", "--", "true"); status != 0 || stderr != "" {
		t.Errorf("json --quiet: exit %d, stderr %q; want 0 and nothing", status, stderr)
	}

	// A holder with a reason; another call waits half a second for it,
	// and gives up: each says so about that holder.
	if status, stderr := runHost(t, dir, nil, "--lock-name=j", "--lock", "--reason=kept"); status != 0 {
		t.Fatalf("--lock: exit %d, %s", status, stderr)
	}
	status, stderr = runHost(t, dir, []string{"DISTLOCK_LOG_FORMAT=json"}, "--lock-name=j", "--timeout=0.5", "--", "true")
	if status != exitConflict {
		t.Fatalf("exit %d, stderr %q", status, stderr)
	}
	lines = jsonLines(t, stderr, "j")
	if evs := events(lines); !slices.Equal(evs, []string{string(report.EventWaiting), string(report.EventConflict)}) {
		t.Fatalf("events %q, want waiting, conflict:\n%s", evs, stderr)
	}
	for i, level := range []string{"info", "error"} {
		l := lines[i]
		holder, _ := l["holder"].(string)
		if l["level"] != level || !regexp.MustCompile(`^[^/]+/[1-9][0-9]*$`).MatchString(holder) ||
			l["reason"] != "kept" || l["holder_key"] == nil {
			t.Errorf("line %d: want level %s, holder host/pid, reason kept, holder_key: %v", i, level, l)
		}
	}
	if !strings.Contains(lines[1]["msg"].(string), `reason "kept"`) {
		t.Errorf("the conflict's text does not say the reason: %v", lines[1])
	}
	if status, stderr := runHost(t, dir, nil, "--lock-name=j", "--unlock", "--log-format=json"); status != 0 {
		t.Fatalf("--unlock: exit %d, %s", status, stderr)
	} else if evs := events(jsonLines(t, stderr, "j")); !slices.Equal(evs, []string{string(report.EventReleased)}) {
		t.Errorf("--unlock: events %q", evs)
	}
}

// TestLogFormatUsage: a usage error is a JSON line once --log-format json
// was read, from the command line or the environment; a bad value is
// itself a usage error, said as text.
func TestLogFormatUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--log-format=json", "--lock-name=u", "--limit=0", "--", "true"}},
		{nil, []string{"--log-format=json", "--lock-name=u", "--no-such-flag", "--", "true"}},
		{[]string{"DISTLOCK_LOG_FORMAT=json"}, []string{"--lock-name=u", "--limit=0", "--", "true"}},
	} {
		status, stderr := runHost(t, dir, tc.env, tc.args...)
		lines := jsonLines(t, stderr, "u")
		if status != exitUsage || len(lines) != 1 || lines[0]["event"] != string(report.EventUsage) || lines[0]["level"] != "error" {
			t.Errorf("%q %q: exit %d, stderr %q", tc.env, tc.args, status, stderr)
		}
	}
	status, stderr := runHost(t, dir, nil, "--log-format=xml", "--lock-name=u", "--", "true")
	if want := "distlock: invalid value \"xml\" for flag --log-format: \"xml\" is neither text nor json\n"; status != exitUsage || stderr != want {
		t.Errorf("--log-format=xml: exit %d, stderr %q, want %q", status, stderr, want)
	}
}

// TestLogFormatJSONLost: a run whose lock was lost says so, and does not
// say afterwards that it released the lock: it was not its to release.
func TestLogFormatJSONLost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	holder := startDistlockEnv(t, dir, testEtcd(t).Endpoint(), []string{"DISTLOCK_LOG_FORMAT=json"}, nil,
		"--lock-name=jl", "--kill-after=1s", "--", "sh", "-c", "echo r > held; while :; do sleep 0.05; done")
	waitFile(t, filepath.Join(dir, "held"))
	if status, stderr := runHost(t, dir, nil, "--lock-name=jl", "--unlock"); status != 0 {
		t.Fatalf("--unlock: exit %d, %s", status, stderr)
	}
	if got := holder.wait(t, 30*time.Second); got != exitLockLost {
		t.Fatalf("holder exit %d, want %d; stderr:\n%s", got, exitLockLost, holder.stderr)
	}
	evs := events(jsonLines(t, holder.stderr.String(), "jl"))
	if !slices.Contains(evs, string(report.EventLost)) || slices.Contains(evs, string(report.EventReleased)) {
		t.Errorf("events %q: want lost, and no released", evs)
	}
}
