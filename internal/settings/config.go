package settings

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/tinx/distlock/internal/report"
)

// Modes, chosen on the command line only.
const (
	modeExec    = "exec"
	modeLock    = "lock"
	modeUnlock  = "unlock"
	modeStatus  = "status"
	modeList    = "list"
	modeForget  = "forget-last-run"
	modeHistory = "history"
	modeHeld    = "held"
)

const (
	defaultConfigFile = "/etc/distlock/distlock.yaml"
	defaultEndpoint   = "http://127.0.0.1:2379"
	defaultPrefix     = "/distlock/"
	defaultTTL        = 30 * time.Second
	defaultKillAfter  = 10 * time.Second
	// killMargin is kept free after SIGKILL for the command to die and be
	// reaped before the lease could expire.
	killMargin = time.Second
	// maxLimit bounds --limit: each waiter reads every key ahead of it.
	maxLimit = 10000
	// maxLeaseTTL is the longest lease etcd grants (9e9 seconds).
	maxLeaseTTL = 9_000_000_000 * time.Second
	// maxHistoryCount bounds --count: --history reads that many records
	// in one request.
	maxHistoryCount = 1000
	// minSlack is the least time the lease must leave to ride out
	// keepalives that do not get through.
	minSlack = time.Second
)

// config is everything one call of distlock needs, parsed and checked.
type config struct {
	mode         string
	modes        []string // the mode switches given, in the order given
	command      []string
	shellCommand string // -c: run it with /bin/sh -c

	lockName         string
	moreNames        []string // further --lock-name on the command line: a set of locks
	namesGiven       int      // how many --lock-name were given
	reason           string
	nowait           bool
	timeout          time.Duration // negative: forever
	endpoints        []string
	prefix           string
	configFile       string
	ttl              time.Duration
	killSignal       syscall.Signal
	killAfter        time.Duration
	conflictExitCode int
	limit            int    // how many may hold the lock at once
	holder           string // --unlock: the key to release
	dialTimeout      time.Duration
	quiet, verbose   bool
	json             bool
	follow           bool // --status, --list: go on with each change
	version          bool
	completion       string        // --completion: the shell to print a script for
	minInterval      time.Duration // 0: off
	ignoreLastRun    bool          // run even if --min-interval finds a recent success
	shared           bool          // --shared: hold the lock with other shared holders
	minHold          time.Duration // 0: off
	maxRuntime       time.Duration // exec mode: stop the command after it; 0: never
	expire           time.Duration // --lock: etcd removes the lock after it; 0: never
	metricsFile      string        // "": no metrics file
	logFormat        string        // logText or logJSON
	historySpan      time.Duration // how long etcd keeps a history record; 0: none written
	count            int           // --history: how many runs to show

	cacert, cert, key     string
	insecureSkipTLSVerify bool
	user, password        string
	discoverySrv          string // find the endpoints in DNS SRV records of this domain

	// origin says where each setting that is not at its default got its
	// value.
	origin origins
	// warnings are said before distlock talks to etcd, even with --quiet:
	// where the password is kept, others can read it.
	warnings []string
}

// usageError is bad input: exit 64.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// source is where a setting may come from.
type source uint8

const (
	fromCommandLine source = 1 << iota
	fromEnvironment        // DISTLOCK_ and the name upper-cased, "-" as "_"
	fromFile               // the name as a key of the YAML config file
	fromAnywhere    = fromCommandLine | fromEnvironment | fromFile
)

// setting is one flag. The table below is the only list of them: the
// command line, the environment, the config file and --help are all read
// from it, and a test holds docs/reference.md to it.
type setting struct {
	name  string
	alias string // the original tool's name, still read wherever name is
	arg   string // what --help calls the value; "" for a switch; FILE completes file names
	def   string // the default, as a user would write it
	help  string // for --help
	from  source
	mode  bool // shown in --help's usage lines rather than among the flags
	// secret: its value may be a password, and no message says it back.
	secret bool
	bind   func(c *config) flag.Value
	// etcdctl is etcdctl's environment variable for the setting, read as a
	// fallback below the config file.
	etcdctl string
	// values are the values a shell offers to complete, where they are a
	// fixed set.
	values []string
}

var table = []setting{
	{name: modeLock, help: "wait for the lock, keep it, print its key, exit 0", from: fromCommandLine, mode: true, bind: switchesTo(modeLock)},
	{name: modeUnlock, help: "release the lock, whoever holds it", from: fromCommandLine, mode: true, bind: switchesTo(modeUnlock)},
	{name: modeStatus, help: "show the holder and the waiters", from: fromCommandLine, mode: true, bind: switchesTo(modeStatus)},
	{name: modeList, help: "show every lock in the realm", from: fromCommandLine, mode: true, bind: switchesTo(modeList)},
	{name: modeForget, help: "forget the lock's last successful run: the next run with --min-interval runs", from: fromCommandLine, mode: true, bind: switchesTo(modeForget)},
	{name: modeHistory, help: "show the lock's last runs, newest first", from: fromCommandLine, mode: true, bind: switchesTo(modeHistory)},
	{name: modeHeld, help: "inside a command distlock runs: exit 0 if it still holds its locks, 70 if not, 69 if it cannot tell", from: fromCommandLine, mode: true, bind: switchesTo(modeHeld)},

	{name: "lock-name", alias: "lockname", arg: "NAME", from: fromAnywhere,
		help: "the lock: 1-255 bytes of printable UTF-8 in Unicode NFC (required for every mode but --list); more than once on the command line, a set of locks, all held before the command starts",
		bind: func(c *config) flag.Value { return namesValue{&c.lockName, &c.moreNames, &c.namesGiven} }},
	{name: "reason", arg: "TEXT", from: fromAnywhere,
		help: "why; shown to everyone who finds the lock taken",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.reason) }},
	// Like a command after --, it says what runs: the command line only.
	{name: "c", arg: "STRING", from: fromCommandLine,
		help: "run STRING with /bin/sh -c, instead of a command after --",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.shellCommand) }},
	{name: "nowait", from: fromAnywhere,
		help: "fail at once if the lock is taken (--timeout 0)",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.nowait) }},
	{name: "timeout", arg: "WAIT", def: "-1", from: fromAnywhere,
		help: "longest wait: seconds (30, 1.5) or a duration (90s, 5m); -1 waits forever",
		bind: func(c *config) flag.Value { return (*waitValue)(&c.timeout) }},
	{name: "endpoints", arg: "URLS", def: defaultEndpoint, from: fromAnywhere, etcdctl: "ETCDCTL_ENDPOINTS",
		help: "etcd client URLs, comma-separated",
		bind: func(c *config) flag.Value { return &listValue{list: &c.endpoints} }},
	{name: "discovery-srv", arg: "DOMAIN", from: fromAnywhere,
		help: "find etcd's client URLs in the DNS SRV records of DOMAIN, as etcdctl does",
		bind: func(c *config) flag.Value { return (*domainValue)(&c.discoverySrv) }},
	{name: "prefix", arg: "PREFIX", def: defaultPrefix, from: fromAnywhere,
		help: "the realm every key lives under: it starts with / and has no //; etcdctl lock PREFIX+NAME (NAME escaped, no / after it) is the same lock, any other name another",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.prefix) }},
	// The config file cannot name another one; DISTLOCK_CONFIG can.
	{name: "config", arg: "FILE", def: defaultConfigFile, from: fromCommandLine | fromEnvironment,
		help: "YAML config file",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.configFile) }},
	{name: "ttl", arg: "SPAN", def: defaultTTL.String(), from: fromAnywhere,
		help: "lease TTL of a holder or waiter",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.ttl) }},
	{name: "limit", arg: "N", def: "1", from: fromAnywhere,
		help: "let up to N hold the lock at once (a semaphore); everyone must give the same N",
		bind: func(c *config) flag.Value { return (*intValue)(&c.limit) }},
	// A command's own distlock inherits DISTLOCK_*: it must not turn
	// shared by it.
	{name: "shared", from: fromCommandLine,
		help: "hold the lock together with other --shared holders; everyone else holds it alone, first come first served",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.shared) }},
	{name: "holder", arg: "KEY", from: fromCommandLine,
		help: "with --unlock: release this key (see --status) rather than the oldest holder",
		bind: func(c *config) flag.Value { return (*keyValue)(&c.holder) }},
	{name: "kill-signal", arg: "SIG", def: "TERM", from: fromAnywhere, values: signalNames(),
		help: "sent to the command's process group when the lock is lost or --max-runtime passes",
		bind: func(c *config) flag.Value { return (*signalValue)(&c.killSignal) }},
	{name: "kill-after", arg: "SPAN", def: defaultKillAfter.String(), from: fromAnywhere,
		help: "then SIGKILL if it still runs",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.killAfter) }},
	{name: "conflict-exit-code", arg: "N", def: report.EndConflict.ExitStatus(), from: fromAnywhere,
		help: "status when the lock was not acquired",
		bind: func(c *config) flag.Value { return (*intValue)(&c.conflictExitCode) }},
	{name: "dial-timeout", arg: "SPAN", def: "5s", from: fromAnywhere, etcdctl: "ETCDCTL_DIAL_TIMEOUT",
		help: "how long to try to reach etcd",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.dialTimeout) }},
	{name: "quiet", from: fromAnywhere,
		help: "say nothing on stderr but errors",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.quiet) }},
	{name: "verbose", from: fromAnywhere,
		help: "say more on stderr",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.verbose) }},
	{name: "json", from: fromAnywhere,
		help: "machine-readable --status and --list",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.json) }},
	// A way to watch, not a default: the command line only.
	{name: "follow", from: fromCommandLine,
		help: "with --status or --list: print the state, then a line (--json: an object) for each change, until Ctrl-C",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.follow) }},
	{name: "min-interval", arg: "SPAN", def: "0", from: fromAnywhere,
		help: "skip the command (exit 0) if a run of this lock succeeded less than SPAN ago, timed by etcd",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.minInterval) }},
	// A one-off of an operator's: from the environment or the config file
	// it would make every run ignore --min-interval.
	{name: "ignore-last-run", from: fromCommandLine,
		help: "with --min-interval: run even if a run succeeded less than SPAN ago; a success is still recorded",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.ignoreLastRun) }},
	{name: "min-hold", arg: "SPAN", def: "0", from: fromAnywhere,
		help: "keep the lock taken at least SPAN after it was acquired, without waiting for it",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.minHold) }},
	// Elsewhere than on the command line, every run's default (checkOneMode).
	{name: "max-runtime", arg: "SPAN", def: "0", from: fromAnywhere,
		help: "stop the command (--kill-signal, then SIGKILL after --kill-after) once it has run SPAN, and exit 124; 0 never",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.maxRuntime) }},
	// Elsewhere than on the command line, every --lock's default (checkOneMode).
	{name: "expire", arg: "SPAN", def: "0", from: fromAnywhere,
		help: "with --lock: etcd removes the lock after at least SPAN (later if etcd's leader changes); 0 never",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.expire) }},
	// A week: it covers the look back after an incident found on a
	// Monday, and keeps a lock taken every minute to about 10,000
	// records.
	{name: "history-span", arg: "SPAN", def: "168h", from: fromAnywhere,
		help: "etcd keeps the record of each holding of a lock for at least SPAN (see --history); 0 writes none",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.historySpan) }},
	{name: "count", arg: "N", def: "20", from: fromCommandLine,
		help: "with --history: show the last N runs",
		bind: func(c *config) flag.Value { return (*intValue)(&c.count) }},
	{name: "metrics-file", arg: "FILE", from: fromAnywhere,
		help: "when done, write this run's Prometheus metrics to FILE (node_exporter's textfile collector)",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.metricsFile) }},
	{name: "log-format", arg: "FORMAT", def: logText, from: fromAnywhere, values: []string{logText, logJSON},
		help: "distlock's own lines on stderr: text, or json (one object a line)",
		bind: func(c *config) flag.Value { return (*logFormatValue)(&c.logFormat) }},
	// Set in the environment, it would replace every run by a version line.
	{name: "version", from: fromCommandLine,
		help: "print the version, the revision built from, the Go version and the platform",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.version) }},
	// Like --version, it replaces the run: the command line only.
	{name: "completion", arg: "SHELL", from: fromCommandLine, values: completionShells,
		help: "print a completion script for bash, zsh or fish",
		bind: func(c *config) flag.Value { return (*shellValue)(&c.completion) }},
	{name: "cacert", arg: "FILE", from: fromAnywhere, etcdctl: "ETCDCTL_CACERT",
		help: "CA certificates to verify etcd with, as in etcdctl",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.cacert) }},
	{name: "cert", arg: "FILE", from: fromAnywhere, etcdctl: "ETCDCTL_CERT",
		help: "client certificate for TLS, as in etcdctl",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.cert) }},
	{name: "key", arg: "FILE", from: fromAnywhere, etcdctl: "ETCDCTL_KEY",
		help: "the client certificate's key",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.key) }},
	{name: "insecure-skip-tls-verify", from: fromAnywhere,
		help: "do not verify etcd's certificate",
		bind: func(c *config) flag.Value { return (*boolValue)(&c.insecureSkipTLSVerify) }},
	{name: "user", arg: "NAME", from: fromAnywhere, etcdctl: "ETCDCTL_USER", secret: true,
		help: "etcd user, or NAME:PASSWORD as in etcdctl",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.user) }},
	{name: "password", arg: "PASSWORD", from: fromAnywhere, etcdctl: "ETCDCTL_PASSWORD", secret: true,
		help: "etcd password; prefer DISTLOCK_PASSWORD or the config file",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.password) }},
}

// settingNamed finds a setting by its name or its alias.
func settingNamed(name string) (setting, bool) {
	for _, s := range table {
		if name == s.name || (name == s.alias && s.alias != "") {
			return s, true
		}
	}
	return setting{}, false
}

// spelled is how a flag is written in distlock's words: -c, --lock-name.
func spelled(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// envName is the environment variable of a setting's name or alias.
func envName(name string) string {
	return "DISTLOCK_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// only says where a setting that not every source may set comes from,
// or "" for the others.
func (s setting) only() string {
	if s.from == fromAnywhere {
		return ""
	}
	where := "the command line"
	if s.from&fromEnvironment != 0 {
		where += " or " + envName(s.name)
	}
	if s.from&fromFile != 0 {
		where += " or the config file"
	}
	return where
}

// bind ties every setting to its field of c, at its default, and returns
// the values by setting name.
func (c *config) bind() map[string]flag.Value {
	values := make(map[string]flag.Value, len(table))
	for _, s := range table {
		if s.def != "" {
			// Through a value of its own: the first value a source gives a
			// list replaces what was there, and the default must not count
			// as that first value.
			if err := s.bind(c).Set(s.def); err != nil {
				panic(fmt.Sprintf("the default of --%s: %v", s.name, err))
			}
		}
		values[s.name] = s.bind(c)
	}
	return values
}

// parseConfig reads the command line, the environment and the config file,
// in that order of precedence, and checks the result. With a usage error
// it also returns what it had read until then: the metrics file and the
// log format may be known, and the error is to be reported by them.
func parseConfig(args []string) (*config, error) {
	c := &config{}
	values := c.bind()

	// The command line alone chooses the mode and --version; it may also
	// name the config file.
	cmdLine := commandLine(values)
	if err := parseCommandLine(cmdLine, args); err != nil {
		if errors.Is(err, errHelp) {
			return nil, err
		}
		return c, err
	}
	switch {
	case c.version && c.completion != "":
		return c, usagef("--version and --completion cannot be used together")
	case c.version, c.completion != "":
		return c, nil
	}
	c.command = cmdLine.Args()
	switch len(c.modes) {
	case 0:
		c.mode = modeExec
	case 1:
		c.mode = c.modes[0]
	default:
		return c, usagef("--%s and --%s cannot be used together", c.modes[0], c.modes[1])
	}

	given := map[string]bool{} // settings a source of higher precedence set
	c.origin = origins{}
	cmdLine.Visit(func(f *flag.Flag) {
		s, _ := settingNamed(f.Name)
		given[s.name] = true
		c.origin[s.name] = origin{rankFlag, "--" + f.Name}
	})
	tieWait(given)
	if err := readEnvironment(values, given, c.origin); err != nil {
		return c, err
	}
	tieWait(given)
	if err := readConfigFile(c.configFile, given["config"], values, given, c.origin); err != nil {
		return c, err
	}
	c.warnings = append(c.warnings, configFileWarnings(c.configFile)...)
	if err := readEtcdctlEnvironment(values, c.origin); err != nil {
		return c, err
	}

	// DISTLOCK_LOCK is ignored like the other modes, but someone who set it
	// meaning the lock's name is told so, not only that the name is missing.
	if c.mode != modeList && c.mode != modeHeld && c.lockName == "" && os.Getenv(envName(modeLock)) != "" {
		return c, usagef("--lock-name is required; %s is ignored: the mode comes from the command line only, and the lock's name from --lock-name or %s",
			envName(modeLock), envName("lock-name"))
	}
	return c, c.check()
}

// tieWait makes --nowait and --timeout one setting for precedence: either
// given by a source keeps both from the sources below it, so a nowait in
// the config file cannot undo --timeout on the command line.
func tieWait(given map[string]bool) {
	if given["nowait"] || given["timeout"] {
		given["nowait"], given["timeout"] = true, true
	}
}

var errHelp = errors.New("help requested")
