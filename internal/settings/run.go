// Package settings reads what one call of distlock is asked to do, from
// the command line, the DISTLOCK_* variables, the YAML config file and
// etcdctl's ETCDCTL_* variables, in that order of precedence, and checks
// it. --help, the completion scripts and the man page are written from
// the same table of settings. The rest of distlock gets a Run: narrow
// values for each part of it, never the settings themselves.
package settings

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/lock"
)

// A Mode is what one call of distlock does.
type Mode string

// The modes. The command line alone chooses one; exec is the default.
const (
	ModeExec       Mode = modeExec
	ModeLock       Mode = modeLock
	ModeUnlock     Mode = modeUnlock
	ModeStatus     Mode = modeStatus
	ModeList       Mode = modeList
	ModeForget     Mode = modeForget   // --forget-last-run
	ModeHistory    Mode = modeHistory  // --history
	ModeHeld       Mode = modeHeld     // --held: inside a command, is its lock still held?
	ModeHelp       Mode = "help"       // --help: print Help
	ModeVersion    Mode = "version"    // --version
	ModeCompletion Mode = "completion" // --completion: print Completion(Run.Shell)
	// ModeLockNames: print the names of the locks held in the realm, for
	// a completion script (distlock --complete-lock-names LINE).
	ModeLockNames Mode = "lock-names"
)

// DefaultRealm is --prefix's default.
const DefaultRealm = defaultPrefix

// KillMargin is kept free after SIGKILL for the command to die and be
// reaped before the lease could expire.
const KillMargin = killMargin

// Run is one call of distlock, as its settings ask for it.
type Run struct {
	Mode        Mode
	Shell       string       // --completion's shell
	Say         report.Style // how distlock's own lines are said
	MetricsFile string       // --metrics-file; "" for none
	JSON        bool         // --json: --status and --list as JSON
	Follow      bool         // --follow: --status and --list go on with each change
	Conn        Conn         // where etcd is, and who we are to it
	Lock        Lock         // what is asked of the lock
	Exec        Exec         // exec mode's command and its bounds
}

// Lock is what a mode asks of the lock.
type Lock struct {
	Realm, Name, Reason string
	Limit               int           // how many may hold it at once
	Timeout             time.Duration // the longest wait; 0 --nowait, negative forever
	TTL                 time.Duration // the lease's
	RPCTimeout          time.Duration // --dial-timeout: bounds each call to etcd
	Holder              string        // --unlock --holder: the key to release
	ConflictExitCode    int
	Expire              time.Duration // --lock: etcd removes the lock after it; 0 never
	Shared              bool          // --shared: held together with other shared holders
	// Names are every lock of a set (--lock-name given more than once),
	// in the order every caller takes them; Name is the first. One
	// name otherwise.
	Names []string
	// Command is the name of exec mode's command, for the key to say
	// what runs, when no reason is given; else "".
	Command string
	// History is how long etcd keeps the record of a holding (and of an
	// --unlock's); 0 writes none.
	History time.Duration
	// Count is how many runs --history shows.
	Count int
}

// Exec is exec mode's command and how it is bounded.
type Exec struct {
	Command     []string
	KillSignal  syscall.Signal
	KillAfter   time.Duration
	MinInterval time.Duration // 0: off
	// IgnoreLastRun: run whatever the last run was, and still record a
	// success (--ignore-last-run).
	IgnoreLastRun bool
	MinHold       time.Duration // 0: off
	MaxRuntime    time.Duration // stop the command once it has run this long; 0 never
}

// Conn is where etcd is and who distlock is to it, with what a message
// about etcd's answer needs to say what to do.
type Conn struct {
	Endpoints    []string // none with DiscoverySrv
	DiscoverySrv string   // find the endpoints in this domain's DNS SRV records
	DialTimeout  time.Duration

	CACert, Cert, Key     string
	InsecureSkipTLSVerify bool
	User, Password        string
	ShownUser             string // the user, quoted, and without a password in it

	// EndpointsFrom says where the endpoints came from, for the line
	// that says etcd could not be reached: a flag, a variable, the
	// config file, DNS, or the default (and why: no config file).
	EndpointsFrom string

	Realm  string // the realm whose keys the mode uses
	Access string // what the mode needs of etcd: "write access to /distlock/db/"
	// Warnings are said before distlock talks to etcd, even with --quiet:
	// where the password is kept, others can read it.
	Warnings []string
	from     map[string]string
}

// From says where the connection setting name (endpoints, user, cert...)
// got its value: a flag, a variable, the config file, or the default.
func (c *Conn) From(name string) string {
	if label, ok := c.from[name]; ok {
		return label
	}
	return "the default"
}

// UsageError is bad input: exit 64.
type UsageError = usageError

// Usagef is a UsageError.
func Usagef(format string, args ...any) error { return usagef(format, args...) }

// Parse reads and checks the settings of a call of distlock with the
// arguments args. With a usage error it returns what it had read until
// then too: the metrics file and the log format may be known, and the
// error is to be said as they ask.
//
// With ModeLockNames, an error means that there is nothing to offer.
func Parse(args []string) (*Run, error) {
	if len(args) == 2 && args[0] == lockNamesFlag {
		return lockNamesRun(args[1])
	}
	c, err := parseConfig(args)
	switch {
	case errors.Is(err, errHelp):
		return &Run{Mode: ModeHelp}, nil
	case c == nil:
		return &Run{}, err
	case err == nil && c.version:
		return &Run{Mode: ModeVersion}, nil
	case err == nil && c.completion != "":
		return &Run{Mode: ModeCompletion, Shell: c.completion}, nil
	}
	return c.run(), err
}

// run is c as the rest of distlock sees it.
func (c *config) run() *Run {
	metrics := c.metricsFile
	if c.mode == modeHeld { // the supervisor's, inherited: not --held's to write
		metrics = ""
	}
	return &Run{
		Mode:        Mode(c.mode),
		Say:         report.Style{Quiet: c.quiet, Verbose: c.verbose, JSON: c.logFormat == logJSON, Lock: c.lockName},
		MetricsFile: metrics,
		JSON:        c.json,
		Follow:      c.follow,
		Conn: Conn{
			Endpoints: c.endpoints, DiscoverySrv: c.discoverySrv, DialTimeout: c.dialTimeout,
			CACert: c.cacert, Cert: c.cert, Key: c.key, InsecureSkipTLSVerify: c.insecureSkipTLSVerify,
			User: c.user, Password: c.password, ShownUser: c.shownUser(),
			EndpointsFrom: c.endpointsFrom(),
			Realm:         c.prefix, Access: c.accessNeeded(), Warnings: c.warnings, from: c.labels(),
		},
		Lock: Lock{
			Realm: c.prefix, Name: c.lockName, Reason: c.reason, Limit: c.limit,
			Timeout: c.timeout, TTL: c.ttl, RPCTimeout: c.dialTimeout,
			Holder: c.holder, ConflictExitCode: c.conflictExitCode,
			Expire: c.expire, Command: c.commandName(), Shared: c.shared,
			History: c.historySpan, Count: c.count,
			Names: append([]string{c.lockName}, c.moreNames...),
		},
		Exec: Exec{
			Command: c.command, KillSignal: c.killSignal, KillAfter: c.killAfter,
			MinInterval: c.minInterval, IgnoreLastRun: c.ignoreLastRun, MinHold: c.minHold,
			MaxRuntime: c.maxRuntime,
		},
	}
}

// labels are the origins of the settings not at their default, by name.
func (c *config) labels() map[string]string {
	from := make(map[string]string, len(c.origin))
	for name, o := range c.origin {
		from[name] = o.label
	}
	return from
}

// endpointsFrom says where the endpoints came from; for the default, why
// nothing else gave them.
func (c *config) endpointsFrom() string {
	if c.discoverySrv != "" {
		return "from the DNS SRV records of " + c.discoverySrv
	}
	if o, ok := c.origin["endpoints"]; ok {
		return "from " + o.label
	}
	file := "the config file " + c.configFile + " names none"
	if _, err := os.Stat(c.configFile); err != nil {
		file = "there is no config file " + c.configFile
	}
	return "the default: no --endpoints, DISTLOCK_ENDPOINTS or ETCDCTL_ENDPOINTS, and " + file
}

// accessNeeded says what the mode needs of etcd: read or write access to
// the lock's keys, or to the whole realm.
func (c *config) accessNeeded() string {
	switch c.mode {
	case modeList:
		return "read access to " + c.prefix
	case modeStatus:
		return "read access to " + lock.Prefix(c.prefix, c.lockName)
	case modeForget:
		return "write access to " + lock.LastRunKey(c.prefix, c.lockName)
	case modeHistory:
		return "read access to " + lock.HistoryPrefix(c.prefix, c.lockName)
	case modeHeld: // the realm is the supervisor's: see Conn.Access
		return "read access to the lock's keys"
	}
	return "write access to " + lock.Prefix(c.prefix, c.lockName)
}

// Help is --help.
func Help() string { return usage() }

// Completion is --completion's script for shell.
func Completion(shell string) string { return completionScript(shell) }
