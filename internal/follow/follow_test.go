package follow

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/lock"
)

// sharedEtcd is the package's etcd, started by the first test that needs it.
var sharedEtcd = etcdtest.Shared{Process: true}

// TestMain stops the shared etcd after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	sharedEtcd.Close()
	os.Exit(code)
}

// lines is an io.Writer that the test reads while Run writes to it.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// written, if set, is called with each write before it returns.
	written func(p []byte)
}

func (l *lines) Write(p []byte) (int, error) {
	if l.written != nil {
		l.written(p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) printf(format string, args ...any) {
	fmt.Fprintf(l, format+"\n", args...)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor fails t unless a line matching the regular expression what
// appears in l within timeout, and returns how much l holds then.
func (l *lines) waitFor(t *testing.T, what string, timeout time.Duration) int {
	t.Helper()
	return l.waitAfter(t, 0, what, timeout)
}

// waitAfter is waitFor for what l gets after its first from bytes.
func (l *lines) waitAfter(t *testing.T, from int, what string, timeout time.Duration) int {
	t.Helper()
	re := regexp.MustCompile("(?m)" + what)
	poll.For(t, fmt.Sprintf("%q in:\n%s", what, l), timeout, func() bool {
		return re.MatchString(l.String()[from:])
	})
	return len(l.String())
}

// TestFollowAfterOutage: after etcd was out of reach and answers again,
// the feed prints the state afresh and then every change, at once; it
// never goes silent while etcd answers. The outage begins as the first
// watch is opened, so that etcd's confirmation of it is lost: the watch
// opened after the outage must not wait for it.
func TestFollowAfterOutage(t *testing.T) {
	t.Parallel()
	etcd := sharedEtcd.Get(t)
	proxy, err := etcdtest.NewProxy(etcd.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	direct, err := etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	// As internal/dial's clients do: a ping that gets no answer ends the
	// connection.
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{proxy.URL()}, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	realm := etcdtest.Realm(t, "/followtest/")
	var out, log lines
	// Drop etcd's answers from the moment the state is printed, which is
	// just before the watch is opened.
	var once sync.Once
	out.written = func([]byte) { once.Do(proxy.BlackholeRx) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Client: client, Realm: realm, Name: "q", RPCTimeout: time.Second,
			GiveUp: time.Minute, Out: &out, Warn: log.printf, Info: log.printf})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	out.waitFor(t, `lock "q" is free`, 10*time.Second)

	log.waitFor(t, "etcd does not answer", 10*time.Second)
	req := lock.Request{Realm: realm, Name: "q", Info: lock.Info{Host: "testhost", PID: 1, Mode: lock.ModeExec, Reason: "meanwhile"},
		Timeout: -1, TTL: 30 * time.Second, RPCTimeout: 5 * time.Second}
	h, err := lock.Acquire(ctx, direct, req)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Heal()
	n := out.waitFor(t, `lock "q" is held`, 10*time.Second)
	log.waitFor(t, "may have missed changes", time.Second)

	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	if err := h.Release(rctx); err != nil {
		t.Fatal(err)
	}
	// The change itself, or a state read afresh that shows it.
	out.waitAfter(t, n, `lock "q" (released|expired|is free)`, 5*time.Second)
}
