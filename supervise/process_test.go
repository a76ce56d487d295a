package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		s    Status
		want int
	}{
		{Status{Code: 0}, 0},
		{Status{Code: 3}, 3},
		{Status{Signal: syscall.SIGTERM}, 143},
		{Status{Signal: syscall.SIGKILL}, 137},
	}
	for _, tt := range tests {
		if got := tt.s.ExitCode(); got != tt.want {
			t.Errorf("%v: ExitCode() = %d, want %d", tt.s, got, tt.want)
		}
	}
}

// TestLookPath: a command that is not there is not found; one that is there
// but cannot be run is found, and says why not.
func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const found, notFound, cannotRun = "found", "not found", "cannot run"
	tests := []struct{ name, want string }{
		{"sh", found},
		{"no-such-command-anywhere", notFound},
		{filepath.Join(dir, "missing"), notFound},
		{plain, cannotRun},
		{dir, cannotRun},
	}
	for _, tt := range tests {
		_, err := lookPath(tt.name)
		var se *StartError
		got := found
		switch {
		case errors.As(err, &se) && se.NotFound:
			got = notFound
		case errors.As(err, &se):
			got = cannotRun
		case err != nil:
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("lookPath(%q): %s, want %s", tt.name, got, tt.want)
		}
	}
}
