package release

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/internal/reaptest"
	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/supervise/watchdog"
)

// repo is the root of the clone, seen from this package's folder (where go
// test runs the tests).
const repo = "../.."

// testEtcd is the etcd that the shipped binary takes its locks in.
var testEtcd *etcdtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(etcdtest.Run(func(c *etcdtest.Cluster) int {
		testEtcd = c
		defer func() {
			if static.dir != "" {
				os.RemoveAll(static.dir)
			}
		}()
		return m.Run()
	}))
}

// static is distlock built once, by scripts/build-static, for every test
// in the package.
var static struct {
	once    sync.Once
	dir     string
	context string // the copy of the image's build context it was built in
	bin     string
	err     error
}

// staticBinary is distlock built as the Dockerfile builds it: by
// scripts/build-static, in a copy of the build context, which is the
// clone less what .dockerignore leaves out. It returns the binary and the
// folder it was built in.
func staticBinary(t *testing.T) (bin, buildDir string) {
	t.Helper()
	static.once.Do(func() {
		static.dir, static.err = os.MkdirTemp("", "distlock-release-")
		if static.err != nil {
			return
		}
		static.context = filepath.Join(static.dir, "context")
		if static.err = copyBuildContext(repo, static.context); static.err != nil {
			return
		}
		static.bin = filepath.Join(static.dir, "distlock")
		cmd := exec.Command("scripts/build-static", static.bin)
		cmd.Dir = static.context
		cmd.Env = append(os.Environ(), "DISTLOCK_VERSION="+stampedVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			static.err = fmt.Errorf("scripts/build-static in the build context: %v\n%s", err, out)
		}
	})
	if static.err != nil {
		t.Fatal(static.err)
	}
	return static.bin, static.context
}

// copyBuildContext copies the files under src that .dockerignore lets
// into a docker build to dst, keeping their modes.
func copyBuildContext(src, dst string) error {
	patterns, err := dockerignore(filepath.Join(src, ".dockerignore"))
	if err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && ignored(patterns, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		}
		return nil // docker would send a symlink; the clone has none
	})
}

// dockerignore reads the patterns of a .dockerignore file: one a line,
// "#" starts a comment. Exceptions ("!pattern") are not supported here:
// the test fails rather than build from the wrong files.
func dockerignore(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var patterns []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "!"):
			return nil, fmt.Errorf("%s: exception %q: this test cannot follow it", file, line)
		}
		patterns = append(patterns, strings.TrimPrefix(path.Clean(line), "/"))
	}
	return patterns, s.Err()
}

// ignored reports whether the path rel (slash-separated, relative to the
// context's root) matches a pattern, as docker matches them: a pattern
// that matches a folder takes in all that is under it, and a "**" part
// stands for any number of folders, none too.
func ignored(patterns []string, rel string) bool {
	for _, p := range patterns {
		if matchParts(strings.Split(p, "/"), strings.Split(rel, "/")) {
			return true
		}
	}
	return false
}

// matchParts matches a pattern's parts against a path's first parts.
func matchParts(pattern, name []string) bool {
	if len(pattern) == 0 {
		return true // a match of a folder takes in what is under it
	}
	if pattern[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if matchParts(pattern[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	ok, err := path.Match(pattern[0], name[0])
	return err == nil && ok && matchParts(pattern[1:], name[1:])
}

func TestDockerignoreMatching(t *testing.T) {
	patterns := []string{".git", "**/testdata", "**/*_test.go", "*.md", "distlock"}
	for _, tc := range []struct {
		path    string
		ignored bool
	}{
		{".git", true},
		{".git/config", true},
		{".gitignore", false},
		{"testdata/script/pid1.txtar", true},
		{"internal/bench/testdata", true},
		{"main_test.go", true},
		{"lock/lock_test.go", true},
		{"lock/lock.go", false},
		{"README.md", true},
		{"docs/design.md", false},
		{"distlock", true},
		{"internal/distlock", false},
		{"go.mod", false},
	} {
		if got := ignored(patterns, tc.path); got != tc.ignored {
			t.Errorf("ignored(%q) = %v, want %v", tc.path, got, tc.ignored)
		}
	}
}

// stampedVersion is the version the static build is given, as a release
// build gives its tag.
const stampedVersion = "v0.0.0-stamped"

// TestStaticBinary checks the binary that scripts/build-static makes
// (and that the image and the releases ship): static, stripped, free of
// build paths; and that .goreleaser.yaml builds it with the same flags.
func TestStaticBinary(t *testing.T) {
	bin, buildDir := staticBinary(t)

	// A release's version, given at the build, is what --version says.
	if out, err := exec.Command(bin, "--version").Output(); err != nil || !strings.HasPrefix(string(out), "distlock "+stampedVersion+"\n") {
		t.Errorf("--version of a build with DISTLOCK_VERSION=%s: %q, %v", stampedVersion, out, err)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("the binary has a %s section: not built with -ldflags=-s -w", s.Name)
		}
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(buildDir)) {
		t.Errorf("the binary holds the folder it was built in (%s): not built with -trimpath", buildDir)
	}

	settings := buildSettings(t, bin)
	// (Go leaves -ldflags out of a -trimpath build's settings: the
	// sections above show them.)
	for key, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "-tags": "grpcnotrace"} {
		if settings[key] != want {
			t.Errorf("build setting %s = %q, want %q", key, settings[key], want)
		}
	}

	// GoReleaser cannot run scripts/build-static; its build must say the same.
	var cfg struct {
		Builds []struct {
			ID      string
			Goos    []string
			Goarch  []string
			Env     []string
			Flags   []string
			Ldflags []string
		}
	}
	readYAML(t, filepath.Join(repo, ".goreleaser.yaml"), &cfg)
	if len(cfg.Builds) != 1 {
		t.Fatalf(".goreleaser.yaml has %d builds, want 1", len(cfg.Builds))
	}
	build := cfg.Builds[0]
	if !slices.Contains(build.Env, "CGO_ENABLED="+settings["CGO_ENABLED"]) {
		t.Errorf(".goreleaser.yaml: build env %q lacks CGO_ENABLED=%s", build.Env, settings["CGO_ENABLED"])
	}
	if slices.Contains(build.Flags, "-trimpath") != (settings["-trimpath"] == "true") {
		t.Errorf(".goreleaser.yaml: build flags %q, but scripts/build-static has -trimpath=%s", build.Flags, settings["-trimpath"])
	}
	if !slices.Contains(build.Flags, "-tags="+settings["-tags"]) {
		t.Errorf(".goreleaser.yaml: build flags %q, but scripts/build-static has -tags=%s", build.Flags, settings["-tags"])
	}
	// The version stamped in is a release's own; the rest must agree.
	if got := strings.Join(build.Ldflags, " "); got != "-s -w -X main.version={{ .Tag }}" {
		t.Errorf(".goreleaser.yaml: ldflags %q, want scripts/build-static's -s -w, and the tag as main.version", got)
	}
	if fmt.Sprint(build.Goos, build.Goarch) != "[linux] [amd64 arm64]" {
		t.Errorf(".goreleaser.yaml: builds for %v %v, want linux, amd64 and arm64", build.Goos, build.Goarch)
	}
}

// buildSettings is the go build settings recorded in a binary.
func buildSettings(t *testing.T, bin string) map[string]string {
	t.Helper()
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if info.Main.Path != "github.com/tinx/distlock" {
		t.Fatalf("%s is %s, not distlock", bin, info.Main.Path)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	return settings
}

// instruction is one instruction of a Dockerfile, its continuation lines
// joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
}

// readDockerfile reads the repository's Dockerfile.
func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if more, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	return out
}

// image is what the Dockerfile's final stage makes, for a test to run.
type image struct {
	files      map[string]string // path in the image -> the file here
	user       string            // USER, "" for root
	entrypoint []string
}

// dockerImage reads the image that the Dockerfile builds: its build stage
// must make /out/distlock with scripts/build-static (that binary stands in
// for it) and its final stage must be FROM scratch plus COPY --from=build
// (files of the golang image other than /out/distlock are taken from
// this machine, also Debian).
func dockerImage(t *testing.T) image {
	t.Helper()
	bin, _ := staticBinary(t)
	instructions := readDockerfile(t)
	last := -1
	for i, in := range instructions {
		if in.cmd == "FROM" {
			last = i
		}
	}
	if last < 0 || instructions[last].args != "scratch" {
		t.Fatalf("Dockerfile: the final stage is not FROM scratch, which this test expects")
	}
	built := false
	for _, in := range instructions[:last] {
		if in.cmd == "RUN" && strings.Contains(in.args, "scripts/build-static /out/distlock") {
			built = true
		}
	}
	if !built {
		t.Fatalf("Dockerfile: no RUN of scripts/build-static /out/distlock before the final stage")
	}
	img := image{files: map[string]string{}}
	for _, in := range instructions[last+1:] {
		switch in.cmd {
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) != 3 || f[0] != "--from=build" {
				t.Fatalf("Dockerfile: COPY %s: this test knows only COPY --from=build SRC DST", in.args)
			}
			src := f[1]
			if src == "/out/distlock" {
				src = bin
			}
			img.files[f[2]] = src
		case "USER":
			img.user = in.args
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &img.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s: not the exec form: %v", in.args, err)
			}
		default:
			t.Fatalf("Dockerfile: %s in the final stage: this test does not know it", in.cmd)
		}
	}
	if img.files["/distlock"] != bin || len(img.entrypoint) == 0 || img.entrypoint[0] != "/distlock" {
		t.Fatalf("Dockerfile: the image's entrypoint is %q and its /distlock is %q, want /distlock from the build stage", img.entrypoint, img.files["/distlock"])
	}
	return img
}

// rootFS lays out the image's files under a new folder, with what a
// container runtime adds that distlock uses (/proc, mounted by unshare;
// /dev/null), and nothing else: no /bin/sh, no /etc/passwd, no /tmp.
func (img image) rootFS(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil { // the image's user must get in
		t.Fatal(err)
	}
	for dst, src := range img.files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("the image's %s: %v", dst, err)
		}
		info, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"proc", "dev"} {
		if err := os.Mkdir(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	null := filepath.Join(root, "dev", "null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("cannot make %s for the image's file tree: %v", null, err)
	}
	if err := os.Chmod(null, 0o666); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return root
}

// TestImageEntrypoint runs the image as docker would, near enough: its
// file tree as the root, its entrypoint as PID 1 of a PID namespace, as
// its USER, with etcd reached over the network. First as the entrypoint
// of a job (here distlock itself: the image has no other program), then
// as a one-off --status.
func TestImageEntrypoint(t *testing.T) {
	needPIDNamespace(t)
	img := dockerImage(t)
	root := img.rootFS(t)
	realm := etcdtest.Realm(t, "/test/")
	unshare := []string{"--pid", "--fork", "--kill-child", "--mount-proc", "--root=" + root}
	if img.user != "" {
		uid, gid, _ := strings.Cut(img.user, ":")
		unshare = append(unshare, "--setuid="+uid)
		if gid != "" {
			unshare = append(unshare, "--setgid="+gid)
		}
	}
	// What docker sets, and the settings a user passes with -e.
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"DISTLOCK_ENDPOINTS=" + testEtcd.Endpoint(),
		"DISTLOCK_PREFIX=" + realm,
	}
	// docker run IMAGE ARGS...
	dockerRun := func(args ...string) *exec.Cmd {
		cmd := exec.Command("unshare", slices.Concat(unshare, img.entrypoint, args)...)
		cmd.Env = env
		return cmd
	}

	// With no /etc/passwd, the holder's user is its number.
	uid, _, _ := strings.Cut(img.user, ":")
	if uid == "" {
		uid = "0"
	}
	// The job: distlock again (the image has no other program), which
	// waits for a lock the test holds, then shows the job's lock. While it
	// waits, the entrypoint's watchdog runs; with no /bin/sh in the image,
	// it is distlock itself.
	gate := holdLock(t, realm, "gate")
	wait := start(t, dockerRun("--lock-name=job", "--",
		"/distlock", "--lock-name=gate", "--", "/distlock", "--lock-name=job", "--status"))
	poll.For(t, "the entrypoint's watchdog", time.Minute, func() bool { return watchdogIn(root) })
	gate()
	out, status := wait()
	want := fmt.Sprintf(`lock "job" is held by host %s, pid 1, user %s, since `, hostname(t), uid)
	if status != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("job under the image's entrypoint: exit status %d, output:\n%s\nwant status 0 and a line starting %q", status, out, want)
	}

	out, status = runFor(t, dockerRun("--lock-name=job", "--status"))
	if want := `lock "job" is free` + "\n"; status != 1 || out != want {
		t.Errorf("one-off --status: exit status %d, output:\n%s\nwant status 1 and %q", status, out, want)
	}
	noKeysLeft(t, realm)
}

// holdLock takes lock name in realm with etcd's own lock recipe (which
// distlock's keys are compatible with) and returns the function that
// lets go of it.
func holdLock(t *testing.T, realm, name string) (release func()) {
	t.Helper()
	client, err := testEtcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	s, err := concurrency.NewSession(client, concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := concurrency.NewMutex(s, strings.TrimSuffix(lock.Prefix(realm, name), "/")).Lock(ctx); err != nil {
		t.Fatal(err)
	}
	return func() { s.Close() }
}

// watchdogIn reports whether a process whose root is root runs as
// distlock's watchdog started from /proc/self/exe: "/distlock (watchdog)".
func watchdogIn(root string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if r, err := os.Readlink(p + "/root"); err != nil || r != root {
			continue
		}
		if cmdline, err := os.ReadFile(p + "/cmdline"); err == nil && string(cmdline) == "/distlock\x00"+watchdog.Arg+"\x00" {
			return true
		}
	}
	return false
}

// TestPID1 runs the static binary as PID 1 of a PID namespace, as in a
// container whose entrypoint it is: it reaps the orphans that end in it,
// and exits with the command's status, a signal's 128+N too.
func TestPID1(t *testing.T) {
	needPIDNamespace(t)
	bin, _ := staticBinary(t)
	realm := etcdtest.Realm(t, "/test/")
	run := func(script string) (string, int) {
		t.Helper()
		cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
			bin, "--endpoints="+testEtcd.Endpoint(), "--prefix="+realm, "--lock-name=init", "--", "sh", "-c", script)
		cmd.Env = append(os.Environ(), "DISTLOCK_CONFIG=/dev/null")
		return runFor(t, cmd)
	}

	out, status := run(reaptest.ZombieCheck)
	if status != 3 || !strings.Contains(out, "pid of distlock: 1\n") || !strings.Contains(out, "zombies: 0\n") {
		t.Errorf("zombie check: exit status %d, output:\n%s\nwant status 3, distlock as pid 1 and no zombies", status, out)
	}
	out, status = run("kill -KILL $$")
	if status != 137 {
		t.Errorf("command killed by SIGKILL: exit status %d, want 137; output:\n%s", status, out)
	}
	noKeysLeft(t, realm)
}

// needPIDNamespace skips the test where unshare cannot make a PID
// namespace (not root, or a container that forbids it).
func needPIDNamespace(t *testing.T) {
	t.Helper()
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("cannot create a PID namespace here: %v", err)
	}
}

// runFor runs cmd, a minute at most, and returns its output (stdout and
// stderr) and exit status.
func runFor(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	return start(t, cmd)()
}

// start starts cmd, to run a minute at most, and returns the function
// that waits for it and returns its output (stdout and stderr) and exit
// status. Under unshare --kill-child, killing unshare kills the PID
// namespace's init, and so all in the namespace.
func start(t *testing.T, cmd *exec.Cmd) (wait func() (string, int)) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Whatever is left holds the output pipe open: give up on it too.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(time.Minute, func() { timedOut.Store(true); _ = cmd.Process.Kill() })
	t.Cleanup(func() { timer.Stop(); _ = cmd.Process.Kill() })
	return func() (string, int) {
		t.Helper()
		err := cmd.Wait()
		timer.Stop()
		var exit *exec.ExitError
		if timedOut.Load() || (err != nil && !errors.As(err, &exit)) {
			t.Fatalf("%s: %v (timed out: %v); output:\n%s", cmd, err, timedOut.Load(), out.String())
		}
		return out.String(), cmd.ProcessState.ExitCode()
	}
}

// noKeysLeft fails the test if anything is left under realm in etcd.
func noKeysLeft(t *testing.T, realm string) {
	t.Helper()
	client, err := testEtcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, realm, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if !strings.Contains(string(kv.Key), "!history:") { // records of the runs, kept by design
			t.Errorf("key left in etcd: %s", kv.Key)
		}
	}
}

// hostname is this machine's name, which a PID namespace shares.
func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// readYAML decodes a YAML file into v, ignoring fields v does not have.
func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil && err != io.EOF {
		t.Fatalf("%s: %v", file, err)
	}
}
