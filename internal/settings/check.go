package settings

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tinx/distlock/internal/untrusted"
	"github.com/tinx/distlock/lock"
)

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
	if err := c.checkNowait(); err != nil {
		return err
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
	if err := c.checkShellCommand(); err != nil {
		return err
	}
	if c.mode == modeList && len(c.moreNames) > 0 {
		return usagef("--list shows every lock of the realm: it takes no --lock-name")
	}
	if c.mode == modeHeld && c.origin["lock-name"].rank == rankFlag {
		return usagef("--held answers for the locks of the command it runs in: it takes no --lock-name")
	}
	if c.mode != modeList && c.mode != modeHeld {
		if c.lockName == "" {
			return usagef("--lock-name is required")
		}
		if err := lock.ValidateName(c.lockName); err != nil {
			return usagef("--lock-name: %v", err)
		}
		if err := c.checkSet(); err != nil {
			return err
		}
	}
	switch {
	case c.mode == modeExec && len(c.command) == 0:
		return usagef("no command given: distlock --lock-name=NAME -- COMMAND [ARG...]")
	case c.mode != modeExec && len(c.command) > 0:
		return usagef("--%s takes no command, got %q", c.mode, c.command[0])
	case c.quiet && c.verbose:
		return usagef("--quiet and --verbose cannot be used together")
	case c.json && c.mode != modeStatus && c.mode != modeList && c.mode != modeHistory:
		return usagef("--json goes with --status, --list or --history")
	case c.origin["count"].rank != 0 && c.mode != modeHistory:
		return usagef("--count goes with --history")
	case c.count < 1 || c.count > maxHistoryCount:
		return usagef("--count must be 1 to %d, got %d", maxHistoryCount, c.count)
	case c.historySpan < 0 || c.historySpan > maxLeaseTTL:
		return usagef("--history-span must be 0 (no history) to %v, got %v", maxLeaseTTL, c.historySpan)
	case c.follow && c.mode != modeStatus && c.mode != modeList:
		return usagef("--follow goes with --status or --list")
	case c.limit < 1 || c.limit > maxLimit:
		return usagef("--limit must be 1 to %d, got %d", maxLimit, c.limit)
	case c.holder != "" && c.mode != modeUnlock:
		return usagef("--holder goes with --unlock")
	case c.shared && c.mode != modeExec && c.mode != modeLock:
		return usagef("--shared goes with running a command or --lock, not with --%s", c.mode)
	case c.shared && c.limit > 1:
		return usagef("--shared and --limit cannot be used together: shared holders are not counted, a semaphore is")
	case c.shared && c.minInterval > 0:
		return usagef("--shared and --min-interval cannot be used together: shared holders run at once, and each would find no recent run")
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

// checkSpans checks --min-interval, --min-hold and --expire, which etcd
// times with a lease, and --ignore-last-run.
func (c *config) checkSpans() error {
	// Lease TTLs are whole seconds.
	for _, s := range []struct {
		name string
		span time.Duration
		zero string // what 0 means
	}{{"min-interval", c.minInterval, "off"}, {"min-hold", c.minHold, "off"}, {"expire", c.expire, "never"}} {
		switch {
		case s.span > 0 && s.span < time.Second:
			return usagef("--%s must be 0 (%s) or at least 1s, got %v", s.name, s.zero, s.span)
		case s.span > maxLeaseTTL:
			return usagef("--%s must be at most %v, the longest lease etcd grants, got %v", s.name, maxLeaseTTL, s.span)
		case s.span > 0 && s.name != "expire" && c.mode == modeLock:
			return usagef("--%s goes with running a command; --lock keeps the lock until --unlock and runs nothing", s.name)
		case s.span > 0 && s.name == "min-interval" && c.limit > 1:
			return usagef("--min-interval needs --limit 1: %d holders at once could all run in one interval", c.limit)
		}
	}
	switch {
	case c.ignoreLastRun && c.mode != modeExec:
		return usagef("--ignore-last-run goes with running a command, not with --%s", c.mode)
	case c.ignoreLastRun && c.minInterval == 0:
		return usagef("--ignore-last-run goes with --min-interval: without it no run is skipped, and none is recorded")
	}
	return c.checkOneMode()
}

// checkOneMode: --expire is --lock's, --max-runtime exec mode's. Given on
// the command line to another mode, either is a mistake; from the
// environment or the config file it is a default for its mode, which the
// other modes ignore.
func (c *config) checkOneMode() error {
	for _, s := range []struct {
		name, mode string
		span       *time.Duration
	}{{"expire", modeLock, &c.expire}, {"max-runtime", modeExec, &c.maxRuntime}} {
		switch {
		case *s.span == 0 || c.mode == s.mode:
		case c.origin[s.name].rank == rankFlag && c.mode == modeLock:
			return usagef("--%s goes with %s, not with --lock, which runs nothing (--expire bounds a --lock)", s.name, modeWords(s.mode))
		case c.origin[s.name].rank == rankFlag:
			return usagef("--%s goes with %s, not with %s", s.name, modeWords(s.mode), modeWords(c.mode))
		default:
			*s.span = 0
		}
	}
	return nil
}

// modeWords is how a message names a mode.
func modeWords(mode string) string {
	if mode == modeExec {
		return "running a command"
	}
	return "--" + mode
}

// commandName is what the key says runs when no --reason is given: the
// base name of the command's first word (with -c, of STRING's first word
// that is not a variable's assignment), never its arguments.
func (c *config) commandName() string {
	if c.mode != modeExec || c.reason != "" || len(c.command) == 0 {
		return ""
	}
	word := c.command[0]
	if _, shell := c.origin["c"]; shell {
		word = ""
		for _, w := range strings.Fields(c.shellCommand) {
			if !strings.Contains(w, "=") {
				word = w
				break
			}
		}
	}
	if word == "" {
		return ""
	}
	return path.Base(word)
}

// normalizeEndpoint accepts http://host:port, https://host:port and
// host:port, with or without a trailing slash.
func normalizeEndpoint(e string) (string, error) {
	e = strings.TrimSpace(e)
	if e == "" {
		return "", errors.New("empty endpoint")
	}
	if strings.ContainsAny(e, " \t\n") {
		return "", fmt.Errorf("%q has a space in it: endpoints are separated by commas (http://etcd1:2379,http://etcd2:2379)", e)
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

// checkNowait makes --nowait a --timeout of 0, and refuses the two from
// one source when they disagree: which was meant cannot be told. (From
// two sources, the higher one's wins, both of them: tieWait.)
func (c *config) checkNowait() error {
	if !c.nowait {
		return nil
	}
	nowait, timeout := c.origin["nowait"], c.origin["timeout"]
	if c.timeout != 0 && timeout.rank != rankDefault && timeout.rank == nowait.rank {
		where := ""
		if nowait.rank != rankFlag {
			where = " (" + nowait.label + ", " + timeout.label + ")"
		}
		if nowait.label == timeout.label {
			where = " (" + nowait.label + ")"
		}
		return usagef("--nowait and --timeout %v contradict each other%s: --nowait is --timeout 0; give one of them", (*waitValue)(&c.timeout).String(), where)
	}
	c.timeout = 0
	return nil
}

// checkShellCommand makes -c STRING the command: /bin/sh -c STRING.
func (c *config) checkShellCommand() error {
	if _, given := c.origin["c"]; !given {
		return nil
	}
	switch {
	case c.mode != modeExec:
		return usagef("-c goes with exec mode, not with --%s", c.mode)
	case len(c.command) > 0:
		return usagef("-c and a command after -- cannot be used together: give one of them")
	case strings.TrimSpace(c.shellCommand) == "":
		return usagef("-c has no command: give it the shell command to run, as in -c 'make install'")
	}
	c.command = []string{"/bin/sh", "-c", c.shellCommand}
	return nil
}

// checkSet checks a set of locks (--lock-name given more than once on the
// command line) and puts it in the order every caller takes it in
// (lock.SetOrder), the first of it in lockName.
func (c *config) checkSet() error {
	if len(c.moreNames) == 0 {
		return nil
	}
	if c.origin["lock-name"].rank != rankFlag {
		return usagef("%s names several locks: a set of locks comes from the command line only, one --lock-name for each", c.origin["lock-name"].label)
	}
	names := append([]string{c.lockName}, c.moreNames...)
	for i, n := range names {
		if err := lock.ValidateName(n); err != nil {
			return usagef("--lock-name: %v", err)
		}
		if slices.Contains(names[:i], n) {
			return usagef("--lock-name %q is given twice", n)
		}
	}
	var with string
	switch {
	case c.mode != modeExec:
		with = "--" + c.mode
	case c.limit > 1:
		with = "--limit" + c.fromElsewhere("limit")
	case c.shared:
		with = "--shared"
	case c.minInterval > 0:
		with = "--min-interval" + c.fromElsewhere("min-interval")
	case c.minHold > 0:
		with = "--min-hold" + c.fromElsewhere("min-hold")
	}
	if with != "" {
		return usagef("a set of locks (--lock-name given %d times) goes with running a command, not with %s", len(names), with)
	}
	names = lock.SetOrder(c.prefix, names)
	c.lockName, c.moreNames = names[0], names[1:]
	return nil
}

// fromElsewhere says, for a setting that did not come from the command
// line, where it came from: " (from DISTLOCK_MIN_HOLD)".
func (c *config) fromElsewhere(name string) string {
	if o, ok := c.origin[name]; ok && o.rank != rankFlag {
		return " (from " + o.label + ")"
	}
	return ""
}
