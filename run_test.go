package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/tinx/distlock/internal/dial"
)

// The tests here run distlock's run in the process, for what needs no
// etcd; internal/blackbox runs the built binary against etcd.

func TestCompletionUnknownShell(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run(context.Background(), []string{"--completion", "ksh"}, &stdout, &stderr)
	want := "distlock: invalid value \"ksh\" for flag --completion: the shells are bash, zsh and fish\n"
	if status != exitUsage || stderr.String() != want || stdout.Len() > 0 {
		t.Errorf("--completion ksh: status %d, stdout %q, stderr %q; want 64 and %q", status, stdout.String(), stderr.String(), want)
	}
}

// TestDiscoveryFindsNothing: --discovery-srv whose domain has no etcd SRV
// records is etcd out of reach, 69, said in one line that names what was
// looked up, in JSON with the event etcd_error. (That distlock reaches the
// etcd the records name is internal/dial's TestDiscoveryReachesEtcd.)
func TestDiscoveryFindsNothing(t *testing.T) {
	clearEnv(t)
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISTLOCK_CONFIG", empty)
	real := dial.LookupSRV
	t.Cleanup(func() { dial.LookupSRV = real })
	dial.LookupSRV = func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	for _, tc := range []struct {
		format, want string
	}{
		{"text", "distlock: cannot find etcd in the DNS SRV records of etcd.test (--discovery-srv): _etcd-client-ssl._tcp.etcd.test, _etcd-client._tcp.etcd.test: lookup etcd.test: no such host\n"},
		{"json", `"level":"error","lock":"x","event":"etcd_error","msg":"cannot find etcd in the DNS SRV records of etcd.test (--discovery-srv): _etcd-client-ssl._tcp.etcd.test, _etcd-client._tcp.etcd.test: lookup etcd.test: no such host"}` + "\n"},
	} {
		var stdout, stderr bytes.Buffer
		args := []string{"--discovery-srv=etcd.test", "--log-format=" + tc.format, "--lock-name=x", "--", "true"}
		if status := run(context.Background(), args, &stdout, &stderr); status != exitUnavailable {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", tc.format, status, exitUnavailable, stderr.String())
		}
		got := stderr.String()
		if tc.format == "json" {
			if i := bytes.IndexByte(stderr.Bytes(), ','); i > 0 {
				got = got[i+1:] // past the time
			}
		}
		if got != tc.want || stdout.Len() > 0 {
			t.Errorf("%s: stdout %q, stderr:\n%s\nwant one line:\n%s", tc.format, stdout.String(), stderr.String(), tc.want)
		}
	}
}
