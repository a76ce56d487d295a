package settings

import (
	"slices"
	"strings"
	"testing"
)

// TestShellWords: a typed line is split as a shell splits it, quotes and
// backslashes removed, nothing expanded.
func TestShellWords(t *testing.T) {
	for _, tt := range []struct {
		line string
		want []string
	}{
		{"", nil},
		{"  distlock  --status\t--lock-name ", []string{"distlock", "--status", "--lock-name"}},
		{`distlock --prefix='/a b/' --reason "it's \"x\" \$HOME"`, []string{"distlock", "--prefix=/a b/", "--reason", `it's "x" $HOME`}},
		{`a\ b c\\d 'e\f' "g\h"`, []string{"a b", `c\d`, `e\f`, `g\h`}},
		{"a\\\nb", []string{"ab"}},
		{`x '' "" y`, []string{"x", "", "", "y"}},
		{`--endpoints=$(rm -rf /) --user=$USER`, []string{"--endpoints=$(rm", "-rf", "/)", "--user=$USER"}},
		{`--lock-name 'half typed`, []string{"--lock-name", "half typed"}},
		{`trailing\`, []string{`trailing\`}},
	} {
		if got := shellWords(tt.line); !slices.Equal(got, tt.want) {
			t.Errorf("shellWords(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

// TestLockNamesArgs: of a typed line, the settings that say where etcd is,
// who distlock is to it and the realm are kept; the names are asked for
// only with --status, --unlock or --lock.
func TestLockNamesArgs(t *testing.T) {
	for _, tt := range []struct {
		line string
		want []string
		ok   bool
	}{
		{"distlock --status --lock-name ", nil, true},
		{"distlock --lock-name x", nil, false},
		{"distlock --list --lock-name ", nil, false},
		{"distlock --forget-last-run --lock-name ", nil, false},
		{"distlock -unlock -lock-name=ab", nil, true},
		{"distlock --lock --lockname ", nil, true},
		{"distlock --endpoints http://e:2379 --prefix=/p/ --reason 'a b' --nowait --user u --password=pw --insecure-skip-tls-verify --cacert ca --cert c --key k --dial-timeout 2s --config f --discovery-srv d --status --lock-name x",
			[]string{"--endpoints=http://e:2379", "--prefix=/p/", "--user=u", "--password=pw", "--insecure-skip-tls-verify",
				"--cacert=ca", "--cert=c", "--key=k", "--dial-timeout=2s", "--config=f", "--discovery-srv=d"}, true},
		{"distlock --insecure-skip-tls-verify=no --status", []string{"--insecure-skip-tls-verify=no"}, true},
		// A value is a value, whatever it looks like.
		{"distlock --reason --prefix=/p/ --status", nil, true},
		{"distlock --reason --status --prefix=/p/", []string{"--prefix=/p/"}, false},
		// A flag distlock does not know is passed over; the command, and
		// what follows --, are not distlock's.
		{"distlock --nowiat --status --prefix /p/", []string{"--prefix=/p/"}, true},
		{"distlock --prefix=/p/ -- --status --prefix=/q/", []string{"--prefix=/p/"}, false},
		{"distlock --prefix=/p/ make --status", []string{"--prefix=/p/"}, false},
		{"distlock --status --prefix", nil, true},
		{"", nil, false},
	} {
		got, ok := lockNamesArgs(tt.line)
		if !slices.Equal(got, tt.want) || ok != tt.ok {
			t.Errorf("lockNamesArgs(%q) = %q, %v; want %q, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// TestParseLockNames: the completion scripts' question is read only as
// the first of two arguments, with the settings of the line over those of
// the environment, and is no flag anywhere else.
func TestParseLockNames(t *testing.T) {
	t.Setenv("DISTLOCK_CONFIG", "/dev/null")
	t.Setenv("DISTLOCK_PREFIX", "/env/")
	t.Setenv("DISTLOCK_ENDPOINTS", "http://env:2379")

	r, err := Parse([]string{lockNamesFlag, "distlock --prefix=/line/ --status --lock-name "})
	if err != nil || r.Mode != ModeLockNames || r.Lock.Realm != "/line/" || !slices.Equal(r.Conn.Endpoints, []string{"http://env:2379"}) {
		t.Errorf("with --prefix on the line: %v, %+v", err, r)
	}
	for _, line := range []string{
		"distlock --lock-name ",                        // exec mode
		"distlock --status --prefix=nope --lock-name ", // a realm a run refuses
		"distlock --status --endpoints 'a b' --lock-name ",
	} {
		if r, err := Parse([]string{lockNamesFlag, line}); err == nil || r.Mode != ModeLockNames {
			t.Errorf("%q: mode %q, error %v; want nothing to ask", line, r.Mode, err)
		}
	}
	for _, args := range [][]string{
		{lockNamesFlag},
		{lockNamesFlag, "distlock --status", "x"},
		{"--status", lockNamesFlag, "distlock --status"},
		{lockNamesFlag + "=distlock --status"},
	} {
		if r, err := Parse(args); err == nil || r.Mode == ModeLockNames || !strings.Contains(err.Error(), "complete-lock-names") {
			t.Errorf("%q: mode %q, error %v; want a usage error", args, r.Mode, err)
		}
	}
	if strings.Contains(usage(), "complete-lock-names") || strings.Contains(completionScript("bash"), "complete-lock-names[") {
		t.Error("--help or the completions show the scripts' question as a flag")
	}
}
