package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// dial makes an etcd client. Without --user it does not talk to etcd yet:
// the first request, bounded by --dial-timeout, finds out whether etcd can
// be reached. With --user the client logs in at once, bounded by
// --dial-timeout, so etcd's answers (unreachable, wrong password) come from
// here. Errors found before any request (TLS files) are usage errors.
func dial(c *config) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   c.endpoints,
		DialTimeout: c.dialTimeout,
		Username:    c.user,
		Password:    c.password,
		Logger:      zap.NewNop(),
	}
	tlsConfig, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	cfg.TLS = tlsConfig
	return clientv3.New(cfg)
}

// etcdError says which etcd could not be reached or what it refused.
func etcdError(c *config, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot reach etcd at %s within %v: %w", joinEndpoints(c.endpoints), c.dialTimeout, err)
	}
	return fmt.Errorf("etcd at %s: %w", joinEndpoints(c.endpoints), err)
}

func joinEndpoints(e []string) string { return strings.Join(e, ",") }

// tlsConfig builds the client's TLS settings from etcdctl's flags, or nil
// for plain http endpoints and no TLS flags.
func (c *config) tlsConfig() (*tls.Config, error) {
	https := false
	for _, e := range c.endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if c.cacert == "" && c.cert == "" && c.key == "" && !c.insecureSkipTLSVerify {
		if !https {
			return nil, nil
		}
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	if (c.cert == "") != (c.key == "") {
		return nil, usagef("--cert and --key go together")
	}
	info := transport.TLSInfo{
		CertFile:           c.cert,
		KeyFile:            c.key,
		TrustedCAFile:      c.cacert,
		InsecureSkipVerify: c.insecureSkipTLSVerify,
	}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, usagef("TLS: %v", err)
	}
	return cfg, nil
}
