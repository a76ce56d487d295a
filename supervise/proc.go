package supervise

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// procStat is what distlock reads of a process in /proc/PID/stat.
type procStat struct {
	pid, ppid, pgrp int
	state           byte // R, S, D, T, t, Z, ...
}

// readStat reads /proc/PID/stat of one process; ok is false if it is gone.
func readStat(pid int) (st procStat, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, false
	}
	// After the command's name, which may contain anything: state, ppid,
	// pgrp.
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	if len(f) < 3 || len(f[0]) == 0 {
		return st, false
	}
	st.pid = pid
	st.state = f[0][0]
	st.ppid, _ = strconv.Atoi(string(f[1]))
	st.pgrp, _ = strconv.Atoi(string(f[2]))
	return st, true
}

// everyProcess calls fn for every process in /proc.
func everyProcess(fn func(procStat)) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			fn(st)
		}
	}
}

// stopped reports whether process pid is stopped.
func stopped(pid int) bool {
	st, ok := readStat(pid)
	return ok && (st.state == 'T' || st.state == 't')
}
