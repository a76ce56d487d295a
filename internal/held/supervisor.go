package held

import (
	"strings"

	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
)

// Serve answers the questions of --held about h, taken in realm through
// c, until Close: from what the holder knows already, without a word to
// etcd. The answer carries c without its password, and without what
// follows a ":" in the user's name (a --user NAME:PASSWORD that came with
// a --password of its own is sent to etcd as it is).
func Serve(h *lock.Holder, realm string, c *settings.Conn) (*Server, error) {
	user, _, _ := strings.Cut(c.User, ":")
	base := Answer{Realm: realm, Conn: Conn{
		Endpoints: c.Endpoints, DiscoverySrv: c.DiscoverySrv,
		CACert: c.CACert, Cert: c.Cert, Key: c.Key,
		InsecureSkipTLSVerify: c.InsecureSkipTLSVerify, User: user,
	}}
	for _, m := range h.Set() {
		base.Locks = append(base.Locks, Lock{Name: m.Name(), Key: m.Key, Token: m.FencingToken})
	}
	return Listen(func(ending bool) Answer {
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
	})
}
