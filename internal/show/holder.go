package show

import (
	"fmt"
	"strings"
	"time"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// holderText says who a holder is and what: "host web1, user ops, since
// ..., reason "...": a manual lock (--lock), until --unlock; held for
// 5m3s", and for a key on a lease, what etcd says is left of it.
func holderText(e lock.Entry, now time.Time, leases map[int64]time.Duration) string {
	var parts []string
	if d := doing(e); d != "" {
		parts = append(parts, d)
	}
	if e.Info != nil && e.Info.Shared {
		parts = append(parts, "shared (--shared)")
	}
	if held, ok := heldFor(e, now); ok {
		parts = append(parts, "held for "+held.String())
	}
	if l := leaseText(e, leases); l != "" {
		parts = append(parts, l)
	}
	if len(parts) == 0 {
		return e.Who()
	}
	return e.Who() + ": " + strings.Join(parts, "; ")
}

// doing says what a holder is: running its command (which, if its key
// says), a manual lock (until when), kept for --min-hold (until when), or
// unlocked and stopping.
func doing(e lock.Entry) string {
	var command, expires string
	if e.Info != nil {
		if e.Info.Command != "" {
			command = untrusted.Quote(e.Info.Command, untrusted.MaxWord) + " "
		}
		// "Or later": a leader change renews the lease.
		expires = e.Info.Expires.Local().Format(time.RFC3339) + " or later"
	}
	switch e.State() {
	case lock.StateRunning:
		if command == "" {
			return "running its command"
		}
		return "running " + strings.TrimSpace(command)
	case lock.StateManual:
		if e.Info.Expires.IsZero() {
			return "a manual lock (--lock), until --unlock"
		}
		return "a manual lock (--lock) that expires at " + expires + " (--expire)"
	case lock.StateMinHold:
		return fmt.Sprintf("its command %sended; kept for --min-hold until %s", command, expires)
	case lock.StateStopping:
		return "unlocked; stopping its command"
	}
	return ""
}

// heldFor is how long e has held the lock, by its key's Since and this
// host's clock (never less than 0), to the second.
func heldFor(e lock.Entry, now time.Time) (time.Duration, bool) {
	if e.Info == nil || e.Info.Since.IsZero() {
		return 0, false
	}
	return max(now.Sub(e.Info.Since), 0).Round(time.Second), true
}

// leaseText says what etcd says is left of e's lease; "" for a key on no
// lease, or when leases were not asked about.
func leaseText(e lock.Entry, leases map[int64]time.Duration) string {
	if e.Lease == 0 || leases == nil {
		return ""
	}
	left, ok := leases[e.Lease]
	switch {
	case !ok:
		return "what is left of its lease is unknown (etcd did not say in time)"
	case left < 0:
		return "its lease has just expired"
	case e.State() == lock.StateRunning:
		return fmt.Sprintf("its lease has %v left, renewed while it runs", left)
	}
	return fmt.Sprintf("its lease has %v left", left)
}
