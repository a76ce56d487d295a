package blackbox

import (
	"strings"
	"testing"
	"time"
)

// TestMetricsFileNameEscaped: a lock name with the characters the format
// escapes is the label as written, and distlock carries its last success
// through a run that fails.
func TestMetricsFileNameEscaped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const name = `back\slash "quoted" ü`
	if status, stderr := runHost(t, dir, nil, "--lock-name="+name, "--metrics-file=e.prom", "--", "true"); status != 0 {
		t.Fatalf("exit %d, stderr %q", status, stderr)
	}
	first := readMetrics(t, dir+"/e.prom")
	success := gaugeValue(t, first, "distlock_last_success_timestamp_seconds", "lock", name)
	if status, _ := runHost(t, dir, nil, "--lock-name="+name, "--metrics-file=e.prom", "--", "false"); status != 1 {
		t.Fatalf("exit %d, want 1", status)
	}
	second := readMetrics(t, dir+"/e.prom")
	checkOutcome(t, second, name, "ran", 1)
	if got := gaugeValue(t, second, "distlock_last_success_timestamp_seconds", "lock", name); got != success {
		t.Errorf("last success %v after a failed run, want %v carried", got, success)
	}
	if strings.Contains(name, "\n") || time.Since(time.Unix(int64(success), 0)) > time.Minute {
		t.Errorf("last success %v is not this run's", success)
	}
}
