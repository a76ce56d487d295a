package blackbox

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/lock"
)

// readMetrics parses a metrics file with Prometheus' own text parser, as
// node_exporter's textfile collector does.
func readMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	for name, mf := range families {
		if !strings.HasPrefix(name, "distlock_") || mf.GetHelp() == "" || mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s: metric %s: want a distlock_ gauge with help, got %v", path, name, mf)
		}
	}
	return families
}

// gaugeValue is the value of the one series of metric name whose labels
// are labels (name, value, ...); the test fails if there is none.
func gaugeValue(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := findGauge(families, name, labels...)
	if !ok {
		t.Fatalf("no %s%q in the metrics file", name, labels)
	}
	return v
}

func findGauge(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := families[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.Metric {
		var got []string
		for _, l := range m.Label {
			got = append(got, l.GetName(), l.GetValue())
		}
		if slices.Equal(got, labels) {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// checkOutcome holds the file's outcome and exit status to the run's:
// distlock_outcome is 1 for outcome, 0 for the six others.
func checkOutcome(t *testing.T, families map[string]*dto.MetricFamily, lockName, outcome string, status int) {
	t.Helper()
	if n := len(families["distlock_outcome"].GetMetric()); n != len(report.Outcomes) {
		t.Errorf("distlock_outcome has %d series, want %d", n, len(report.Outcomes))
	}
	for _, o := range []string{"ran", "skipped", "conflict", "lost", "overran", "unreachable", "usage"} {
		want := 0.0
		if o == outcome {
			want = 1
		}
		if got := gaugeValue(t, families, "distlock_outcome", "lock", lockName, "outcome", o); got != want {
			t.Errorf("distlock_outcome{outcome=%q} = %v, want %v", o, got, want)
		}
	}
	if got := gaugeValue(t, families, "distlock_exit_status", "lock", lockName); got != float64(status) {
		t.Errorf("distlock_exit_status = %v, want %d", got, status)
	}
}

// checkRecent insists that metric is a Unix time within the last minute.
func checkRecent(t *testing.T, families map[string]*dto.MetricFamily, metric, lockName string) float64 {
	t.Helper()
	v := gaugeValue(t, families, metric, "lock", lockName)
	if age := float64(time.Now().UnixNano())/1e9 - v; age < 0 || age > 60 {
		t.Errorf("%s = %v: %vs ago", metric, v, age)
	}
	return v
}

// checkOnlyFiles insists that dir holds exactly the files named: no
// temporary file is left behind.
func checkOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

// TestMetricsFile: one metrics file through a run that succeeds, one that
// fails, a conflict, an etcd out of reach and usage errors; each replaces
// the file, and the last success is carried through all of them.
func TestMetricsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "m.prom")
	metrics := "--metrics-file=m.prom"

	// A success: the token is the command's DISTLOCK_FENCING_TOKEN.
	status, stderr := runHost(t, dir, nil, "--lock-name=m", metrics, "--", "sh", "-c", "echo $DISTLOCK_FENCING_TOKEN > token; sleep 0.2")
	if status != 0 || stderr != "" {
		t.Fatalf("success: exit %d, stderr %q", status, stderr)
	}
	checkOnlyFiles(t, dir, "m.prom", "token")
	m := readMetrics(t, file)
	checkOutcome(t, m, "m", "ran", 0)
	if got, want := gaugeValue(t, m, "distlock_fencing_token", "lock", "m"), float64(readInt(t, filepath.Join(dir, "token"))); got != want || got <= 0 {
		t.Errorf("distlock_fencing_token = %v, want %v", got, want)
	}
	if held := gaugeValue(t, m, "distlock_held_seconds", "lock", "m"); held < 0.2 || held > 30 {
		t.Errorf("distlock_held_seconds = %v, want the command's 0.2s or a little more", held)
	}
	if wait := gaugeValue(t, m, "distlock_wait_seconds", "lock", "m"); wait < 0 || wait > 10 {
		t.Errorf("distlock_wait_seconds = %v for a free lock", wait)
	}
	success := checkRecent(t, m, "distlock_last_run_timestamp_seconds", "m")
	if got := gaugeValue(t, m, "distlock_last_success_timestamp_seconds", "lock", "m"); got != success {
		t.Errorf("last success %v, want the run's end %v", got, success)
	}
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}

	// carried checks that a run that was no success left the last one.
	carried := func(m map[string]*dto.MetricFamily, lockName string) {
		t.Helper()
		if got := gaugeValue(t, m, "distlock_last_success_timestamp_seconds", "lock", lockName); got != success {
			t.Errorf("last success %v, want the first run's %v", got, success)
		}
		if end := checkRecent(t, m, "distlock_last_run_timestamp_seconds", lockName); end <= success {
			t.Errorf("last run ended %v, not after the last success %v", end, success)
		}
		checkOnlyFiles(t, dir, "m.prom", "token")
	}

	// A failing command: its status; the file replaced, not rewritten
	// in place or added to.
	status, _ = runHost(t, dir, nil, "--lock-name=m", metrics, "--", "sh", "-c", "exit 3")
	if status != 3 {
		t.Fatalf("failing command: exit %d", status)
	}
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Errorf("the metrics file was written in place, not replaced")
	}
	m = readMetrics(t, file)
	checkOutcome(t, m, "m", "ran", 3)
	carried(m, "m")

	// A conflict: the lock is taken with --lock; no token, nothing held.
	if status, stderr := runHost(t, dir, nil, "--lock-name=m", "--lock"); status != 0 {
		t.Fatalf("--lock: exit %d, %s", status, stderr)
	}
	status, _ = runHost(t, dir, nil, "--lock-name=m", metrics, "--nowait", "--", "true")
	if status != exitConflict {
		t.Fatalf("--nowait on a taken lock: exit %d", status)
	}
	m = readMetrics(t, file)
	checkOutcome(t, m, "m", "conflict", exitConflict)
	if _, ok := findGauge(m, "distlock_fencing_token", "lock", "m"); ok {
		t.Errorf("a fencing token for a lock never acquired")
	}
	if held := gaugeValue(t, m, "distlock_held_seconds", "lock", "m"); held != 0 {
		t.Errorf("distlock_held_seconds = %v for a lock never acquired", held)
	}
	carried(m, "m")
	if status, stderr := runHost(t, dir, nil, "--lock-name=m", "--unlock", "--quiet"); status != 0 {
		t.Fatalf("--unlock: exit %d, %s", status, stderr)
	}

	// etcd out of reach.
	status, _ = runHost(t, dir, nil, "--lock-name=m", metrics, "--endpoints=http://127.0.0.1:1", "--dial-timeout=1s", "--", "true")
	if status != exitUnavailable {
		t.Fatalf("unreachable: exit %d", status)
	}
	m = readMetrics(t, file)
	checkOutcome(t, m, "m", "unreachable", exitUnavailable)
	carried(m, "m")

	// Usage errors: one the checks find, one on the command line after
	// --metrics-file, and one without a lock name, which keeps the
	// file's.
	for _, args := range [][]string{
		{"--lock-name=m", metrics, "--limit=0", "--", "true"},
		{"--lock-name=m", metrics, "--no-such-flag", "--", "true"},
		{metrics, "--", "true"},
	} {
		status, stderr := runHost(t, dir, nil, args...)
		if status != exitUsage || strings.Count(stderr, "\n") != 1 {
			t.Fatalf("%q: exit %d, stderr %q", args, status, stderr)
		}
		m = readMetrics(t, file)
		checkOutcome(t, m, "m", "usage", exitUsage)
		carried(m, "m")
	}

	// From the environment; a failure to write is one line, and the
	// status stays the command's.
	status, stderr = runHost(t, dir, []string{"DISTLOCK_METRICS_FILE=no/such/dir/m.prom"}, "--lock-name=m", "--", "true")
	if status != 0 || !regexp.MustCompile(`^distlock: could not write the metrics file no/such/dir/m.prom: no such file or directory\n$`).MatchString(stderr) {
		t.Errorf("unwritable metrics file: exit %d, stderr %q", status, stderr)
	}
	checkOnlyFiles(t, dir, "m.prom", "token")
}

// TestMetricsFileSkipped: a run --min-interval skips says so, and is no
// success of its own: the last success stays the run that ran.
func TestMetricsFileSkipped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "s.prom")
	args := []string{"--lock-name=s", "--metrics-file=" + file, "--min-interval=60s", "--", "true"}
	if status, stderr := runHost(t, dir, nil, args...); status != 0 || stderr != "" {
		t.Fatalf("first run: exit %d, stderr %q", status, stderr)
	}
	m := readMetrics(t, file)
	checkOutcome(t, m, "s", "ran", 0)
	success := gaugeValue(t, m, "distlock_last_success_timestamp_seconds", "lock", "s")

	if status, stderr := runHost(t, dir, nil, args...); status != 0 || stderr != "" {
		t.Fatalf("second run: exit %d, stderr %q", status, stderr)
	}
	m = readMetrics(t, file)
	checkOutcome(t, m, "s", "skipped", 0)
	if got := gaugeValue(t, m, "distlock_last_success_timestamp_seconds", "lock", "s"); got != success {
		t.Errorf("last success %v after a skip, want the run's %v", got, success)
	}
	if end := gaugeValue(t, m, "distlock_last_run_timestamp_seconds", "lock", "s"); end <= success {
		t.Errorf("last run %v, not after the success %v", end, success)
	}
	// The lock was taken to ask, and its token is known.
	if tok := gaugeValue(t, m, "distlock_fencing_token", "lock", "s"); tok <= 0 {
		t.Errorf("distlock_fencing_token = %v", tok)
	}
	checkOnlyFiles(t, dir, "s.prom")
}

// TestMetricsFileLost: a lock unlocked from elsewhere while its command
// runs is a lost lock, and was held until then.
func TestMetricsFileLost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "lost.prom")
	cmd := startHost(t, dir, "--lock-name=l", "--metrics-file="+file, "--kill-after=1s", "--",
		"sh", "-c", "touch ready; while :; do sleep 0.05; done")
	poll.For(t, "the command to start", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "ready"))
		return err == nil
	})
	started := time.Now()
	if status, stderr := runHost(t, dir, nil, "--lock-name=l", "--unlock"); status != 0 {
		t.Fatalf("--unlock: exit %d, %s", status, stderr)
	}
	_ = cmd.Wait()
	if got := cmd.ProcessState.ExitCode(); got != exitLockLost {
		t.Fatalf("the holder exited %d, want %d", got, exitLockLost)
	}
	m := readMetrics(t, file)
	checkOutcome(t, m, "l", "lost", exitLockLost)
	if _, ok := findGauge(m, "distlock_last_success_timestamp_seconds", "lock", "l"); ok {
		t.Errorf("a last success, and none succeeded")
	}
	held := gaugeValue(t, m, "distlock_held_seconds", "lock", "l")
	if most := time.Since(started).Seconds() + 30; held <= 0 || held > most || math.IsNaN(held) {
		t.Errorf("distlock_held_seconds = %v", held)
	}
	checkOnlyFiles(t, dir, "lost.prom", "ready")
}

// TestMetricsFileOverran: a command stopped by --max-runtime is the
// outcome overran, status 124, and no success.
func TestMetricsFileOverran(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "over.prom")
	status, stderr := runHost(t, dir, nil, "--lock-name=over", "--metrics-file="+file, "--max-runtime=1s", "--", "sleep", "1000")
	if status != 124 || !strings.Contains(stderr, "(--max-runtime)") {
		t.Fatalf("exit %d, stderr %q; want 124 and the line", status, stderr)
	}
	m := readMetrics(t, file)
	checkOutcome(t, m, "over", "overran", 124)
	if _, ok := findGauge(m, "distlock_last_success_timestamp_seconds", "lock", "over"); ok {
		t.Errorf("a last success, and none succeeded")
	}
	if held := gaugeValue(t, m, "distlock_held_seconds", "lock", "over"); held < 1 {
		t.Errorf("distlock_held_seconds = %v, less than --max-runtime", held)
	}
}

// TestMetricsFileSignal: a signal that ends the wait for a taken lock is
// a conflict, with the status of the signal and the time waited.
func TestMetricsFileSignal(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "sig.prom")
	if status, stderr := runHost(t, dir, nil, "--lock-name=g", "--lock"); status != 0 {
		t.Fatalf("--lock: exit %d, %s", status, stderr)
	}
	cmd := startHost(t, dir, "--lock-name=g", "--metrics-file="+file, "--", "true")
	poll.For(t, "distlock to wait in line", 30*time.Second, func() bool {
		entries, err := lock.Entries(context.Background(), client, testRealm(t), "g")
		return err == nil && len(entries) == 2
	})
	waiting := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if got := cmd.ProcessState.ExitCode(); got != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %d, want 143", got)
	}
	m := readMetrics(t, file)
	checkOutcome(t, m, "g", "conflict", 128+int(syscall.SIGTERM))
	if wait := gaugeValue(t, m, "distlock_wait_seconds", "lock", "g"); wait <= 0 || wait > time.Since(waiting).Seconds()+30 {
		t.Errorf("distlock_wait_seconds = %v", wait)
	}
	if held := gaugeValue(t, m, "distlock_held_seconds", "lock", "g"); held != 0 {
		t.Errorf("distlock_held_seconds = %v for a lock never acquired", held)
	}
	if status, stderr := runHost(t, dir, nil, "--lock-name=g", "--unlock", "--quiet"); status != 0 {
		t.Fatalf("--unlock: exit %d, %s", status, stderr)
	}
}

// startHost starts distlock in dir against the test etcd in the test's
// realm, as runHost runs it, without waiting for it.
func startHost(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "distlock", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"DISTLOCK_ENDPOINTS="+testEtcd(t).Endpoint(),
		"DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestMetricsFileNotOurs: what someone else left at the path costs the
// run nothing. A previous file that makes Prometheus' parser panic is
// taken for no file; a symbolic link or a FIFO there is left as it is,
// with a warning, and distlock neither follows nor blocks on it.
func TestMetricsFileNotOurs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	// "{}" at the start of a line panicked in the parser.
	file := filepath.Join(dir, "bad.prom")
	if err := os.WriteFile(file, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	status, stderr := runHost(t, dir, nil, "--lock-name=n", "--metrics-file=bad.prom", "--", "true")
	if status != 0 || stderr != "" {
		t.Fatalf("a run after a file that is not the text format: exit %d, stderr %q", status, stderr)
	}
	checkOutcome(t, readMetrics(t, file), "n", "ran", 0)

	// A symbolic link: not replaced, not written through.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.prom")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	status, stderr = runHost(t, dir, nil, "--lock-name=n", "--metrics-file=link.prom", "--", "sh", "-c", "exit 4")
	if status != 4 || !strings.Contains(stderr, "could not write the metrics file link.prom: it is not a regular file") {
		t.Errorf("a symbolic link at the path: exit %d, stderr %q", status, stderr)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced: %v %v", st, err)
	}
	if data, _ := os.ReadFile(target); string(data) != "keep\n" {
		t.Errorf("written through the link: %q", data)
	}

	// A FIFO nobody writes to: reading it would block for good.
	fifo := filepath.Join(dir, "fifo.prom")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		status, stderr = runHost(t, dir, nil, "--lock-name=n", "--metrics-file=fifo.prom", "--", "true")
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		// Let the run go: a writer ends the blocked read.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("distlock blocked on a FIFO at the metrics file's path")
	}
	if status != 0 || !strings.Contains(stderr, "not a regular file") {
		t.Errorf("a FIFO at the path: exit %d, stderr %q", status, stderr)
	}
}

// TestMetricsFileLongName: a file name as long as the file system allows
// (255 bytes) is written; the temporary file's name does not grow with it.
func TestMetricsFileLongName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := strings.Repeat("m", 250) + ".prom"
	if status, stderr := runHost(t, dir, nil, "--lock-name=long", "--metrics-file="+name, "--", "true"); status != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", status, stderr)
	}
	checkOutcome(t, readMetrics(t, filepath.Join(dir, name)), "long", "ran", 0)
	checkOnlyFiles(t, dir, name)
}
