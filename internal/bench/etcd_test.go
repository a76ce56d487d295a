package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"golang.org/x/sys/unix"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// server is the one etcd member the benchmarks use.
type server struct {
	endpoint string
	about    string // which etcd, for the benchmarks' logs
	data     string // where its data lives, for the report
	stop     func()
}

// startEtcd starts Debian's etcd if it is on PATH, else a member of the
// module's own etcd (devetcd) in a process of its own; DISTLOCK_BENCH_ETCD
// =embedded picks the latter in any case. Its data lives in dir, on disk,
// or with DISTLOCK_BENCH_DATA=tmpfs in /dev/shm, where an fsync costs
// nothing: what is left then is the clients' time and etcd's CPU.
func startEtcd(dir string) (*server, error) {
	choice := os.Getenv("DISTLOCK_BENCH_ETCD")
	if choice != "" && choice != "embedded" {
		return nil, fmt.Errorf("DISTLOCK_BENCH_ETCD=%q: want embedded, or unset for etcd from PATH if there is one", choice)
	}
	dataRoot, dropData, err := dataRoot(dir)
	if err != nil {
		return nil, err
	}
	var s *server
	if path, lerr := exec.LookPath("etcd"); lerr == nil && choice == "" {
		s, err = startInstalledEtcd(dir, dataRoot, path)
	} else {
		s, err = startDevEtcd(dir, dataRoot)
	}
	if err != nil {
		dropData()
		return nil, err
	}
	stop := s.stop
	s.stop = func() {
		stop()
		dropData()
	}
	return s, nil
}

// dataRoot is where etcd's data goes, as DISTLOCK_BENCH_DATA says: dir
// (disk, the default), or a new folder in /dev/shm (tmpfs), which drop
// removes.
func dataRoot(dir string) (root string, drop func(), err error) {
	switch where := os.Getenv("DISTLOCK_BENCH_DATA"); where {
	case "", "disk":
		return dir, func() {}, nil
	case "tmpfs":
		root, err := os.MkdirTemp("/dev/shm", "distlock-bench-etcd-")
		if err != nil {
			return "", nil, fmt.Errorf("DISTLOCK_BENCH_DATA=tmpfs: %w", err)
		}
		if fs := filesystem(root); fs != "tmpfs" {
			os.RemoveAll(root)
			return "", nil, fmt.Errorf("DISTLOCK_BENCH_DATA=tmpfs: /dev/shm is %s here, not tmpfs", fs)
		}
		return root, func() { os.RemoveAll(root) }, nil
	default:
		return "", nil, fmt.Errorf("DISTLOCK_BENCH_DATA=%q: want disk (the default) or tmpfs", where)
	}
}

// filesystem names the kind of file system path is on.
func filesystem(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	switch st.Type {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("file system type %#x", st.Type)
}

// dataAbout says where etcd's data at path lives, and what its fsync
// costs there.
func dataAbout(path string) string {
	if fs := filesystem(filepath.Dir(path)); fs != "tmpfs" {
		return fmt.Sprintf("on disk (%s, an fsync for every commit): %s", fs, path)
	}
	return "on tmpfs (in memory: an fsync returns at once): " + path
}

// startDevEtcd starts one member of the module's own etcd, with its data
// under dataRoot.
func startDevEtcd(dir, dataRoot string) (*server, error) {
	devetcd, err := build(dir, "github.com/tinx/distlock/internal/devetcd")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dataRoot, "devetcd-data")
	cluster, err := etcdtest.StartProcessCluster(data, devetcd, 1)
	if err != nil {
		return nil, err
	}
	return &server{
		endpoint: cluster.Endpoint(0),
		about:    "the module's etcd (internal/devetcd, etcd's embed package as in go.mod, no fsync), one member in a process of its own",
		data:     "no fsync (devetcd), " + data,
		stop:     cluster.Close,
	}, nil
}

// startInstalledEtcd runs the etcd program at path as a single member with
// .ci/run's flags, on free ports (trying again if one was taken meanwhile),
// its data under dataRoot.
func startInstalledEtcd(dir, dataRoot, path string) (*server, error) {
	version, err := exec.Command(path, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", path, err)
	}
	about := path + ", " + strings.SplitN(string(version), "\n", 2)[0]
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		name := fmt.Sprintf("etcd%d", attempt)
		data := filepath.Join(dataRoot, name, "data")
		s, err := tryInstalledEtcd(filepath.Join(dir, name), data, path)
		if err == nil {
			s.about, s.data = about, dataAbout(data)
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryInstalledEtcd(dir, data, path string) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	logFile, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(path, "--name", "bench", "--data-dir", data,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench="+peer)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the benchmark binary dies without cleaning up, etcd goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gone := false
	err = poll.Until(ctx, func() bool {
		select {
		case <-exited:
			gone = true
			return true
		default:
		}
		return healthy(ctx, client)
	})
	if gone || err != nil {
		stop()
		log, _ := os.ReadFile(logFile.Name())
		if len(log) > 3000 {
			log = log[len(log)-3000:]
		}
		return nil, fmt.Errorf("etcd at %s did not become healthy (exited: %v, %v); its log ends:\n%s", client, gone, err, log)
	}
	return &server{endpoint: client, stop: stop}, nil
}

// healthy says whether the member at endpoint says so on /health.
func healthy(ctx context.Context, endpoint string) bool {
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(hctx, http.MethodGet, endpoint+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"health":"true"`)
}

// freePorts picks n ports that are free now.
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// client is a client straight to the member, for what the test itself
// asks etcd.
func (s *server) client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{s.endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// requests is how many request messages the member has received, by gRPC
// method: grpc_server_msg_received_total from its /metrics, which counts a
// unary call once and every message a client sends on a stream (each
// keepalive, each watch created or cancelled) once.
func (s *server) requests() (map[string]float64, error) {
	m, err := s.scrape()
	return m.requests, err
}

// etcdMetrics is what the benchmarks read of the member's /metrics.
type etcdMetrics struct {
	requests map[string]float64 // grpc_server_msg_received_total, by method
	// fsyncs of the write-ahead log, and the seconds they took
	// (etcd_disk_wal_fsync_duration_seconds' count and sum): a commit
	// is one.
	fsyncs, fsyncSeconds float64
}

// since is what grew from before to m.
func (m etcdMetrics) since(before etcdMetrics) etcdMetrics {
	d := etcdMetrics{requests: map[string]float64{}, fsyncs: m.fsyncs - before.fsyncs, fsyncSeconds: m.fsyncSeconds - before.fsyncSeconds}
	for method, c := range m.requests {
		if n := c - before.requests[method]; n > 0 {
			d.requests[method] = n
		}
	}
	return d
}

// plus is m and o added up.
func (m etcdMetrics) plus(o etcdMetrics) etcdMetrics {
	sum := etcdMetrics{requests: map[string]float64{}, fsyncs: m.fsyncs + o.fsyncs, fsyncSeconds: m.fsyncSeconds + o.fsyncSeconds}
	for _, r := range []map[string]float64{m.requests, o.requests} {
		for method, c := range r {
			sum.requests[method] += c
		}
	}
	return sum
}

// scrape reads the member's /metrics.
func (s *server) scrape() (etcdMetrics, error) {
	m := etcdMetrics{requests: map[string]float64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, fmt.Errorf("read etcd's metrics: %w", err)
	}
	defer resp.Body.Close()
	const received = "grpc_server_msg_received_total{"
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, _, _ := strings.Cut(line, " ")
		var into *float64
		switch {
		case strings.HasPrefix(line, received):
		case name == "etcd_disk_wal_fsync_duration_seconds_count":
			into = &m.fsyncs
		case name == "etcd_disk_wal_fsync_duration_seconds_sum":
			into = &m.fsyncSeconds
		default:
			continue
		}
		n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return m, fmt.Errorf("etcd's metrics line %q: %w", line, err)
		}
		if into != nil {
			*into = n
		} else {
			m.requests[label(line, "grpc_method")] += n
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("read etcd's metrics: %w", err)
	}
	if len(m.requests) == 0 {
		return m, errors.New("etcd's /metrics has no " + received + "...} lines")
	}
	return m, nil
}

// label is the value of label name in a Prometheus text line.
func label(line, name string) string {
	i := strings.Index(line, name+`="`)
	if i < 0 {
		return ""
	}
	v := line[i+len(name)+2:]
	if j := strings.IndexByte(v, '"'); j >= 0 {
		v = v[:j]
	}
	return v
}
