package blackbox

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tinx/distlock/internal/etcdtest"
)

// buildDistlock builds the programs the tests run into dir, once for all
// of them: distlock, with -race when the tests run with it; and unless
// short (the tests that need them need etcd, which -short skips)
// distlock-late-signal, which sends itself SIGTERM the moment it has
// taken the lock (the build tag distlock_late_signal, main's
// late_signal.go), and etcd-member, the etcd member program, without the
// race detector (etcdtest.BuildMember). The builds run at once.
func buildDistlock(dir string, short bool) error {
	const distlock = "github.com/tinx/distlock"
	builds := []program{{"distlock", distlock, raceEnabled, nil}}
	if !short {
		builds = append(builds, program{"distlock-late-signal", distlock, raceEnabled, []string{"-tags=distlock_late_signal"}})
	}
	errs := make(chan error, len(builds)+1)
	for _, p := range builds {
		go func() { errs <- p.build(dir) }()
	}
	started := len(builds)
	if !short {
		started++
		go func() {
			_, err := etcdtest.BuildMember(dir)
			errs <- err
		}()
	}
	for range started {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// program is a command of the module that the tests run.
type program struct {
	name, pkg string
	race      bool
	flags     []string
}

// build builds p into dir.
func (p program) build(dir string) error {
	// go test puts the go command that runs it first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	out := filepath.Join(dir, p.name)
	// -buildvcs=false: no git run for a stamp the tests never read, and
	// none to fail where git refuses the checkout.
	args := append([]string{"build", "-buildvcs=false", "-o", out}, p.flags...)
	if p.race {
		args = append(args, "-race")
	}
	args = append(args, p.pkg)
	cmd := exec.Command(goTool, args...)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, output)
	}
	_, err = os.Stat(out)
	return err
}

// readSources reads every Go file of the module, go.mod and go.sum, once
// per run of the tests. go test caches a package's result by its test
// binary and by the files its tests read; the distlock they run is built
// from files they would not read otherwise, so without this an edit to
// the command would leave the result of the last run standing. testEtcd,
// which every test that runs distlock against etcd calls, and
// TestSourcesRead call it.
func readSources(t testing.TB) {
	t.Helper()
	sourcesOnce.Do(func() {
		root := filepath.Join("..", "..")
		sourcesErr = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root:
				return filepath.SkipDir
			case d.IsDir():
				return nil
			case strings.HasSuffix(path, ".go"), path == filepath.Join(root, "go.mod"), path == filepath.Join(root, "go.sum"):
				_, err := os.ReadFile(path)
				return err
			}
			return nil
		})
	})
	if sourcesErr != nil {
		t.Fatalf("reading the module's sources: %v", sourcesErr)
	}
}

var (
	sourcesOnce sync.Once
	sourcesErr  error
)

// TestSourcesRead: a run of this package's tests is cached only as long as
// distlock's sources stay as they were (readSources).
func TestSourcesRead(t *testing.T) {
	readSources(t)
}
