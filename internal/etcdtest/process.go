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
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/poll"
)

// ProcessCluster is an etcd cluster whose members are processes of their
// own, so that a test can freeze one with SIGSTOP: a frozen member keeps
// its connections open and answers nothing, which no proxy in front of an
// embedded member can show for the traffic between members.
type ProcessCluster struct {
	procs     []*exec.Cmd
	endpoints []string
}

// memberEnv carries a member's settings (JSON of memberSpec) to MemberMain.
const memberEnv = "DISTLOCK_TEST_ETCD_MEMBER"

type memberSpec struct {
	Name, Dir, ClientURL, PeerURL, InitialCluster string
}

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
	return cfg
}

// StartProcessCluster starts an n-member cluster, each member a process
// running the program member (which calls MemberMain), with data under dir,
// and waits until every member answers with a leader.
func StartProcessCluster(dir, member string, n int) (*ProcessCluster, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := startProcessCluster(filepath.Join(dir, fmt.Sprintf("try%d", attempt)), member, n)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startProcessCluster(dir, member string, n int) (*ProcessCluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	specs := make([]memberSpec, n)
	var initial []string
	for i := range specs {
		specs[i] = memberSpec{
			Name:      fmt.Sprintf("p%d", i),
			Dir:       filepath.Join(dir, fmt.Sprintf("p%d", i)),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
		}
		initial = append(initial, specs[i].Name+"="+specs[i].PeerURL)
	}
	c := &ProcessCluster{}
	for _, spec := range specs {
		spec.InitialCluster = strings.Join(initial, ",")
		b, _ := json.Marshal(spec)
		cmd := exec.Command(member)
		cmd.Env = append(os.Environ(), memberEnv+"="+string(b))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			c.Close()
			return nil, fmt.Errorf("start etcd member %s: %w", spec.Name, err)
		}
		c.procs = append(c.procs, cmd)
		c.endpoints = append(c.endpoints, spec.ClientURL)
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

// Endpoint is the client URL of member i.
func (c *ProcessCluster) Endpoint(i int) string { return c.endpoints[i] }

// Freeze stops member i with SIGSTOP: its sockets stay open, nothing is
// answered. Resume lets it go on.
func (c *ProcessCluster) Freeze(i int) error { return c.procs[i].Process.Signal(syscall.SIGSTOP) }

// Resume continues a frozen member.
func (c *ProcessCluster) Resume(i int) error { return c.procs[i].Process.Signal(syscall.SIGCONT) }

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

// Close ends every member and waits for it.
func (c *ProcessCluster) Close() {
	for _, p := range c.procs {
		_ = p.Process.Signal(syscall.SIGCONT)
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	c.procs = nil
}
