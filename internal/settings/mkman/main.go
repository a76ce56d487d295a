// Command mkman writes distlock's man page, from the settings table, to
// the file its argument names: go generate runs it (see the module's
// main.go), and settings.TestManPage fails while the committed page is
// not what it writes.
package main

import (
	"fmt"
	"os"

	"github.com/tinx/distlock/internal/settings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkman FILE")
		os.Exit(2)
	}
	if err := os.WriteFile(os.Args[1], []byte(settings.ManPage()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mkman:", err)
		os.Exit(1)
	}
}
