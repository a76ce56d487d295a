// Package dial makes distlock's etcd client from the connection settings,
// and tells etcd's errors in words that say what to do.
package dial

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/srv"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tinx/distlock/internal/report"
	"github.com/tinx/distlock/internal/settings"
)

// The client's pings while a request or watch is open: gRPC pings no more
// often than every 10s, and etcd turns away pings closer than 5s.
const (
	keepAliveTime    = 10 * time.Second
	keepAliveTimeout = 5 * time.Second
)

// New makes an etcd client. Without --user it does not talk to etcd yet:
// the first request, bounded by --dial-timeout, finds out whether etcd can
// be reached. With --user the client logs in at once, bounded by
// --dial-timeout, so etcd's answers (unreachable, wrong password) come from
// here. Errors found before any request (TLS files) are usage errors.
// With --discovery-srv, the endpoints are looked up in DNS first.
func New(c *settings.Conn, out *report.Reporter) (*clientv3.Client, error) {
	go warm.Do(warmCodec) // beside the dial
	for _, w := range c.Warnings {
		out.About(report.EventSecret).Warn("warning: %s", w) // even with --quiet: it is about a secret
	}
	if c.DiscoverySrv != "" {
		ctx, cancel := context.WithTimeout(context.Background(), c.DialTimeout)
		endpoints, err := discoverEndpoints(ctx, LookupSRV, c.DiscoverySrv)
		cancel()
		if err != nil {
			return nil, err
		}
		c.Endpoints = endpoints
		out.Debug("etcd at %s (from the DNS SRV records of %s, per %s)",
			joinEndpoints(c.Endpoints), c.DiscoverySrv, c.From("discovery-srv"))
	} else {
		out.Debug("etcd at %s (from %s)", joinEndpoints(c.Endpoints), c.From("endpoints"))
	}
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.DialTimeout,
		// A member that stops answering (frozen, or its machine gone
		// without a word) keeps its TCP connection open: only a ping
		// that gets no answer tells. Without it a watch on that member
		// waits forever while the other requests, and the lease, go on
		// through the members that answer.
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		Username:             c.User,
		Password:             c.Password,
		Logger:               zap.NewNop(),
	}
	tlsConfig, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	cfg.TLS = tlsConfig
	client, err := clientv3.New(cfg)
	if err == nil {
		// gRPC connects at the first request; a caller that has more to
		// do first (exec mode catches its signals) finds it connected.
		client.ActiveConnection().Connect()
	}
	return client, err
}

// Explain says which etcd could not be reached or what it refused, and
// what to do about it.
func Explain(c *settings.Conn, err error) error {
	at := joinEndpoints(c.Endpoints)
	var notFound *discoveryError
	switch {
	case errors.As(err, &notFound):
		return err
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return refusal(err, "etcd at %s refused %s %s (permission denied): grant the user a role with readwrite on the prefix %s",
			at, etcdUser(c), c.Access, c.Realm)
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return refusal(err, "etcd at %s: user %s could not log in (authentication failed, invalid user ID or password): check the user (from %s) and the password (from %s)",
			at, c.ShownUser, c.From("user"), c.From("password"))
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return refusal(err, "etcd at %s wants a user (authentication is on): give --user, and its password in DISTLOCK_PASSWORD or the config file", at)
	case errors.Is(err, context.DeadlineExceeded):
		if ep, problem := tlsProblem(c); problem != nil {
			return refusal(err, "etcd at %s: %v", ep, problem)
		}
		return fmt.Errorf("cannot reach etcd at %s (%s) within %v: %s", at, c.EndpointsFrom, c.DialTimeout, whyUnreachable(c.Endpoints, err))
	}
	return fmt.Errorf("etcd at %s: %w", at, err)
}

// refused is etcd's refusal (wrapped, for the exit status), told in words
// that say what to do.
type refused struct {
	msg string
	err error
}

func refusal(err error, format string, args ...any) error {
	return &refused{msg: fmt.Sprintf(format, args...), err: err}
}

func (r *refused) Error() string { return r.msg }
func (r *refused) Unwrap() error { return r.err }

// etcdUser names the etcd user distlock is to etcd, for a refusal.
func etcdUser(c *settings.Conn) string {
	switch {
	case c.User != "":
		return "user " + c.ShownUser
	case c.Cert != "":
		return "the user of the client certificate " + c.Cert
	}
	return "this client (no --user)"
}

func joinEndpoints(e []string) string { return strings.Join(e, ",") }

// tlsConfig builds the client's TLS settings from etcdctl's flags, or nil
// for plain http endpoints and no TLS flags.
func tlsConfig(c *settings.Conn) (*tls.Config, error) {
	https := false
	for _, e := range c.Endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if c.CACert == "" && c.Cert == "" && c.Key == "" && !c.InsecureSkipTLSVerify {
		if !https {
			return nil, nil
		}
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	switch {
	case c.Cert != "" && c.Key == "":
		return nil, settings.Usagef("--cert (from %s) needs --key: the certificate's key", c.From("cert"))
	case c.Key != "" && c.Cert == "":
		return nil, settings.Usagef("--key (from %s) needs --cert: the certificate of that key", c.From("key"))
	}
	info := transport.TLSInfo{
		CertFile:           c.Cert,
		KeyFile:            c.Key,
		TrustedCAFile:      c.CACert,
		InsecureSkipVerify: c.InsecureSkipTLSVerify,
	}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, settings.Usagef("TLS: %v", err)
	}
	return cfg, nil
}

// LookupSRV is the resolver's SRV lookup, which --discovery-srv asks;
// tests replace it.
var LookupSRV = net.DefaultResolver.LookupSRV

// discoveryError is --discovery-srv finding no etcd in DNS.
type discoveryError struct {
	domain string
	err    error
}

func (e *discoveryError) Error() string {
	return fmt.Sprintf("cannot find etcd in the DNS SRV records of %s (--discovery-srv): %v", e.domain, e.err)
}

func (e *discoveryError) Unwrap() error { return e.err }

// joined is errors.Join on one line: each different message once, "; "
// between them.
type joined []error

func (j joined) Error() string {
	var msgs []string
	for _, err := range j {
		if !slices.Contains(msgs, err.Error()) {
			msgs = append(msgs, err.Error())
		}
	}
	return strings.Join(msgs, "; ")
}

func (j joined) Unwrap() []error { return j }

// discoverEndpoints finds etcd's client URLs as etcdctl does: the SRV
// records _etcd-client-ssl._tcp.DOMAIN give https endpoints, and
// _etcd-client._tcp.DOMAIN http ones. Either may be missing, not both.
func discoverEndpoints(ctx context.Context, lookup func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error), domain string) ([]string, error) {
	var endpoints, looked []string
	var errs []error
	for _, scheme := range []string{"https", "http"} {
		service := srv.GetSRVService("etcd-client", "", scheme)
		looked = append(looked, "_"+service+"._tcp."+domain)
		_, records, err := lookup(ctx, service, "tcp", domain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range records {
			host := strings.TrimSuffix(r.Target, ".")
			endpoints = append(endpoints, (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(int(r.Port)))}).String())
		}
	}
	if len(endpoints) == 0 {
		var err error = joined(errs)
		if len(errs) == 0 {
			err = errors.New("no records")
		}
		return nil, &discoveryError{domain, fmt.Errorf("%s: %w", strings.Join(looked, ", "), err)}
	}
	return endpoints, nil
}

// tlsProbeTimeout bounds tlsProblem's handshakes. They come after etcd
// could not be reached in --dial-timeout, so it is short: a handshake with
// a server that answers takes a round trip or two.
const tlsProbeTimeout = time.Second

// tlsProblem finds out why etcd could not be reached over TLS, which etcd's
// client does not say (it only runs out of time): it shakes hands with each
// TLS endpoint as the client does, all at once, and returns the first
// endpoint's failed check, in words that say what to do, or nil if no
// handshake failed.
func tlsProblem(c *settings.Conn) (endpoint string, problem error) {
	cfg, err := tlsConfig(c)
	if err != nil || cfg == nil {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(tlsProbeTimeout, c.DialTimeout))
	defer cancel()
	problems := make([]error, len(c.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range c.Endpoints {
		if strings.HasPrefix(ep, "http://") {
			continue // etcd's client speaks plain TCP to http:// endpoints
		}
		addr := hostPort(ep)
		wg.Go(func() { problems[i] = handshake(ctx, c, cfg, addr) })
	}
	wg.Wait()
	for i, problem := range problems {
		if problem != nil {
			return c.Endpoints[i], problem
		}
	}
	return "", nil
}

// handshake shakes hands with addr and says which check failed, if any.
func handshake(ctx context.Context, c *settings.Conn, cfg *tls.Config, addr string) error {
	cfg = cfg.Clone()
	asked := false // whether etcd asked for a client certificate
	ours, certs := cfg.GetClientCertificate, cfg.Certificates
	cfg.GetClientCertificate = func(req *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked = true
		switch {
		case ours != nil:
			return ours(req)
		case len(certs) > 0:
			return &certs[0], nil
		}
		return &tls.Certificate{}, nil
	}
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	var alert *net.OpError // etcd's refusal, rather than ours
	switch {
	case err != nil && !(errors.As(err, &alert) && alert.Op == "remote error"):
		return tlsFailure(c, err) // etcd's certificate, or no TLS at all
	case asked && c.Cert == "":
		return errors.New("TLS: etcd asks for a client certificate, and none was given: give one with --cert and --key")
	case err != nil:
		return tlsFailure(c, err)
	case !asked:
		conn.Close()
		return nil
	}
	defer conn.Close()
	// With TLS 1.3, etcd checks the client's certificate after the
	// handshake and answers the first read with an alert if it refuses it;
	// if it accepts it, it waits for us and the read runs out of time.
	deadline, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(deadline)
	_, err = conn.Read(make([]byte, 1))
	return tlsFailure(c, err)
}

// tlsFailure says which check of a TLS handshake failed, or nil if err is
// no TLS failure.
func tlsFailure(c *settings.Conn, err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
		alert    *net.OpError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unknown):
		issuer := ""
		if unknown.Cert != nil {
			issuer = fmt.Sprintf(" (issuer %q)", unknown.Cert.Issuer.String())
		}
		if c.CACert == "" {
			return fmt.Errorf("TLS: etcd's certificate is signed by an unknown authority%s: give the certificate of the CA that signed it with --cacert", issuer)
		}
		return fmt.Errorf("TLS: etcd's certificate is signed by an unknown authority%s, not by the CA in %s (from %s): give the CA that signed it",
			issuer, c.CACert, c.From("cacert"))
	case errors.As(err, &hostname):
		var names []string
		if cert := hostname.Certificate; cert != nil {
			names = append(names, cert.DNSNames...)
			for _, ip := range cert.IPAddresses {
				names = append(names, ip.String())
			}
		}
		if len(names) == 0 {
			names = []string{"no host"}
		}
		return fmt.Errorf("TLS: etcd's certificate is for %s, not %s: use an endpoint with a name the certificate has, or add %s to the certificate",
			strings.Join(names, ", "), hostname.Host, hostname.Host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("TLS: etcd's certificate has expired or is not valid yet (%v): renew it, or check this host's clock", invalid)
	case errors.As(err, &invalid):
		return fmt.Errorf("TLS: etcd's certificate was refused (%v)", invalid)
	case errors.As(err, &header):
		return errors.New("TLS: etcd does not speak TLS at this endpoint: use http:// for it, or turn on TLS in etcd")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		// etcd without TLS hangs up on a TLS hello rather than answer.
		return errors.New("TLS: etcd hung up at the TLS handshake: it speaks plain HTTP at this endpoint, most likely; use http:// for it, or turn on TLS in etcd")
	case errors.As(err, &alert) && alert.Op == "remote error":
		if c.Cert == "" {
			return fmt.Errorf("TLS: etcd refused the handshake (%v)", alert.Err)
		}
		return fmt.Errorf("TLS: etcd refused the client certificate %s (from %s) with %q: it must be signed by a CA that etcd trusts, be valid now, and allow client authentication",
			c.Cert, c.From("cert"), alert.Err)
	}
	return nil
}
