package signals

import (
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    syscall.Signal
		wantErr bool
	}{
		{"TERM", syscall.SIGTERM, false},
		{"SIGTERM", syscall.SIGTERM, false},
		{"term", syscall.SIGTERM, false},
		{"sigint", syscall.SIGINT, false},
		{"9", syscall.SIGKILL, false},
		{"USR1", syscall.SIGUSR1, false},
		{"", 0, true},
		{"0", 0, true},
		{"65", 0, true},
		{"-1", 0, true},
		{"NOPE", 0, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNameAndExitStatus(t *testing.T) {
	if got := Name(syscall.SIGHUP); got != "HUP" {
		t.Errorf("Name(SIGHUP) = %q, want HUP", got)
	}
	if got := ExitStatus(syscall.SIGTERM); got != 143 {
		t.Errorf("ExitStatus(SIGTERM) = %d, want 143", got)
	}
	if EndsWait(syscall.SIGWINCH) || !EndsWait(syscall.SIGTERM) {
		t.Error("EndsWait: WINCH must not end a wait, TERM must")
	}
}
