package settings

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffyaml"
)

// readEtcdctlEnvironment sets from etcdctl's variables (setting.etcdctl)
// what no other source set: below DISTLOCK_* and the config file, above
// the defaults, so that a host set up for etcdctl needs nothing more. Each
// value is read as etcdctl reads it, and checked here, so that a bad one
// is named. A certificate and its key, and a user and its password, are
// pairs: etcdctl's are used only where no other source gave either half.
func readEtcdctlEnvironment(values map[string]flag.Value, from origins) error {
	higher := maps.Clone(from)
	for _, s := range table {
		if s.etcdctl == "" {
			continue
		}
		value := os.Getenv(s.etcdctl)
		_, set := higher[s.name]
		_, pairSet := higher[pairedWith[s.name]]
		if value == "" || set || pairSet {
			continue
		}
		if err := readEtcdctlValue(s, value, values, from); err != nil {
			return usagef("environment variable %s has a bad value: %v", s.etcdctl, err)
		}
	}
	return nil
}

// pairedWith is the other half of a setting that is only taken with it.
var pairedWith = map[string]string{"cert": "key", "key": "cert", "user": "password", "password": "user"}

// readEtcdctlValue sets s from its etcdctl variable's value. Its errors
// never show a value that may hold a password.
func readEtcdctlValue(s setting, value string, values map[string]flag.Value, from origins) error {
	switch s.name {
	case "endpoints":
		n := 0
		for _, e := range strings.Split(value, ",") {
			if strings.TrimSpace(e) == "" {
				continue
			}
			if _, err := normalizeEndpoint(e); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return errors.New("no endpoint in it")
		}
	case "dial-timeout":
		// etcdctl takes a Go duration, and so does distlock here: "5"
		// would mean something else to each.
		d, err := time.ParseDuration(strings.TrimSpace(value))
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration like 5s or 1m", value)
		}
	case "cacert", "cert", "key":
		f, err := os.Open(value)
		if err != nil {
			return err
		}
		f.Close()
	case "user":
		// "user:password", as etcdctl reads it when ETCDCTL_PASSWORD is
		// not set; etcdctl would prompt for a password, distlock cannot.
		if os.Getenv("ETCDCTL_PASSWORD") == "" {
			user, password, ok := strings.Cut(value, ":")
			if ok {
				if user == "" {
					return errors.New(`no user name before the ":"`)
				}
				value = user
				if err := values["password"].Set(password); err != nil {
					return err
				}
				from["password"] = origin{rankEtcdctl, s.etcdctl}
			}
		}
	}
	if err := values[s.name].Set(value); err != nil {
		return err
	}
	from[s.name] = origin{rankEtcdctl, s.etcdctl}
	return nil
}

// originOf says where setting name got its value: a flag, a variable, the
// config file, or the default.
func (c *config) originOf(name string) string {
	if o, ok := c.origin[name]; ok {
		return o.label
	}
	return "the default"
}

// checkConnection checks the settings that say where etcd is and who we
// are to it. --endpoints and --discovery-srv are two ways to say where:
// the one from the source of higher precedence wins, and both from one
// source is an error. A user needs a password: distlock never prompts.
func (c *config) checkConnection() error {
	if c.discoverySrv != "" {
		srv, eps := c.origin["discovery-srv"].rank, c.origin["endpoints"].rank
		switch {
		case srv == eps:
			return usagef("--endpoints (%s) and --discovery-srv (%s) both say where etcd is; give one of them",
				c.originOf("endpoints"), c.originOf("discovery-srv"))
		case srv > eps:
			c.endpoints = nil // found in dial
		default:
			c.discoverySrv = ""
		}
	}
	// --user NAME:PASSWORD, as etcdctl takes it, from whichever source:
	// split it, so that the password is sent as one and never printed.
	if strings.Contains(c.user, ":") && c.originOf("user") == "--user" {
		c.warnings = append(c.warnings, "--user NAME:PASSWORD on the command line can be read by other users in the process list; use DISTLOCK_PASSWORD or the config file for the password")
	}
	if name, password, ok := strings.Cut(c.user, ":"); ok && c.password == "" {
		if name == "" {
			return usagef("--user (from %s) has no user name before the \":\"", c.originOf("user"))
		}
		c.user, c.password = name, password
		c.origin["password"] = c.origin["user"]
	}
	if c.originOf("password") == "--password" {
		c.warnings = append(c.warnings, "--password on the command line can be read by other users in the process list; use DISTLOCK_PASSWORD or the config file")
	}
	if c.user != "" && c.password == "" {
		where := "DISTLOCK_PASSWORD or the config file"
		if c.originOf("user") == "ETCDCTL_USER" {
			where = "ETCDCTL_PASSWORD, or as ETCDCTL_USER=NAME:PASSWORD"
		}
		return usagef("user %s (from %s) has no password, and distlock does not ask for one: give it in %s",
			c.shownUser(), c.originOf("user"), where)
	}
	return nil
}

// shownUser is the etcd user, quoted, for a message. A user given as
// NAME:PASSWORD along with a password is sent to etcd as it is (as
// etcdctl does), but shown only up to the ":", as it may hold a password.
func (c *config) shownUser() string {
	if name, _, ok := strings.Cut(c.user, ":"); ok {
		return strconv.Quote(name+":") + "…"
	}
	return strconv.Quote(c.user)
}

// configFileWarnings warns, as ssh does of a private key, when the config
// file at path holds the etcd password (the key password, or a user given
// as NAME:PASSWORD) and others than its owner may read it.
func configFileWarnings(path string) []string {
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o044 == 0 {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	// The file's own contents count, even where a source of higher
	// precedence set the password: so it is read once more.
	secret := false
	_ = ffyaml.Parser(bytes.NewReader(data), func(key, value string) error {
		s, _ := settingNamed(key)
		secret = secret || (s.name == "password" && value != "") || (s.name == "user" && strings.Contains(value, ":"))
		return nil
	})
	if !secret {
		return nil
	}
	who := "its group and others"
	switch perm := info.Mode().Perm(); {
	case perm&0o040 == 0:
		who = "others"
	case perm&0o004 == 0:
		who = "its group"
	}
	return []string{fmt.Sprintf("config file %s holds the etcd password and can be read by %s (mode %04o); make it private: chmod 600 %s",
		path, who, info.Mode().Perm(), path)}
}

// origin is where a setting got its value: its rank among the sources
// (the higher wins) and its name in messages: "--endpoints",
// "DISTLOCK_ENDPOINTS", "the config file FILE", "ETCDCTL_ENDPOINTS".
type origin struct {
	rank  int
	label string
}

// origins holds the origin of every setting not at its default.
type origins map[string]origin

// The sources of settings, from the lowest precedence to the highest.
const (
	rankDefault = iota // the zero rank: a setting not in origins
	rankEtcdctl
	rankFile
	rankEnv
	rankFlag
)

// domainValue is --discovery-srv: a DNS domain.
type domainValue string

func (v *domainValue) String() string {
	if v == nil {
		return ""
	}
	return string(*v)
}

func (v *domainValue) Set(s string) error {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" || strings.ContainsAny(s, "/:@ \t") {
		return fmt.Errorf("%q is not a DNS domain like example.com", s)
	}
	*v = domainValue(s)
	return nil
}

// WithoutSecrets is env without the variables that may hold the etcd
// password: DISTLOCK_PASSWORD and ETCDCTL_PASSWORD always, DISTLOCK_USER
// and ETCDCTL_USER when they hold NAME:PASSWORD (a user name alone is
// passed on: it tells the command who distlock is to etcd, and lets
// nobody in).
func WithoutSecrets(env []string) []string {
	var kept []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		switch {
		case name == "DISTLOCK_PASSWORD", name == "ETCDCTL_PASSWORD":
			continue
		case (name == "DISTLOCK_USER" || name == "ETCDCTL_USER") && strings.Contains(value, ":"):
			continue
		}
		kept = append(kept, kv)
	}
	return kept
}
