package settings

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFlagTable checks the settings table itself: one entry per name,
// each with help, and the command-line-only ones kept out of the other
// sources.
func TestFlagTable(t *testing.T) {
	names := map[string]bool{}
	for _, s := range table {
		for _, n := range []string{s.name, s.alias} {
			if n != "" && names[n] {
				t.Errorf("%q is declared twice", n)
			}
			names[n] = true
		}
		if s.help == "" || s.bind == nil || s.from&fromCommandLine == 0 {
			t.Errorf("--%s: needs help, a field and the command line", s.name)
		}
		if !regexp.MustCompile(`(?m)^  (distlock \[flags\] )?` + spelled(s.name) + `( |$)`).MatchString(usage()) {
			t.Errorf("--help has no line for %s", spelled(s.name))
		}
	}
	// The contract: these come from the command line only, but for
	// DISTLOCK_CONFIG, which names the file.
	for _, name := range append(modeFlagNames(), "version", "completion", "config", "c") {
		s, ok := settingNamed(name)
		switch {
		case !ok:
			t.Errorf("--%s is not declared", name)
		case s.from&fromFile != 0:
			t.Errorf("--%s may come from the config file", name)
		case s.from&fromEnvironment != 0 && name != "config":
			t.Errorf("--%s may come from the environment", name)
		}
	}
}

func modeFlagNames() []string {
	var modes []string
	for _, s := range table {
		if s.mode {
			modes = append(modes, s.name)
		}
	}
	return modes
}

// TestFlagsInReference holds docs/reference.md to the settings table:
// every flag and every DISTLOCK_ name appears in it, every flag but the
// modes has a row in its flag table, every flag in that table exists, and
// the defaults shown are the defaults.
func TestFlagsInReference(t *testing.T) {
	readme, err := os.ReadFile(referencePage)
	if err != nil {
		t.Fatal(err)
	}
	rows, defaultColumn := readmeFlagTable(t, string(readme))

	for _, s := range table {
		if !regexp.MustCompile(regexp.QuoteMeta(spelled(s.name)) + `([^a-z0-9-]|$)`).Match(readme) {
			t.Errorf(referencePage+" never mentions %s", spelled(s.name))
		}
		if s.from&fromEnvironment != 0 {
			for _, n := range []string{s.name, s.alias} {
				if env := envName(n); n != "" && !regexp.MustCompile(`\b`+env+`\b`).Match(readme) {
					t.Errorf(referencePage+" never mentions %s", env)
				}
			}
		}
		row, ok := rows[s.name]
		switch {
		case s.mode:
		case !ok:
			t.Errorf(referencePage+"'s flag table has no row for --%s", s.name)
		case defaultColumn >= 0 && len(row.flags) == 1 && s.def != "" && !strings.Contains(row.cells[defaultColumn], "`"+s.def+"`"):
			t.Errorf(referencePage+"'s flag table gives --%s the default %q, want `%s`", s.name, row.cells[defaultColumn], s.def)
		}
	}
	for name := range rows {
		if s, ok := settingNamed(name); !ok || s.name != name {
			t.Errorf(referencePage+"'s flag table has --%s, which distlock does not declare", name)
		}
	}
}

// TestReferenceLists holds the two lists that docs/reference.md's
// "Environment and config file" spells out to the settings table: the
// settings that come from the command line only (one bullet each, none
// missing), and every DISTLOCK_ variable ("All of them: ..."), no more
// and no fewer.
func TestReferenceLists(t *testing.T) {
	readme, err := os.ReadFile(referencePage)
	if err != nil {
		t.Fatal(err)
	}
	between := func(from, to string) string {
		_, rest, ok := strings.Cut(string(readme), from)
		text, _, ok2 := strings.Cut(rest, to)
		if !ok || !ok2 {
			t.Fatalf(referencePage+" has no text from %q to %q", from, to)
		}
		return text
	}

	var bullets []string
	for _, line := range strings.Split(between("from the command line only, so that", "Such variables are ignored"), "\n") {
		if strings.HasPrefix(line, "- ") {
			bullets = append(bullets, line)
		}
	}
	if len(bullets) == 0 {
		t.Fatal(referencePage + " lists nothing that comes from the command line only")
	}
	var env []string
	for _, s := range table {
		if s.from&fromFile == 0 && !s.mode {
			found := slices.ContainsFunc(bullets, func(b string) bool { return strings.Contains(b, "`"+spelled(s.name)+"`") })
			if !found {
				t.Errorf(referencePage+"'s list of what comes from the command line only has no bullet for --%s", s.name)
			}
		}
		if s.from&fromEnvironment != 0 {
			env = append(env, envName(s.name))
		}
	}
	for _, s := range table {
		if s.mode && !strings.Contains(bullets[0], "`--"+s.name+"`") {
			t.Errorf(referencePage+"'s first bullet of what comes from the command line only does not name the mode --%s", s.name)
		}
	}

	listed := regexp.MustCompile(`DISTLOCK_[A-Z_]+`).FindAllString(between("All of them:", "the original tool's name"), -1)
	listed = slices.DeleteFunc(listed, func(name string) bool { return name == "DISTLOCK_LOCKNAME" })
	slices.Sort(env)
	slices.Sort(listed)
	if !slices.Equal(listed, env) {
		t.Errorf(referencePage+"'s list of environment variables:\n%q\nthe settings table's:\n%q", listed, env)
	}
}

// readmeFlagTable finds the Markdown table whose first column is "flag"
// and returns its rows by flag, and which column holds the default (-1 if
// none does).
func readmeFlagTable(t *testing.T, readme string) (map[string]readmeRow, int) {
	cells := func(line string) []string {
		parts := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	flagName := regexp.MustCompile("`--?([a-z][a-z0-9-]*)")
	lines := strings.Split(readme, "\n")
	for i, line := range lines {
		header := cells(line)
		if !strings.HasPrefix(line, "|") || header[0] != "flag" {
			continue
		}
		defaultColumn := slices.Index(header, "default")
		rows := map[string]readmeRow{}
		for _, line := range lines[i+2:] { // after the header and its --- line
			if !strings.HasPrefix(line, "|") {
				break
			}
			row := readmeRow{cells: cells(line)}
			for _, m := range flagName.FindAllStringSubmatch(row.cells[0], -1) {
				row.flags = append(row.flags, m[1])
			}
			if len(row.flags) == 0 {
				t.Errorf(referencePage+"'s flag table: no `--flag` in %q", line)
			}
			if len(row.cells) < len(header) {
				row.cells = append(row.cells, make([]string, len(header)-len(row.cells))...)
			}
			for _, f := range row.flags {
				rows[f] = row
			}
		}
		return rows, defaultColumn
	}
	t.Fatal(referencePage + " has no table whose first column is \"flag\"")
	return nil, -1
}

// TestConfigCommandLineOnly: the modes, --version, --completion, --holder
// and --config are never read from the file, and but for --config never
// from the environment.
func TestConfigCommandLineOnly(t *testing.T) {
	clearEnv(t)
	// Set in the environment, they are ignored.
	for _, env := range []string{"DISTLOCK_LOCK=true", "DISTLOCK_LOCK=yes", "DISTLOCK_UNLOCK=true",
		"DISTLOCK_STATUS=1", "DISTLOCK_LIST=true", "DISTLOCK_VERSION=true", "DISTLOCK_HELP=true",
		"DISTLOCK_COMPLETION=bash", "DISTLOCK_HOLDER=694d9a3c5e1e2a04"} {
		t.Run(env, func(t *testing.T) {
			name, value, _ := strings.Cut(env, "=")
			t.Setenv(name, value)
			c, err := parseConfig([]string{"--lock-name=x", "--", "true"})
			if err != nil {
				t.Fatal(err)
			}
			if c.mode != modeExec || c.version || c.completion != "" || c.holder != "" {
				t.Errorf("mode %q, version %v, completion %q, holder %q; want exec, false, none, none", c.mode, c.version, c.completion, c.holder)
			}
		})
	}
	// In the config file, they are usage errors that say where they belong.
	dir := t.TempDir()
	for key, want := range map[string]string{
		"lock":       `key "lock" can only be given on the command line$`,
		"status":     `key "status" can only be given on the command line$`,
		"version":    `key "version" can only be given on the command line$`,
		"completion": `key "completion" can only be given on the command line$`,
		"holder":     `key "holder" can only be given on the command line$`,
		"config":     `key "config" can only be given on the command line or DISTLOCK_CONFIG$`,
		"help":       `key "help" is not a distlock setting$`,
	} {
		t.Run("file "+key, func(t *testing.T) {
			file := filepath.Join(dir, key+".yaml")
			if err := os.WriteFile(file, []byte(key+": true\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := parseConfig([]string{"--config=" + file, "--lock-name=x", "--", "true"})
			var usage *usageError
			if !errors.As(err, &usage) || !regexp.MustCompile(want).MatchString(err.Error()) {
				t.Errorf("got %v; want a usage error matching %q", err, want)
			}
		})
	}
}

// TestConfigSources: which source wins, and what a bad value in each says.
func TestConfigSources(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "distlock.yaml")
	if err := os.WriteFile(file, []byte("ttl: 40s\nkill-signal: INT\nnowait: true\nquiet: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISTLOCK_CONFIG", file)
	t.Setenv("DISTLOCK_KILL_SIGNAL", "HUP")
	t.Setenv("DISTLOCK_QUIET", "false")
	c, err := parseConfig([]string{"--lock-name=x", "--ttl=50", "--", "true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ttl != 50*time.Second || c.killSignal != syscall.SIGHUP || !c.nowait || c.timeout != 0 || c.quiet || c.configFile != file {
		t.Errorf("got ttl %v, kill-signal %v, nowait %v, timeout %v, quiet %v, config %q",
			c.ttl, c.killSignal, c.nowait, c.timeout, c.quiet, c.configFile)
	}

	t.Setenv("DISTLOCK_QUIET", "maybe")
	_, err = parseConfig([]string{"--lock-name=x", "--", "true"})
	if want := `environment variable DISTLOCK_QUIET has a bad value: "maybe" is neither true nor false (nor yes, no, on, off, 1, 0)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// readmeRow is one row of the reference's flag table.
type readmeRow struct {
	flags []string // the flags of its first cell, without "--"
	cells []string
}

// clearEnv unsets every DISTLOCK_ variable for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "DISTLOCK_") {
			t.Setenv(name, "")
		}
	}
}

// referencePage is where the flags, the environment and the config file
// are described, for people.
const referencePage = "../../docs/reference.md"
