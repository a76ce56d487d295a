// Package locknames answers the completion scripts' question after
// --lock-name: which locks are held in the realm? It asks etcd with the
// settings of the line typed so far, within Budget, and says nothing of
// what went wrong: a shell waits for the answer on every TAB, and a
// completion has no place for an error.
package locknames

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tinx/distlock/internal/dial"
	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/lock"
)

// Budget bounds the whole answer, from dialing etcd (and logging in) to
// the last name. The shell's prompt waits for it, and a pause of a second
// is about what a person at a TAB puts up with before typing on; a
// healthy etcd answers in milliseconds, over TLS with a login and across
// a continent in a tenth of a second or two, so only an etcd that would
// not answer at all runs into it.
const Budget = time.Second

// pageSize is how many keys each request reads, as --list does.
const pageSize = 1000

// Print writes the names of the locks held in r's realm to w, one a
// line, in the order of their keys: only names that --lock-name takes as
// they are (not another tool's keys, nor an older distlock's names that
// it cannot name now). If etcd does not answer within Budget, it writes
// what it found until then, which may be nothing.
func Print(ctx context.Context, r *settings.Run, w io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, Budget)
	defer cancel()
	conn := r.Conn
	conn.DialTimeout = min(conn.DialTimeout, Budget)
	client, err := dial.New(&conn, report.New(io.Discard, report.Style{Quiet: true}))
	if err != nil {
		return
	}
	defer client.Close()
	_ = lock.List(ctx, client, r.Lock.Realm, pageSize, Budget, func(l lock.Lock) {
		if !l.Foreign && lock.ValidateName(l.Name) == nil {
			fmt.Fprintln(w, l.Name)
		}
	})
}
