package settings

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseWait(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"30", 30 * time.Second, false},
		{"1.5", 1500 * time.Millisecond, false},
		{"0", 0, false},
		{"-1", -time.Second, false},
		{"90s", 90 * time.Second, false},
		{"5m", 5 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"250ms", 250 * time.Millisecond, false},
		{"", 0, true},
		{"soon", 0, true},
		{"5 minutes", 0, true},
		{"1e300", 0, true},
		{"NaN", 0, true},
	}
	for _, tt := range tests {
		got, err := parseWait(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("parseWait(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	// --timeout: only -1 may be negative.
	var d time.Duration
	v := (*waitValue)(&d)
	if err := v.Set("-1"); err != nil || d >= 0 {
		t.Errorf("--timeout -1: %v, %v", d, err)
	}
	if err := v.Set("-2"); err == nil {
		t.Error("--timeout -2 accepted")
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://127.0.0.1:2379", "http://127.0.0.1:2379"},
		{"https://etcd1.prod:2379/", "https://etcd1.prod:2379"},
		{"etcd1:2379", "etcd1:2379"},
		{" 10.0.0.1:2379 ", "10.0.0.1:2379"},
	}
	for _, tt := range tests {
		if got, err := normalizeEndpoint(tt.in); err != nil || got != tt.want {
			t.Errorf("normalizeEndpoint(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "ftp://x:1", "http://", "http://x:1/v3/kv", "a b"} {
		if _, err := normalizeEndpoint(bad); err == nil {
			t.Errorf("normalizeEndpoint(%q) accepted", bad)
		}
	}
}

// TestPrecedence checks command line > environment > config file > default
// for one setting at a time, with every combination of sources.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "distlock.yaml")
	write := func(content string) {
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		yaml   string
		env    map[string]string
		args   []string
		reason string
		ends   []string
		lock   string
	}{
		{name: "defaults", reason: "", ends: []string{defaultEndpoint}, lock: "l"},
		{name: "file", yaml: "reason: file\nendpoints: [a:1, b:2]\n", reason: "file", ends: []string{"a:1", "b:2"}, lock: "l"},
		{name: "env beats file", yaml: "reason: file\nendpoints: a:1\n",
			env: map[string]string{"DISTLOCK_REASON": "env", "DISTLOCK_ENDPOINTS": "c:3,d:4"}, reason: "env", ends: []string{"c:3", "d:4"}, lock: "l"},
		{name: "flag beats env and file", yaml: "reason: file\n",
			env: map[string]string{"DISTLOCK_REASON": "env"}, args: []string{"--reason=flag", "--endpoints=e:5"}, reason: "flag", ends: []string{"e:5"}, lock: "l"},
		{name: "legacy lockname in file", yaml: "lockname: old\n", reason: "", ends: []string{defaultEndpoint}, lock: "old"},
		{name: "legacy env beats file", yaml: "lock-name: file\n", env: map[string]string{"DISTLOCK_LOCKNAME": "legacyenv"},
			ends: []string{defaultEndpoint}, lock: "legacyenv"},
		{name: "new env beats legacy env", env: map[string]string{"DISTLOCK_LOCKNAME": "old", "DISTLOCK_LOCK_NAME": "new"},
			ends: []string{defaultEndpoint}, lock: "new"},
		{name: "flag beats legacy env", env: map[string]string{"DISTLOCK_LOCKNAME": "old"}, args: []string{"--lock-name=flag"},
			ends: []string{defaultEndpoint}, lock: "flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"DISTLOCK_REASON", "DISTLOCK_ENDPOINTS", "DISTLOCK_LOCKNAME", "DISTLOCK_LOCK_NAME", "DISTLOCK_PREFIX"} {
				t.Setenv(k, "")
			}
			write(tt.yaml)
			t.Setenv("DISTLOCK_CONFIG", file)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.lock == "l" {
				args = append(args, "--lock-name=l")
			}
			c, err := parseConfig(append(args, "--lock"))
			if err != nil {
				t.Fatal(err)
			}
			if c.reason != tt.reason || !reflect.DeepEqual(c.endpoints, tt.ends) || c.lockName != tt.lock {
				t.Errorf("got reason %q, endpoints %q, lock %q; want %q, %q, %q",
					c.reason, c.endpoints, c.lockName, tt.reason, tt.ends, tt.lock)
			}
			if c.mode != modeLock {
				t.Errorf("mode %q, want lock", c.mode)
			}
		})
	}
}

func TestDefaultConfigFileMayBeAbsent(t *testing.T) {
	t.Setenv("DISTLOCK_CONFIG", "")
	c, err := parseConfig([]string{"--lock-name=x", "--", "true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.configFile != defaultConfigFile || c.ttl != defaultTTL || c.timeout >= 0 || c.prefix != defaultPrefix {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

// TestConfigFileOneValuePerKey: a list is for endpoints alone; for any
// other key it is an error, not its last value quietly taken.
func TestConfigFileOneValuePerKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, wantErr string }{
		{"endpoints: [http://a:2379, http://b:2379]\n", ""},
		{"reason: [first, second]\n", `key "reason" takes one value, not a list`},
		{"ttl: [10s, 20s]\n", `key "ttl" takes one value, not a list`},
	} {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := parseConfig([]string{"--config=" + path, "--lock-name=x", "--", "true"})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.content, err)
		case tc.wantErr == "" && len(c.endpoints) != 2:
			t.Errorf("%q: endpoints %q, want both", tc.content, c.endpoints)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !isUsage(err)):
			t.Errorf("%q: %v, want an error saying %s (64)", tc.content, err, tc.wantErr)
		}
	}
}

// TestConfigFileNotAMapping: a file that is YAML but not a mapping of
// settings says so in one line, without quoting what it holds (that may be
// the password), and is a usage error.
func TestConfigFileNotAMapping(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{
		"- hunter2\n- b\n",
		"hunter2\n",
		"? [hunter2]\n: b\n",
	} {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := parseConfig([]string{"--config=" + path, "--lock-name=x", "--", "true"})
		want := "config file " + path + " is not a YAML mapping of settings to values (setting: value, one a line)"
		if err == nil || err.Error() != want || !isUsage(err) {
			t.Errorf("%q: %v, want %q (64)", content, err, want)
		}
	}
}

// isUsage says whether err is a usage error (exit 64).
func isUsage(err error) bool {
	var usage *usageError
	return errors.As(err, &usage)
}
