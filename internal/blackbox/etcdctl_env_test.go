package blackbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The test run itself must not pick up the etcdctl settings of the shell
// it was started from: every test says what distlock sees. Not when this
// binary runs as one of the tests' commands (recordexit, etcd-member),
// which pass on what a test hands them.
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
