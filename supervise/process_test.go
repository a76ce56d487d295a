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

// TestLookPath: not found is 127, found but not runnable is 126, as in a
// shell.
func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want int // 0: found
	}{
		{"sh", 0},
		{"no-such-command-anywhere", 127},
		{filepath.Join(dir, "missing"), 127},
		{plain, 126},
		{dir, 126},
	}
	for _, tt := range tests {
		_, err := lookPath(tt.name)
		var se *StartError
		switch {
		case tt.want == 0 && err != nil:
			t.Errorf("lookPath(%q) = %v, want found", tt.name, err)
		case tt.want != 0 && (!errors.As(err, &se) || se.ExitCode != tt.want):
			t.Errorf("lookPath(%q) = %v, want status %d", tt.name, err, tt.want)
		}
	}
}
