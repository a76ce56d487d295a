package held

import (
	"strings"
	"sync/atomic"

	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
)

// Serve answers the questions of --held about h, taken in realm through
// c, until Close: from what the holder knows already, without a word to
// etcd. The answer carries c without its password, and without what
// follows a ":" in the user's name (a --user NAME:PASSWORD that came with
// a --password of its own is sent to etcd as it is).
func Serve(h *lock.Holder, realm string, c *settings.Conn) (*Server, error) {
	return Listen(answerAbout(h, realm, c))
}

// Prepare listens before the lock is taken, so that the socket is made
// by the time the command starts; Hold says which holder to answer about.
// Until then (nobody can ask: the command gets the socket's name only
// when it starts) every answer is no.
func Prepare() (*Prepared, error) {
	p := &Prepared{}
	s, err := Listen(func(ending bool) Answer {
		if about := p.about.Load(); about != nil {
			return (*about)(ending)
		}
		return Answer{Why: "the lock is not held yet"}
	})
	p.Server = s
	return p, err
}

// Prepared is a Server that answers about a holder once told which.
type Prepared struct {
	*Server
	about atomic.Pointer[func(bool) Answer]
}

// Hold answers about h, taken in realm through c, from now on, as Serve
// does. It returns the Server, nil for a nil Prepared.
func (p *Prepared) Hold(h *lock.Holder, realm string, c *settings.Conn) *Server {
	if p == nil || p.Server == nil {
		return nil
	}
	about := answerAbout(h, realm, c)
	p.about.Store(&about)
	return p.Server
}

// answerAbout answers a question about h: see Serve.
func answerAbout(h *lock.Holder, realm string, c *settings.Conn) func(bool) Answer {
	user, _, _ := strings.Cut(c.User, ":")
	base := Answer{Realm: realm, Conn: Conn{
		Endpoints: c.Endpoints, DiscoverySrv: c.DiscoverySrv,
		CACert: c.CACert, Cert: c.Cert, Key: c.Key,
		InsecureSkipTLSVerify: c.InsecureSkipTLSVerify, User: user,
	}}
	for _, m := range h.Set() {
		base.Locks = append(base.Locks, Lock{Name: m.Name(), Key: m.Key, Token: m.FencingToken})
	}
	return func(ending bool) Answer {
		a := base
		switch err := h.Check(); {
		case err != nil:
			a.Why = err.Error()
		case ending:
			a.Why = "the distlock that runs this command is stopping it"
		default:
			a.Alive = true
		}
		return a
	}
}
