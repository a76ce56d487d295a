package blackbox

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinx/distlock/internal/locknames"
)

// completionSlack is what a run of distlock may take beyond the names
// query's own Budget: starting the process and reading the config, on a
// machine that runs other tests too.
const completionSlack = 2 * time.Second

// TestCompleteLockNames asks the binary the completion scripts' question
// (--complete-lock-names LINE) against a real etcd: the names of the locks
// held in the realm, one a line; those of the realm the typed line names
// (--prefix) rather than the environment's; nothing for a line without
// --status, --unlock or --lock. Nothing goes to stderr, and the status
// is 0, whatever the answer.
func TestCompleteLockNames(t *testing.T) {
	t.Parallel()
	endpoint := testEtcd(t).Endpoint()
	realm := testRealm(t)
	for _, args := range [][]string{
		{"--lock-name=report", "--lock"},
		{"--lock-name=db backup", "--lock"},
		{"--prefix=" + realm + "inner/", "--lock-name=deep", "--lock"},
	} {
		if _, stderr, status := runCaptured(t, endpoint, nil, args...); status != 0 {
			t.Fatalf("distlock %q: status %d, %s", args, status, stderr)
		}
	}
	for _, tt := range []struct{ line, want string }{
		{"distlock --status --lock-name ", "db backup\nreport\n"},
		{"distlock --unlock --lock-name=re", "db backup\nreport\n"},
		{"distlock --reason='a b' --lock --lock-name", "db backup\nreport\n"},
		{"distlock --prefix='" + realm + "inner/' --status --lock-name ", "deep\n"},
		{"distlock --lock-name ", ""},
		{"distlock --list --lock-name ", ""},
	} {
		stdout, stderr, status := runCaptured(t, endpoint, nil, "--complete-lock-names", tt.line)
		if stdout != tt.want || stderr != "" || status != 0 {
			t.Errorf("%q: stdout %q, stderr %q, status %d; want stdout %q", tt.line, stdout, stderr, status, tt.want)
		}
	}
	t.Run("bash", func(t *testing.T) { bashCompletesLockNames(t, endpoint, realm) })
}

// bashCompletesLockNames loads the bash script that distlock --completion
// bash prints, and calls its function as bash would on TAB after
// --lock-name: it offers the locks held in the realm that start with
// what is typed, as the binary on PATH finds them.
func bashCompletesLockNames(t *testing.T, endpoint, realm string) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	script, err := exec.Command("distlock", "--completion", "bash").Output()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "distlock.bash")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	const driver = `
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
_distlock
printf '%s\n' "${COMPREPLY[@]}"
`
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"distlock", "--status", "--lock-name", "re"}, "report\n"},
		{[]string{"distlock", "--unlock", "--lock-name", ""}, "db\\ backup\nreport\n"},
		{[]string{"distlock", "--lock-name", ""}, "\n"}, // exec mode: none
	} {
		cmd := exec.Command(bash, append([]string{"-c", driver, "bash", path}, tt.words...)...)
		cmd.Env = append(os.Environ(), "DISTLOCK_ENDPOINTS="+endpoint, "DISTLOCK_PREFIX="+realm, "DISTLOCK_CONFIG=/dev/null")
		out, err := cmd.Output()
		if err != nil || string(out) != tt.want {
			t.Errorf("bash: %q<TAB> offers %q (%v), want %q", tt.words, out, err, tt.want)
		}
	}
}

// TestCompleteLockNamesUnanswered: when etcd does not answer (a port that
// refuses, a listener that never speaks), the question gets no names and
// no words, and its answer comes within the Budget.
func TestCompleteLockNamesUnanswered(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close() // never accepted: the kernel completes the handshake, nobody speaks
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused.Close()
	for _, endpoint := range []string{"http://" + silent.Addr().String(), "http://" + refused.Addr().String()} {
		for _, line := range []string{
			"distlock --status --lock-name ",
			"distlock --endpoints=" + endpoint + " --dial-timeout=1m --status --lock-name ",
		} {
			start := time.Now()
			stdout, stderr, status := runCaptured(t, endpoint, nil, "--complete-lock-names", line)
			took := time.Since(start)
			if stdout != "" || stderr != "" || status != 0 {
				t.Errorf("etcd at %s, %q: stdout %q, stderr %q, status %d; want nothing, 0", endpoint, line, stdout, stderr, status)
			}
			if took > locknames.Budget+completionSlack {
				t.Errorf("etcd at %s, %q: took %v, want at most %v", endpoint, line, took, locknames.Budget+completionSlack)
			}
		}
	}
	if strings.Contains(runHelp(t), "complete-lock-names") {
		t.Error("--help shows the completion scripts' question")
	}
}

// runHelp is what distlock --help prints.
func runHelp(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("distlock", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
