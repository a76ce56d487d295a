package lock

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The history of a lock: one record for each time the lock was held (by a
// distlock command, --lock, or a set or shared holder), beside the lock's
// keys, never among them:
//
//	realm + seg + "!history:" + TOKEN
//
// where TOKEN is the holder's fencing token (its key's create revision) in
// 19 digits, so that the records sort in the order the lock was taken and
// no host's clock names them. A record is begun when the lock is taken and
// completed when it is let go, in the same transaction that deletes the
// holder's key (a release, or an --unlock, which says who took the lock
// away and why). A record that was never completed says how far it is
// known: its distlock died, or etcd removed its key when the lease ran out
// (an --expire that lapsed, a --min-hold that ended). Each record is on a
// lease of its own that nobody keeps alive, of the history span: etcd
// removes it then.
const historySuffix = "!history:"

// HistoryPrefix is where the history records of the lock named name live.
func HistoryPrefix(realm, name string) string {
	return realm + Escape(name) + historySuffix
}

// HistoryKey is the key of the record of the holder of the lock named name
// whose fencing token is token.
func HistoryKey(realm, name string, token int64) string {
	return fmt.Sprintf("%s%0*d", HistoryPrefix(realm, name), revDigits, token)
}

// historyToken returns the fencing token that key, read under the history
// prefix hp, names, if key has a record's exact shape.
func historyToken(hp, key string) (int64, bool) {
	digits, ok := strings.CutPrefix(key, hp)
	if !ok || len(digits) != revDigits || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	token, err := strconv.ParseInt(digits, 10, 64)
	return token, err == nil && token > 0
}

// How a run that held the lock ended, as its history record says
// (Record.Outcome). A record without one was never completed.
const (
	EndReleased = "released" // its distlock let the lock go
	EndUnlocked = "unlocked" // --unlock took it away (Record.UnlockedBy)
)

// Record is the history record of one holding of a lock: the JSON value of
// its history key. Values are untrusted, as every value in etcd.
type Record struct {
	Info
	// Kind is exclusive, shared, limit or set.
	Kind         string    `json:"kind"`
	FencingToken int64     `json:"fencing_token"`
	Key          string    `json:"key"`
	Waiting      time.Time `json:"waiting_since,omitzero"` // when it began to wait
	Acquired     time.Time `json:"acquired"`
	Released     time.Time `json:"released,omitzero"`
	// Outcome is one of the End constants once the record is completed;
	// for a command, Ended says how the command ended (report's outcome
	// words: success, failure, signal, lost, overran, ...) and ExitStatus
	// distlock's exit status.
	Outcome    string `json:"outcome,omitempty"`
	Ended      string `json:"ended,omitempty"`
	ExitStatus *int   `json:"exit_status,omitempty"`
	// UnlockedBy is who ran the --unlock that took the lock away.
	UnlockedBy *Info `json:"unlocked_by,omitempty"`
	// Set names the other locks of a set of locks taken together.
	Set []string `json:"set,omitempty"`
}

// Kinds of holding, as Record.Kind says.
const (
	KindExclusive = "exclusive"
	KindShared    = "shared"
	KindLimit     = "limit"
	KindSet       = "set"
)

// HistoryEntry is a record as read from etcd.
type HistoryEntry struct {
	Token  int64
	Key    string
	Record *Record // nil if the value is not a record distlock can read
	Raw    []byte
	// ModRevision is the revision of the record's last write: the same as
	// that of the deletion of the holder's key when it was completed in
	// that transaction.
	ModRevision int64
}

// parseHistory reads kv, found under the history prefix hp, if its key
// has a record's exact shape.
func parseHistory(hp string, kv *mvccpb.KeyValue) (HistoryEntry, bool) {
	token, ok := historyToken(hp, string(kv.Key))
	if !ok {
		return HistoryEntry{}, false
	}
	e := HistoryEntry{Token: token, Key: string(kv.Key), Raw: kv.Value, ModRevision: kv.ModRevision}
	var r Record
	if json.Unmarshal(kv.Value, &r) == nil {
		e.Record = &r
	}
	return e, true
}
