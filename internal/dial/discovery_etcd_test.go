package dial

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
)

// sharedEtcd is the etcd of this package's tests, started by the first
// that needs it.
var sharedEtcd etcdtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	sharedEtcd.Close()
	os.Exit(code)
}

// TestDiscoveryReachesEtcd dials with --discovery-srv, the SRV records
// answered by the test and pointing at the test's etcd: the client finds
// etcd there and says so with --verbose; with no records, the error says
// where it looked.
func TestDiscoveryReachesEtcd(t *testing.T) {
	etcd := sharedEtcd.Get(t)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "DISTLOCK_") || strings.HasPrefix(name, "ETCDCTL_") {
			t.Setenv(name, "")
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISTLOCK_CONFIG", empty)
	t.Setenv("DISTLOCK_ENDPOINTS", "http://127.0.0.1:1") // below the command line
	u, err := url.Parse(etcd.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	real := LookupSRV
	t.Cleanup(func() { LookupSRV = real })
	var looked []string
	found := true
	LookupSRV = func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
		looked = append(looked, "_"+service+"._"+proto+"."+name)
		if service != "etcd-client" || !found {
			return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		return "", []*net.SRV{{Target: u.Hostname() + ".", Port: uint16(port)}}, nil
	}

	r, err := settings.Parse([]string{"--discovery-srv=etcd.test", "--verbose", "--prefix=/dialtest/", "--list"})
	if err != nil {
		t.Fatal(err)
	}
	var said lines
	out := report.New(&said, r.Say)
	client, err := New(&r.Conn, out)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Get(ctx, "/dialtest/"); err != nil {
		t.Fatalf("etcd at the discovered endpoint: %v", err)
	}
	out.Flush(10 * time.Second)
	want := "distlock: etcd at " + etcd.Endpoint() + " (from the DNS SRV records of etcd.test, per --discovery-srv)\n"
	if got := said.String(); got != want {
		t.Errorf("said:\n%s\nwant:\n%s", got, want)
	}
	if got := strings.Join(looked, " "); got != "_etcd-client-ssl._tcp.etcd.test _etcd-client._tcp.etcd.test" {
		t.Errorf("looked up %s", got)
	}

	found = false
	r, err = settings.Parse([]string{"--discovery-srv=etcd.test", "--prefix=/dialtest/", "--list"})
	if err != nil {
		t.Fatal(err)
	}
	if client, err := New(&r.Conn, report.New(&said, r.Say)); err == nil {
		client.Close()
		t.Fatal("New found etcd without SRV records")
	} else if got, want := Explain(&r.Conn, err).Error(), "cannot find etcd in the DNS SRV records of etcd.test (--discovery-srv): _etcd-client-ssl._tcp.etcd.test, _etcd-client._tcp.etcd.test: lookup etcd.test: no such host"; got != want {
		t.Errorf("error:\n%s\nwant:\n%s", got, want)
	}
}

// lines is what a reporter wrote, safe to read while it writes.
type lines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
