package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/internal/torture"
)

// killAfter is the --kill-after of the holder: its command ignores SIGTERM,
// so distlock's SIGKILL is what ends it.
const killAfter = time.Second

// BenchmarkLossMargin: how long before its lease could expire in etcd a
// cut-off holder's command is dead (see the package doc).
func BenchmarkLossMargin(b *testing.B) {
	if testing.Short() {
		b.Skip("the lock-loss margin takes a TTL per run")
	}
	for _, ttl := range []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second} {
		b.Run("ttl="+ttl.String(), func(b *testing.B) {
			e := setup(b) // here, not in the parent: a parent's log shows only with -v
			client, err := e.etcd.client()
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			var margins []float64
			for b.Loop() {
				m, err := e.lossMargin(b, client, ttl)
				if err != nil {
					b.Fatal(err)
				}
				margins = append(margins, ms(m))
			}
			worst := margins[0]
			for _, m := range margins {
				worst = min(worst, m)
			}
			b.ReportMetric(worst, "ms-margin") // the smallest, if -benchtime asks for several
			b.ReportMetric(0, "ns/op")
			if worst <= 0 {
				b.Errorf("the command outlived the lease's earliest expiry in etcd by %.0fms", -worst)
			}
		})
	}
}

// lossMargin runs one distlock holder with ttl through a proxy, cuts the
// proxy once the command runs, and returns the earliest moment etcd could
// expire the lease minus the moment the command was seen dead.
func (e *env) lossMargin(b *testing.B, client *clientv3.Client, ttl time.Duration) (time.Duration, error) {
	proxy, err := etcdtest.NewProxy(e.etcd.endpoint)
	if err != nil {
		return 0, err
	}
	defer proxy.Close()
	realm := e.realm(b)
	logPath, pidPath := e.path("loss.log"), e.path("loss.pid")
	out, err := e.outputFile("loss.out")
	if err != nil {
		return 0, err
	}
	defer out.Close()

	// The command notes its pid, then becomes a worker that ignores
	// SIGTERM and would run for an hour.
	cmd := command([]string{e.distlock, "--endpoints=" + proxy.URL(), "--prefix=" + realm, "--lock-name=loss",
		"--ttl=" + ttl.String(), "--kill-after=" + killAfter.String(), "--",
		"sh", "-c", `echo $$ > "$0" && exec "$@"`, pidPath, e.worker, logPath, "loss", "loss", "3600000", "ignore-term"}, out)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	pid := 0
	defer func() { // on failure too: nothing outlives the benchmark
		_ = cmd.Process.Kill()
		<-exited
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	ended := func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := poll.Until(ctx, func() bool { return ended() || lastRecord(logPath) != 0 }); err != nil || ended() {
		return 0, fmt.Errorf("the command did not start under the lock: %v\n%s", err, tail(out))
	}
	if pid, err = readPid(pidPath); err != nil {
		return 0, err
	}
	held, err := client.Get(ctx, realm, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	var lease clientv3.LeaseID
	for _, kv := range held.Kvs {
		if kv.Lease != 0 && strings.HasPrefix(string(kv.Key), realm+"loss/") {
			lease = clientv3.LeaseID(kv.Lease)
		}
	}
	if lease == 0 {
		return 0, fmt.Errorf("no key with a lease under %sloss/", realm)
	}

	proxy.Partition()
	// Each answer bounds the expiry from below: etcd truncates the time
	// left to whole seconds and answers some time after it was asked.
	var expiry, gone, expiredBy int64
	wctx, wcancel := context.WithTimeout(context.Background(), ttl+killAfter+30*time.Second)
	defer wcancel()
	err = poll.Until(wctx, func() bool {
		asked := torture.Mono()
		actx, acancel := context.WithTimeout(wctx, time.Second)
		resp, err := client.TimeToLive(actx, lease)
		acancel()
		switch {
		case err != nil:
		case resp.TTL >= 0:
			expiry = max(expiry, asked+resp.TTL*int64(time.Second))
		case expiredBy == 0:
			expiredBy = torture.Mono()
		}
		if dead(pid) {
			gone = torture.Mono()
			return true
		}
		return false
	})
	if err != nil {
		return 0, fmt.Errorf("the command still ran %v after the cut: %v", ttl+killAfter+30*time.Second, err)
	}
	if expiry == 0 {
		return 0, errors.New("etcd never told the lease's time to live after the cut")
	}
	margin := time.Duration(expiry - gone)
	note := ""
	if expiredBy != 0 {
		note = fmt.Sprintf("; etcd had expired the lease %v before the command was seen dead", time.Duration(gone-expiredBy))
	}
	b.Logf("ttl %v: command dead %v before the lease's earliest expiry (%v by its last record)%s",
		ttl, margin.Round(time.Millisecond), time.Duration(expiry-lastRecord(logPath)).Round(time.Millisecond), note)

	// Let distlock reach etcd again and see how it ended: 70, lock lost.
	proxy.Heal()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		return margin, fmt.Errorf("distlock still runs 30s after the cut healed\n%s", tail(out))
	}
	if code := cmd.ProcessState.ExitCode(); code != 70 {
		b.Logf("distlock exited %d after the lock was lost, not 70\n%s", code, tail(out))
	}
	return margin, nil
}

// lastRecord is the monotonic time of the worker's last record in logPath,
// or 0 if it has written none.
func lastRecord(logPath string) int64 {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) == 0 {
		return 0
	}
	at, _ := strconv.ParseInt(f[0], 10, 64)
	return at
}

// readPid reads the pid the command wrote.
func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	return pid, nil
}

// dead says whether process pid has ended: it is gone, or a zombie that
// its parent has not reaped yet.
func dead(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return strings.HasPrefix(strings.TrimSpace(rest), "Z")
}
