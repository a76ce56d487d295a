// Package stamp times the steps of a lock's handoff for the benchmarks
// (internal/bench): a distlock built with the tag distlock_stamps keeps
// a line for each step it passes and writes them all at its end to the
// file that DISTLOCK_STAMPS_FILE names. Built without the tag, as it
// ships, At and AtRev are empty and inlined away: they cost nothing.
//
// A line is "STEP PID NS" or "STEP PID NS REV": the step's name, the
// process, the moment on CLOCK_MONOTONIC (one clock for every process on
// the machine) in nanoseconds, and etcd's revision where the step has
// one (an answer's header, a watch event's). Lines go to the file in one
// write(2) with O_APPEND, so the lines of processes that end together
// never mix.
package stamp

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// FileVar names the environment variable with the file the lines go to.
const FileVar = "DISTLOCK_STAMPS_FILE"

// Mono reads CLOCK_MONOTONIC, in nanoseconds.
func Mono() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // CLOCK_MONOTONIC exists on every Linux
	}
	return ts.Nano()
}

// AppendLine appends the line of step to buf (rev 0: none).
func AppendLine(buf []byte, step string, pid int, ns, rev int64) []byte {
	buf = append(buf, step...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(pid), 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, ns, 10)
	if rev != 0 {
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, rev, 10)
	}
	return append(buf, '\n')
}

// Write appends lines to the file at path in one write(2).
func Write(path string, lines []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(lines)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
