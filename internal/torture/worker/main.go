// Command worker is what the torture test (internal/torture) runs under
// the lock:
//
//	worker LOG RUN LOCK MILLISECONDS ignore-term|obey-term [shared|exclusive]
//
// It appends "enter" (with its fencing token), a "beat" every few
// milliseconds and "exit" to the shared log, each line stamped with the
// system's monotonic clock and written in one write to a file opened with
// O_APPEND, so that lines of different workers never mix. Given the mode
// its distlock holds the lock in (--shared or not), it ends every line
// with it; a line without one is an exclusive holder's. A worker that
// ignores SIGTERM has to be killed by distlock's SIGKILL. It is built
// without the race detector, so that it starts as fast as a real command.
//
// LOCK names a set of locks as their names joined by "+", in the set's
// order (lock.SetOrder); the token in its records is then every lock's
// token, in the same order, joined by ",". See tokens for what it checks
// of its environment before it enters. LOCK "-" is a lock of another
// tool (etcdctl lock): its records have no token.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tinx/distlock/internal/torture"
)

// heartbeat is how often a worker says it is alive.
const heartbeat = 5 * time.Millisecond

func main() {
	mode := ""
	if len(os.Args) == 7 {
		mode = " " + os.Args[6]
	}
	if len(os.Args) != 6 && len(os.Args) != 7 || mode != "" && mode != " shared" && mode != " exclusive" {
		fmt.Fprintln(os.Stderr, "usage: worker LOG RUN LOCK MILLISECONDS ignore-term|obey-term [shared|exclusive]")
		os.Exit(2)
	}
	logPath, run, lockName := os.Args[1], os.Args[2], os.Args[3]
	ms, err := strconv.Atoi(os.Args[4])
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	if os.Args[5] == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	}
	// A wrong environment is distlock's fault: the worker says so and
	// exits 3 without entering, and the checker finds a status that
	// fits nothing.
	token, err := tokens(lockName, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(3)
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	record := func(kind string) {
		line := fmt.Sprintf("%d %s %s %s %s%s\n", torture.Mono(), run, lockName, kind, token, mode)
		if _, err := f.Write([]byte(line)); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(2)
		}
	}
	record("enter")
	end := time.Now().Add(time.Duration(ms) * time.Millisecond)
	tick := time.NewTicker(heartbeat)
	for time.Now().Before(end) {
		<-tick.C
		record("beat")
	}
	record("exit")
	os.Exit(0)
}
