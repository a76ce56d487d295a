package etcdtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/tinx/distlock/internal/poll"
)

// ProcessCluster is an etcd cluster whose members are processes of their
// own, so that a test can freeze one with SIGSTOP: a frozen member keeps
// its connections open and answers nothing, which no proxy in front of an
// embedded member can show for the traffic between members.
type ProcessCluster struct {
	member    string // the program that runs a member
	specs     []memberSpec
	peers     []*Proxy // in front of each member's peer port, if asked for
	endpoints []string

	mu    sync.Mutex // faults come from several goroutines
	procs []*memberProc
}

// memberProc is a running member process; exited is closed once it ended,
// with err saying how.
type memberProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// ProcessOptions are the choices StartProcessClusterWith offers.
type ProcessOptions struct {
	// PeerProxies puts a proxy in front of each member's peer port, so
	// that CutPeers can keep a member from being heard by its peers.
	PeerProxies bool
}

// memberEnv carries a member's settings (JSON of memberSpec) to MemberMain.
const memberEnv = "DISTLOCK_TEST_ETCD_MEMBER"

type memberSpec struct {
	Name, Dir, ClientURL, PeerURL, InitialCluster string
	AdvertisePeerURL                              string // PeerURL, or a proxy in front of it
}

// IsMember says whether this process was started to be a member (it has
// the member's settings in its environment): a program that can serve as
// one calls MemberMain then.
func IsMember() bool { return os.Getenv(memberEnv) != "" }

// MemberMain runs one member described by the environment until it is
// killed or its parent dies. A test binary registers it as a command (with
// testscript.Main) and names that command to StartProcessCluster.
func MemberMain() {
	var spec memberSpec
	if err := json.Unmarshal([]byte(os.Getenv(memberEnv)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "etcd member:", err)
		os.Exit(2)
	}
	cfg := memberConfig(spec.Name, spec.Dir, spec.ClientURL, spec.PeerURL)
	cfg.InitialCluster = spec.InitialCluster
	if spec.AdvertisePeerURL != "" {
		u, err := url.Parse(spec.AdvertisePeerURL)
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd member:", err)
			os.Exit(2)
		}
		cfg.AdvertisePeerUrls = []url.URL{*u}
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd member:", err)
		os.Exit(1)
	}
	parent := os.Getppid()
	tick := time.NewTicker(200 * time.Millisecond)
	for {
		select {
		case err := <-e.Err():
			fmt.Fprintln(os.Stderr, "etcd member:", err)
			os.Exit(1)
		case <-tick.C:
			if os.Getppid() != parent {
				os.Exit(0) // the test is gone; so is its cluster
			}
		}
	}
}

// memberConfig is the settings every test member shares. Heartbeats and
// elections are slower than in the embedded cluster: these members run
// under the race detector, on two cores, beside the tests.
func memberConfig(name, dir, clientURL, peerURL string) *embed.Config {
	cu, _ := url.Parse(clientURL)
	pu, _ := url.Parse(peerURL)
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.LogLevel = "fatal" // its errors on Close are expected noise
	cfg.Logger = "zap"
	cfg.UnsafeNoFsync = true
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.TickMs, cfg.ElectionMs = 100, 1000
	// bcrypt's least cost: a login hashes the password, and the tests'
	// members, some in a test process under the race detector, took more
	// than a client's 5 s for a few logins at once at the default cost.
	cfg.BcryptCost = uint(bcrypt.MinCost)
	return cfg
}

// StartProcessCluster starts an n-member cluster, each member a process
// running the program member (which calls MemberMain), with data under dir,
// and waits until every member answers with a leader.
func StartProcessCluster(dir, member string, n int) (*ProcessCluster, error) {
	return StartProcessClusterWith(dir, member, n, ProcessOptions{})
}

// StartProcessClusterWith is StartProcessCluster with options.
func StartProcessClusterWith(dir, member string, n int, opts ProcessOptions) (*ProcessCluster, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := startProcessCluster(filepath.Join(dir, fmt.Sprintf("try%d", attempt)), member, n, opts)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startProcessCluster(dir, member string, n int, opts ProcessOptions) (*ProcessCluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &ProcessCluster{member: member, procs: make([]*memberProc, n)}
	var initial []string
	for i := 0; i < n; i++ {
		spec := memberSpec{
			Name:      fmt.Sprintf("p%d", i),
			Dir:       filepath.Join(dir, fmt.Sprintf("p%d", i)),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
		}
		spec.AdvertisePeerURL = spec.PeerURL
		if opts.PeerProxies {
			p, err := NewProxy(spec.PeerURL)
			if err != nil {
				c.Close()
				return nil, err
			}
			c.peers = append(c.peers, p)
			spec.AdvertisePeerURL = p.URL()
		}
		initial = append(initial, spec.Name+"="+spec.AdvertisePeerURL)
		c.specs = append(c.specs, spec)
		c.endpoints = append(c.endpoints, spec.ClientURL)
	}
	for i := range c.specs {
		c.specs[i].InitialCluster = strings.Join(initial, ",")
		if err := c.Start(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range c.endpoints {
		if _, err := c.waitStatus(ctx, i); err != nil {
			c.Close()
			return nil, fmt.Errorf("etcd member p%d: %w", i, err)
		}
	}
	return c, nil
}

// Start starts member i, which is not running: at first, or again after
// Kill, on the data it had.
func (c *ProcessCluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procs[i] != nil {
		return fmt.Errorf("etcd member %s runs already", c.specs[i].Name)
	}
	b, _ := json.Marshal(c.specs[i])
	cmd := exec.Command(c.member)
	cmd.Env = append(os.Environ(), memberEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd member %s: %w", c.specs[i].Name, err)
	}
	p := &memberProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	c.procs[i] = p
	return nil
}

// Kill ends member i with SIGKILL, as a crash would, and waits for it; its
// data stays for Start.
func (c *ProcessCluster) Kill(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[i]
	if p == nil {
		return nil
	}
	c.procs[i] = nil
	_ = p.cmd.Process.Kill() // fails only if it has ended already
	<-p.exited
	return nil
}

// Exited says whether member i has ended by itself, and how.
func (c *ProcessCluster) Exited(i int) (bool, error) {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil {
		return false, nil
	}
	select {
	case <-p.exited:
		return true, p.err
	default:
		return false, nil
	}
}

// WaitReady waits until member i answers and knows a leader.
func (c *ProcessCluster) WaitReady(ctx context.Context, i int) error {
	_, err := c.waitStatus(ctx, i)
	return err
}

// Size is the number of members.
func (c *ProcessCluster) Size() int { return len(c.specs) }

// Endpoint is the client URL of member i.
func (c *ProcessCluster) Endpoint(i int) string { return c.endpoints[i] }

// Freeze stops member i with SIGSTOP: its sockets stay open, nothing is
// answered. Resume lets it go on.
func (c *ProcessCluster) Freeze(i int) error { return c.signal(i, syscall.SIGSTOP) }

// Resume continues a frozen member.
func (c *ProcessCluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT) }

// signal sends sig to member i, if it runs.
func (c *ProcessCluster) signal(i int, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procs[i] == nil {
		return nil
	}
	return c.procs[i].cmd.Process.Signal(sig)
}

// CutPeers holds back all traffic through member i's peer port until
// HealPeers: raft messages from it (they travel on streams its peers
// opened to that port), and whatever the others send to it. It is a half
// cut: requests member i makes of its peers' ports (a lease renewal it
// passes on to the leader, pipelined raft messages) still get through,
// and all members share 127.0.0.1, so a proxy cannot tell them apart. The
// others carry on without its votes while it still answers its clients.
// It needs ProcessOptions.PeerProxies. The traffic is held, not dropped, as
// TCP holds it in a partition: raft's streams between members carry no
// checksums, and bytes dropped from the middle of one make a member panic.
func (c *ProcessCluster) CutPeers(i int) {
	c.peers[i].PauseTx()
	c.peers[i].PauseRx()
}

// HealPeers lets member i's peer traffic through again.
func (c *ProcessCluster) HealPeers(i int) {
	c.peers[i].UnpauseTx()
	c.peers[i].UnpauseRx()
}

// Leader is the index of the member that leads now as its members see
// it, or -1 if none answers with a leader.
func (c *ProcessCluster) Leader(ctx context.Context) int {
	for i := range c.endpoints {
		resp, err := c.status(ctx, i)
		if err != nil || resp.Leader == 0 {
			continue
		}
		if resp.Leader == resp.Header.MemberId {
			return i
		}
	}
	return -1
}

// status asks member i alone about itself.
func (c *ProcessCluster) status(ctx context.Context, i int) (*clientv3.StatusResponse, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.endpoints[i]}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cli.Status(sctx, c.endpoints[i])
}

// waitStatus waits until member i answers and knows a leader; if ctx ends
// first, it says why the member's last answer would not do.
func (c *ProcessCluster) waitStatus(ctx context.Context, i int) (*clientv3.StatusResponse, error) {
	var resp *clientv3.StatusResponse
	var err error
	if poll.Until(ctx, func() bool {
		resp, err = c.status(ctx, i)
		return err == nil && resp.Leader != 0
	}) != nil {
		if err == nil {
			err = errors.New("no leader")
		}
		return nil, err
	}
	return resp, nil
}

// MakeLeader moves leadership to member i, if another member leads, and
// waits until i leads.
func (c *ProcessCluster) MakeLeader(ctx context.Context, i int) error {
	target, err := c.waitStatus(ctx, i)
	if err != nil {
		return err
	}
	for target.Leader != target.Header.MemberId {
		leader := -1
		for j := range c.endpoints {
			if resp, err := c.status(ctx, j); err == nil && resp.Header.MemberId == target.Leader {
				leader = j
			}
		}
		if leader >= 0 {
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.endpoints[leader]}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				return err
			}
			mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = cli.MoveLeader(mctx, target.Header.MemberId)
			cancel()
			cli.Close()
			if err != nil && ctx.Err() != nil {
				return err
			}
		}
		if target, err = c.waitStatus(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// Close ends every member and waits for it, then its proxies.
func (c *ProcessCluster) Close() {
	c.mu.Lock()
	for i, p := range c.procs {
		if p == nil {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.exited
		c.procs[i] = nil
	}
	c.mu.Unlock()
	for _, p := range c.peers {
		_ = p.Close()
	}
	c.peers = nil
}
