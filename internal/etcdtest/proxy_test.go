package etcdtest

import (
	"io"
	"net"
	"net/url"
	"testing"
	"time"
)

// TestProxyOutlivesDownTarget: a proxy whose target was down for many
// connection attempts forwards again once the target is back, as a member
// that crashed and restarted is reached again through it.
func TestProxyOutlivesDownTarget(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the target is down
	p, err := NewProxy("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	from, _ := url.Parse(p.URL())
	for i := 0; i < 40; i++ { // more than the proxy keeps errors for
		c, err := net.Dial("tcp", from.Host)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if l, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the target's port was taken meanwhile: %v", err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", from.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan string, 1)
	go func() {
		// Connections the proxy took while the target was down may reach
		// it now, empty: look for the one that carries the ping.
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			b := make([]byte, 4)
			_, err = io.ReadFull(in, b)
			in.Close()
			if err == nil {
				accepted <- string(b)
				return
			}
		}
	}()
	select {
	case got := <-accepted:
		if got != "ping" {
			t.Fatalf("target got %q, want ping", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not forward to its target within 10s after it came back")
	}
}
