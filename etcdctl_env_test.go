package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// TestEtcdctlPrecedence: which source each connection setting comes from,
// and how etcdctl's variables are read.
func TestEtcdctlPrecedence(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "any.pem") // only opened, never parsed here
	if err := os.WriteFile(pem, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "distlock.yaml")
	if err := os.WriteFile(file, []byte("cacert: /from/file.pem\ndiscovery-srv: file.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string // the settings, as got() writes them, or the error
	}{
		{"defaults", nil, nil,
			`endpoints=http://127.0.0.1:2379 (the default) srv= dial-timeout=5s (the default) user= password=""`},
		{"etcdctl's values", []string{"ETCDCTL_ENDPOINTS=a:2379, https://b:2379", "ETCDCTL_DIAL_TIMEOUT=1m30s", "ETCDCTL_USER=u:p:q"}, nil,
			`endpoints=a:2379,https://b:2379 (ETCDCTL_ENDPOINTS) srv= dial-timeout=1m30s (ETCDCTL_DIAL_TIMEOUT) user=u (ETCDCTL_USER) password="p:q" (ETCDCTL_USER)`},
		{"ETCDCTL_PASSWORD keeps the user whole", []string{"ETCDCTL_USER=u:p", "ETCDCTL_PASSWORD=x"}, nil,
			`endpoints=http://127.0.0.1:2379 (the default) srv= dial-timeout=5s (the default) user=u:p (ETCDCTL_USER) password="x" (ETCDCTL_PASSWORD)`},
		{"DISTLOCK_ wins", []string{"DISTLOCK_DIAL_TIMEOUT=2", "ETCDCTL_DIAL_TIMEOUT=1m", "DISTLOCK_USER=d", "DISTLOCK_PASSWORD=dp", "ETCDCTL_USER=u:p"}, nil,
			`endpoints=http://127.0.0.1:2379 (the default) srv= dial-timeout=2s (DISTLOCK_DIAL_TIMEOUT) user=d (DISTLOCK_USER) password="dp" (DISTLOCK_PASSWORD)`},
		{"etcdctl's password never goes with another user", []string{"DISTLOCK_USER=d", "ETCDCTL_USER=u:p"}, nil,
			`user "d" (from DISTLOCK_USER) has no password, and distlock does not ask for one: give it in DISTLOCK_PASSWORD or the config file`},
		{"etcdctl's user never goes with another password", []string{"DISTLOCK_PASSWORD=dp", "ETCDCTL_USER=u", "ETCDCTL_PASSWORD=p"}, nil,
			`endpoints=http://127.0.0.1:2379 (the default) srv= dial-timeout=5s (the default) user= password="dp" (DISTLOCK_PASSWORD)`},
		{"etcdctl's key never goes with another certificate", []string{"DISTLOCK_CERT=" + pem, "ETCDCTL_KEY=" + pem, "ETCDCTL_CACERT=" + pem}, nil,
			`cert=` + pem + ` key= cacert=` + pem + ` (ETCDCTL_CACERT)`},
		{"the config file wins", []string{"DISTLOCK_CONFIG=" + file, "ETCDCTL_CACERT=" + pem, "ETCDCTL_ENDPOINTS=e:2379"}, nil,
			`cert= key= cacert=/from/file.pem (the config file ` + file + `)`},
		{"--discovery-srv wins over lower endpoints", []string{"DISTLOCK_ENDPOINTS=e:2379"}, []string{"--discovery-srv=example.com."},
			`endpoints= (DISTLOCK_ENDPOINTS) srv=example.com (--discovery-srv) dial-timeout=5s (the default) user= password=""`},
		{"discovery-srv in the file wins over ETCDCTL_ENDPOINTS", []string{"DISTLOCK_CONFIG=" + file, "ETCDCTL_ENDPOINTS=e:2379"}, nil,
			`endpoints= (ETCDCTL_ENDPOINTS) srv=file.example (the config file ` + file + `) dial-timeout=5s (the default) user= password=""`},
		{"higher endpoints win over discovery-srv", []string{"DISTLOCK_CONFIG=" + file}, []string{"--endpoints=e:2379"},
			`endpoints=e:2379 (--endpoints) srv= dial-timeout=5s (the default) user= password=""`},
		{"both from one source", []string{"DISTLOCK_ENDPOINTS=e:2379", "DISTLOCK_DISCOVERY_SRV=example.com"}, nil,
			`--endpoints (DISTLOCK_ENDPOINTS) and --discovery-srv (DISTLOCK_DISCOVERY_SRV) both say where etcd is; give one of them`},
		{"a bad domain", nil, []string{"--discovery-srv=https://example.com"},
			`invalid value "https://example.com" for flag -discovery-srv: "https://example.com" is not a DNS domain like example.com`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("DISTLOCK_CONFIG", empty)
			for _, kv := range tt.env {
				name, value, _ := strings.Cut(kv, "=")
				t.Setenv(name, value)
			}
			c, err := parseConfig(append(tt.args, "--lock-name=x", "--", "true"))
			got := ""
			switch {
			case err != nil:
				got = err.Error()
			case strings.HasPrefix(tt.want, "cert="):
				got = fmt.Sprintf("cert=%s key=%s cacert=%s (%s)", c.cert, c.key, c.cacert, c.originOf("cacert"))
			default:
				got = fmt.Sprintf("endpoints=%s (%s) srv=%s dial-timeout=%v (%s) user=%s", joinEndpoints(c.endpoints), c.originOf("endpoints"),
					c.discoverySrv, c.dialTimeout, c.originOf("dial-timeout"), c.user)
				if c.user != "" {
					got += " (" + c.originOf("user") + ")"
				}
				got += fmt.Sprintf(" password=%q", c.password)
				if c.password != "" {
					got += " (" + c.originOf("password") + ")"
				}
				if c.discoverySrv != "" {
					got = strings.Replace(got, " dial-timeout", " ("+c.originOf("discovery-srv")+") dial-timeout", 1)
				}
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestEtcdctlDiscoverSRV: the SRV records etcdctl reads become endpoints,
// https from _etcd-client-ssl and http from _etcd-client; one kind may be
// missing, not both. The lookup is the resolver's, answered by the test.
func TestEtcdctlDiscoverSRV(t *testing.T) {
	nxdomain := &net.DNSError{Err: "no such host", Name: "example.com", IsNotFound: true}
	tests := []struct {
		name    string
		records map[string][]*net.SRV // by the name looked up
		want    string                // the endpoints, or the error
	}{
		{"both", map[string][]*net.SRV{
			"_etcd-client-ssl._tcp.example.com": {{Target: "e1.example.com.", Port: 2379}, {Target: "e2.example.com.", Port: 2379}},
			"_etcd-client._tcp.example.com":     {{Target: "e3.example.com.", Port: 2380}},
		}, "https://e1.example.com:2379,https://e2.example.com:2379,http://e3.example.com:2380"},
		{"https only", map[string][]*net.SRV{
			"_etcd-client-ssl._tcp.example.com": {{Target: "10.0.0.1", Port: 2379}},
		}, "https://10.0.0.1:2379"},
		{"http only", map[string][]*net.SRV{
			"_etcd-client._tcp.example.com": {{Target: "e3.example.com.", Port: 2379}},
		}, "http://e3.example.com:2379"},
		{"none", map[string][]*net.SRV{},
			"cannot find etcd in the DNS SRV records of example.com (--discovery-srv): _etcd-client-ssl._tcp.example.com, _etcd-client._tcp.example.com: lookup example.com: no such host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
				records, ok := tt.records["_"+service+"._"+proto+"."+name]
				if !ok {
					return "", nil, nxdomain
				}
				return "_" + service + "._" + proto + "." + name + ".", records, nil
			}
			endpoints, err := discoverEndpoints(context.Background(), lookup, "example.com")
			got := joinEndpoints(endpoints)
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
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
	real := lookupSRV
	t.Cleanup(func() { lookupSRV = real })
	var looked []string
	found := true
	lookupSRV = func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
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
