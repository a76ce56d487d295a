package settings

import (
	"os"
	"strings"
	"testing"
)

// TestMain keeps the etcdctl settings of the shell the tests run from
// away from them: every test says what distlock sees.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "ETCDCTL_") {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}
