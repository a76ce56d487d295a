package dial

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// reachProbeTimeout bounds whyUnreachable's connections. They come after
// etcd could not be reached in --dial-timeout, so it is short: a
// connection to a host that answers takes a round trip.
const reachProbeTimeout = 500 * time.Millisecond

// whyUnreachable says why etcd did not answer in time, which etcd's
// client does not say (its request only runs out of time): it connects
// to each endpoint as the client would, all at once, and names what
// stood in the way of each (no such host, connection refused, no answer
// at all). When every endpoint takes the connection, etcd itself did not
// answer (a member without a leader, or one that is stuck): err says so.
func whyUnreachable(endpoints []string, err error) string {
	ctx, cancel := context.WithTimeout(context.Background(), reachProbeTimeout)
	defer cancel()
	problems := make([]string, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() { problems[i] = connectProblem(ctx, ep) })
	}
	wg.Wait()
	var said []string
	for i, p := range problems {
		if p != "" {
			said = append(said, endpoints[i]+": "+p)
		}
	}
	if len(said) == 0 {
		return "it takes connections but did not answer (" + err.Error() + ")"
	}
	return strings.Join(said, "; ")
}

// hostPort is where an endpoint (a URL, or host:port already) is
// connected to: its host and port, 2379 if it names none.
func hostPort(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || !strings.Contains(endpoint, "://") {
		return endpoint
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "2379")
	}
	return u.Host
}

// connectProblem connects to endpoint and says what went wrong, or "".
func connectProblem(ctx context.Context, endpoint string) string {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostPort(endpoint))
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		conn.Close()
		return ""
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "no such host " + dnsErr.Name
	case errors.As(err, &dnsErr):
		return "cannot look up " + dnsErr.Name + " (" + dnsErr.Err + ")"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens on that port)"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the host"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer to a connection (a firewall, or the host is down)"
	}
	return err.Error()
}
