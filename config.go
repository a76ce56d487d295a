package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffyaml"

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
	// minSlack is the least time the lease must leave to ride out
	// keepalives that do not get through.
	minSlack = time.Second
)

// config is everything one call of distlock needs, parsed and checked.
type config struct {
	mode    string
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
	dialTimeout      time.Duration
	quiet, verbose   bool
	json             bool
	version          bool

	cacert, cert, key     string
	insecureSkipTLSVerify bool
	user, password        string
}

// usageError is bad input: exit 64.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// modeFlags can only be given on the command line.
var modeFlags = []string{modeLock, modeUnlock, modeStatus, modeList}

// commandLineOnly are the keys a config file may not set: the modes, and
// what makes no sense in a file.
var commandLineOnly = append([]string{"version", "config"}, modeFlags...)

// legacyNames maps the original tool's names to today's flags; they work in
// the environment (DISTLOCK_LOCKNAME) and in the config file (lockname).
var legacyNames = map[string]string{"lockname": "lock-name"}

// newFlagSet declares every flag, bound to c.
func newFlagSet(c *config, modes map[string]*bool) *flag.FlagSet {
	fs := flag.NewFlagSet("distlock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, m := range modeFlags {
		modes[m] = fs.Bool(m, false, "")
	}
	c.timeout = -1
	c.endpoints = []string{defaultEndpoint}
	c.ttl, c.killAfter = defaultTTL, defaultKillAfter
	c.killSignal = syscall.SIGTERM
	c.dialTimeout = 5 * time.Second

	fs.StringVar(&c.lockName, "lock-name", "", "")
	fs.StringVar(&c.reason, "reason", "", "")
	fs.BoolVar(&c.nowait, "nowait", false, "")
	fs.Var(&waitValue{&c.timeout}, "timeout", "")
	fs.Var(&listValue{list: &c.endpoints}, "endpoints", "")
	fs.StringVar(&c.prefix, "prefix", defaultPrefix, "")
	fs.StringVar(&c.configFile, "config", defaultConfigFile, "")
	fs.Var(&durationValue{&c.ttl}, "ttl", "")
	fs.Var(&signalValue{&c.killSignal}, "kill-signal", "")
	fs.Var(&durationValue{&c.killAfter}, "kill-after", "")
	fs.IntVar(&c.conflictExitCode, "conflict-exit-code", exitConflict, "")
	fs.Var(&durationValue{&c.dialTimeout}, "dial-timeout", "")
	fs.BoolVar(&c.quiet, "quiet", false, "")
	fs.BoolVar(&c.verbose, "verbose", false, "")
	fs.BoolVar(&c.json, "json", false, "")
	fs.BoolVar(&c.version, "version", false, "")
	fs.StringVar(&c.cacert, "cacert", "", "")
	fs.StringVar(&c.cert, "cert", "", "")
	fs.StringVar(&c.key, "key", "", "")
	fs.BoolVar(&c.insecureSkipTLSVerify, "insecure-skip-tls-verify", false, "")
	fs.StringVar(&c.user, "user", "", "")
	fs.StringVar(&c.password, "password", "", "")
	for old, now := range legacyNames {
		fs.Var(&aliasValue{fs: fs, target: now}, old, "")
	}
	return fs
}

// parseConfig reads the command line, the environment and the config file,
// in that order of precedence, and checks the result.
func parseConfig(args []string) (*config, error) {
	// First the command line alone: it is the only source of the mode,
	// and it names the config file.
	var cli config
	cliModes := map[string]*bool{}
	cliFlags := newFlagSet(&cli, cliModes)
	if err := cliFlags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usagef("%v", err)
	}
	if cli.version {
		return &cli, nil
	}

	configExplicit := false
	cliFlags.Visit(func(f *flag.Flag) { configExplicit = configExplicit || f.Name == "config" })
	if env := os.Getenv("DISTLOCK_CONFIG"); env != "" && !configExplicit {
		cli.configFile, configExplicit = env, true
	}
	if configExplicit {
		if _, err := os.Stat(cli.configFile); err != nil {
			return nil, usagef("config file: %v", err)
		}
	}

	// Then everything, with ff's precedence: command line > environment
	// > config file > default.
	c := &config{}
	ignoredModes := map[string]*bool{}
	fs := newFlagSet(c, ignoredModes)
	err := ff.Parse(fs, args,
		ff.WithEnvVarPrefix("DISTLOCK"),
		ff.WithConfigFileFlag("config"),
		ff.WithConfigFileParser(parseYAML),
		ff.WithAllowMissingConfigFile(!configExplicit),
	)
	if err != nil {
		msg := err.Error()
		for _, p := range []string{"error parsing commandline arguments: ", "error parsing environment variables: "} {
			msg = strings.TrimPrefix(msg, p)
		}
		return nil, usagef("%s", msg)
	}
	c.command = fs.Args()

	var modes []string
	for _, m := range modeFlags {
		if *cliModes[m] {
			modes = append(modes, m)
		}
	}
	switch len(modes) {
	case 0:
		c.mode = modeExec
	case 1:
		c.mode = modes[0]
	default:
		return nil, usagef("--%s and --%s cannot be used together", modes[0], modes[1])
	}
	return c, c.check()
}

// parseYAML reads the config file: keys are flag names, the original tool's
// names still work, and the mode flags are refused.
func parseYAML(r io.Reader, set func(name, value string) error) error {
	seen := map[string]string{}
	err := ffyaml.Parser(r, func(name, value string) error {
		for _, m := range commandLineOnly {
			if name == m {
				return &configKeyError{name, "can only be given on the command line"}
			}
		}
		canonical := name
		if now, ok := legacyNames[name]; ok {
			canonical = now
		}
		if first, ok := seen[canonical]; ok && first != name {
			return &configKeyError{name, fmt.Sprintf("sets the same thing as %q", first)}
		}
		seen[canonical] = name
		if err := set(name, value); err != nil {
			if strings.Contains(err.Error(), "not defined in flag set") {
				return &configKeyError{name, "is not a distlock setting"}
			}
			return &configKeyError{name, "has a bad value: " + errors.Unwrap(err).Error()}
		}
		return nil
	})
	var ke *configKeyError
	if errors.As(err, &ke) {
		return ke
	}
	var pe ffyaml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("config file is not valid YAML: %v", pe.Inner)
	}
	return err
}

// configKeyError is a config file key distlock cannot use.
type configKeyError struct{ key, problem string }

func (e *configKeyError) Error() string {
	return fmt.Sprintf("config file: key %q %s", e.key, e.problem)
}

var errHelp = errors.New("help requested")

// check validates the values no flag type can check alone.
func (c *config) check() error {
	if c.version {
		return nil
	}
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
	case c.conflictExitCode < 0 || c.conflictExitCode > 255:
		return usagef("--conflict-exit-code must be 0 to 255, got %d", c.conflictExitCode)
	case c.dialTimeout <= 0:
		return usagef("--dial-timeout must be positive")
	case c.ttl < 2*time.Second:
		return usagef("--ttl must be at least 2s, got %v", c.ttl)
	case c.killAfter < 0:
		return usagef("--kill-after must not be negative")
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
	if c.prefix == "" {
		return usagef("--prefix must not be empty")
	}
	if !strings.HasSuffix(c.prefix, "/") {
		c.prefix += "/"
	}
	if len(c.endpoints) == 0 {
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

// normalizeEndpoint accepts http://host:port, https://host:port and
// host:port, with or without a trailing slash.
func normalizeEndpoint(e string) (string, error) {
	e = strings.TrimSpace(e)
	if e == "" {
		return "", errors.New("empty endpoint")
	}
	if !strings.Contains(e, "://") {
		if strings.ContainsAny(e, "/ ") {
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
	if u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("%q is not an etcd client URL", e)
	}
	return u.Scheme + "://" + u.Host, nil
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

// waitValue is --timeout: -1 waits forever, 0 not at all.
type waitValue struct{ d *time.Duration }

func (v *waitValue) String() string {
	if v.d == nil || *v.d < 0 {
		return "-1"
	}
	return v.d.String()
}

func (v *waitValue) Set(s string) error {
	d, err := parseWait(s)
	if err != nil {
		return err
	}
	if d < 0 && d != -time.Second {
		return fmt.Errorf("%q: only -1 (wait forever) may be negative", s)
	}
	*v.d = d
	return nil
}

// durationValue is a positive or zero span: seconds or a Go duration.
type durationValue struct{ d *time.Duration }

func (v *durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v *durationValue) Set(s string) error {
	d, err := parseWait(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*v.d = d
	return nil
}

type signalValue struct{ sig *syscall.Signal }

func (v *signalValue) String() string {
	if v.sig == nil {
		return ""
	}
	return signals.Name(*v.sig)
}

func (v *signalValue) Set(s string) error {
	sig, err := signals.Parse(s)
	if err != nil {
		return err
	}
	*v.sig = sig
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
	if v.list == nil {
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

// aliasValue sets another flag unless that one was set already: a source
// of higher precedence, or the new name in the same source, wins.
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
