package held

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
)

// TestServerAnswersManyAtOnce: every client gets answers, side by side,
// and Ending turns them to no; the socket is private, and Close ends the
// conversations still open and removes the socket's directory.
func TestServerAnswersManyAtOnce(t *testing.T) {
	lock := Lock{Name: "a", Key: "/r/a/1", Token: 7}
	s, err := Listen(func(ending bool) Answer {
		return Answer{Alive: !ending, Realm: "/r/", Locks: []Lock{lock}}
	})
	if err != nil {
		t.Fatal(err)
	}
	path := s.ln.Addr().String()
	for file, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if st, err := os.Stat(file); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %v", file, st.Mode().Perm(), err, want)
		}
	}
	t.Setenv(Var, path)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := Dial(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			for range 3 {
				a, err := cl.Ask()
				if err != nil || !a.Alive || len(a.Locks) != 1 || a.Locks[0] != lock {
					t.Errorf("Ask = %+v, %v; want alive, with %+v", a, err, lock)
				}
			}
		}()
	}
	wg.Wait()

	open, err := Dial(ctx) // left open: Close must end it
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	s.Ending()
	if a, err := open.Ask(); err != nil || a.Alive {
		t.Errorf("after Ending: Ask = %+v, %v; want not alive", a, err)
	}
	s.Close()
	if _, err := open.Ask(); err == nil {
		t.Error("Ask after Close got an answer")
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket's directory is still there after Close: %v", err)
	}
	var none *Server // no socket: nothing to name, end or close
	none.Ending()
	none.Close()
	if env := none.Env(); env != nil {
		t.Errorf("a nil Server's Env = %q", env)
	}
}

// TestCheckCannotTell: no supervisor in the environment, one that is
// gone, one that never answers, and one that says no.
func TestCheckCannotTell(t *testing.T) {
	out := report.New(io.Discard, report.Style{})
	conn := settings.Conn{DialTimeout: time.Second}
	check := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return Check(ctx, conn, out)
	}

	t.Setenv(Var, "")
	if err := check(); !errors.Is(err, ErrNoSupervisor) {
		t.Errorf("without %s: %v, want ErrNoSupervisor", Var, err)
	}

	dir := t.TempDir()
	t.Setenv(Var, filepath.Join(dir, "gone"))
	var lost *LostError
	if err := check(); err == nil || errors.As(err, &lost) || errors.Is(err, ErrNoSupervisor) {
		t.Errorf("supervisor gone: %v, want an error that cannot tell", err)
	}

	wedged := filepath.Join(dir, "wedged")
	ln, err := net.Listen("unix", wedged) // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv(Var, wedged)
	start := time.Now()
	if err := check(); err == nil || errors.As(err, &lost) {
		t.Errorf("wedged supervisor: %v, want an error that cannot tell", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a wedged supervisor kept Check waiting %v", took)
	}

	s, err := Listen(func(bool) Answer { return Answer{Why: "the lease is gone"} })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Setenv(Var, s.ln.Addr().String())
	if err := check(); !errors.As(err, &lost) || err.Error() != "the lease is gone" {
		t.Errorf("supervisor says no: %v, want a LostError", err)
	}
}

// TestPreparedSaysNoUntilHold: a socket made before the lock is taken
// answers no until it is told the holder (nobody should ask by then: the
// command is not started).
func TestPreparedSaysNoUntilHold(t *testing.T) {
	p, err := Prepare()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Setenv(Var, p.ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if a, err := cl.Ask(); err != nil || a.Alive || a.Why == "" {
		t.Errorf("Ask before Hold = %+v, %v; want no, with a reason", a, err)
	}
}

// TestStopLeavesDirectoryForClose: Stop ends answering at once (a new
// conversation is refused), and Close, after it, removes the directory.
func TestStopLeavesDirectoryForClose(t *testing.T) {
	s, err := Listen(func(bool) Answer { return Answer{Alive: true} })
	if err != nil {
		t.Fatal(err)
	}
	path := s.ln.Addr().String()
	t.Setenv(Var, path)
	s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cl, err := Dial(ctx); err == nil {
		a, err := cl.Ask()
		cl.Close()
		t.Errorf("a conversation after Stop: %+v, %v; want none", a, err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket's directory after Close: %v; want it gone", err)
	}
}
