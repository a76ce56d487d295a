package settings

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEtcdctlPrecedence: which source each connection setting comes from,
// and how etcdctl's variables are read.
func TestEtcdctlPrecedence(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "any.pem") // only opened, never parsed here
	if err := os.WriteFile(pem, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "distlock.yaml")
	if err := os.WriteFile(file, []byte("cacert: /from/file.pem\ndiscovery-srv: file.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string // the settings, as got() writes them, or the error
	}{
		{"defaults", nil, nil,
			`endpoints=http://127.0.0.1:2379 (the default) srv= dial-timeout=5s (the default) user= password=""`},
		{"etcdctl's values", []string{"ETCDCTL_ENDPOINTS=a:2379, https://b:2379", "ETCDCTL_DIAL_TIMEOUT=1m30s", "ETCDCTL_USER=u:p:q"}, nil,
			`endpoints=a:2379,https://b:2379 (ETCDCTL_ENDPOINTS) srv= dial-timeout=1m30s (ETCDCTL_DIAL_TIMEOUT) user=u (ETCDCTL_USER) password="p:q" (ETCDCTL_USER)`},
		{"ETCDCTL_PASSWORD keeps the user whole", []string{"ETCDCTL_USER=u:p", "ETCDCTL_PASSWORD=x"}, nil,
			`endpoints=http://127.0.0.1:2379 (the default) srv= dial-timeout=5s (the default) user=u:p (ETCDCTL_USER) password="x" (ETCDCTL_PASSWORD)`},
		{"DISTLOCK_ wins", []string{"DISTLOCK_DIAL_TIMEOUT=2", "ETCDCTL_DIAL_TIMEOUT=1m", "DISTLOCK_USER=d", "DISTLOCK_PASSWORD=dp", "ETCDCTL_USER=u:p"}, nil,
			`endpoints=http://127.0.0.1:2379 (the default) srv= dial-timeout=2s (DISTLOCK_DIAL_TIMEOUT) user=d (DISTLOCK_USER) password="dp" (DISTLOCK_PASSWORD)`},
		{"etcdctl's password never goes with another user", []string{"DISTLOCK_USER=d", "ETCDCTL_USER=u:p"}, nil,
			`user "d" (from DISTLOCK_USER) has no password, and distlock does not ask for one: give it in DISTLOCK_PASSWORD or the config file`},
		{"etcdctl's user never goes with another password", []string{"DISTLOCK_PASSWORD=dp", "ETCDCTL_USER=u", "ETCDCTL_PASSWORD=p"}, nil,
			`endpoints=http://127.0.0.1:2379 (the default) srv= dial-timeout=5s (the default) user= password="dp" (DISTLOCK_PASSWORD)`},
		{"etcdctl's key never goes with another certificate", []string{"DISTLOCK_CERT=" + pem, "ETCDCTL_KEY=" + pem, "ETCDCTL_CACERT=" + pem}, nil,
			`cert=` + pem + ` key= cacert=` + pem + ` (ETCDCTL_CACERT)`},
		{"the config file wins", []string{"DISTLOCK_CONFIG=" + file, "ETCDCTL_CACERT=" + pem, "ETCDCTL_ENDPOINTS=e:2379"}, nil,
			`cert= key= cacert=/from/file.pem (the config file ` + file + `)`},
		{"--discovery-srv wins over lower endpoints", []string{"DISTLOCK_ENDPOINTS=e:2379"}, []string{"--discovery-srv=example.com."},
			`endpoints= (DISTLOCK_ENDPOINTS) srv=example.com (--discovery-srv) dial-timeout=5s (the default) user= password=""`},
		{"discovery-srv in the file wins over ETCDCTL_ENDPOINTS", []string{"DISTLOCK_CONFIG=" + file, "ETCDCTL_ENDPOINTS=e:2379"}, nil,
			`endpoints= (ETCDCTL_ENDPOINTS) srv=file.example (the config file ` + file + `) dial-timeout=5s (the default) user= password=""`},
		{"higher endpoints win over discovery-srv", []string{"DISTLOCK_CONFIG=" + file}, []string{"--endpoints=e:2379"},
			`endpoints=e:2379 (--endpoints) srv= dial-timeout=5s (the default) user= password=""`},
		{"both from one source", []string{"DISTLOCK_ENDPOINTS=e:2379", "DISTLOCK_DISCOVERY_SRV=example.com"}, nil,
			`--endpoints (DISTLOCK_ENDPOINTS) and --discovery-srv (DISTLOCK_DISCOVERY_SRV) both say where etcd is; give one of them`},
		{"a bad domain", nil, []string{"--discovery-srv=https://example.com"},
			`invalid value "https://example.com" for flag --discovery-srv: "https://example.com" is not a DNS domain like example.com`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("DISTLOCK_CONFIG", empty)
			for _, kv := range tt.env {
				name, value, _ := strings.Cut(kv, "=")
				t.Setenv(name, value)
			}
			c, err := parseConfig(append(tt.args, "--lock-name=x", "--", "true"))
			got := ""
			switch {
			case err != nil:
				got = err.Error()
			case strings.HasPrefix(tt.want, "cert="):
				got = fmt.Sprintf("cert=%s key=%s cacert=%s (%s)", c.cert, c.key, c.cacert, c.originOf("cacert"))
			default:
				got = fmt.Sprintf("endpoints=%s (%s) srv=%s dial-timeout=%v (%s) user=%s", strings.Join(c.endpoints, ","), c.originOf("endpoints"),
					c.discoverySrv, c.dialTimeout, c.originOf("dial-timeout"), c.user)
				if c.user != "" {
					got += " (" + c.originOf("user") + ")"
				}
				got += fmt.Sprintf(" password=%q", c.password)
				if c.password != "" {
					got += " (" + c.originOf("password") + ")"
				}
				if c.discoverySrv != "" {
					got = strings.Replace(got, " dial-timeout", " ("+c.originOf("discovery-srv")+") dial-timeout", 1)
				}
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
