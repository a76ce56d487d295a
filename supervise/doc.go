// Package supervise runs the command distlock holds a lock for, the way tini
// runs a container's command: in a process group of its own, with the
// terminal handed over when distlock has it, killed by the kernel if
// distlock dies, with every orphan reaped by one loop, and with nothing of it
// left running when it is over.
package supervise
