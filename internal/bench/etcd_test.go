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

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
)

// server is the one etcd member the benchmarks use.
type server struct {
	endpoint string
	about    string // which etcd, for the benchmarks' logs
	stop     func()
}

// startEtcd starts Debian's etcd if it is on PATH, else a member of the
// module's own etcd (devetcd) in a process of its own; DISTLOCK_BENCH_ETCD
// =embedded picks the latter in any case.
func startEtcd(dir string) (*server, error) {
	choice := os.Getenv("DISTLOCK_BENCH_ETCD")
	if choice != "" && choice != "embedded" {
		return nil, fmt.Errorf("DISTLOCK_BENCH_ETCD=%q: want embedded, or unset for etcd from PATH if there is one", choice)
	}
	if path, err := exec.LookPath("etcd"); err == nil && choice == "" {
		return startInstalledEtcd(dir, path)
	}
	devetcd, err := build(dir, "github.com/tinx/distlock/internal/devetcd")
	if err != nil {
		return nil, err
	}
	cluster, err := etcdtest.StartProcessCluster(filepath.Join(dir, "devetcd-data"), devetcd, 1)
	if err != nil {
		return nil, err
	}
	return &server{
		endpoint: cluster.Endpoint(0),
		about:    "the module's etcd (internal/devetcd, etcd's embed package as in go.mod, no fsync), one member in a process of its own",
		stop:     cluster.Close,
	}, nil
}

// startInstalledEtcd runs the etcd program at path as a single member with
// .ci/run's flags, on free ports (trying again if one was taken meanwhile).
func startInstalledEtcd(dir, path string) (*server, error) {
	version, err := exec.Command(path, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", path, err)
	}
	about := path + ", " + strings.SplitN(string(version), "\n", 2)[0]
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := tryInstalledEtcd(filepath.Join(dir, fmt.Sprintf("etcd%d", attempt)), path)
		if err == nil {
			s.about = about
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryInstalledEtcd(dir, path string) (*server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
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
	cmd := exec.Command(path, "--name", "bench", "--data-dir", filepath.Join(dir, "data"),
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read etcd's metrics: %w", err)
	}
	defer resp.Body.Close()
	const metric = "grpc_server_msg_received_total{"
	counts := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		method := label(line, "grpc_method")
		n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("etcd's metrics line %q: %w", line, err)
		}
		counts[method] += n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read etcd's metrics: %w", err)
	}
	if len(counts) == 0 {
		return nil, errors.New("etcd's /metrics has no " + metric + "...} lines")
	}
	return counts, nil
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
