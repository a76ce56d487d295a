package settings

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tinx/distlock/signals"
)

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
// namesValue is --lock-name: the first name given, and each one after
// it, which makes a set of locks (checkSet says where that may come from).
type namesValue struct {
	first *string
	more  *[]string
	given *int // how many were given
}

func (v namesValue) String() string {
	if v.first == nil {
		return ""
	}
	return *v.first
}

func (v namesValue) Set(s string) error {
	if *v.given == 0 {
		*v.first = s
	} else {
		*v.more = append(*v.more, s)
	}
	*v.given++
	return nil
}

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

// parseBool reads a switch's value, the same words from every source:
// true, yes, on, 1 and false, no, off, 0, in any case (and t, y, f, n).
// YAML reads yes and on as true, so DISTLOCK_NOWAIT=yes must too.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "t", "yes", "y", "on", "1":
		return true, nil
	case "false", "f", "no", "n", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is neither true nor false (nor yes, no, on, off, 1, 0)", s)
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
	if !signals.Ends(sig) {
		return fmt.Errorf("SIG%s does not end a process, so it could not stop the command when the lock is lost; use TERM, INT, HUP, QUIT or KILL", signals.Name(sig))
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
