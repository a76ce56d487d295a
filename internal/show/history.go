package show

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// WriteHistory writes --history: one line for each record, newest first,
// or with asJSON one JSON object a line.
func WriteHistory(w io.Writer, records []lock.HistoryEntry, asJSON bool) {
	for _, e := range records {
		if asJSON {
			w.Write(untrusted.JSON(historyJSON(e)))
			io.WriteString(w, "\n")
			continue
		}
		fmt.Fprintln(w, historyLine(e))
	}
}

// historyJSON is one record as --history --json writes it: the record as
// distlock reads it, or only the key and token of one it cannot read.
func historyJSON(e lock.HistoryEntry) []byte {
	if e.Record == nil {
		b, _ := json.Marshal(map[string]any{"history_key": e.Key, "fencing_token": e.Token, "readable": false})
		return b
	}
	r := *e.Record
	r.FencingToken = e.Token // the key's, which no value can change
	b, _ := json.Marshal(r)
	return b
}

// historyLine is one record as a line: the fencing token, when the lock
// was taken, for how long, by whom, and how the holding ended.
func historyLine(e lock.HistoryEntry) string {
	r := e.Record
	if r == nil {
		return fmt.Sprintf("token %d\t%s: not a record distlock can read", e.Token, untrusted.Word(e.Key, untrusted.MaxKey))
	}
	entry := lock.Entry{Key: r.Key, Info: &r.Info}
	entry.Info.Since = time.Time{} // said apart: when it was taken
	who := entry.Who()
	if r.Kind != "" && r.Kind != lock.KindExclusive {
		who += " (" + untrusted.Word(r.Kind, untrusted.MaxWord) + historySet(r) + ")"
	}
	return fmt.Sprintf("token %d\t%s\t%s\t%s\t%s", e.Token, stamp(r.Acquired), heldOf(r), who, ending(r))
}

// historySet names a set's other locks.
func historySet(r *lock.Record) string {
	if len(r.Set) == 0 {
		return ""
	}
	var names []string
	for _, n := range r.Set {
		names = append(names, untrusted.Quote(n, untrusted.MaxWord))
	}
	return " with " + strings.Join(names, ", ")
}

// stamp is a moment as --history shows it, or "?" if unknown.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return t.Local().Format(time.RFC3339)
}

// heldOf is how long the lock was held, if known.
func heldOf(r *lock.Record) string {
	if r.Acquired.IsZero() || r.Released.IsZero() || r.Released.Before(r.Acquired) {
		return "held ?"
	}
	return "held " + r.Released.Sub(r.Acquired).String()
}

// ending says how the holding ended, as far as the record knows.
func ending(r *lock.Record) string {
	cmd := ""
	if r.Ended != "" {
		// distlock's outcome word, as the metrics file says it.
		cmd = "; outcome " + untrusted.Word(r.Ended, untrusted.MaxWord)
		if r.ExitStatus != nil {
			cmd += fmt.Sprintf(", exit status %d", *r.ExitStatus)
		}
	}
	switch {
	case r.Outcome == lock.EndReleased:
		return "released at " + stamp(r.Released) + cmd
	case r.Outcome == lock.EndUnlocked && r.UnlockedBy != nil:
		who := *r.UnlockedBy
		who.Since = time.Time{} // it is when: said already
		by := lock.Entry{Info: &who}
		return "unlocked at " + stamp(r.Released) + " by " + by.Who() + cmd
	case r.Outcome != "":
		return "ended: " + untrusted.Word(r.Outcome, untrusted.MaxWord) + cmd
	case !r.Info.Expires.IsZero() && r.Info.Mode == lock.ModeExec:
		return "kept for --min-hold until " + stamp(r.Info.Expires) + " or later, then removed by etcd" + cmd
	case !r.Info.Expires.IsZero():
		return "taken with --lock --expire: removed by etcd at " + stamp(r.Info.Expires) + " or later, unless unlocked"
	case r.Info.Mode == lock.ModeLock:
		return "taken with --lock: held until --unlock (no end recorded)"
	}
	return "no end recorded: still held, or its distlock died and etcd let the lock go when its lease ran out" + cmd
}
