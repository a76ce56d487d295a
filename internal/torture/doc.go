// Package torture holds the torture tests. In the fault test
// (torture_test.go), real distlock processes on simulated hosts contend for
// two plain locks (shared and exclusive holders), a set of both, and a
// semaphore on a three-member etcd cluster while faults are thrown at
// them; in the key-space test (keyspace_test.go), they contend
// for twelve locks in realms that nest, beside etcd's own recipe, --unlock
// from outside and keys of odd shapes written by hand. A checker proves
// from the commands' own records that no lock was ever held by more than
// it allows. The command that runs under the lock is ./worker.
package torture

import "golang.org/x/sys/unix"

// Mono reads the system's monotonic clock, the same in every process on
// the machine and never set back: the records of different processes
// compare.
func Mono() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // CLOCK_MONOTONIC exists on every Linux
	}
	return ts.Nano()
}
