// Command mark is what the handoff benchmark (internal/bench) runs under
// a lock: it stamps its start and its end (see internal/stamp) into the
// file DISTLOCK_STAMPS_FILE names, as "command-start" and "command-exit",
// under the pid of its parent (the lock tool that started it, whose own
// stamps carry the same pid), and exits 0. Both lines go out in one
// write, after the second moment.
//
//	mark [HOLD]
//
// HOLD, a Go duration, is how long it holds the lock between the two
// (none by default).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/tinx/distlock/internal/stamp"
)

func main() {
	start := stamp.Mono()
	path := os.Getenv(stamp.FileVar)
	if path == "" || len(os.Args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: "+stamp.FileVar+"=FILE mark [HOLD]")
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		hold, err := time.ParseDuration(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "mark:", err)
			os.Exit(2)
		}
		time.Sleep(hold) // the command's work
	}
	tool := os.Getppid()
	lines := stamp.AppendLine(nil, "command-start", tool, start, 0)
	lines = stamp.AppendLine(lines, "command-exit", tool, stamp.Mono(), 0)
	if err := stamp.Write(path, lines); err != nil {
		fmt.Fprintln(os.Stderr, "mark:", err)
		os.Exit(2)
	}
}
