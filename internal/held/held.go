// Package held is the handoff between a distlock that runs a command and
// the distlock --held that the command runs to ask whether the lock is
// still its own. The supervising distlock listens on a unix socket in a
// directory of its own (0700), named in the command's environment; each
// line a client writes is answered with one line of JSON: whether the
// supervisor still counts its lease alive, and what the client needs to
// read the locks in etcd itself. The answer never carries a password, and
// the supervisor asks etcd nothing to give it.
package held

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Var is the environment variable that names the supervisor's socket.
const Var = "DISTLOCK_HELD_SOCKET"

// Lock is one lock the command runs under.
type Lock struct {
	Name  string `json:"name"`
	Key   string `json:"key"`
	Token int64  `json:"fencing_token"`
}

// Conn is how the supervisor reached etcd, without its password.
type Conn struct {
	Endpoints             []string      `json:"endpoints,omitempty"`
	DiscoverySrv          string        `json:"discovery_srv,omitempty"`
	DialTimeout           time.Duration `json:"dial_timeout"`
	CACert                string        `json:"cacert,omitempty"`
	Cert                  string        `json:"cert,omitempty"`
	Key                   string        `json:"key,omitempty"`
	InsecureSkipTLSVerify bool          `json:"insecure_skip_tls_verify,omitempty"`
	User                  string        `json:"user,omitempty"`
}

// Answer is what the supervisor says to one question.
type Answer struct {
	// Alive: the supervisor counts every lock's lease alive, by its own
	// deadline, and is not stopping the command.
	Alive bool `json:"alive"`
	// Why the lock is not held, when it is not.
	Why   string `json:"why,omitempty"`
	Realm string `json:"realm"`
	Locks []Lock `json:"locks"`
	Conn  Conn   `json:"conn"`
}

// idle bounds how long the supervisor waits for a client's next line: a
// client that hangs holds nothing for longer.
const idle = 30 * time.Second

// Server answers questions on the socket until Close.
type Server struct {
	dir    string
	ln     net.Listener
	answer func(ending bool) Answer
	ending atomic.Bool // the command is being stopped: see Ending

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Listen makes a directory only this user can enter, listens on a socket
// in it, and answers every client with answer(ending) from its own
// goroutines, ending being whether Ending was called.
func Listen(answer func(ending bool) Answer) (*Server, error) {
	var err error
	// A long TMPDIR can make the path too long for a socket: /tmp then.
	for _, base := range []string{os.TempDir(), "/tmp"} {
		var s *Server
		if s, err = listenIn(base, answer); err == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("cannot make a socket for distlock --held: %w", err)
}

func listenIn(base string, answer func(bool) Answer) (*Server, error) {
	dir, err := os.MkdirTemp(base, "distlock-held-") // 0700
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		os.RemoveAll(dir)
		return nil, err
	}
	// Stop closes the socket, and Close removes it with its directory:
	// unlinking it takes a while on some file systems, and Stop stands
	// before the release.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	s := &Server{dir: dir, ln: ln, answer: answer, conns: map[net.Conn]struct{}{}}
	go s.accept()
	return s, nil
}

// Env is the variable that tells the command where to ask; none from a
// nil Server.
func (s *Server) Env() []string {
	if s == nil {
		return nil
	}
	return []string{Var + "=" + s.ln.Addr().String()}
}

// Ending says that the command is being stopped, or asked to end: from
// now on every answer is no. Call it before the command can learn it.
func (s *Server) Ending() {
	if s != nil {
		s.ending.Store(true)
	}
}

// accept takes each conversation until Close. It answers nothing
// itself, so Close need not wait for it: a conversation taken as Close
// runs is closed unanswered.
func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		if s.conns == nil { // closing
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

// serve answers each line c sends until c is closed or idle.
func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	in := bufio.NewScanner(c)
	in.Buffer(make([]byte, 64), 64) // a question is a short line
	enc := json.NewEncoder(c)
	for {
		_ = c.SetDeadline(time.Now().Add(idle))
		if !in.Scan() || enc.Encode(s.answer(s.ending.Load())) != nil {
			return
		}
	}
}

// Close stops answering, ends every open conversation, waits for their
// goroutines and removes the socket and its directory. A nil Server has
// nothing to close.
func (s *Server) Close() {
	if s == nil {
		return
	}
	s.Stop()
	os.RemoveAll(s.dir)
}

// Stop stops answering and ends every open conversation, as Close does,
// but leaves the directory (removing it takes a while on some file
// systems) for Close. A nil Server has nothing to stop.
func (s *Server) Stop() {
	if s == nil {
		return
	}
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// ErrNoSupervisor means the variable is not set: the caller does not run
// under distlock.
var ErrNoSupervisor = errors.New(Var + " is not set")

// Client is one conversation with the supervisor.
type Client struct {
	c   net.Conn
	out *json.Decoder
}

// Dial reaches the supervisor named in the environment, within ctx.
func Dial(ctx context.Context) (*Client, error) {
	path := os.Getenv(Var)
	if path == "" {
		return nil, ErrNoSupervisor
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the distlock that runs this command at %s: %w", path, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return &Client{c: c, out: json.NewDecoder(c)}, nil
}

// Ask asks the supervisor once.
func (cl *Client) Ask() (Answer, error) {
	var a Answer
	if _, err := cl.c.Write([]byte("held?\n")); err != nil {
		return a, fmt.Errorf("ask the distlock that runs this command: %w", err)
	}
	if err := cl.out.Decode(&a); err != nil {
		return a, fmt.Errorf("no answer from the distlock that runs this command: %w", err)
	}
	return a, nil
}

// Close ends the conversation.
func (cl *Client) Close() error { return cl.c.Close() }
