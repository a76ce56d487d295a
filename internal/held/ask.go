package held

import (
	"context"
	"errors"

	"github.com/tinx/distlock/internal/dial"
	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
)

// LostError is the answer no: the lock is not held any more.
type LostError struct{ Cause error }

func (e *LostError) Error() string { return e.Cause.Error() }
func (e *LostError) Unwrap() error { return e.Cause }

// Check is distlock --held: it asks the supervisor named in the
// environment whether it counts its lease alive, reads every key the
// supervisor holds in etcd (linearizably, as the supervisor reaches etcd,
// but with c's password: the command's own, from its config file or
// DISTLOCK_PASSWORD), and asks the supervisor again. nil means held; a
// *LostError, not held; ErrNoSupervisor, not under distlock; any other
// error, that it cannot tell. ctx bounds all of it.
func Check(ctx context.Context, c settings.Conn, out *report.Reporter) error {
	sup, err := Dial(ctx)
	if err != nil {
		return err
	}
	defer sup.Close()
	a, err := sup.Ask()
	if err != nil || !a.Alive {
		return verdict(a, err)
	}
	c.Endpoints, c.DiscoverySrv, c.User = a.Conn.Endpoints, a.Conn.DiscoverySrv, a.Conn.User
	c.CACert, c.Cert, c.Key = a.Conn.CACert, a.Conn.Cert, a.Conn.Key
	c.InsecureSkipTLSVerify, c.Realm = a.Conn.InsecureSkipTLSVerify, a.Realm
	c.Access = "read access to"
	var keys []lock.HeldKey
	for _, l := range a.Locks {
		keys = append(keys, lock.HeldKey{Name: l.Name, Key: l.Key, Token: l.Token})
		c.Access += " " + l.Key
	}
	client, err := dial.New(&c, out)
	if err != nil { // even a TLS file that cannot be read: --held cannot tell
		return errors.New(dial.Explain(&c, err).Error())
	}
	defer client.Close()
	var notHeld *lock.NotHeldError
	switch err := lock.StillHeld(ctx, client, a.Realm, keys); {
	case errors.As(err, &notHeld):
		return &LostError{err}
	case err != nil:
		return dial.Explain(&c, err)
	}
	// The lease may have lapsed while etcd was read: the supervisor's
	// own count has the last word.
	return verdict(sup.Ask())
}

// verdict is what the supervisor's answer a (or err) means.
func verdict(a Answer, err error) error {
	switch {
	case err != nil:
		return err
	case !a.Alive:
		return &LostError{errors.New(a.Why)}
	}
	return nil
}
