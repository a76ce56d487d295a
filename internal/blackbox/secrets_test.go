package blackbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A password no message could hold by chance, and each 6 bytes of it.
const distinctPassword = "Zq7-hunter-Wx4k"

func showsPassword(s string) bool {
	for i := 0; i+6 <= len(distinctPassword); i++ {
		if strings.Contains(s, distinctPassword[i:i+6]) {
			return true
		}
	}
	return false
}

// TestCommandEnvHasNoPassword: the command inherits distlock's
// environment but for the variables that may hold the etcd password; a
// user name alone is passed on.
func TestCommandEnvHasNoPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		kept string // a user variable passed on
	}{
		{[]string{"DISTLOCK_USER=root", "DISTLOCK_PASSWORD=" + distinctPassword, "ETCDCTL_PASSWORD=" + distinctPassword + "-2"}, "DISTLOCK_USER=root"},
		{[]string{"ETCDCTL_USER=root:" + distinctPassword}, ""},
		{[]string{"DISTLOCK_USER=root:" + distinctPassword, "ETCDCTL_USER=root"}, "ETCDCTL_USER=root"},
	} {
		env := tc.env
		out, errOut, status := runCaptured(t, testEtcd(t).Endpoint(), env, "--lock-name=env", "--", "env")
		out = "\n" + out // each variable after a newline
		if status != 0 {
			t.Fatalf("%q: exit %d; stderr:\n%s", env, status, errOut)
		}
		if showsPassword(out + errOut) {
			t.Errorf("%q: the command's environment shows the password:\n%s", env, out)
		}
		for _, name := range []string{"DISTLOCK_PASSWORD=", "ETCDCTL_PASSWORD="} {
			if strings.Contains(out, "\n"+name) || strings.HasPrefix(out, name) {
				t.Errorf("%q: the command's environment has %s", env, name)
			}
		}
		for _, name := range []string{"DISTLOCK_USER=", "ETCDCTL_USER="} {
			if strings.Contains(out, "\n"+name) != strings.HasPrefix(tc.kept, name) {
				t.Errorf("%q: %s in the command's environment: %v, want %v", env, name, !strings.HasPrefix(tc.kept, name), strings.HasPrefix(tc.kept, name))
			}
		}
		if tc.kept != "" && !strings.Contains(out, "\n"+tc.kept+"\n") {
			t.Errorf("%q: the user alone (%s) is not passed on:\n%s", env, tc.kept, out)
		}
		if !strings.Contains(out, "\nDISTLOCK_FENCING_TOKEN=") {
			t.Errorf("%q: the command's environment lacks the lock's variables:\n%s", env, out)
		}
	}
}

// TestPasswordNeverShown: however distlock fails, with --verbose, neither
// stdout nor stderr shows the password, nor any 6 bytes of it.
func TestPasswordNeverShown(t *testing.T) {
	t.Parallel()
	// guest may log in, may not write: refused at the first request.
	cluster := authCluster(t, "right-pw", distinctPassword)
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return "--config=" + path
	}
	auth, down := cluster.Endpoint(), "http://127.0.0.1:1"
	for _, tc := range []struct {
		name     string
		endpoint string
		env      []string
		args     []string
		want     int
	}{
		{"wrong --password", auth, nil, []string{"--user=root", "--password=" + distinctPassword}, exitUnavailable},
		{"wrong DISTLOCK_PASSWORD", auth, []string{"DISTLOCK_PASSWORD=" + distinctPassword}, []string{"--user=root"}, exitUnavailable},
		{"wrong --user NAME:PASSWORD", auth, nil, []string{"--user=root:" + distinctPassword}, exitUnavailable},
		{"wrong ETCDCTL_USER NAME:PASSWORD", auth, []string{"ETCDCTL_USER=root:" + distinctPassword}, nil, exitUnavailable},
		{"--user NAME:PASSWORD and a password", auth, []string{"DISTLOCK_PASSWORD=other"}, []string{"--user=root:" + distinctPassword}, exitUnavailable},
		{"wrong password in the config file", auth, nil, []string{"--user=root", file("wrong.yaml", "password: "+distinctPassword+"\n")}, exitUnavailable},
		{"no permission", auth, []string{"DISTLOCK_PASSWORD=" + distinctPassword}, []string{"--user=guest"}, exitUnavailable},
		{"unreachable", down, []string{"DISTLOCK_PASSWORD=" + distinctPassword}, []string{"--user=root", "--dial-timeout=1s"}, exitUnavailable},
		{"unreachable, --password", down, nil, []string{"--user=root", "--password=" + distinctPassword, "--dial-timeout=1s"}, exitUnavailable},
		{"usage error", auth, []string{"DISTLOCK_PASSWORD=" + distinctPassword}, []string{"--user=root", "--ttl=1s"}, exitUsage},
		{"usage error, --password", auth, nil, []string{"--user=root", "--password=" + distinctPassword, "--limit=0"}, exitUsage},
		{"bad config key", auth, nil, []string{file("badkey.yaml", "password: "+distinctPassword+"\nuser: root\nbogus: 1\n")}, exitUsage},
		{"password as a mapping", auth, nil, []string{file("map.yaml", "user: root\npassword: {"+distinctPassword+": 1}\n")}, exitUsage},
		{"password as a list of mappings", auth, nil, []string{file("list.yaml", "user: root\npassword: [{x: "+distinctPassword+"}]\n")}, exitUsage},
		{"the password alone in the file", auth, nil, []string{file("alone.yaml", distinctPassword+"\n")}, exitUsage},
		{"credentials in an endpoint URL", "http://root:" + distinctPassword + "@127.0.0.1:1/x", nil, nil, exitUsage},
		{"credentials in a host:port endpoint", "root:" + distinctPassword + "@127.0.0.1:1", nil, nil, exitUsage},
		{"password with a YAML tag", auth, nil, []string{file("tag.yaml", "user: root\npassword: !!int "+distinctPassword+"\n")}, exitUsage},
		{"password as a list", auth, nil, []string{file("plist.yaml", "user: root\npassword: [x, "+distinctPassword+"]\n")}, exitUsage},
		{"bad YAML", auth, nil, []string{file("bad.yaml", "user: root\npassword: "+distinctPassword+"\n\t- x: [\n")}, exitUsage},
	} {
		args := append([]string{"--lock-name=pw", "--verbose"}, tc.args...)
		out, errOut, status := runCaptured(t, tc.endpoint, tc.env, append(args, "--", "echo", "ran")...)
		if status != tc.want {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", tc.name, status, tc.want, errOut)
		}
		if errOut == "" || showsPassword(out+errOut) {
			t.Errorf("%s: the output shows the password, or nothing:\n%s%s", tc.name, out, errOut)
		}
	}
}

// passwordArgvWarning is the first line of stderr with --password.
const passwordArgvWarning = "distlock: warning: --password on the command line can be read by other users in the process list; use DISTLOCK_PASSWORD or the config file\n"

// afterArgvWarning is stderr after the warning that --password gives,
// which must be its first line.
func afterArgvWarning(t *testing.T, stderr string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(stderr, passwordArgvWarning)
	if !ok {
		t.Errorf("stderr does not start with the warning about --password:\n%s", stderr)
	}
	return rest
}

// TestPasswordArgvWarning: a password on the command line, where anyone
// on the machine can read it, is warned of, even with --quiet; one from
// the environment is not.
func TestPasswordArgvWarning(t *testing.T) {
	t.Parallel()
	const warnPassword = passwordArgvWarning
	const warnUser = "distlock: warning: --user NAME:PASSWORD on the command line can be read by other users in the process list; use DISTLOCK_PASSWORD or the config file for the password\n"
	ep := testEtcd(t).Endpoint()
	for _, tc := range []struct {
		env, args []string
		want      string
	}{
		{nil, []string{"--user=root", "--password=pw"}, warnPassword},
		{nil, []string{"--user=root", "--password=pw", "--quiet"}, warnPassword},
		{nil, []string{"--user=root:pw", "--quiet"}, warnUser},
		{[]string{"DISTLOCK_PASSWORD=pw"}, []string{"--user=root", "--quiet"}, ""},
		{[]string{"DISTLOCK_USER=root:pw"}, []string{"--quiet"}, ""},
	} {
		_, errOut, status := runCaptured(t, ep, tc.env, append([]string{"--lock-name=argv", "--status"}, tc.args...)...)
		if status != exitFree || errOut != tc.want {
			t.Errorf("%q %q: exit %d (want %d), stderr:\n%s\nwant:\n%s", tc.env, tc.args, status, exitFree, errOut, tc.want)
		}
	}
}

// TestConfigFilePermissions: a config file that holds the password and
// that others may read is warned of, as ssh warns of a private key; a
// private one, or one without a password, is not.
func TestConfigFilePermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ep := testEtcd(t).Endpoint()
	for _, tc := range []struct {
		content string
		mode    os.FileMode
		who     string // "" for no warning
	}{
		{"user: root\npassword: pw\n", 0o644, "its group and others"},
		{"user: root\npassword: pw\n", 0o640, "its group"},
		{"user: root\npassword: pw\n", 0o604, "others"},
		{"user: root:pw\n", 0o644, "its group and others"},
		{"user: root\npassword: pw\n", 0o600, ""},
		{"user: root\npassword: pw\n", 0o400, ""},
		{"reason: nightly\n", 0o644, ""},
	} {
		path := filepath.Join(dir, fmt.Sprintf("distlock-%o.yaml", tc.mode))
		_ = os.Remove(path)
		if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil { // past the umask
			t.Fatal(err)
		}
		_, errOut, status := runCaptured(t, ep, nil, "--lock-name=perm", "--status", "--quiet", "--config="+path)
		want := ""
		if tc.who != "" {
			want = fmt.Sprintf("distlock: warning: config file %s holds the etcd password and can be read by %s (mode %04o); make it private: chmod 600 %s\n",
				path, tc.who, tc.mode, path)
		}
		if status != exitFree || errOut != want {
			t.Errorf("%q, mode %04o: exit %d, stderr:\n%s\nwant:\n%s", tc.content, tc.mode, status, errOut, want)
		}
	}
}

// TestPasswordNotInProcessList: while the command runs, no process on the
// machine shows the password in its arguments (what ps shows anyone), and
// none of distlock's children, the command and the watchdog, has it in
// its environment.
func TestPasswordNotInProcessList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command("distlock", "--lock-name=ps", "--user=root", "--",
		"sh", "-c", "echo ready > ready; while :; do sleep 0.05; done")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DISTLOCK_ENDPOINTS="+testEtcd(t).Endpoint(), "DISTLOCK_PREFIX="+testRealm(t),
		"DISTLOCK_CONFIG=/dev/null", "DISTLOCK_PASSWORD="+distinctPassword)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	waitFile(t, filepath.Join(dir, "ready"))

	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	children := 0
	me := fmt.Sprint(cmd.Process.Pid)
	for _, p := range procs {
		// Only this distlock and its children: tests that run beside
		// this one put a password on their command lines on purpose.
		stat, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		// The parent's pid is the second field after the command's name.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if filepath.Base(p) != me && (len(fields) < 2 || fields[1] != me) {
			continue
		}
		if cmdline, err := os.ReadFile(p + "/cmdline"); err == nil && showsPassword(string(cmdline)) {
			t.Errorf("%s's arguments show the password: %q", p, cmdline)
		}
		if filepath.Base(p) == me {
			continue
		}
		children++
		environ, err := os.ReadFile(p + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		if showsPassword(string(environ)) {
			t.Errorf("distlock's child %s has the password in its environment", p)
		}
	}
	if children < 2 {
		t.Errorf("found %d children of distlock, want the command and the watchdog", children)
	}
}
