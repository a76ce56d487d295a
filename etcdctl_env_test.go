package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/dial"
)

// The test run itself must not pick up the etcdctl settings of the shell
// it was started from: every test says what distlock sees. Not when this
// binary runs as distlock for a test, which hands it ETCDCTL_ on purpose.
func init() {
	if strings.HasSuffix(filepath.Base(os.Args[0]), ".test") {
		for _, kv := range os.Environ() {
			if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "ETCDCTL_") {
				os.Unsetenv(name)
			}
		}
	}
}

// runDistlock runs distlock to its end in the test's realm with only the
// environment given (no DISTLOCK_ or ETCDCTL_ variable but those, and no
// config file unless env names one) and returns its status and stderr.
func runDistlock(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "distlock", args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISTLOCK_") && !strings.HasPrefix(kv, "ETCDCTL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	empty := filepath.Join(cmd.Dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, "DISTLOCK_PREFIX="+testRealm(t), "DISTLOCK_CONFIG="+empty)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestEtcdctlEndpoints: ETCDCTL_ENDPOINTS alone reaches etcd, and the
// command line, DISTLOCK_ENDPOINTS and the config file each win over it;
// --verbose says which one gave the endpoints.
func TestEtcdctlEndpoints(t *testing.T) {
	t.Parallel()
	ep := testEtcd(t).Endpoint()
	const nobody = "http://127.0.0.1:1" // refuses connections
	file := filepath.Join(t.TempDir(), "distlock.yaml")
	if err := os.WriteFile(file, []byte("endpoints:\n  - "+ep+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		from string
	}{
		{"ETCDCTL_ENDPOINTS alone", []string{"ETCDCTL_ENDPOINTS=" + ep}, nil, "ETCDCTL_ENDPOINTS"},
		{"DISTLOCK_ENDPOINTS wins", []string{"DISTLOCK_ENDPOINTS=" + ep, "ETCDCTL_ENDPOINTS=" + nobody}, nil, "DISTLOCK_ENDPOINTS"},
		{"the config file wins", []string{"DISTLOCK_CONFIG=" + file, "ETCDCTL_ENDPOINTS=" + nobody}, nil, "the config file " + file},
		{"the command line wins", []string{"ETCDCTL_ENDPOINTS=" + nobody}, []string{"--endpoints=" + ep}, "--endpoints"},
		{"an overridden ETCDCTL_ value is not read", []string{"ETCDCTL_ENDPOINTS=" + ep, "DISTLOCK_DIAL_TIMEOUT=3s", "ETCDCTL_DIAL_TIMEOUT=soon"}, nil, "ETCDCTL_ENDPOINTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append(tt.args, "--verbose", "--dial-timeout=2s", "--lock-name=etcdctl", "--", "true")
			status, stderr := runDistlock(t, tt.env, args...)
			if status != 0 {
				t.Fatalf("exit %d, want 0; stderr:\n%s", status, stderr)
			}
			want := "(?m)^distlock: etcd at " + regexp.QuoteMeta(ep) + ` \(from ` + regexp.QuoteMeta(tt.from) + `\)$`
			if !regexp.MustCompile(want).MatchString(stderr) {
				t.Errorf("stderr:\n%s\nwant a line matching %s", stderr, want)
			}
		})
	}
}

// TestEtcdctlBadValues: a bad value in an ETCDCTL_ variable that distlock
// would use is a usage error naming the variable, and never shows a
// password.
func TestEtcdctlBadValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing, cert := filepath.Join(dir, "missing.pem"), filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ env, stderr string }{
		{"ETCDCTL_ENDPOINTS=ftp://etcd:2379", `environment variable ETCDCTL_ENDPOINTS has a bad value: "ftp://etcd:2379": scheme must be http or https`},
		{"ETCDCTL_ENDPOINTS=,", `environment variable ETCDCTL_ENDPOINTS has a bad value: no endpoint in it`},
		{"ETCDCTL_DIAL_TIMEOUT=5", `environment variable ETCDCTL_DIAL_TIMEOUT has a bad value: "5" is not a positive duration like 5s or 1m`},
		{"ETCDCTL_CACERT=" + missing, `environment variable ETCDCTL_CACERT has a bad value: open ` + regexp.QuoteMeta(missing) + `: no such file or directory`},
		{"ETCDCTL_CERT=" + cert, `--cert \(from ETCDCTL_CERT\) needs --key: the certificate's key`},
		{"ETCDCTL_USER=:hunter2", `environment variable ETCDCTL_USER has a bad value: no user name before the ":"`},
		{"ETCDCTL_USER=alice", `user "alice" \(from ETCDCTL_USER\) has no password, and distlock does not ask for one: give it in ETCDCTL_PASSWORD, or as ETCDCTL_USER=NAME:PASSWORD`},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Parallel()
			// Usage errors: distlock stops before it would reach etcd.
			status, stderr := runDistlock(t, []string{tt.env}, "--lock-name=etcdctl", "--", "true")
			want := "^distlock: " + tt.stderr + "\n$"
			if status != exitUsage || !regexp.MustCompile(want).MatchString(stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant %d and a line matching %s", status, stderr, exitUsage, want)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("stderr shows the password:\n%s", stderr)
			}
		})
	}
}

// TestEtcdctlDiscoveryReachesEtcd runs distlock with --discovery-srv, the
// SRV records answered by the test and pointing at the test etcd: it finds
// etcd there and says so with --verbose; no records is status 69.
func TestEtcdctlDiscoveryReachesEtcd(t *testing.T) {
	clearEnv(t)
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISTLOCK_CONFIG", empty)
	t.Setenv("DISTLOCK_ENDPOINTS", "http://127.0.0.1:1") // below the command line
	u, err := url.Parse(testEtcd(t).Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	real := dial.LookupSRV
	t.Cleanup(func() { dial.LookupSRV = real })
	var looked []string
	found := true
	dial.LookupSRV = func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
		looked = append(looked, "_"+service+"._"+proto+"."+name)
		if service != "etcd-client" || !found {
			return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		return "", []*net.SRV{{Target: u.Hostname() + ".", Port: uint16(port)}}, nil
	}

	var stdout, stderr bytes.Buffer
	args := []string{"--discovery-srv=etcd.test", "--verbose", "--prefix=" + testRealm(t), "--list"}
	if status := run(context.Background(), args, &stdout, &stderr); status != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", status, stderr.String())
	}
	want := "distlock: etcd at " + testEtcd(t).Endpoint() + " (from the DNS SRV records of etcd.test, per --discovery-srv)\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
	}
	if got := strings.Join(looked, " "); got != "_etcd-client-ssl._tcp.etcd.test _etcd-client._tcp.etcd.test" {
		t.Errorf("looked up %s", got)
	}

	found = false
	stderr.Reset()
	if status := run(context.Background(), args, &stdout, &stderr); status != exitUnavailable {
		t.Fatalf("exit %d, want %d; stderr:\n%s", status, exitUnavailable, stderr.String())
	}
	want = "distlock: cannot find etcd in the DNS SRV records of etcd.test (--discovery-srv): _etcd-client-ssl._tcp.etcd.test, _etcd-client._tcp.etcd.test: lookup etcd.test: no such host\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant one line:\n%s", stderr.String(), want)
	}
}
