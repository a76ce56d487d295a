package blackbox

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tinx/distlock/internal/etcdtest"
)

// TestTLSRefusals runs distlock against an etcd that serves https only and
// demands client certificates, all made up by the test: the right files get
// in, and each wrong one gets status 69 and one line naming the check that
// failed and what to do.
func TestTLSRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	other := newTestCA(t, dir, "other")
	serverCert, serverKey := ca.issue(t, certSpec{name: "server", ips: []net.IP{net.ParseIP("127.0.0.1")},
		// etcd's gateway talks to its own gRPC server with this one too.
		usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	clientUsage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	cert, key := ca.issue(t, certSpec{name: "client", usage: clientUsage})
	strangerCert, strangerKey := other.issue(t, certSpec{name: "client", usage: clientUsage})
	expiredCert, expiredKey := ca.issue(t, certSpec{name: "expired", usage: clientUsage,
		notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})

	etcdtest.SkipShort(t)
	cluster, err := etcdtest.StartTLS(dir,
		transport.TLSInfo{CertFile: serverCert, KeyFile: serverKey, TrustedCAFile: ca.File, ClientCertAuth: true},
		transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: ca.File})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ep := cluster.Endpoint()
	u, err := url.Parse(ep)
	if err != nil {
		t.Fatal(err)
	}
	byName := "https://localhost:" + u.Port() // the certificate names 127.0.0.1 only

	tests := []struct {
		name   string
		env    []string
		args   []string
		status int
		stderr string // a regexp for the one line, or "" for none
	}{
		{"right certificates", nil, []string{"--cacert=" + ca.File, "--cert=" + cert, "--key=" + key}, 0, ""},
		{"right certificates from etcdctl's environment", []string{"ETCDCTL_CACERT=" + ca.File, "ETCDCTL_CERT=" + cert, "ETCDCTL_KEY=" + key}, nil, 0, ""},
		{"no --cacert", nil, []string{"--cert=" + cert, "--key=" + key}, exitUnavailable,
			`^distlock: etcd at ` + ep + `: TLS: etcd's certificate is signed by an unknown authority \(issuer "CN=ca"\): give the certificate of the CA that signed it with --cacert\n$`},
		{"wrong CA", nil, []string{"--cacert=" + other.File, "--cert=" + cert, "--key=" + key}, exitUnavailable,
			`^distlock: etcd at ` + ep + `: TLS: etcd's certificate is signed by an unknown authority \(issuer "CN=ca"\), not by the CA in ` + regexp.QuoteMeta(other.File) + ` \(from --cacert\): give the CA that signed it\n$`},
		{"wrong CA from etcdctl's environment", []string{"ETCDCTL_CACERT=" + other.File, "ETCDCTL_CERT=" + cert, "ETCDCTL_KEY=" + key}, nil, exitUnavailable,
			`^distlock: etcd at ` + ep + `: TLS: .*unknown authority .*, not by the CA in ` + regexp.QuoteMeta(other.File) + ` \(from ETCDCTL_CACERT\): give the CA that signed it\n$`},
		{"no client certificate", nil, []string{"--cacert=" + ca.File}, exitUnavailable,
			`^distlock: etcd at ` + ep + `: TLS: etcd asks for a client certificate, and none was given: give one with --cert and --key\n$`},
		{"no client certificate, logging in", []string{"DISTLOCK_PASSWORD=s3cret"}, []string{"--cacert=" + ca.File, "--user=root"}, exitUnavailable,
			`^distlock: etcd at ` + ep + `: TLS: etcd asks for a client certificate, and none was given: give one with --cert and --key\n$`},
		{"client certificate of another CA", nil, []string{"--cacert=" + ca.File, "--cert=" + strangerCert, "--key=" + strangerKey}, exitUnavailable,
			`^distlock: etcd at ` + ep + `: TLS: etcd refused the client certificate ` + regexp.QuoteMeta(strangerCert) + ` \(from --cert\) with "tls: [a-z ]+": it must be signed by a CA that etcd trusts, be valid now, and allow client authentication\n$`},
		{"expired client certificate", nil, []string{"--cacert=" + ca.File, "--cert=" + expiredCert, "--key=" + expiredKey}, exitUnavailable,
			`^distlock: etcd at ` + ep + `: TLS: etcd refused the client certificate ` + regexp.QuoteMeta(expiredCert) + ` \(from --cert\) with "tls: [a-z ]+": it must be signed`},
		{"name mismatch", []string{"DISTLOCK_ENDPOINTS=" + byName}, []string{"--cacert=" + ca.File, "--cert=" + cert, "--key=" + key}, exitUnavailable,
			`^distlock: etcd at ` + byName + `: TLS: etcd's certificate is for 127\.0\.0\.1, not localhost: use an endpoint with a name the certificate has, or add localhost to the certificate\n$`},
	}
	// One at a time: the etcd runs in this process, under the race
	// detector, and ten handshakes with it at once, beside the other
	// tests, have taken it past the second a refused one is given.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append([]string{"DISTLOCK_ENDPOINTS=" + ep}, tt.env...)
			args := append(tt.args, "--lock-name=tls", "--dial-timeout=1s", "--", "true")
			status, stderr := runDistlock(t, env, args...)
			if status != tt.status {
				t.Errorf("exit %d, want %d; stderr:\n%s", status, tt.status, stderr)
			}
			if tt.stderr == "" && stderr != "" || tt.stderr != "" && !regexp.MustCompile(tt.stderr).MatchString(stderr) {
				t.Errorf("stderr:\n%s\nwant it to match:\n%s", stderr, tt.stderr)
			}
		})
	}
}

// TestTLSExpiredServerCertificate: an etcd whose certificate has expired
// is named as such, with what to do.
func TestTLSExpiredServerCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	serverCert, serverKey := ca.issue(t, certSpec{name: "server", ips: []net.IP{net.ParseIP("127.0.0.1")},
		usage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	etcdtest.SkipShort(t)
	cluster, err := etcdtest.StartTLS(dir,
		transport.TLSInfo{CertFile: serverCert, KeyFile: serverKey, TrustedCAFile: ca.File},
		transport.TLSInfo{TrustedCAFile: ca.File, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ep := cluster.Endpoint()
	status, stderr := runDistlock(t, []string{"DISTLOCK_ENDPOINTS=" + ep}, "--cacert="+ca.File, "--lock-name=tls", "--dial-timeout=1s", "--", "true")
	want := `^distlock: etcd at ` + ep + `: TLS: etcd's certificate has expired or is not valid yet \(x509: certificate has expired or is not yet valid: .*\): renew it, or check this host's clock\n$`
	if status != exitUnavailable || !regexp.MustCompile(want).MatchString(stderr) {
		t.Errorf("exit %d, want %d; stderr:\n%s\nwant it to match:\n%s", status, exitUnavailable, stderr, want)
	}
}

// TestAuthRoleConfinedToRealm: with authentication on, a user whose role
// may read and write one realm only runs distlock there, and anywhere else
// gets status 69 and one line naming what it may not touch and the grant
// that would let it.
func TestAuthRoleConfinedToRealm(t *testing.T) {
	t.Parallel()
	etcdtest.SkipShort(t)
	cluster, err := etcdtest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	realm, elsewhere := testRealm(t)+"ours/", testRealm(t)+"theirs/"
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "r00t"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "distlock-ours"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "distlock-ours", realm, clientv3.GetPrefixRangeEnd(realm), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "app", "app-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "app", "distlock-ours"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	ep := cluster.Endpoint()
	app := []string{"DISTLOCK_ENDPOINTS=" + ep, "DISTLOCK_USER=app", "DISTLOCK_PASSWORD=app-pw"}
	refused := func(access, prefix string) string {
		return `^distlock: etcd at ` + ep + ` refused user "app" ` + access + ` access to ` + regexp.QuoteMeta(prefix) +
			` \(permission denied\): grant the user a role with readwrite on the prefix ` + regexp.QuoteMeta(elsewhere) + `\n$`
	}
	// The history of a run, and its read, are the realm's too.
	if _, stderr, status := runCaptured(t, ep, app, "--prefix="+realm, "--lock-name=hist", "--", "true"); status != 0 || stderr != "" {
		t.Fatalf("a run in its realm: exit %d, stderr:\n%s", status, stderr)
	}
	if out, stderr, status := runCaptured(t, ep, app, "--prefix="+realm, "--lock-name=hist", "--history"); status != 0 || stderr != "" ||
		!regexp.MustCompile(`^token [0-9]+\t.*\treleased at [^\t]+; outcome ran, exit status 0\n$`).MatchString(out) {
		t.Fatalf("--history in its realm: exit %d, stdout:\n%s\nstderr:\n%s", status, out, stderr)
	}
	tests := []struct {
		name   string
		env    []string
		args   []string
		status int
		stderr string
	}{
		{"runs in its realm", app, []string{"--prefix=" + realm, "--lock-name=x", "--", "true"}, 0, ""},
		{"status in its realm", app, []string{"--prefix=" + realm, "--lock-name=x", "--status"}, exitFree, ""},
		{"lists its realm", app, []string{"--prefix=" + realm, "--list"}, 0, ""},
		// The record of --min-interval and the key --min-hold leaves are in
		// the realm too: a failed write would be a line on stderr.
		{"records a run in its realm", app, []string{"--prefix=" + realm, "--lock-name=r", "--min-interval=1h", "--", "true"}, 0, ""},
		{"holds at least in its realm", app, []string{"--prefix=" + realm, "--lock-name=h", "--min-hold=1s", "--", "true"}, 0, ""},
		{"etcdctl's user:password", []string{"ETCDCTL_ENDPOINTS=" + ep, "ETCDCTL_USER=app:app-pw"}, []string{"--prefix=" + realm, "--lock-name=e", "--", "true"}, 0, ""},
		{"runs elsewhere", app, []string{"--prefix=" + elsewhere, "--lock-name=x/y", "--", "true"}, exitUnavailable,
			refused("write", elsewhere+"x%2Fy/")},
		{"status elsewhere", app, []string{"--prefix=" + elsewhere, "--lock-name=x", "--status"}, exitUnavailable,
			refused("read", elsewhere+"x/")},
		{"lists elsewhere", app, []string{"--prefix=" + elsewhere, "--list"}, exitUnavailable,
			refused("read", elsewhere)},
		{"no user", []string{"DISTLOCK_ENDPOINTS=" + ep}, []string{"--prefix=" + realm, "--lock-name=x", "--", "true"}, exitUnavailable,
			`^distlock: etcd at ` + ep + ` wants a user \(authentication is on\): give --user, and its password in DISTLOCK_PASSWORD or the config file\n$`},
		{"wrong password", []string{"DISTLOCK_ENDPOINTS=" + ep, "DISTLOCK_USER=app", "DISTLOCK_PASSWORD=guessed"}, []string{"--prefix=" + realm, "--lock-name=x", "--", "true"}, exitUnavailable,
			`^distlock: etcd at ` + ep + `: user "app" could not log in \(authentication failed, invalid user ID or password\): check the user \(from DISTLOCK_USER\) and the password \(from DISTLOCK_PASSWORD\)\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, stderr := runDistlock(t, tt.env, tt.args...)
			if status != tt.status {
				t.Errorf("exit %d, want %d; stderr:\n%s", status, tt.status, stderr)
			}
			if tt.stderr == "" && stderr != "" || tt.stderr != "" && !regexp.MustCompile(tt.stderr).MatchString(stderr) {
				t.Errorf("stderr:\n%s\nwant it to match:\n%s", stderr, tt.stderr)
			}
			// The passwords themselves: the realm's random part may hold "pw".
			if strings.Contains(stderr, "app-pw") || strings.Contains(stderr, "guessed") {
				t.Errorf("stderr shows a password:\n%s", stderr)
			}
		})
	}
}

// testCA is a certificate authority a test makes up, with files for its
// certificate and for the certificates it signs.
type testCA struct {
	dir  string
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// File is the CA certificate, in PEM, for --cacert or etcd.
	File string
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: dir, name: name, cert: cert, key: key, File: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.File, "CERTIFICATE", der)
	return ca
}

// certSpec says what a certificate the CA signs is for.
type certSpec struct {
	name      string // common name, and the files' base name
	ips       []net.IP
	usage     []x509.ExtKeyUsage
	notBefore time.Time // zero: an hour ago
	notAfter  time.Time // zero: a day from now
}

// issue signs a certificate and returns the files of it and its key.
func (ca *testCA) issue(t *testing.T, spec certSpec) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: spec.name},
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  spec.usage,
		IPAddresses:  spec.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(ca.dir, ca.name+"-"+spec.name+".pem")
	keyFile = filepath.Join(ca.dir, ca.name+"-"+spec.name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func nextSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
