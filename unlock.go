package main

import (
	"context"
	"os"
	"time"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

// runUnlock is --unlock: delete the holder's key, whoever holds it. A
// holder that is still running makes way for a record that keeps the lock
// taken until it has stopped its command.
func runUnlock(ctx context.Context, j *job) error {
	rctx, cancel := context.WithTimeout(ctx, j.lock.RPCTimeout)
	defer cancel()
	var done *lock.Unlocked
	var err error
	key := ""
	if j.lock.Holder != "" {
		var kerr error
		key, kerr = lock.KeyOf(j.lock.Realm, j.lock.Name, j.lock.Holder)
		if kerr != nil {
			err = settings.Usagef("--holder: %v", kerr)
			j.out.About(report.EventUsage).Fail("%v", err)
			return err
		}
		done, err = lock.UnlockKey(rctx, j.client, j.lock.Realm, j.lock.Name, key, j.unlocker())
	} else {
		done, err = lock.Unlock(rctx, j.client, j.lock.Realm, j.lock.Name, j.unlocker())
	}
	switch {
	case err != nil:
		j.out.About(report.EventEtcdError).Fail("%v", j.etcdError(err))
		return err
	case done.Removed != nil && j.lock.Holder != "":
		j.out.About(report.EventReleased).Holder(*done.Removed).Info("released key %s of lock %q: %s", untrusted.Word(key, untrusted.MaxKey), j.lock.Name, describeUnlocked(*done.Removed))
		sayStopping(j, done)
	case done.Removed != nil:
		j.out.About(report.EventReleased).Holder(*done.Removed).Info("released lock %q, held by %s", j.lock.Name, describeUnlocked(*done.Removed))
		sayStopping(j, done)
	case len(done.Pending) > 0:
		for _, e := range done.Pending {
			j.out.About(report.EventStopping).Holder(e).Info("lock %q was unlocked already; the next holder starts once this one has stopped its command: %s", j.lock.Name, describeUnlocked(e))
		}
	case j.lock.Holder != "":
		j.out.About(report.EventNotHeld).Info("lock %q has no key %s; nothing to unlock", j.lock.Name, untrusted.Word(key, untrusted.MaxKey))
	default:
		j.out.About(report.EventNotHeld).Info("lock %q is not held; nothing to unlock", j.lock.Name)
	}
	return nil
}

// describeUnlocked is who a removed key belonged to, without the note that
// it is stopping: sayStopping says that on a line of its own.
func describeUnlocked(e lock.Entry) string {
	e.Stopping = false
	return e.Describe()
}

// sayStopping tells, after an unlock that left a stopping record, that the
// lock is not free yet, and which lease keeps it: if that holder's
// machine is gone, nobody stops anything, and whoever knows it can revoke
// the lease rather than wait for it to expire.
func sayStopping(j *job, done *lock.Unlocked) {
	if done.Stopping {
		j.out.About(report.EventStopping).Holder(*done.Removed).Info("its command is being stopped; the next holder of lock %q starts once it has stopped, or its lease %x expires", j.lock.Name, done.Removed.Lease)
	}
}

// unlockCommand is the command line that releases key of this lock and
// no other (settings.UnlockCommand).
func (j *job) unlockCommand(key string) string {
	return settings.UnlockCommand(j.lock.Realm, j.lock.Name, key)
}

// unlocker is who this --unlock is, for the history record of the
// holding it ends.
func (j *job) unlocker() lock.UnlockBy {
	host, _ := os.Hostname()
	return lock.UnlockBy{
		Info:    lock.Info{Host: host, PID: os.Getpid(), User: currentUser(), Reason: j.lock.Reason, Since: time.Now().UTC().Truncate(time.Second)},
		History: j.lock.History,
	}
}
