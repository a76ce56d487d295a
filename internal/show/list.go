package show

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// List writes --list: every lock in the realm that has a holder, one line
// (or one JSON object of an array) each, as the realm is read page by
// page. If reading stops half-way, what was written stays, and a JSON
// array is left open.
type List struct {
	w      io.Writer
	asJSON bool
	n      int
}

// NewList is a --list that writes to w, as JSON if asJSON.
func NewList(w io.Writer, asJSON bool) *List { return &List{w: w, asJSON: asJSON} }

// Add writes one lock.
func (ls *List) Add(l lock.Lock) {
	ls.n++
	if ls.asJSON {
		sep := ",\n  "
		if ls.n == 1 {
			sep = "[\n  "
		}
		st := lockStatus(l.Name, l.Entries, l.Stopping, time.Now(), nil)
		st.Foreign = l.Foreign
		b, _ := json.MarshalIndent(st, "  ", "  ")
		io.WriteString(ls.w, sep)
		ls.w.Write(untrusted.JSON(b))
		return
	}
	holders, waiters := lock.Holders(l.Entries, l.Stopping)
	held := holders[0].Describe()
	if n := limit(l.Entries, l.Stopping); len(holders) > 1 && n == 1 {
		held = fmt.Sprintf("%s, and %d more (shared)", held, len(holders)-1)
	} else if len(holders) > 1 {
		held = fmt.Sprintf("%s, and %d more (--limit %d)", held, len(holders)-1, n)
	}
	fmt.Fprintf(ls.w, "%s\t%s\t%d waiting\n", listedName(l), held, len(waiters))
}

// End finishes the list once the whole realm was read: closes the JSON
// array, and tells a person at a terminal (toTerminal) that no lock is
// held, where a script reads no lines.
func (ls *List) End(realm string, toTerminal bool) {
	switch {
	case ls.asJSON && ls.n == 0:
		io.WriteString(ls.w, "[]\n")
	case ls.asJSON:
		io.WriteString(ls.w, "\n]\n")
	case ls.n == 0 && toTerminal:
		fmt.Fprintf(ls.w, "no lock is held in the realm %s\n", untrusted.Word(realm, untrusted.MaxKey))
	}
}
