package settings

import (
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The seeds below are the forms each parser documents; the corpus under
// testdata/fuzz holds more, and whatever fuzzing found.

// FuzzSpan: the values of --timeout, --ttl, --kill-after, --dial-timeout,
// --min-interval and --min-hold (and ETCDCTL_DIAL_TIMEOUT). None panics,
// every error is one line, what is accepted is in range, and the value as
// --help would show it reads back as the same value.
func FuzzSpan(f *testing.F) {
	for _, s := range []string{"30", "1.5", "0", "-1", "-0", "-1.0", "90s", "5m", "1h30m", "250ms", " 7 ", "", "soon", "1e300", "-1e300", "NaN", "Inf", "0x10", "1_000", ".5", "5.", "9223372036s", "-2562047h47m16.854775808s", "1µs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseWait(s); err != nil {
			checkOneLine(t, "parseWait", err)
		} else if back, err := parseWait(d.String()); err != nil || back != d {
			t.Fatalf("parseWait(%q) = %v, which reads back as %v, %v", s, d, back, err)
		}

		var timeout time.Duration
		if err := (*waitValue)(&timeout).Set(s); err != nil {
			checkOneLine(t, "--timeout", err)
		} else {
			if timeout < 0 && timeout != -time.Second {
				t.Fatalf("--timeout %q gives %v: only -1 may be negative", s, timeout)
			}
			checkReadsBack(t, "--timeout", s, (*waitValue)(&timeout), func() time.Duration { return timeout })
		}

		var span time.Duration // --ttl, --kill-after, --dial-timeout, --min-interval, --min-hold
		if err := (*durationValue)(&span).Set(s); err != nil {
			checkOneLine(t, "--ttl", err)
		} else {
			if span < 0 {
				t.Fatalf("--ttl %q gives %v", s, span)
			}
			checkReadsBack(t, "--ttl", s, (*durationValue)(&span), func() time.Duration { return span })
		}

		dial, _ := settingNamed("dial-timeout")
		c := &config{}
		if err := readEtcdctlValue(dial, s, c.bind(), origins{}); err != nil {
			checkOneLine(t, "ETCDCTL_DIAL_TIMEOUT", err)
		} else if c.dialTimeout <= 0 {
			t.Fatalf("ETCDCTL_DIAL_TIMEOUT=%q gives %v", s, c.dialTimeout)
		}
	})
}

// checkReadsBack sets v to what it shows (String) and checks that the
// value stays the same.
func checkReadsBack(t *testing.T, what, s string, v flag.Value, get func() time.Duration) {
	t.Helper()
	before, shown := get(), v.String()
	if err := v.Set(shown); err != nil || get() != before {
		t.Fatalf("%s %q gives %v, shown as %q, which reads back as %v, %v", what, s, before, shown, get(), err)
	}
}

// FuzzEndpoint: an endpoint, from --endpoints or ETCDCTL_ENDPOINTS. None
// panics, every error is one line, and what is accepted is an http or
// https URL with a host, or a host:port that is one after "http://";
// normalizing it again changes nothing.
func FuzzEndpoint(f *testing.F) {
	for _, e := range []string{"http://127.0.0.1:2379", "https://etcd1.prod:2379/", "etcd1:2379", " 10.0.0.1:2379 ", "[::1]:2379", "http://[::1]:2379",
		"", "ftp://x:1", "http://", "http://x:1/v3/kv", "a b", "unix://x", "http://user:pw@x:1", "x:1?y", "x:1#y", "@x:1", "http://x:1?q", "http://x:bad", "HTTP://X:1"} {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, e string) {
		n, err := normalizeEndpoint(e)
		if err != nil {
			checkOneLine(t, "normalizeEndpoint", err)
		} else {
			asURL := n
			if !strings.Contains(n, "://") {
				asURL = "http://" + n
			}
			u, err := url.Parse(asURL)
			switch {
			case err != nil:
				t.Fatalf("normalizeEndpoint(%q) = %q, not a URL: %v", e, n, err)
			case u.Scheme != "http" && u.Scheme != "https":
				t.Fatalf("normalizeEndpoint(%q) = %q, scheme %q", e, n, u.Scheme)
			case u.Host == "" || u.Hostname() == "":
				t.Fatalf("normalizeEndpoint(%q) = %q, with no host", e, n)
			case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
				t.Fatalf("normalizeEndpoint(%q) = %q, with more than a host: %#v", e, n, u)
			}
			if again, err := normalizeEndpoint(n); err != nil || again != n {
				t.Fatalf("normalizeEndpoint(%q) = %q, and again %q, %v", e, n, again, err)
			}
		}

		eps, _ := settingNamed("endpoints")
		if err := readEtcdctlValue(eps, e, (&config{}).bind(), origins{}); err != nil {
			checkOneLine(t, "ETCDCTL_ENDPOINTS", err)
		}
	})
}

// FuzzConfigFile: the YAML config file. Whatever it holds, reading it does
// not panic, and every error is one line that starts "config file PATH";
// an error about a key's value names the key.
func FuzzConfigFile(f *testing.F) {
	for _, y := range []string{
		"", "reason: deploy\n", "endpoints: [a:1, b:2]\nttl: 60s\n", "lockname: old\nlock-name: new\n",
		"timeout: soon\n", "config: other.yaml\n", "nope: 1\n", "reason: [1, [2, 3]]\n", "a:\n  b: c\n",
		"- x\n", "reason: a\nreason: b\n", "reason: a\n---\nreason: b\n", "!!binary x: y\n", "? [a]\n: b\n", "{",
		"ttl: 1\nkill-signal: NOPE\n", "reason: &a x\nuser: *a\n", "reason: !!timestamp 2001-12-14\n",
	} {
		f.Add([]byte(y))
	}
	path := filepath.Join(f.TempDir(), "distlock.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c := &config{}
		err := readConfigFile(path, true, c.bind(), map[string]bool{}, origins{})
		if err == nil {
			return
		}
		checkOneLine(t, "readConfigFile", err)
		var bad *usageError
		if !errors.As(err, &bad) || !strings.HasPrefix(err.Error(), "config file "+path) {
			t.Fatalf("%q: error %q (%T) is not a usage error about the file", data, err, err)
		}
		if strings.Contains(err.Error(), "bad value") && !strings.Contains(err.Error(), `key "`) {
			t.Fatalf("%q: error %q names no key", data, err)
		}
	})
}

// checkOneLine fails t if err's message is not one line: empty, more
// than one, or with blanks at either end.
func checkOneLine(t *testing.T, what string, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || strings.ContainsAny(msg, "\n\r") || strings.TrimSpace(msg) != msg {
		t.Fatalf("%s: the error is not one line: %q", what, msg)
	}
}
