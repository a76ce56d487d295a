package main

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
	"github.com/tinx/distlock/lock"
	"github.com/tinx/distlock/signals"
)

// testEtcd is the one etcd every test in this package talks to.
var testEtcd *etcdtest.Cluster

func TestMain(m *testing.M) {
	testscript.Main(withEtcd{m}, map[string]func(){
		"distlock":             main,
		"distlock-late-signal": lateSignalMain,
		"recordexit":           recordExitMain,
		"etcd-member":          etcdtest.MemberMain,
	})
}

// withEtcd starts etcd for the test run only, not when the test binary
// runs as one of the commands above.
type withEtcd struct{ m *testing.M }

func (w withEtcd) Run() int {
	return etcdtest.Run(func(c *etcdtest.Cluster) int {
		testEtcd = c
		return w.m.Run()
	})
}

func TestScripts(t *testing.T) {
	client, err := testEtcd.Client()
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
			env.Setenv("DISTLOCK_ENDPOINTS", testEtcd.Endpoint())
			env.Setenv("DISTLOCK_PREFIX", realm)
			env.Setenv("REALM", realm)
			env.Setenv("ETCD", testEtcd.Endpoint())
			env.Setenv("DISTLOCK_CONFIG", "")
			env.Setenv("LONG", strings.Repeat("x", 256))
			env.Setenv("ORPHAN_CHECK", orphanCheck)
			env.Setenv("ZOMBIE_CHECK", zombieCheck)
			env.Setenv("TAB", "a\tb")
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

// zombieCheck, run under distlock as PID 1, leaves orphans that exit, waits,
// counts zombies in the PID namespace, and exits 3.
const zombieCheck = `
echo "pid of distlock: $PPID"
sh -c 'sleep 0.1 & sleep 0.1 & sleep 0.2 &'
sleep 1
n=0
for f in /proc/[0-9]*/stat; do
  read -r pid comm state rest < $f 2>/dev/null || continue
  [ "$state" = Z ] && n=$((n+1))
done
echo "zombies: $n"
exit 3`

// scriptCmds are what scripts cannot say with testscript's own commands.
func scriptCmds(client *clientv3.Client) map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	mutexes := &sync.Map{} // script realm + lock name -> *concurrency.Mutex
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		// exits N PROG [ARG...]: run PROG and insist on exit status N.
		"exits": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) < 2 {
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
		},
		// signal SIG PIDFILE: send SIG to the process whose pid is in PIDFILE.
		"signal": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 2 {
				ts.Fatalf("usage: signal SIG PIDFILE")
			}
			sig, err := signals.Parse(args[0])
			ts.Check(err)
			ts.Check(syscall.Kill(readPID(ts, args[1]), sig))
		},
		// waitfile FILE...: wait until each file exists and is not empty.
		"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
			for _, f := range args {
				waitFor(ts, "file "+f, func() bool {
					st, err := os.Stat(ts.MkAbs(f))
					return err == nil && st.Size() > 0
				})
			}
		},
		// waitlines N FILE: wait until FILE has N lines or more.
		"waitlines": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 2 {
				ts.Fatalf("usage: waitlines N FILE")
			}
			n, err := strconv.Atoi(args[0])
			ts.Check(err)
			waitFor(ts, fmt.Sprintf("%d lines in %s", n, args[1]), func() bool {
				b, _ := os.ReadFile(ts.MkAbs(args[1]))
				return strings.Count(string(b), "\n") >= n
			})
		},
		// waitdead PIDFILE...: wait until each process is gone; alive
		// PIDFILE: it still runs.
		"waitdead": func(ts *testscript.TestScript, neg bool, args []string) {
			for _, f := range args {
				pid := readPID(ts, f)
				waitFor(ts, "process "+f+" to end", func() bool { return !alive(pid) })
			}
		},
		"alive": func(ts *testscript.TestScript, neg bool, args []string) {
			for _, f := range args {
				if alive(readPID(ts, f)) == neg {
					ts.Fatalf("process %s alive: %v", f, !neg)
				}
			}
		},
		// waitkeys NAME N: wait until lock NAME has N keys (holder and
		// waiters) in this script's realm.
		"waitkeys": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 2 {
				ts.Fatalf("usage: waitkeys NAME N")
			}
			n, err := strconv.Atoi(args[1])
			ts.Check(err)
			waitFor(ts, fmt.Sprintf("%d keys for lock %q", n, args[0]), func() bool {
				entries, err := lock.Entries(context.Background(), client, ts.Getenv("REALM"), args[0])
				return err == nil && len(entries) == n
			})
		},
		// etcdkeys: print every key in this script's realm, relative to
		// it, with "leased" or "unleased" and the value.
		"etcdkeys": func(ts *testscript.TestScript, neg bool, args []string) {
			out := ts.Stdout() // resets stdout even when there are no keys
			realm := ts.Getenv("REALM")
			resp, err := client.Get(context.Background(), realm, clientv3.WithPrefix(),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
			ts.Check(err)
			for _, kv := range resp.Kvs {
				leased := "unleased"
				if kv.Lease != 0 {
					leased = "leased"
				}
				fmt.Fprintf(out, "%s %s %s\n", strings.TrimPrefix(string(kv.Key), realm), leased, kv.Value)
			}
		},
		// etcdmutex lock|trylock|unlock NAME: etcd's own lock recipe
		// (what etcdctl lock runs) on the same key prefix as distlock.
		"etcdmutex": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 2 {
				ts.Fatalf("usage: etcdmutex lock|trylock|unlock NAME")
			}
			id := ts.Getenv("REALM") + args[1]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			switch args[0] {
			case "lock", "trylock":
				s, err := concurrency.NewSession(client, concurrency.WithTTL(10))
				ts.Check(err)
				m := concurrency.NewMutex(s, strings.TrimSuffix(lock.Prefix(ts.Getenv("REALM"), args[1]), "/"))
				if args[0] == "lock" {
					err = m.Lock(ctx)
				} else {
					err = m.TryLock(ctx)
				}
				if err != nil {
					s.Close()
					if !neg {
						ts.Fatalf("etcdmutex %s: %v", args[0], err)
					}
					return
				}
				if neg {
					ts.Fatalf("etcdmutex %s succeeded", args[0])
				}
				mutexes.Store(id, s)
				ts.Defer(func() { s.Close() })
			case "unlock":
				v, ok := mutexes.LoadAndDelete(id)
				if !ok {
					ts.Fatalf("etcdmutex: %s not locked here", args[1])
				}
				ts.Check(v.(*concurrency.Session).Close())
			default:
				ts.Fatalf("usage: etcdmutex lock|trylock|unlock NAME")
			}
		},
		// etcdrevoke NAME: revoke the lease of the lock's holder, as an
		// operator with etcdctl could.
		"etcdrevoke": func(ts *testscript.TestScript, neg bool, args []string) {
			entries, err := lock.Entries(context.Background(), client, ts.Getenv("REALM"), args[0])
			ts.Check(err)
			if len(entries) == 0 {
				ts.Fatalf("lock %s has no holder", args[0])
			}
			_, err = client.Revoke(context.Background(), clientv3.LeaseID(entries[0].Lease))
			ts.Check(err)
		},
		// etcdput KEY VALUE: write a raw key (relative to the realm).
		"etcdput": func(ts *testscript.TestScript, neg bool, args []string) {
			_, err := client.Put(context.Background(), ts.Getenv("REALM")+args[0], args[1])
			ts.Check(err)
		},
	}
}

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

// waitFor polls cond until it holds, failing the script after a deadline.
func waitFor(ts *testscript.TestScript, what string, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			ts.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// lateSignalMain is distlock with a SIGTERM that arrives the moment the
// lock has been taken, before anything else happens: the worst moment for
// a signal that must keep the command from starting.
func lateSignalMain() {
	acquireLock = func(ctx context.Context, client *clientv3.Client, req lock.Request) (*lock.Holder, error) {
		h, err := lock.Acquire(ctx, client, req)
		if err == nil {
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			<-ctx.Done() // distlock's signal watcher has taken it
		}
		return h, err
	}
	main()
}
