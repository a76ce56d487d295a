package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/peterbourgon/ff/v3/ffyaml"
	"golang.org/x/text/unicode/norm"
	"gopkg.in/yaml.v2"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/signals"
)

// Modes, chosen on the command line only.
const (
	modeExec   = "exec"
	modeLock   = "lock"
	modeUnlock = "unlock"
	modeStatus = "status"
	modeList   = "list"
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
	// minSlack is the least time the lease must leave to ride out
	// keepalives that do not get through.
	minSlack = time.Second
)

// config is everything one call of distlock needs, parsed and checked.
type config struct {
	mode    string
	modes   []string // the mode switches given, in the order given
	command []string

	lockName         string
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
	version          bool
	completion       string        // --completion: the shell to print a script for
	minInterval      time.Duration // 0: off
	minHold          time.Duration // 0: off
	metricsFile      string        // "": no metrics file
	logFormat        string        // logText or logJSON

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
	bind  func(c *config) flag.Value
	// etcdctl is etcdctl's environment variable for the setting, read as a
	// fallback below the config file.
	etcdctl string
	// values are the values a shell offers to complete, where they are a
	// fixed set.
	values []string
}

var settings = []setting{
	{name: modeLock, help: "wait for the lock, keep it, exit 0", from: fromCommandLine, mode: true, bind: switchesTo(modeLock)},
	{name: modeUnlock, help: "release the lock, whoever holds it", from: fromCommandLine, mode: true, bind: switchesTo(modeUnlock)},
	{name: modeStatus, help: "show the holder and the waiters", from: fromCommandLine, mode: true, bind: switchesTo(modeStatus)},
	{name: modeList, help: "show every lock in the realm", from: fromCommandLine, mode: true, bind: switchesTo(modeList)},

	{name: "lock-name", alias: "lockname", arg: "NAME", from: fromAnywhere,
		help: "the lock: 1-255 bytes of printable UTF-8 in Unicode NFC (required for every mode but --list)",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.lockName) }},
	{name: "reason", arg: "TEXT", from: fromAnywhere,
		help: "why; shown to everyone who finds the lock taken",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.reason) }},
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
	{name: "holder", arg: "KEY", from: fromCommandLine,
		help: "with --unlock: release this key (see --status) rather than the oldest holder",
		bind: func(c *config) flag.Value { return (*keyValue)(&c.holder) }},
	{name: "kill-signal", arg: "SIG", def: "TERM", from: fromAnywhere, values: signalNames(),
		help: "sent to the command's process group when the lock is lost",
		bind: func(c *config) flag.Value { return (*signalValue)(&c.killSignal) }},
	{name: "kill-after", arg: "SPAN", def: defaultKillAfter.String(), from: fromAnywhere,
		help: "then SIGKILL if it still runs",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.killAfter) }},
	{name: "conflict-exit-code", arg: "N", def: strconv.Itoa(exitConflict), from: fromAnywhere,
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
	{name: "min-interval", arg: "SPAN", def: "0", from: fromAnywhere,
		help: "skip the command (exit 0) if a run of this lock succeeded less than SPAN ago, timed by etcd",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.minInterval) }},
	{name: "min-hold", arg: "SPAN", def: "0", from: fromAnywhere,
		help: "keep the lock taken at least SPAN after it was acquired, without waiting for it",
		bind: func(c *config) flag.Value { return (*durationValue)(&c.minHold) }},
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
	{name: "user", arg: "NAME", from: fromAnywhere, etcdctl: "ETCDCTL_USER",
		help: "etcd user, or NAME:PASSWORD as in etcdctl",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.user) }},
	{name: "password", arg: "PASSWORD", from: fromAnywhere, etcdctl: "ETCDCTL_PASSWORD",
		help: "etcd password; prefer DISTLOCK_PASSWORD or the config file",
		bind: func(c *config) flag.Value { return (*stringValue)(&c.password) }},
}

// settingNamed finds a setting by its name or its alias.
func settingNamed(name string) (setting, bool) {
	for _, s := range settings {
		if name == s.name || (name == s.alias && s.alias != "") {
			return s, true
		}
	}
	return setting{}, false
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
	values := make(map[string]flag.Value, len(settings))
	for _, s := range settings {
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
	if err := cmdLine.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return c, usagef("%v", err)
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
	if c.mode != modeList && c.lockName == "" && os.Getenv(envName(modeLock)) != "" {
		return c, usagef("--lock-name is required; %s is ignored: the mode comes from the command line only, and the lock's name from --lock-name or %s",
			envName(modeLock), envName("lock-name"))
	}
	return c, c.check()
}

// commandLine is the flag set of the command line, bound to values.
func commandLine(values map[string]flag.Value) *flag.FlagSet {
	fs := flag.NewFlagSet("distlock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range settings {
		if s.from&fromCommandLine == 0 {
			continue
		}
		fs.Var(values[s.name], s.name, s.help)
		if s.alias != "" {
			fs.Var(&aliasValue{fs: fs, target: s.name}, s.alias, "")
		}
	}
	return fs
}

// tieWait makes --nowait and --timeout one setting for precedence: either
// given by a source keeps both from the sources below it, so a nowait in
// the config file cannot undo --timeout on the command line.
func tieWait(given map[string]bool) {
	if given["nowait"] || given["timeout"] {
		given["nowait"], given["timeout"] = true, true
	}
}

// readEnvironment sets from DISTLOCK_* what a source of higher precedence
// left unset. An empty variable counts as unset; today's name beats the
// original tool's (DISTLOCK_LOCK_NAME beats DISTLOCK_LOCKNAME).
func readEnvironment(values map[string]flag.Value, given map[string]bool, from origins) error {
	for _, s := range settings {
		if s.from&fromEnvironment == 0 || given[s.name] {
			continue
		}
		for _, name := range []string{s.name, s.alias} {
			if name == "" || os.Getenv(envName(name)) == "" {
				continue
			}
			value := os.Getenv(envName(name))
			if err := values[s.name].Set(value); err != nil {
				return usagef("environment variable %s has a bad value: %v", envName(name), err)
			}
			given[s.name] = true
			from[s.name] = origin{rankEnv, envName(name)}
			break
		}
	}
	return nil
}

// readConfigFile sets from the YAML file at path what a source of higher
// precedence left unset. Keys are setting names or aliases; a key naming
// a setting twice, or one the file may not set, is an error even where
// the command line or the environment would win. Only the default file
// (not explicit) may be absent.
func readConfigFile(path string, explicit bool, values map[string]flag.Value, given map[string]bool, from origins) error {
	if path == "" {
		return usagef("--config names no file; leave it out for the default, %s", defaultConfigFile)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return usagef("config file %s: %v", path, err)
	}
	keyFor := map[string]string{} // setting name -> the key that set it
	err = ffyaml.Parser(bytes.NewReader(data), func(key, value string) error {
		s, ok := settingNamed(key)
		first, _, nested := strings.Cut(key, ".")
		switch {
		case !ok && nested && isSetting(first):
			// "password: {...}" comes as the key "password.…": what
			// follows the dot may be the value, and is not shown.
			return usagef("config file %s: key %q must have text as its value, not a mapping", path, first)
		case !ok:
			return usagef("config file %s: key %q is not a distlock setting", path, key)
		case s.from&fromFile == 0:
			return usagef("config file %s: key %q can only be given on %s", path, key, s.only())
		}
		if first, ok := keyFor[s.name]; ok && first != key {
			return usagef("config file %s: key %q sets the same thing as %q", path, key, first)
		}
		// A YAML list comes as one call for each of its values: only
		// the endpoints are a list, and another key's last value must
		// not quietly win.
		if _, again := keyFor[s.name]; again && s.name != "endpoints" {
			return usagef("config file %s: key %q takes one value, not a list", path, key)
		}
		keyFor[s.name] = key
		if given[s.name] {
			return nil
		}
		if err := values[s.name].Set(value); err != nil {
			return usagef("config file %s: key %q has a bad value: %v", path, key, err)
		}
		from[s.name] = origin{rankFile, "the config file " + path}
		return nil
	})
	return configFileError(path, err)
}

// configFileError is what is said of a config file that could not be
// read as settings, without quoting what may be a password.
func configFileError(path string, err error) error {
	var bad *usageError
	var yamlErr ffyaml.ParseError
	var typeErr *yaml.TypeError // ffyaml's parser is yaml.v2
	switch {
	case err == nil:
		return nil
	case errors.As(err, &bad):
		return bad
	case errors.As(err, &typeErr):
		// The YAML parser's type errors quote what they could not
		// read, which may be a password: say what is wrong without it.
		return usagef("config file %s is not a YAML mapping of settings to values (setting: value, one a line)", path)
	case errors.As(err, &yamlErr):
		// One line: the YAML parser lists its errors on lines of their own.
		lines := strings.Split(strings.TrimSpace(yamlErr.Inner.Error()), "\n")
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		msg := lines[0]
		if len(lines) > 1 {
			msg += " " + strings.Join(lines[1:], "; ")
		}
		return usagef("config file %s is not valid YAML: %s", path, unquoted(msg))
	}
	return usagef("config file %s: %v", path, err)
}

// unquoted is a YAML parser's message without what it quotes of the file
// (`...`): that may be the password. Where it is, the line number stays.
func unquoted(msg string) string {
	var b strings.Builder
	for {
		before, rest, ok := strings.Cut(msg, "`")
		b.WriteString(before)
		if !ok {
			return b.String()
		}
		_, after, closed := strings.Cut(rest, "`")
		b.WriteString("(a value)")
		if !closed {
			return b.String()
		}
		msg = after
	}
}

// isSetting says whether name is a setting's name or alias.
func isSetting(name string) bool {
	_, ok := settingNamed(name)
	return ok
}

var errHelp = errors.New("help requested")

// checkRealm refuses a realm that cannot be meant as written, rather than
// guess: realms nest, and a repaired one could be another's.
func checkRealm(realm string) error {
	switch {
	case realm == "":
		return errors.New("must not be empty")
	case !strings.HasPrefix(realm, "/"):
		return fmt.Errorf("%s does not start with /", untrusted.Quote(realm, untrusted.MaxKey))
	case strings.Contains(realm, "//"):
		return fmt.Errorf("%s has an empty part (//)", untrusted.Quote(realm, untrusted.MaxKey))
	case !utf8.ValidString(realm) || strings.IndexFunc(realm, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("%s is not printable UTF-8", untrusted.Quote(realm, untrusted.MaxKey))
	case !norm.NFC.IsNormalString(realm):
		// As for lock names: two spellings would be two realms.
		nfc := norm.NFC.String(realm)
		return fmt.Errorf("%+q is not in Unicode NFC, and another spelling of the same text would be another realm; in NFC it is %q (%+q)", realm, nfc, nfc)
	}
	return nil
}

// check validates the values no flag type can check alone.
func (c *config) check() error {
	if c.version {
		return nil
	}
	if err := c.checkCombinations(); err != nil {
		return err
	}
	if err := c.checkSpans(); err != nil {
		return err
	}
	if c.nowait {
		c.timeout = 0
	}
	// The safety rule: the command must be dead before etcd could expire
	// the lease, and keepalives need some time to get through.
	if c.mode == modeExec && c.ttl < c.killAfter+killMargin+minSlack {
		return usagef("--ttl %v is too short for --kill-after %v: the command could outlive the lock; use --ttl %v or more",
			c.ttl, c.killAfter, c.killAfter+killMargin+minSlack)
	}
	if err := checkRealm(c.prefix); err != nil {
		return usagef("--prefix: %v", err)
	}
	if !strings.HasSuffix(c.prefix, "/") {
		c.prefix += "/"
	}
	if err := c.checkConnection(); err != nil {
		return err
	}
	if len(c.endpoints) == 0 && c.discoverySrv == "" {
		return usagef("--endpoints: no etcd endpoint given")
	}
	for i, e := range c.endpoints {
		n, err := normalizeEndpoint(e)
		if err != nil {
			return usagef("--endpoints: %v", err)
		}
		c.endpoints[i] = n
	}
	return nil
}

// checkCombinations checks the lock name, and the settings that go only
// with others or within bounds.
func (c *config) checkCombinations() error {
	if c.mode != modeList {
		if c.lockName == "" {
			return usagef("--lock-name is required")
		}
		if err := lock.ValidateName(c.lockName); err != nil {
			return usagef("--lock-name: %v", err)
		}
	}
	switch {
	case c.mode == modeExec && len(c.command) == 0:
		return usagef("no command given: distlock --lock-name=NAME -- COMMAND [ARG...]")
	case c.mode != modeExec && len(c.command) > 0:
		return usagef("--%s takes no command, got %q", c.mode, c.command[0])
	case c.quiet && c.verbose:
		return usagef("--quiet and --verbose cannot be used together")
	case c.json && c.mode != modeStatus && c.mode != modeList:
		return usagef("--json goes with --status or --list")
	case c.limit < 1 || c.limit > maxLimit:
		return usagef("--limit must be 1 to %d, got %d", maxLimit, c.limit)
	case c.holder != "" && c.mode != modeUnlock:
		return usagef("--holder goes with --unlock")
	case c.conflictExitCode < 0 || c.conflictExitCode > 255:
		return usagef("--conflict-exit-code must be 0 to 255, got %d", c.conflictExitCode)
	case c.dialTimeout <= 0:
		return usagef("--dial-timeout must be positive")
	case c.ttl < 2*time.Second:
		return usagef("--ttl must be at least 2s, got %v", c.ttl)
	case c.killAfter < 0:
		return usagef("--kill-after must not be negative")
	}
	return nil
}

// checkSpans checks --min-interval and --min-hold, which etcd times with a
// lease.
func (c *config) checkSpans() error {
	// Lease TTLs are whole seconds.
	for _, s := range []struct {
		name string
		span time.Duration
	}{{"min-interval", c.minInterval}, {"min-hold", c.minHold}} {
		switch {
		case s.span > 0 && s.span < time.Second:
			return usagef("--%s must be 0 (off) or at least 1s, got %v", s.name, s.span)
		case s.span > maxLeaseTTL:
			return usagef("--%s must be at most %v, the longest lease etcd grants, got %v", s.name, maxLeaseTTL, s.span)
		case s.span > 0 && c.mode == modeLock:
			return usagef("--%s goes with running a command; --lock keeps the lock until --unlock and runs nothing", s.name)
		case s.span > 0 && s.name == "min-interval" && c.limit > 1:
			return usagef("--min-interval needs --limit 1: %d holders at once could all run in one interval", c.limit)
		}
	}
	return nil
}

// normalizeEndpoint accepts http://host:port, https://host:port and
// host:port, with or without a trailing slash.
func normalizeEndpoint(e string) (string, error) {
	e = strings.TrimSpace(e)
	if e == "" {
		return "", errors.New("empty endpoint")
	}
	// Never echoed: it may be a password.
	if strings.Contains(e, "@") {
		return "", errors.New("an endpoint holds a user name or password (NAME:PASSWORD@); give them with --user and DISTLOCK_PASSWORD instead")
	}
	if !strings.Contains(e, "://") {
		// Nothing but a host and maybe a port: no path, query or user.
		if u, err := url.Parse("http://" + e); err != nil || u.Host != e || u.Hostname() == "" {
			return "", fmt.Errorf("%q is not a URL or host:port", e)
		}
		return e, nil
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", fmt.Errorf("%q: %v", e, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: scheme must be http or https", e)
	}
	if u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("%q is not an etcd client URL", e)
	}
	// Built, not joined: the host is escaped again (an IPv6 zone's "%25").
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String(), nil
}

// parseWait reads a wait: seconds ("30", "1.5") or a Go duration ("90s").
func parseWait(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f != f || f > float64(1<<62)/float64(time.Second) || f < -float64(1<<62)/float64(time.Second) {
			return 0, fmt.Errorf("%q is out of range", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds nor a duration like 90s or 5m", s)
	}
	return d, nil
}

// stringValue, boolValue and intValue are the flag package's own kinds,
// with messages that name the bad value.
type stringValue string

func (v *stringValue) String() string {
	if v == nil {
		return ""
	}
	return string(*v)
}

func (v *stringValue) Set(s string) error {
	*v = stringValue(s)
	return nil
}

// keyValue is --holder's key. It may not be empty: no key means the
// oldest holder, and a script's empty $KEY must not release that one.
type keyValue string

func (v *keyValue) String() string {
	if v == nil {
		return ""
	}
	return string(*v)
}

func (v *keyValue) Set(s string) error {
	if s == "" {
		return errors.New("no key given: name the key to release as --status shows it, or leave out --holder to release the oldest holder")
	}
	*v = keyValue(s)
	return nil
}

type boolValue bool

func (v *boolValue) IsBoolFlag() bool { return true }

func (v *boolValue) String() string {
	if v == nil {
		return "false"
	}
	return strconv.FormatBool(bool(*v))
}

func (v *boolValue) Set(s string) error {
	b, err := parseBool(s)
	if err != nil {
		return err
	}
	*v = boolValue(b)
	return nil
}

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, fmt.Errorf("%q is neither true nor false", s)
	}
	return b, nil
}

type intValue int

func (v *intValue) String() string {
	if v == nil {
		return "0"
	}
	return strconv.Itoa(int(*v))
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*v = intValue(n)
	return nil
}

// modeValue is a mode switch. The modes given are kept in order, so that
// an error can name the two that clash.
type modeValue struct {
	c    *config
	mode string
}

func switchesTo(mode string) func(c *config) flag.Value {
	return func(c *config) flag.Value { return modeValue{c, mode} }
}

func (v modeValue) IsBoolFlag() bool { return true }

func (v modeValue) String() string {
	if v.c == nil {
		return "false"
	}
	return strconv.FormatBool(slices.Contains(v.c.modes, v.mode))
}

func (v modeValue) Set(s string) error {
	on, err := parseBool(s)
	if err != nil {
		return err
	}
	v.c.modes = slices.DeleteFunc(v.c.modes, func(m string) bool { return m == v.mode })
	if on {
		v.c.modes = append(v.c.modes, v.mode)
	}
	return nil
}

// The values of --log-format.
const (
	logText = "text"
	logJSON = "json"
)

// logFormatValue is --log-format: text or json.
type logFormatValue string

func (v *logFormatValue) String() string {
	if v == nil {
		return ""
	}
	return string(*v)
}

func (v *logFormatValue) Set(s string) error {
	switch f := strings.TrimSpace(s); f {
	case logText, logJSON:
		*v = logFormatValue(f)
		return nil
	}
	return fmt.Errorf("%q is neither text nor json", s)
}

// waitValue is --timeout: -1 waits forever, 0 not at all.
type waitValue time.Duration

func (v *waitValue) String() string {
	if v == nil || *v < 0 {
		return "-1"
	}
	return time.Duration(*v).String()
}

func (v *waitValue) Set(s string) error {
	d, err := parseWait(s)
	if err != nil {
		return err
	}
	if d < 0 && d != -time.Second {
		return fmt.Errorf("%q: only -1 (wait forever) may be negative", s)
	}
	*v = waitValue(d)
	return nil
}

// durationValue is a positive or zero span: seconds or a Go duration.
type durationValue time.Duration

func (v *durationValue) String() string {
	if v == nil {
		return ""
	}
	return time.Duration(*v).String()
}

func (v *durationValue) Set(s string) error {
	d, err := parseWait(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*v = durationValue(d)
	return nil
}

// signalValue is --kill-signal: a name (TERM, SIGTERM) or a number.
type signalValue syscall.Signal

func (v *signalValue) String() string {
	if v == nil {
		return ""
	}
	return signals.Name(syscall.Signal(*v))
}

func (v *signalValue) Set(s string) error {
	sig, err := signals.Parse(s)
	if err != nil {
		return err
	}
	*v = signalValue(sig)
	return nil
}

// shellValue is --completion: one of completionShells.
type shellValue string

func (v *shellValue) String() string {
	if v == nil {
		return ""
	}
	return string(*v)
}

func (v *shellValue) Set(s string) error {
	if !slices.Contains(completionShells, s) {
		last := len(completionShells) - 1
		return fmt.Errorf("the shells are %s and %s", strings.Join(completionShells[:last], ", "), completionShells[last])
	}
	*v = shellValue(s)
	return nil
}

// listValue is a comma-separated list that may also be given several times
// (a YAML list sets it once per element). The first value replaces the
// default.
type listValue struct {
	list *[]string
	set  bool
}

func (v *listValue) String() string {
	if v == nil || v.list == nil {
		return ""
	}
	return strings.Join(*v.list, ",")
}

func (v *listValue) Set(s string) error {
	if !v.set {
		*v.list, v.set = nil, true
	}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			*v.list = append(*v.list, e)
		}
	}
	return nil
}

// aliasValue is the original tool's name of a flag on the command line: it
// sets the flag unless that was given already, so today's name wins.
type aliasValue struct {
	fs     *flag.FlagSet
	target string
}

func (v *aliasValue) String() string { return "" }

func (v *aliasValue) Set(s string) error {
	set := false
	v.fs.Visit(func(f *flag.Flag) { set = set || f.Name == v.target })
	if set {
		return nil
	}
	return v.fs.Set(v.target, s)
}
