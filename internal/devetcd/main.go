// Command devetcd starts a throwaway single-member etcd on 127.0.0.1, runs
// a command with DISTLOCK_ENDPOINTS pointing at it, and removes etcd and its
// data when the command ends. Without a command it serves until Ctrl-C.
//
//	go run ./internal/devetcd -- go run . --lock-name=demo -- echo hello
//
// Started by etcdtest.StartProcessCluster, it is one member of a test
// cluster instead: the torture test builds it without the race detector,
// so that its members run at etcd's own speed.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/tinx/distlock/internal/etcdtest"
)

func main() {
	if etcdtest.IsMember() {
		etcdtest.MemberMain()
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	dir, err := os.MkdirTemp("", "devetcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "devetcd:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cluster, err := etcdtest.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devetcd:", err)
		return 1
	}
	defer cluster.Close()
	fmt.Fprintf(os.Stderr, "devetcd: throwaway etcd at %s\n", cluster.Endpoint())

	// Ctrl-C and TERM are for the command; devetcd cleans up after it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "devetcd: export DISTLOCK_ENDPOINTS=%s in another shell; Ctrl-C stops etcd\n", cluster.Endpoint())
		<-sigs
		return 0
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "DISTLOCK_ENDPOINTS="+cluster.Endpoint(), "DISTLOCK_CONFIG=/dev/null")
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "devetcd:", err)
		return 1
	}
	return 0
}
