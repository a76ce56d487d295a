package settings

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/peterbourgon/ff/v3/ffyaml"
	"gopkg.in/yaml.v2"
)

// parseCommandLine parses args into cmdLine, and refuses a flag's value
// that is another of distlock's flags (valueIsAFlag).
func parseCommandLine(cmdLine *flag.FlagSet, args []string) error {
	if at, bad := valueIsAFlag(args); bad != nil {
		// What came before it still says how to report the error (the
		// log format); the refused value itself is used for nothing.
		_ = cmdLine.Parse(args[:at])
		return bad
	}
	err := cmdLine.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	if err != nil {
		return commandLineError(err)
	}
	return nil
}

// commandLine is the flag set of the command line, bound to values.
func commandLine(values map[string]flag.Value) *flag.FlagSet {
	fs := flag.NewFlagSet("distlock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range table {
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

// readEnvironment sets from DISTLOCK_* what a source of higher precedence
// left unset. An empty variable counts as unset; today's name beats the
// original tool's (DISTLOCK_LOCK_NAME beats DISTLOCK_LOCKNAME).
func readEnvironment(values map[string]flag.Value, given map[string]bool, from origins) error {
	for _, s := range table {
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
			return usagef("config file %s: key %q is not a distlock setting%s", path, key, didYouMeanKey(key))
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
