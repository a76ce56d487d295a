package report

import (
	"time"

	"github.com/tinx/distlock/lock"
)

// Outages returns what a run says of etcd's silence (lock.Request.Outage)
// for the lock name, whose holder runs a command or not: a waiter's live
// line shows it while it lasts, and otherwise one line says it began and
// one that it ended; a waiter that lost its place, and a holder, always
// say so in lines of their own. Every
// line is info: --quiet leaves them out. Like every line, they are queued
// for the writer: the lease's keepalive loop, which calls this, never
// waits for stderr.
func (r *Reporter) Outages(name string, command bool, line *WaitLine) func(lock.Outage) {
	ending := "the lock will be given up"
	if command {
		ending = "the command will be stopped"
	}
	return func(o lock.Outage) {
		silent := time.Since(o.Since).Round(time.Second)
		switch {
		case o.Kind == lock.EtcdQuiet && o.Holding:
			r.About(EventEtcdQuiet).Info("etcd has not confirmed the lease of lock %q for %v; %s at %s unless etcd answers by then",
				name, silent, ending, o.GiveUp.Format("15:04:05"))
		case o.Kind == lock.EtcdBack && o.Holding:
			r.About(EventEtcdBack).Info("etcd confirms the lease of lock %q again, after %v", name, silent)
		case o.Kind == lock.EtcdQuiet:
			if !line.Quiet(o.Since) {
				r.About(EventEtcdQuiet).Info("etcd not answering for %v; still waiting for lock %q", silent, name)
			}
		case o.Kind == lock.EtcdBack:
			if !line.Quiet(time.Time{}) {
				r.About(EventEtcdBack).Info("etcd answers again, after %v; still waiting for lock %q", silent, name)
			}
		case o.Kind == lock.PlaceLost:
			line.Quiet(o.Since)
			r.About(EventPlaceLost).Info("lost the place in the queue for lock %q (%v); queueing again, at the back, once etcd answers",
				name, o.Err)
		case o.Kind == lock.StillOut:
			line.Quiet(o.Since)
			r.About(EventEtcdQuiet).Info("etcd out of reach for %v; still waiting for lock %q", silent, name)
		case o.Kind == lock.Regather:
			r.About(EventPlaceLost).Info("%v; giving the set back, and queueing for it again from its first lock", o.Err)
		case o.Kind == lock.Rejoined:
			line.Quiet(time.Time{})
			r.About(EventRequeued).Info("etcd answers again, after %v; queued again for lock %q, at the back", silent, name)
		}
	}
}
