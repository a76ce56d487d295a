package blackbox

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/etcdtest"
)

// TestFlagsNotFromEnvironment runs distlock against etcd with a mode or
// --version in the environment: the command runs all the same, and
// DISTLOCK_LOCK without a lock name gets one line saying what to use.
func TestFlagsNotFromEnvironment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env    string
		args   []string
		status int
		stdout string
		stderr string // a regexp for the one line, or "" for none
	}{
		{"DISTLOCK_VERSION=true", []string{"--lock-name=v", "--", "echo", "hi"}, 0, "hi\n", ""},
		{"DISTLOCK_COMPLETION=bash", []string{"--lock-name=c", "--", "echo", "hi"}, 0, "hi\n", ""},
		{"DISTLOCK_UNLOCK=true", []string{"--lock-name=u", "--", "echo", "hi"}, 0, "hi\n", ""},
		{"DISTLOCK_STATUS=true", []string{"--lock-name=s", "--", "echo", "hi"}, 0, "hi\n", ""},
		{"DISTLOCK_LIST=true", []string{"--lock-name=l", "--", "echo", "hi"}, 0, "hi\n", ""},
		{"DISTLOCK_HELD=true", []string{"--lock-name=h", "--", "echo", "hi"}, 0, "hi\n", ""},
		{"DISTLOCK_LOCK=yes", []string{"--lock-name=k", "--", "echo", "hi"}, 0, "hi\n", ""},
		{"DISTLOCK_LOCK=yes", []string{"--", "echo", "hi"}, exitUsage, "",
			`^distlock: --lock-name is required; DISTLOCK_LOCK is ignored: the mode comes from the command line only, and the lock's name from --lock-name or DISTLOCK_LOCK_NAME\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.env+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, "distlock", tt.args...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(),
				"DISTLOCK_ENDPOINTS="+testEtcd(t).Endpoint(),
				"DISTLOCK_PREFIX="+etcdtest.Realm(t, "/gotest/"),
				"DISTLOCK_CONFIG=", "DISTLOCK_LOCK_NAME=", "DISTLOCK_LOCKNAME=",
				tt.env)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			if err != nil && !errors.As(err, &exitErr) {
				t.Fatal(err)
			}
			if status := cmd.ProcessState.ExitCode(); status != tt.status {
				t.Errorf("exit status %d, want %d", status, tt.status)
			}
			if stdout.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			if tt.stderr == "" && stderr.Len() > 0 || tt.stderr != "" && !regexp.MustCompile(tt.stderr).Match(stderr.Bytes()) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}
