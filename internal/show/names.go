package show

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// shownName is a lock name found in etcd as --list shows it: as it is if
// it is a name distlock accepts (what --lock-name takes to name it), else
// escaped and quoted, as a key that someone else wrote may be anything.
func shownName(name string) string {
	if lock.ValidateName(name) == nil && !strings.HasPrefix(name, `"`) {
		return name
	}
	return untrusted.Quote(name, untrusted.MaxKey)
}

// lockLabel is a lock's name as --status shows it: quoted, and for a name
// beyond ASCII, which another name may look like (Cyrillic "а" and Latin
// "a"), with the segment its keys spell it as.
func lockLabel(name string) string {
	return fmt.Sprintf("%q", name) + segmentNote(name, lock.Escape(name))
}

// segmentNote is what a name beyond ASCII is shown with: its keys' segment.
func segmentNote(name, seg string) string {
	for _, r := range name {
		if r >= utf8.RuneSelf {
			return fmt.Sprintf(" (keys %s/)", untrusted.Word(seg, untrusted.MaxKey))
		}
	}
	return ""
}

// maxForeignShown is how many foreign keys --status names one by one.
const maxForeignShown = 5

// sayForeign tells which keys under the lock's prefix take no part in it,
// so that nobody reads one as a holder. A key named PREFIX/ID is etcd's
// recipe's under the name with the trailing slash, a lock of its own.
func sayForeign(w io.Writer, realm, name string, foreign []lock.Entry) {
	for i, e := range foreign {
		if i == maxForeignShown {
			fmt.Fprintf(w, "  not counted: %d more keys that are not this lock's\n", len(foreign)-i)
			return
		}
		fmt.Fprintf(w, "  not counted: key %s %s\n", untrusted.Word(e.Key, untrusted.MaxKey), foreignWhose(realm, name, e.Key))
	}
}

// foreignWhose says whose a foreign key under the lock's prefix is.
func foreignWhose(realm, name, key string) string {
	pfx := lock.Prefix(realm, name)
	other, ok := lock.EtcdctlLock(key)
	switch {
	case ok && other == pfx:
		return fmt.Sprintf("belongs to etcdctl lock %s, a lock of its own (etcdctl lock %s shares this one)",
			untrusted.Quote(other, untrusted.MaxKey), untrusted.Quote(strings.TrimSuffix(pfx, "/"), untrusted.MaxKey))
	case ok:
		return fmt.Sprintf("belongs to another lock: of a realm below this one, or etcdctl lock %s", untrusted.Quote(other, untrusted.MaxKey))
	}
	return "is not a holder's or waiter's: it does not end in a lease ID"
}

// listedName is how --list shows a lock's name: a segment of keys that
// distlock did not write is quoted and marked, so that it cannot pass for
// the lock whose name it spells.
func listedName(l lock.Lock) string {
	if !l.Foreign && utf8.ValidString(l.Name) && !norm.NFC.IsNormalString(l.Name) {
		return untrusted.Quote(l.Name, untrusted.MaxKey) + segmentNote(l.Name, l.Segment()) +
			" (not in Unicode NFC: an older distlock's lock, which --lock-name cannot name now; free it with etcdctl del)"
	}
	if l.Foreign {
		return untrusted.Quote(l.Name, untrusted.MaxKey) + " (not a distlock lock name: keys under it were written by another tool)"
	}
	return shownName(l.Name) + segmentNote(l.Name, l.Segment())
}
