package poll

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestUntilHolds(t *testing.T) {
	calls := 0
	err := Until(context.Background(), func() bool { calls++; return calls == 3 })
	if err != nil || calls != 3 {
		t.Fatalf("Until = %v after %d checks, want nil after 3", err, calls)
	}
}

func TestUntilEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := Until(ctx, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Until = %v, want the context's deadline", err)
	}
}

// fatalT records the failure For reports; For returns after Fatalf here,
// as a real test's would not.
type fatalT struct{ msg string }

func (f *fatalT) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestForSaysWhatItWaitedFor(t *testing.T) {
	var f fatalT
	For(&f, "the moon", 30*time.Millisecond, func() bool { return false })
	if want := "timed out after 30ms waiting for the moon"; f.msg != want {
		t.Errorf("For failed with %q, want %q", f.msg, want)
	}
	f.msg = ""
	For(&f, "the sun", time.Second, func() bool { return true })
	if f.msg != "" {
		t.Errorf("For failed a condition that holds: %q", f.msg)
	}
}
