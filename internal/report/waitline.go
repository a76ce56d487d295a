package report

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

const (
	// waitLineTick is how often the waiting line is drawn again: the
	// holder's time goes up by the second.
	waitLineTick = time.Second
	// waitLineLook is every how many ticks etcd is asked who holds the
	// lock and how many are ahead: often enough to follow the queue,
	// seldom enough to cost etcd nothing.
	waitLineLook = 3
	// waitLineErase is the longest distlock waits, when the wait is over,
	// for the waiting line to be erased before it goes on.
	waitLineErase = time.Second
)

// WaitLine is the live line distlock shows while it waits on a terminal,
// in place of the single "waiting" line: the lock, who holds it and for
// how long, how many are ahead. A goroutine of its own draws it every
// second and asks etcd every few; the Reporter's writer does the writing,
// so drawing never waits for the terminal.
type WaitLine struct {
	q   Queue
	out *Reporter
	me  lock.Info // who we are, to find our own key in the queue

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	stopped bool
	quiet   time.Time // since when etcd has not answered, while it does not
}

// NewWaitLine returns the waiting line for this wait, or nil when stderr
// is no terminal or --quiet: then the single line said by request's
// Blocked stands. me is what our key says of us.
func NewWaitLine(ctx context.Context, q Queue, me lock.Info, out *Reporter) *WaitLine {
	if !out.CanShowLive() {
		return nil
	}
	w := &WaitLine{q: q, out: out, me: me}
	w.ctx, w.cancel = context.WithCancel(ctx)
	return w
}

// Blocked is lock.Request.Blocked on a terminal: the lock is taken, start
// the line.
func (w *WaitLine) Blocked(holder lock.Entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.stopped {
		return
	}
	w.started = true
	w.wg.Add(1)
	go w.run(holder)
}

// Quiet tells the line that etcd has not answered since since, or, with a
// zero since, that it answers again. It says whether the line shows it:
// false when there is no live line (yet), and the news is for a line of
// its own.
func (w *WaitLine) Quiet(since time.Time) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.quiet = since
	return w.started && !w.stopped
}

// quietSince is since when etcd has not answered, or zero.
func (w *WaitLine) quietSince() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.quiet
}

// Stop ends the line when the wait is over, however it ended: the
// goroutine is gone and the line erased (or the erase given up on after
// waitLineErase) when stop returns. A nil line has nothing to stop.
func (w *WaitLine) Stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	w.out.EndLive(waitLineErase)
}

// queueView is what a look at the queue found.
type queueView struct {
	holder lock.Entry // the oldest holder, perhaps one being stopped
	// ahead counts the keys created before ours, the holders' included,
	// and the stopping records of such keys: each takes a slot ahead.
	ahead int
	ok    bool
}

// run draws the line until the wait ends, and looks at the queue every
// waitLineLook ticks, first at once. A look runs beside the drawing, so
// that a slow etcd does not stop the clock.
func (w *WaitLine) run(holder lock.Entry) {
	defer w.wg.Done()
	view := queueView{holder: holder, ahead: -1} // -1: not counted yet
	w.out.ShowLive(w.text(view, time.Now()))

	looked := make(chan queueView, 1)
	looking := true
	w.wg.Add(1)
	go w.look(looked)
	tick := time.NewTicker(waitLineTick)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-w.ctx.Done():
			return
		case v := <-looked:
			looking = false
			if v.ok {
				view = v
			}
		case <-tick.C:
			if !looking && n%waitLineLook == 0 {
				looking = true
				w.wg.Add(1)
				go w.look(looked)
			}
		}
		w.out.ShowLive(w.text(view, time.Now()))
	}
}

// look reads the queue and its stopping records, as --status does: the
// holder is the oldest of the holders (one being stopped after --unlock
// included), and ahead of us are the keys before ours and the records of
// such keys. lock.Request does not tell us our key, so ours is found by
// what it says of us (host, pid, user, mode): the newest such key, as an
// older one can only be left by an earlier process with our pid (a
// --lock). If ours is not there, or holds already (we are about to be
// told), the view is not ok and the last one stays.
func (w *WaitLine) look(looked chan<- queueView) {
	defer w.wg.Done()
	ctx, cancel := context.WithTimeout(w.ctx, w.q.Timeout)
	defer cancel()
	var v queueView // not ok
	if q, err := lock.ReadQueue(ctx, w.q.Client, w.q.Realm, w.q.Name); err == nil {
		v = w.find(q.Entries, q.Stopping)
	}
	looked <- v // never blocks: one look at a time, and room for it
}

// find makes a view of the entries, oldest first, and the stopping
// records, as look describes.
func (w *WaitLine) find(entries, stopping []lock.Entry) queueView {
	mine := -1
	for i, e := range entries { // the last match is the newest
		if in := e.Info; in != nil && in.Host == w.me.Host && in.PID == w.me.PID && in.User == w.me.User && in.Mode == w.me.Mode {
			mine = i
		}
	}
	holders, waiters := lock.Holders(entries, stopping)
	if mine < 0 || mine < len(entries)-len(waiters) || len(holders) == 0 {
		return queueView{}
	}
	ahead := mine
	for _, r := range stopping {
		if r.CreateRevision < entries[mine].CreateRevision {
			ahead++
		}
	}
	return queueView{holder: holders[0], ahead: ahead, ok: true}
}

// text is the waiting line at time now:
//
//	distlock: waiting for lock "db", 2 ahead; held for 1m05s by host web1, pid 4711, user root, reason "patching"
//
// What changes comes first, so that a narrow terminal cuts the reason
// rather than the time. What the holder's key says is shown as Describe
// shows it: escaped, and cut when long.
func (w *WaitLine) text(v queueView, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "distlock: waiting for lock %q", w.q.Name)
	if quiet := w.quietSince(); !quiet.IsZero() {
		// What the queue looked like before is old news.
		fmt.Fprintf(&b, "; etcd not answering for %s", waitedFor(now.Sub(quiet)))
		return b.String()
	}
	if v.ahead >= 0 {
		fmt.Fprintf(&b, ", %d ahead", v.ahead)
	}
	b.WriteString("; held ")
	i := v.holder.Info
	if i == nil {
		b.WriteString("by " + v.holder.Describe()) // with its StoppingNote
		return b.String()
	}
	if !i.Since.IsZero() {
		fmt.Fprintf(&b, "for %s ", waitedFor(now.Sub(i.Since)))
	}
	fmt.Fprintf(&b, "by host %s, pid %d", untrusted.Word(i.Host, untrusted.MaxWord), i.PID)
	if i.User != "" {
		fmt.Fprintf(&b, ", user %s", untrusted.Word(i.User, untrusted.MaxWord))
	}
	if i.Reason != "" {
		fmt.Fprintf(&b, ", reason %s", untrusted.Quote(i.Reason, untrusted.MaxReason))
	} else {
		b.WriteString(", no reason given")
	}
	if i.Mode == lock.ModeLock {
		b.WriteString(" (taken with --lock)")
	}
	if i.Shared {
		b.WriteString(" (shared)")
	}
	b.WriteString(v.holder.StoppingNote())
	return b.String()
}

// waitedFor says a span in two units at most: 45s, 2m05s, 3h07m, 2d04h. A
// holder whose clock is ahead of ours has held it 0s.
func waitedFor(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// Queue is where the waiting line looks for the lock's queue: the etcd
// client, the realm and the lock's name, and how long one look may take.
type Queue struct {
	Client  *clientv3.Client
	Realm   string
	Name    string
	Timeout time.Duration
}
