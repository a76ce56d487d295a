//go:build distlock_stamps

package stamp

import (
	"fmt"
	"os"
	"sync"
)

// Enabled says whether this build keeps stamps.
const Enabled = true

var (
	mu    sync.Mutex
	lines []byte
)

// At keeps a line for step, now.
func At(step string) { AtRev(step, 0) }

// AtRev keeps a line for step, now, with etcd's revision rev.
func AtRev(step string, rev int64) {
	now := Mono()
	mu.Lock()
	lines = AppendLine(lines, step, os.Getpid(), now, rev)
	mu.Unlock()
}

// Flush writes the lines kept so far to the file DISTLOCK_STAMPS_FILE
// names, if it names one: at the process's end, off the steps' path.
func Flush() {
	path := os.Getenv(FileVar)
	mu.Lock()
	defer mu.Unlock()
	if path == "" || len(lines) == 0 {
		return
	}
	if err := Write(path, lines); err != nil {
		fmt.Fprintf(os.Stderr, "stamps: %v\n", err)
	}
	lines = lines[:0]
}
