package blackbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/tinx/distlock/internal/etcdtest"
	"github.com/tinx/distlock/internal/poll"
	"github.com/tinx/distlock/internal/reaptest"
	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/signals"
)

// sharedEtcd is the one etcd the tests of this package talk to, started
// by the first that needs it (testEtcd).
var sharedEtcd = etcdtest.Shared{Process: true}

// testEtcd is the package's etcd, for a test that needs one; under -short
// it skips the test.
func testEtcd(t testing.TB) *etcdtest.Cluster {
	t.Helper()
	readSources(t)
	return sharedEtcd.Get(t)
}

func TestMain(m *testing.M) {
	testscript.Main(withBinaries{m}, map[string]func(){
		"recordexit":  recordExitMain,
		"become-root": becomeRootMain,
	})
}

// withBinaries builds distlock for the tests and puts it on PATH, with
// the etcd member program (internal/devetcd, without the race detector:
// etcd at its own speed) that the package's clusters run, and stops the
// package's etcd after the tests. None of it happens when
// the test binary runs as one of the commands above.
type withBinaries struct{ m *testing.M }

func (w withBinaries) Run() int {
	etcdtest.AtOnce(testsAtOnce)
	dir, err := os.MkdirTemp("", "distlock-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildDistlock(dir, testing.Short()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	noPauseAtExit()
	if !testing.Short() {
		sharedEtcd.Member = filepath.Join(dir, "etcd-member") // built above
	}
	defer sharedEtcd.Close()
	return w.m.Run()
}

// noPauseAtExit: a program built with -race sleeps a second before it
// exits, for reports of other threads to come out (GORACE's
// atexit_sleep_ms, 1000 by default). The tests run distlock hundreds of
// times, and wait for it to exit, so that second was most of the
// package's time; the distlock they start, and the test binary run as a
// command, exit at once, unless GORACE says otherwise. A race is still
// reported where it happens.
func noPauseAtExit() {
	if gorace := os.Getenv("GORACE"); !strings.Contains(gorace, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(gorace+" atexit_sleep_ms=0"))
	}
}

// testsAtOnce is how many of this package's parallel tests run at once
// unless -parallel says otherwise. They spend most of their time waiting
// (for a lease to expire, a kill-after, a member to come back), not
// computing. 6 was once too many beside the torture and lock packages: a
// login to etcd with auth on (bcrypt, under the race detector) missed its
// 5 s; the test etcds hash at bcrypt's least cost now, and 6 took the
// package from 195 s to 165 s in the whole run. Every top-level test but
// the terminal ones is parallel, so that no test waits for another to end
// before it starts (docs/testing.md has the times).
const testsAtOnce = 6

func TestScripts(t *testing.T) {
	t.Parallel()
	client, err := testEtcd(t).Client()
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Each script run gets a realm of its own, so scripts run in
			// parallel, and again, without seeing each other's locks.
			realm := "/test/" + filepath.Base(filepath.Dir(env.WorkDir)) + "/" + filepath.Base(env.WorkDir) + "/"
			env.Setenv("DISTLOCK_ENDPOINTS", testEtcd(t).Endpoint())
			env.Setenv("DISTLOCK_PREFIX", realm)
			env.Setenv("REALM", realm)
			env.Setenv("ETCD", testEtcd(t).Endpoint())
			env.Setenv("ETCD_HOSTPORT", strings.TrimPrefix(testEtcd(t).Endpoint(), "http://"))
			env.Setenv("DISTLOCK_CONFIG", "/dev/null")
			env.Setenv("LONG", strings.Repeat("x", 256))
			env.Setenv("ORPHAN_CHECK", orphanCheck)
			env.Setenv("ZOMBIE_CHECK", reaptest.ZombieCheck)
			env.Setenv("TAB", "a\tb")
			env.Setenv("COMBINING_ACUTE", "\u0301")
			return nil
		},
		Cmds: scriptCmds(client),
		Condition: func(cond string) (bool, error) {
			if cond == "pidns" {
				return exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run() == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// orphanCheck, run under distlock, orphans a process and checks that
// distlock adopts it and reaps it once it exits.
const orphanCheck = `
sh -c 'sleep 0.3 & echo $! > orphan.pid'
p=$(cat orphan.pid)
while read -r k v; do [ "$k" = PPid: ] && ppid=$v; done < /proc/$p/status
[ "$ppid" = "$PPID" ] || { echo "orphan $p went to $ppid, not distlock $PPID"; exit 1; }
i=0; while [ -e /proc/$p ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
[ ! -e /proc/$p ] || { echo "orphan $p not reaped: $(cat /proc/$p/stat)"; exit 1; }
echo reaped`

// scriptCmds are what scripts cannot say with testscript's own commands.
func scriptCmds(client *clientv3.Client) map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	etcd := &scriptEtcd{client: client}
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"exits":      cmdExits,
		"signal":     cmdSignal,
		"waitfile":   cmdWaitfile,
		"waitlines":  cmdWaitlines,
		"waitdead":   cmdWaitdead,
		"alive":      cmdAlive,
		"waitkeys":   etcd.cmdWaitkeys,
		"etcdkeys":   etcd.cmdEtcdkeys,
		"etcdmutex":  etcd.cmdEtcdmutex,
		"etcdrevoke": etcd.cmdEtcdrevoke,
		"etcdput":    etcd.cmdEtcdput,
	}
}

// scriptWait is how long a script command waits for what it waits for.
const scriptWait = 30 * time.Second

// cmdExits is "exits STATUS PROG [ARG...]": run PROG and insist on exit
// status STATUS.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits STATUS PROG [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if ee, ok := err.(*exec.ExitError); ok {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%v", err)
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

// cmdSignal is "signal SIG PIDFILE": send SIG (a name or a number) to the
// process whose pid is in PIDFILE.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: signal SIG PIDFILE")
	}
	sig, err := signals.Parse(args[0])
	ts.Check(err)
	ts.Check(syscall.Kill(readPID(ts, args[1]), sig))
}

// cmdWaitfile is "waitfile FILE...": wait until each file exists and is
// not empty.
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: waitfile FILE...")
	}
	for _, f := range args {
		poll.For(ts, "file "+f, scriptWait, func() bool {
			st, err := os.Stat(ts.MkAbs(f))
			return err == nil && st.Size() > 0
		})
	}
}

// cmdWaitlines is "waitlines N FILE": wait until FILE has N lines or more.
func cmdWaitlines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitlines N FILE")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	poll.For(ts, fmt.Sprintf("%d lines in %s", n, args[1]), scriptWait, func() bool {
		b, _ := os.ReadFile(ts.MkAbs(args[1]))
		return strings.Count(string(b), "\n") >= n
	})
}

// cmdWaitdead is "waitdead PIDFILE...": wait until each process has ended
// (a zombie counts as ended).
func cmdWaitdead(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: waitdead PIDFILE...")
	}
	for _, f := range args {
		pid := readPID(ts, f)
		poll.For(ts, "process "+f+" to end", scriptWait, func() bool { return !alive(pid) })
	}
}

// cmdAlive is "[!] alive PIDFILE...": each process still runs (with !:
// none does), now, without waiting.
func cmdAlive(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: [!] alive PIDFILE...")
	}
	for _, f := range args {
		if alive(readPID(ts, f)) == neg {
			ts.Fatalf("process %s alive: %v", f, !neg)
		}
	}
}

// scriptEtcd holds what the script commands that talk to etcd share: the
// test etcd's client and the sessions of the locks etcdmutex holds.
type scriptEtcd struct {
	client   *clientv3.Client
	sessions sync.Map // script realm + lock name -> *concurrency.Session
}

// cmdWaitkeys is "waitkeys NAME N": wait until lock NAME has N keys
// (holder and waiters) in this script's realm.
func (e *scriptEtcd) cmdWaitkeys(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitkeys NAME N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	poll.For(ts, fmt.Sprintf("%d keys for lock %q", n, args[0]), scriptWait, func() bool {
		entries, err := lock.Entries(context.Background(), e.client, ts.Getenv("REALM"), args[0])
		return err == nil && len(entries) == n
	})
}

// cmdEtcdkeys is "etcdkeys [-history]": print every key in this script's
// realm, relative to it, with "leased" or "unleased" and the value, oldest
// first; but the history records (distlock --history's), which outlive
// every run by design: -history prints those alone.
func (e *scriptEtcd) cmdEtcdkeys(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 || len(args) == 1 && args[0] != "-history" {
		ts.Fatalf("usage: etcdkeys [-history]")
	}
	history := len(args) == 1
	out := ts.Stdout() // resets stdout even when there are no keys
	realm := ts.Getenv("REALM")
	resp, err := e.client.Get(context.Background(), realm, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	ts.Check(err)
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), "!history:") != history {
			continue
		}
		leased := "unleased"
		if kv.Lease != 0 {
			leased = "leased"
		}
		fmt.Fprintf(out, "%s %s %s\n", strings.TrimPrefix(string(kv.Key), realm), leased, kv.Value)
	}
}

// cmdEtcdmutex is "[!] etcdmutex lock|trylock|unlock NAME": etcd's own
// lock recipe (what etcdctl lock runs) on the same key prefix as distlock;
// with !, lock and trylock must fail.
func (e *scriptEtcd) cmdEtcdmutex(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: [!] etcdmutex lock|trylock|unlock NAME")
	}
	op, name, realm := args[0], args[1], ts.Getenv("REALM")
	switch op {
	case "lock", "trylock":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := concurrency.NewSession(e.client, concurrency.WithTTL(10))
		ts.Check(err)
		m := concurrency.NewMutex(s, strings.TrimSuffix(lock.Prefix(realm, name), "/"))
		if op == "lock" {
			err = m.Lock(ctx)
		} else {
			err = m.TryLock(ctx)
		}
		if err != nil {
			s.Close()
			if !neg {
				ts.Fatalf("etcdmutex %s: %v", op, err)
			}
			return
		}
		if neg {
			ts.Fatalf("etcdmutex %s succeeded", op)
		}
		e.sessions.Store(realm+name, s)
		ts.Defer(func() { s.Close() })
	case "unlock":
		v, ok := e.sessions.LoadAndDelete(realm + name)
		if !ok {
			ts.Fatalf("etcdmutex: %s not locked here", name)
		}
		ts.Check(v.(*concurrency.Session).Close())
	default:
		ts.Fatalf("usage: [!] etcdmutex lock|trylock|unlock NAME")
	}
}

// cmdEtcdrevoke is "etcdrevoke NAME": revoke the lease of the holder of
// lock NAME, as an operator with etcdctl could.
func (e *scriptEtcd) cmdEtcdrevoke(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: etcdrevoke NAME")
	}
	entries, err := lock.Entries(context.Background(), e.client, ts.Getenv("REALM"), args[0])
	ts.Check(err)
	if len(entries) == 0 {
		ts.Fatalf("lock %s has no holder", args[0])
	}
	_, err = e.client.Revoke(context.Background(), clientv3.LeaseID(entries[0].Lease))
	ts.Check(err)
}

// cmdEtcdput is "etcdput KEY VALUE": write a raw key, relative to this
// script's realm.
func (e *scriptEtcd) cmdEtcdput(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: etcdput KEY VALUE")
	}
	_, err := e.client.Put(context.Background(), ts.Getenv("REALM")+args[0], args[1])
	ts.Check(err)
}

// readPID reads the pid in a script's file.
func readPID(ts *testscript.TestScript, file string) int {
	pid, err := strconv.Atoi(strings.TrimSpace(ts.ReadFile(file)))
	if err != nil {
		ts.Fatalf("pid file %s: %v", file, err)
	}
	return pid
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	state := procState(strconv.Itoa(pid))
	return state != "" && state != "Z"
}

// procStat is the fields of /proc/PID/stat after the command name: state,
// ppid, pgrp, ...; nil if the process is gone.
func procStat(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil
	}
	// The command name may contain anything, ")" too.
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
}

// procState is the state letter of process pid (R, S, T, ...), or "".
func procState(pid string) string {
	if f := procStat(pid); len(f) > 0 {
		return f[0]
	}
	return ""
}

// procPgrp is the process group of process pid, or 0.
func procPgrp(pid string) int {
	if f := procStat(pid); len(f) > 2 {
		n, _ := strconv.Atoi(f[2])
		return n
	}
	return 0
}

// recordExitMain is the command "recordexit FILE PROG [ARG...]": it runs
// PROG, writes PROG's pid to FILE.pid, and when PROG ends writes its exit
// status (128+N for signal N) to FILE and exits with it. Scripts use it
// to learn the exact status of a program run in the background.
func recordExitMain() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: recordexit FILE PROG [ARG...]")
		os.Exit(2)
	}
	file := os.Args[1]
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Signals are for PROG: catch them here (caught, unlike ignored,
	// signals are not passed on to PROG as ignored).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "recordexit:", err)
		os.Exit(2)
	}
	writeFile(file+".pid", strconv.Itoa(cmd.Process.Pid))
	_ = cmd.Wait()
	status := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		status = 128 + int(ws.Signal())
	}
	writeFile(file, strconv.Itoa(status))
	os.Exit(status)
}

// writeFile writes atomically, so a waiter never sees half a file.
func writeFile(name, content string) {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		panic(err)
	}
}
