package stamp

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestAppendLine(t *testing.T) {
	var buf []byte
	buf = AppendLine(buf, "woken", 42, 1234567890, 77)
	buf = AppendLine(buf, "exit-seen", 42, 1234567999, 0)
	if want := "woken 42 1234567890 77\nexit-seen 42 1234567999\n"; string(buf) != want {
		t.Errorf("lines %q, want %q", buf, want)
	}
}

// TestAtFlush: with the tag, what At keeps is appended to the file;
// without it, nothing is.
func TestAtFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stamps")
	if err := os.WriteFile(path, []byte("earlier 1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(FileVar, path)
	At("release-sent")
	AtRev("release-done", 9)
	Flush()
	Flush() // nothing twice
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(os.Getpid())
	want := []string{`^earlier 1 1$`}
	if Enabled {
		want = append(want, `^release-sent `+pid+` \d+$`, `^release-done `+pid+` \d+ 9$`)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("the file holds %d lines, want %d:\n%s", len(lines), len(want), data)
	}
	for i, line := range lines {
		if !regexp.MustCompile(want[i]).MatchString(line) {
			t.Errorf("line %d is %q, want %s", i+1, line, want[i])
		}
	}
}
