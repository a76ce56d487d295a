package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/supervise"
)

// TestExitStatus is the contract's table of exit statuses, from what a mode
// returns.
func TestExitStatus(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		conflict int
		want     int
	}{
		{"done", nil, 75, 0},
		{"command exited 0", commandEnded{supervise.Status{Code: 0}}, 75, 0},
		{"command exited 3", commandEnded{supervise.Status{Code: 3}}, 75, 3},
		{"command killed by TERM", commandEnded{supervise.Status{Signal: syscall.SIGTERM}}, 75, 143},
		{"lock lost", lockLost{lock.ErrLeaseUnconfirmed}, 75, 70},
		{"--max-runtime passed", overran{time.Minute}, 75, 124},
		{"signal while waiting", signalError{syscall.SIGINT}, 75, 130},
		{"usage", settings.Usagef("bad"), 75, 64},
		{"busy", &lock.ConflictError{Name: "x"}, 75, 75},
		{"busy, --conflict-exit-code=0", &lock.ConflictError{Name: "x"}, 0, 0},
		{"busy, wrapped", fmt.Errorf("waiting: %w", &lock.ConflictError{Name: "x"}), 3, 3},
		{"not found", &supervise.StartError{Command: "nope", NotFound: true}, 75, 127},
		{"cannot run", &supervise.StartError{Command: "/etc", Err: syscall.EACCES}, 75, 126},
		{"--status: free", errFree, 75, 1},
		{"etcd unreachable", context.DeadlineExceeded, 75, 69},
		{"etcd refused", errors.New("etcdserver: permission denied"), 75, 69},
		{"lease lost before the start", lock.ErrLeaseUnconfirmed, 75, 69},
		{"lost after taking it, before the start", lostBeforeStart{lock.ErrLeaseUnconfirmed}, 75, 69},
		{"lost before the start, key deleted", lostBeforeStart{lock.ErrKeyDeleted}, 75, 69},
		{"--limit disagrees", &lock.LimitError{Name: "x", Ours: 2, Held: 3}, 75, 64},
		{"--limit disagrees, wrapped", fmt.Errorf("waiting: %w", &lock.LimitError{Name: "x", Ours: 2, Held: 1, Foreign: true}), 75, 64},
		{"lost, wrapped", fmt.Errorf("run: %w", lockLost{lock.ErrKeyDeleted}), 75, 70},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.err, tt.conflict); got != tt.want {
			t.Errorf("%s: exitStatus(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestEndings holds the table of endings to what it names: every outcome
// of the metrics file is some ending's and every ending's is one of them,
// every event it names is one that the reference lists, and every exit
// status it gives a number is one.
func TestEndings(t *testing.T) {
	reference, err := os.ReadFile(referencePage)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for i, e := range report.Endings() {
		used[e.Outcome()] = true
		if !slices.Contains(report.Outcomes, e.Outcome()) {
			t.Errorf("ending %d: outcome %q is not one of the metrics file's %q", i, e.Outcome(), report.Outcomes)
		}
		if e.Event() != "" && !strings.Contains(string(reference), "`"+string(e.Event())+"`") {
			t.Errorf("ending %d: event %q is not in %s", i, e.Event(), referencePage)
		}
		if _, err := strconv.Atoi(e.ExitStatus()); err != nil && e.ExitStatus() != "N" && e.ExitStatus() != "128+N" {
			t.Errorf("ending %d: status %q", i, e.ExitStatus())
		}
	}
	for _, o := range report.Outcomes {
		if !used[o] {
			t.Errorf("no ending has the outcome %q", o)
		}
	}
}

// TestOutcome is docs/reference.md's table of outcomes, from what a mode
// returns, next to the exit status each comes with.
func TestOutcome(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		skipped bool
		want    string
		status  int
	}{
		{"done", nil, false, "ran", 0},
		{"command exited 3", commandEnded{supervise.Status{Code: 3}}, false, "ran", 3},
		{"command killed by TERM", commandEnded{supervise.Status{Signal: syscall.SIGTERM}}, false, "ran", 143},
		{"command not found", &supervise.StartError{Command: "nope", NotFound: true}, false, "ran", 127},
		{"--status: free", errFree, false, "ran", 1},
		{"--min-interval", nil, true, "skipped", 0},
		{"busy", &lock.ConflictError{Name: "x"}, false, "conflict", 75},
		{"signal while waiting", signalError{syscall.SIGINT}, false, "conflict", 130},
		{"lock lost", lockLost{lock.ErrLeaseUnconfirmed}, false, "lost", 70},
		{"--max-runtime passed", overran{time.Minute}, false, "overran", 124},
		{"lease lost before the start", lostBeforeStart{lock.ErrLeaseUnconfirmed}, false, "lost", 69},
		{"etcd unreachable", context.DeadlineExceeded, false, "unreachable", 69},
		{"--min-interval could not ask etcd", context.DeadlineExceeded, false, "unreachable", 69},
		{"usage", settings.Usagef("bad"), false, "usage", 64},
		{"another --limit", &lock.LimitError{Name: "x", Ours: 2, Held: 1}, false, "usage", 64},
	}
	for _, tt := range tests {
		if got := outcomeOf(tt.err, &report.Facts{Skipped: tt.skipped}); got != tt.want {
			t.Errorf("%s: outcomeOf(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
		if got := exitStatus(tt.err, exitConflict); got != tt.status {
			t.Errorf("%s: exitStatus(%v) = %d, want %d", tt.name, tt.err, got, tt.status)
		}
	}
}
