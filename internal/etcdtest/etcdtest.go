// Package etcdtest runs real etcd for tests and the quick start: a single
// member or a cluster in this process (Start, StartCluster, StartTLS for
// one that serves https, or an etcd started elsewhere, FromEnv), a cluster
// whose members are processes of their own so that one can be frozen
// (StartProcessCluster), and fault proxies that cut or hold back the
// traffic to a member (NewProxy).
// Nothing here is a mock.
package etcdtest

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/poll"
)

// Cluster is one or more etcd members running in this process, or an etcd
// started elsewhere (External).
type Cluster struct {
	Members  []*embed.Etcd
	configs  []*embed.Config
	external []string    // endpoints of an etcd not started here
	tls      *tls.Config // for Client, if the members serve https

	mu      sync.Mutex // tests ask for clients in parallel
	clients []*clientv3.Client
}

// Start runs a single-member etcd whose data lives under dir.
func Start(dir string) (*Cluster, error) {
	return StartCluster(dir, 1)
}

// StartTLS runs a single-member etcd whose data lives under dir and that
// serves clients over https only, with the server certificate, key and
// client CA of server (ClientCertAuth to demand client certificates).
// Its Client trusts server.TrustedCAFile and presents client, if given.
func StartTLS(dir string, server, client transport.TLSInfo) (*Cluster, error) {
	clientTLS, err := client.ClientConfig()
	if err != nil {
		return nil, err
	}
	c, err := startWithRetries(dir, 1, func(cfg *embed.Config) {
		cfg.ClientTLSInfo = server
		for _, urls := range [][]url.URL{cfg.ListenClientUrls, cfg.AdvertiseClientUrls} {
			for i := range urls {
				urls[i].Scheme = "https"
			}
		}
	})
	if err != nil {
		return nil, err
	}
	c.tls = clientTLS
	return c, nil
}

// StartCluster runs an n-member etcd cluster whose data lives under dir and
// waits until it has a leader.
func StartCluster(dir string, n int) (*Cluster, error) {
	return startWithRetries(dir, n, func(*embed.Config) {})
}

// startWithRetries starts a cluster, tuning each member's configuration
// with tune.
func startWithRetries(dir string, n int, tune func(*embed.Config)) (*Cluster, error) {
	var lastErr error
	// Free ports are picked before etcd binds them; another process may
	// take one in between, so try again with fresh ones.
	for attempt := 0; attempt < 5; attempt++ {
		c, err := startCluster(filepath.Join(dir, fmt.Sprintf("try%d", attempt)), n, tune)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startCluster(dir string, n int, tune func(*embed.Config)) (*Cluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	cfgs := make([]*embed.Config, n)
	var initial []string
	for i := range cfgs {
		name := fmt.Sprintf("m%d", i)
		cfg := memberConfig(name, filepath.Join(dir, name),
			fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]), fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]))
		cfg.TickMs, cfg.ElectionMs = 50, 500
		tune(cfg)
		initial = append(initial, cfg.Name+"="+cfg.AdvertisePeerUrls[0].String())
		cfgs[i] = cfg
	}
	c := &Cluster{}
	for _, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("start etcd member %s: %w", cfg.Name, err)
		}
		c.Members = append(c.Members, e)
		c.configs = append(c.configs, cfg)
	}
	for _, e := range c.Members {
		if err := waitMember(e); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// waitMember waits until member e serves clients, or fails.
func waitMember(e *embed.Etcd) error {
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s failed: %w", e.Config().Name, err)
	case <-time.After(30 * time.Second):
		return errors.New("etcd did not become ready within 30s")
	}
}

// Restart stops every member and starts it again on the same data and
// ports, as after a reboot. Close the clients of the cluster first: a
// member waits for its client connections when it stops.
func (c *Cluster) Restart() error {
	for _, e := range c.Members {
		e.Close()
	}
	c.Members = nil
	for _, cfg := range c.configs {
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			return fmt.Errorf("restart etcd member %s: %w", cfg.Name, err)
		}
		c.Members = append(c.Members, e)
	}
	for _, e := range c.Members {
		if err := waitMember(e); err != nil {
			return err
		}
	}
	return nil
}

// RestartMember stops member i and starts it again on its data and ports:
// its clients' connections break, and if it led, another member leads.
func (c *Cluster) RestartMember(i int) error {
	c.Members[i].Close()
	e, err := embed.StartEtcd(c.configs[i])
	if err != nil {
		return fmt.Errorf("restart etcd member %s: %w", c.configs[i].Name, err)
	}
	c.Members[i] = e
	return waitMember(e)
}

// freePorts picks n ports that are free now; by the time they are bound,
// another process may have taken one.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Run starts the test etcd (FromEnv) in a temporary folder, calls run with
// it, and removes etcd and the folder again: the body of a TestMain.
func Run(run func(*Cluster) int) int {
	dir, err := os.MkdirTemp("", "distlock-test-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	c, err := FromEnv(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start etcd:", err)
		return 1
	}
	defer c.Close()
	return run(c)
}

var (
	realms    sync.Map // *testing.T -> realm
	realmSeqs atomic.Int64
	runStart  = strconv.FormatInt(time.Now().UnixNano(), 36)
)

// Realm is a key prefix under base for t alone: the same for every call in
// one test, new for every test and every run of it, so tests run in
// parallel and again (go test -count=N) on one etcd without meeting.
func Realm(t testing.TB, base string) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	r, _ := realms.LoadOrStore(t, fmt.Sprintf("%s%s-%d/%s/", base, runStart, realmSeqs.Add(1), name))
	return r.(string)
}

// Shared is the one etcd of a test package, started by the first test
// that asks for it (FromEnv), so that a package run whose tests need no
// etcd starts none; and under -short, every test that asks is skipped.
type Shared struct {
	// Process runs the member as a process of its own, the module's etcd
	// member program built without the race detector, rather than in the
	// test process, which -race makes several times slower at being etcd.
	Process bool
	// Member is the member program for Process, built already (by
	// BuildMember); if empty, Get builds one.
	Member string

	once sync.Once
	dir  string
	c    *Cluster
	pc   *ProcessCluster // with Process
	err  error
}

// Get returns the shared etcd, started now if need be; under -short it
// skips t.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	SkipShort(t)
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "distlock-test-etcd-"); s.err != nil {
			return
		}
		if !s.Process || os.Getenv("DISTLOCK_TEST_ETCD") != "" {
			s.c, s.err = FromEnv(s.dir)
			return
		}
		member := s.Member
		if member == "" {
			if member, s.err = BuildMember(s.dir); s.err != nil {
				return
			}
		}
		if s.pc, s.err = StartProcessCluster(filepath.Join(s.dir, "etcd"), member, 1); s.err == nil {
			s.c = External(s.pc.Endpoint(0))
		}
	})
	if s.err != nil {
		t.Fatalf("start etcd: %v", s.err)
	}
	return s.c
}

// Close stops the shared etcd, if a test started it: the body of a
// TestMain calls it after m.Run.
func (s *Shared) Close() {
	if s.c != nil {
		s.c.Close()
	}
	if s.pc != nil {
		s.pc.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// BuildMember builds the module's etcd member program (internal/devetcd)
// into dir, without the race detector whatever the tests run with, for
// StartProcessCluster, and returns its path.
func BuildMember(dir string) (string, error) {
	// go test puts the go command that runs it first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	member := filepath.Join(dir, "etcd-member")
	out, err := exec.Command(goTool, "build", "-buildvcs=false", "-o", member, "github.com/tinx/distlock/internal/devetcd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build internal/devetcd: %v\n%s", err, out)
	}
	return member, nil
}

// SkipShort skips a test that needs etcd when the tests run with -short:
// that run is for the tests that need none.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs etcd: -short runs the tests that need none")
	}
}

// External is an etcd started elsewhere (another version, say): the
// Cluster only hands out its endpoints and clients.
func External(endpoints ...string) *Cluster {
	return &Cluster{external: endpoints}
}

// FromEnv is the etcd named by DISTLOCK_TEST_ETCD (comma-separated client
// URLs), or a single member started under dir when it is unset.
func FromEnv(dir string) (*Cluster, error) {
	if eps := os.Getenv("DISTLOCK_TEST_ETCD"); eps != "" {
		c := External(strings.Split(eps, ",")...)
		return c, c.waitReady(30 * time.Second)
	}
	return Start(dir)
}

// waitReady waits until an external etcd answers, which it may not do yet
// right after it was started.
func (c *Cluster) waitReady(timeout time.Duration) error {
	cli, err := c.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if poll.Until(ctx, func() bool {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = cli.Get(gctx, "distlock-test-ready")
		return err == nil
	}) != nil {
		return fmt.Errorf("etcd at %s does not answer within %v: %w", strings.Join(c.external, ","), timeout, err)
	}
	return nil
}

// Endpoints are the client URLs of all members.
func (c *Cluster) Endpoints() []string {
	if c.external != nil {
		return c.external
	}
	var eps []string
	for _, e := range c.Members {
		eps = append(eps, e.Config().AdvertiseClientUrls[0].String())
	}
	return eps
}

// Endpoint is the client URL of the first member.
func (c *Cluster) Endpoint() string { return c.Endpoints()[0] }

// Client returns a new client for all members; Close closes it.
func (c *Cluster) Client() (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		TLS:         c.tls,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clients = append(c.clients, cli)
	return cli, nil
}

// Leader returns the index of the member that is leader now, or -1.
func (c *Cluster) Leader() int {
	for i, e := range c.Members {
		if e.Server != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// MoveLeader hands leadership from the current leader to another member
// and waits until that member leads.
func (c *Cluster) MoveLeader(ctx context.Context) (from, to int, err error) {
	from = c.Leader()
	if from < 0 || len(c.Members) < 2 {
		return from, -1, errors.New("no leader to move")
	}
	to = (from + 1) % len(c.Members)
	target := c.Members[to].Server.MemberID()
	if err := c.Members[from].Server.MoveLeader(ctx, uint64(c.Members[from].Server.MemberID()), uint64(target)); err != nil {
		return from, to, err
	}
	err = poll.Until(ctx, func() bool { return c.Leader() == to })
	return from, to, err
}

// Close closes the clients it handed out, then the members: a member waits
// for its client connections to end.
func (c *Cluster) Close() {
	c.mu.Lock()
	for _, cli := range c.clients {
		cli.Close()
	}
	c.clients = nil
	c.mu.Unlock()
	for _, e := range c.Members {
		closeMember(e)
	}
	c.Members = nil
}

// closeMember closes e, or gives up on it after a while: a member that
// never came to serve its clients (it did not start in time, under a load
// that starves it) waits in Close for servers that never come, for ever.
func closeMember(e *embed.Etcd) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Close()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
}

// Proxy is a TCP proxy in front of an etcd client URL that can drop or
// hold back traffic: a network partition on one machine.
type Proxy struct {
	proxy.Server
	url string
}

// NewProxy listens on a free port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	to, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	// The free port is picked before the proxy binds it; an outgoing
	// connection may take it in between, so try again with another.
	for attempt := 0; ; attempt++ {
		p, err := newProxy(to.Host)
		if err == nil || attempt == 4 {
			return p, err
		}
	}
}

func newProxy(target string) (*Proxy, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	from := url.URL{Scheme: "tcp", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	s := proxy.NewServer(proxy.ServerConfig{
		Logger: zap.NewNop(),
		From:   from,
		To:     url.URL{Scheme: "tcp", Host: target},
	})
	select {
	case <-s.Ready():
	case err := <-s.Error():
		s.Close()
		return nil, err
	case <-time.After(10 * time.Second):
		s.Close()
		return nil, errors.New("proxy did not start")
	}
	// The proxy reports every failed dial and write on a channel with room
	// for 16, and waits for room before it accepts or forwards anything
	// more: left unread, a member that was down for a while wedges it.
	go func() {
		for {
			select {
			case <-s.Error():
			case <-s.Done():
				return
			}
		}
	}()
	return &Proxy{Server: s, url: "http://" + from.Host}, nil
}

// Close lets all traffic through again and stops the proxy; a proxy that
// still holds traffic back can take long to stop, so give up after a while.
func (p *Proxy) Close() error {
	p.Heal()
	p.UnpauseTx()
	p.UnpauseRx()
	p.UndelayTx()
	p.UndelayRx()
	done := make(chan error, 1)
	go func() { done <- p.Server.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("proxy did not stop within 10s")
	}
}

// URL is the client URL to give distlock instead of the member's.
func (p *Proxy) URL() string { return p.url }

// Partition drops all traffic both ways until Heal.
func (p *Proxy) Partition() {
	p.BlackholeTx()
	p.BlackholeRx()
}

// Heal lets traffic through again.
func (p *Proxy) Heal() {
	p.UnblackholeTx()
	p.UnblackholeRx()
}

// AtOnce raises go test's -parallel to n when it was not given and the
// machine has fewer cores than n: for a TestMain whose parallel tests
// spend their time waiting on etcd and timers, not computing. It parses
// the flags.
func AtOnce(n int) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given && runtime.GOMAXPROCS(0) < n {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
}
