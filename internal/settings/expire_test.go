package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCommandName: the key says which command runs only when no --reason
// is given, and never more than its first word's base name.
func TestCommandName(t *testing.T) {
	t.Setenv("DISTLOCK_CONFIG", "/dev/null")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--", "/usr/local/bin/backup", "--password=secret"}, "backup"},
		{[]string{"--", "make"}, "make"},
		{[]string{"--reason=nightly", "--", "make"}, ""},
		{[]string{"-c", "PATH=/x LANG=C  pg_dump db | gzip"}, "pg_dump"},
		{[]string{"-c", "A=1"}, ""},
		{[]string{"--lock"}, ""},
	}
	for _, tt := range tests {
		r, err := Parse(append([]string{"--lock-name=x"}, tt.args...))
		if err != nil || r.Lock.Command != tt.want {
			t.Errorf("%q: Command %q, %v; want %q", tt.args, r.Lock.Command, err, tt.want)
		}
	}
}

// TestExpireSources: --expire on the command line goes with --lock alone;
// from the environment or the config file it is every --lock's default,
// which the other modes ignore.
func TestExpireSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "distlock.yaml")
	if err := os.WriteFile(file, []byte("expire: 8h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     []string
		args    []string
		want    time.Duration
		wantErr string
	}{
		{"flag with --lock", nil, []string{"--lock", "--expire=90m"}, 90 * time.Minute, ""},
		{"flag in exec mode", nil, []string{"--expire=1h", "--", "true"}, 0, "--expire goes with --lock, not with running a command"},
		{"flag with --status", nil, []string{"--status", "--expire=1h"}, 0, "--expire goes with --lock, not with --status"},
		{"too short", nil, []string{"--lock", "--expire=500ms"}, 0, "--expire must be 0 (never) or at least 1s, got 500ms"},
		{"file with --lock", []string{"DISTLOCK_CONFIG=" + file}, []string{"--lock"}, 8 * time.Hour, ""},
		{"file in exec mode", []string{"DISTLOCK_CONFIG=" + file}, []string{"--", "true"}, 0, ""},
		{"environment with --lock", []string{"DISTLOCK_EXPIRE=2h"}, []string{"--lock"}, 2 * time.Hour, ""},
		{"environment with --unlock", []string{"DISTLOCK_EXPIRE=2h"}, []string{"--unlock"}, 0, ""},
		{"flag wins over the file", []string{"DISTLOCK_CONFIG=" + file}, []string{"--lock", "--expire=0"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			t.Setenv("DISTLOCK_CONFIG", "/dev/null")
			for _, kv := range tt.env {
				name, value, _ := strings.Cut(kv, "=")
				t.Setenv(name, value)
			}
			r, err := Parse(append([]string{"--lock-name=x"}, tt.args...))
			switch {
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("error %v, want %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr == "" && r.Lock.Expire != tt.want:
				t.Errorf("Expire %v, want %v", r.Lock.Expire, tt.want)
			}
		})
	}
}

// TestMaxRuntimeSources: --max-runtime is exec mode's, as --expire is
// --lock's; any span above 0 is taken, as the command's clock is
// distlock's own, not a lease's.
func TestMaxRuntimeSources(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		args    []string
		want    time.Duration
		wantErr string
	}{
		{"flag in exec mode", nil, []string{"--max-runtime=90m", "--", "true"}, 90 * time.Minute, ""},
		{"below a second", nil, []string{"--max-runtime=0.25", "--", "true"}, 250 * time.Millisecond, ""},
		{"negative", nil, []string{"--max-runtime=-1", "--", "true"}, 0, `invalid value "-1" for flag --max-runtime: "-1" is negative`},
		{"flag with --lock", nil, []string{"--lock", "--max-runtime=1h"}, 0, "--max-runtime goes with running a command, not with --lock, which runs nothing (--expire bounds a --lock)"},
		{"flag with --status", nil, []string{"--status", "--max-runtime=1h"}, 0, "--max-runtime goes with running a command, not with --status"},
		{"environment in exec mode", []string{"DISTLOCK_MAX_RUNTIME=2h"}, []string{"--", "true"}, 2 * time.Hour, ""},
		{"environment with --lock", []string{"DISTLOCK_MAX_RUNTIME=2h"}, []string{"--lock"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			t.Setenv("DISTLOCK_CONFIG", "/dev/null")
			for _, kv := range tt.env {
				name, value, _ := strings.Cut(kv, "=")
				t.Setenv(name, value)
			}
			r, err := Parse(append([]string{"--lock-name=x"}, tt.args...))
			switch {
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("error %v, want %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr == "" && r.Exec.MaxRuntime != tt.want:
				t.Errorf("MaxRuntime %v, want %v", r.Exec.MaxRuntime, tt.want)
			}
		})
	}
}
