// Package watchdog is the process that kills the command's process group if
// distlock dies. The parent-death signal reaches only the command itself: if
// distlock is killed (SIGKILL, the OOM killer), what the command started in
// its group would run on outside the lock. The watchdog is a second process,
// in a session of its own, holding the read end of a pipe whose write end
// only distlock holds: end of file without distlock's all-clear means
// distlock died, and the watchdog kills the whole group.
//
// distlock starts /bin/sh for it, with a few lines that do just that
// (supervise's shellWatchdog): a shell starts in a quarter of the time.
// Where there is no shell (a container built from scratch), it starts
// itself as /proc/self/exe with Arg and Env set, and this package is the
// watchdog. It does its work in this package's init, which Go runs before
// that of the packages that make up the rest of distlock (gRPC, protobuf,
// etcd's client): this package imports only the standard library's basics,
// and Go initialises packages in the order of their import paths once their
// imports are done. So even then a watchdog costs a process start, not
// distlock's whole start.
package watchdog

import (
	"bufio"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Env marks a distlock process started as a watchdog.
const Env = "DISTLOCK_INTERNAL_WATCHDOG"

// Arg is the watchdog's only argument, and how ps shows it.
const Arg = "(watchdog)"

// Arg0 is the name a watchdog that is not distlock itself (a shell) goes
// by in ps.
const Arg0 = "distlock " + Arg

// AllClear is what distlock writes once the group is gone.
const AllClear = 'k'

// Fd is the watchdog's end of the pipe.
const Fd = 3

func init() {
	// Both the marker and the argument: a stray variable in someone's
	// environment must not turn distlock into a watchdog.
	if os.Getenv(Env) == "" || len(os.Args) != 2 || os.Args[1] != Arg {
		return
	}
	run()
}

// run guards the group distlock names on the pipe, and exits.
func run() {
	// Signals are for the command; the watchdog only listens to the pipe.
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGPIPE)
	// First the group to guard (distlock writes it the moment the command
	// exists), then the all-clear. End of file before the group: distlock
	// died before it started a command.
	pipe := bufio.NewReader(os.NewFile(Fd, "distlock-watchdog"))
	line, err := pipe.ReadString('\n')
	pgid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil || pgid <= 1 {
		os.Exit(0)
	}
	if b, err := pipe.ReadByte(); err != nil || b != AllClear {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	os.Exit(0)
}
