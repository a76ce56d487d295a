package report

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tinx/distlock/lock"
)

// What a run came to, the outcome label of distlock_outcome. docs/reference.md
// says which exit statuses each one covers.
const (
	OutcomeRan         = "ran"         // did what it was asked; the command ran (or could not start)
	OutcomeSkipped     = "skipped"     // --min-interval: a recent run succeeded
	OutcomeConflict    = "conflict"    // the lock was not acquired in time, or a signal ended the wait
	OutcomeLost        = "lost"        // the lock was lost while it was held
	OutcomeOverran     = "overran"     // --max-runtime passed: the command was stopped
	OutcomeUnreachable = "unreachable" // etcd could not be reached, or refused
	OutcomeUsage       = "usage"       // bad input: exit 64
)

var Outcomes = []string{OutcomeRan, OutcomeSkipped, OutcomeConflict, OutcomeLost, OutcomeOverran, OutcomeUnreachable, OutcomeUsage}

// Facts is what a run learns on its way that its error does not say,
// for --metrics-file: how long it waited for the lock, how long it held
// it, its fencing token, and whether --min-interval skipped the command.
// The modes that take the lock fill it in.
type Facts struct {
	waitFrom, waitUntil time.Time
	heldFrom, heldUntil time.Time
	token               int64
	Skipped             bool
	Shared              bool // --shared: the lock was asked for shared
}

// Waiting marks the start of the wait for the lock.
func (f *Facts) Waiting() { f.waitFrom = time.Now() }

// Waited marks the end of the wait; h is the lock if it was acquired.
func (f *Facts) Waited(h *lock.Holder) {
	f.waitUntil = time.Now()
	if h != nil {
		f.heldFrom, f.token = f.waitUntil, h.FencingToken
	}
}

// Released marks the moment this run let the lock go.
func (f *Facts) Released() {
	if !f.heldFrom.IsZero() && f.heldUntil.IsZero() {
		f.heldUntil = time.Now()
	}
}

// seconds is the span from from to until (end if until never came), 0 if
// it never began.
func seconds(from, until, end time.Time) float64 {
	if from.IsZero() {
		return 0
	}
	if until.IsZero() {
		until = end
	}
	return until.Sub(from).Seconds()
}

// Metric names, also read back from the previous file.
const (
	metricLastSuccess = "distlock_last_success_timestamp_seconds"
	metricLastRun     = "distlock_last_run_timestamp_seconds"
)

// WriteMetrics writes --metrics-file (path) for lockName when distlock is
// done, the lock let go. A file it cannot write is said once and changes
// no exit status.
func WriteMetrics(path, lockName string, f *Facts, outcome string, status int, out *Reporter) {
	if path == "" {
		return
	}
	end := time.Now()
	name := lockName
	prevLock, prevSuccess := readPreviousMetrics(path)
	if name == "" {
		// A usage error before the name was known, or --list: keep the
		// label the file had, so the series stays the lock's.
		name = prevLock
	}
	// A name that failed the checks may not be UTF-8; a label must be.
	name = strings.ToValidUTF8(name, "\uFFFD")
	lastSuccess := time.Time{}
	if prevLock == name {
		lastSuccess = prevSuccess
	}
	if outcome == OutcomeRan && status == 0 {
		lastSuccess = end
	}

	var b bytes.Buffer
	for _, mf := range metricFamilies(name, outcome, status, f, end, lastSuccess) {
		mf.writeTo(&b)
	}
	// Only a regular file is replaced: a symbolic link or a device there
	// (/dev/stdout, say) is someone's, and the rename would replace it.
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		out.About(EventMetrics).Warn("could not write the metrics file %s: it is not a regular file (%v); left as it is", path, st.Mode().Type())
		return
	}
	if err := writeAtomically(path, b.Bytes()); err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		out.About(EventMetrics).Warn("could not write the metrics file %s: %v", path, err)
	}
}

// family is one metric of the text format: its name, help, and samples,
// all gauges. The format is written here rather than by Prometheus'
// packages (which the tests read it with): they would cost every run of
// distlock, --metrics-file or not, their start (a YAML library and
// regular expressions among them) and a third of a MiB of memory, for a
// dozen lines of text.
type family struct {
	name, help string
	samples    []sample
}

// sample is one line of a family: its labels, in order, and its value.
type sample struct {
	labels [][2]string
	value  float64
}

// writeTo writes f in the text exposition format (version 0.0.4).
func (f family) writeTo(b *bytes.Buffer) {
	b.WriteString("# HELP " + f.name + " " + helpEscaper.Replace(f.help) + "\n")
	b.WriteString("# TYPE " + f.name + " gauge\n")
	for _, s := range f.samples {
		b.WriteString(f.name)
		for i, l := range s.labels {
			sep := ","
			if i == 0 {
				sep = "{"
			}
			b.WriteString(sep + l[0] + `="` + labelEscaper.Replace(l[1]) + `"`)
		}
		if len(s.labels) > 0 {
			b.WriteString("}")
		}
		b.WriteString(" " + strconv.FormatFloat(s.value, 'g', -1, 64) + "\n")
	}
}

// What the format escapes: in a label value a backslash, a double quote
// and a newline; in help text a backslash and a newline.
var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// boolValue is a gauge's 1 for true, 0 for false.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricFamilies are the metrics of one run of lock name, in the order
// they are written.
func metricFamilies(name, outcome string, status int, f *Facts, end, lastSuccess time.Time) []family {
	lockLabel := [2]string{"lock", name}
	gauge := func(metric, help string, value float64) family {
		return family{name: metric, help: help, samples: []sample{{labels: [][2]string{lockLabel}, value: value}}}
	}

	// One series per outcome, 1 for this run's: an alert on one of them
	// never sees a series vanish.
	byOutcome := family{name: "distlock_outcome",
		help: "What the last run came to: 1 for its outcome (" + strings.Join(Outcomes, ", ") + "), 0 for the others."}
	for _, o := range Outcomes {
		v := 0.0
		if o == outcome {
			v = 1
		}
		byOutcome.samples = append(byOutcome.samples, sample{labels: [][2]string{lockLabel, {"outcome", o}}, value: v})
	}

	families := []family{
		byOutcome,
		gauge("distlock_exit_status", "Exit status of the last run: the command's when it ran, else distlock's own.", float64(status)),
		gauge("distlock_wait_seconds", "Seconds the last run waited for the lock.", seconds(f.waitFrom, f.waitUntil, end)),
		gauge("distlock_held_seconds", "Seconds the last run held the lock.", seconds(f.heldFrom, f.heldUntil, end)),
		gauge("distlock_shared", "1 if the last run asked for the lock shared (--shared), 0 if alone.", boolValue(f.Shared)),
	}
	if f.token != 0 {
		families = append(families, gauge("distlock_fencing_token",
			"Fencing token of the last run that acquired the lock: the create revision of its key.", float64(f.token)))
	}
	families = append(families,
		gauge(metricLastRun, "Unix time the last run ended.", unixSeconds(end)))
	if !lastSuccess.IsZero() {
		families = append(families, gauge(metricLastSuccess,
			"Unix time the last successful run ended (outcome ran, exit status 0).", unixSeconds(lastSuccess)))
	}
	return families
}

// readPreviousMetrics reads, from the file a previous run wrote, its lock
// label and its last successful run; zeros if there is no such file or it
// does not parse.
func readPreviousMetrics(path string) (name string, lastSuccess time.Time) {
	// Opened without blocking, and looked at as opened: a FIFO or a
	// device (/dev/stdout?) put there, even at the last moment, is not
	// read, as reading it could block.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", time.Time{}
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", time.Time{}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxMetricsFile))
	if err != nil {
		return "", time.Time{}
	}
	// The file is distlock's own, or is taken for none: the lines of
	// the two metrics it needs, one sample each, for one lock.
	run, runOK := findSample(data, metricLastRun)
	if !runOK {
		return "", time.Time{}
	}
	name = run.lock
	if success, ok := findSample(data, metricLastSuccess); ok && success.lock == name {
		lastSuccess = time.Unix(0, int64(success.value*1e9))
	}
	return name, lastSuccess
}

// maxMetricsFile is as much of a previous file as is read: distlock's own
// are a kilobyte or two.
const maxMetricsFile = 1 << 20

// lockSample is a sample of one of distlock's metrics: its lock label and
// its value.
type lockSample struct {
	lock  string
	value float64
}

// findSample finds the one sample of metric in data, written as writeTo
// writes it: `metric{lock="..."} value`. ok is false if there is no such
// line, more than one, or one that does not read so.
func findSample(data []byte, metric string) (s lockSample, ok bool) {
	found := 0
	lines := bufio.NewScanner(bytes.NewReader(data))
	for lines.Scan() {
		rest, isIt := strings.CutPrefix(lines.Text(), metric+`{lock="`)
		if !isIt {
			continue
		}
		found++
		name, rest, isIt := cutQuoted(rest)
		if !isIt {
			return s, false
		}
		rest, isIt = strings.CutPrefix(rest, "} ")
		if !isIt {
			return s, false
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			return s, false
		}
		s = lockSample{lock: name, value: v}
	}
	return s, found == 1 && lines.Err() == nil
}

// cutQuoted reads a label value up to its closing quote, undoing the
// format's escapes, and returns what follows the quote.
func cutQuoted(s string) (value, rest string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case '\\', '"':
				b.WriteByte(s[i])
			default:
				return "", "", false
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// writeAtomically replaces the file at path with data: a temporary file in
// the same directory, synced, renamed over it. A scrape reads the old file
// or the new one, never half of one; the temporary file's name ends in
// .tmp, which the textfile collector (reading *.prom) passes over.
func writeAtomically(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if dir == "" {
		dir = "."
	}
	// Not named after the file: a name near the length limit would not
	// leave room for the rest.
	tmp, err := os.CreateTemp(dir, ".distlock-metrics-*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes it 0600; the collector may run as another user.
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced too.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
