package dial

import (
	"context"
	"net"
	"testing"
)

// TestEtcdctlDiscoverSRV: the SRV records etcdctl reads become endpoints,
// https from _etcd-client-ssl and http from _etcd-client; one kind may be
// missing, not both. The lookup is the resolver's, answered by the test.
func TestEtcdctlDiscoverSRV(t *testing.T) {
	nxdomain := &net.DNSError{Err: "no such host", Name: "example.com", IsNotFound: true}
	tests := []struct {
		name    string
		records map[string][]*net.SRV // by the name looked up
		want    string                // the endpoints, or the error
	}{
		{"both", map[string][]*net.SRV{
			"_etcd-client-ssl._tcp.example.com": {{Target: "e1.example.com.", Port: 2379}, {Target: "e2.example.com.", Port: 2379}},
			"_etcd-client._tcp.example.com":     {{Target: "e3.example.com.", Port: 2380}},
		}, "https://e1.example.com:2379,https://e2.example.com:2379,http://e3.example.com:2380"},
		{"https only", map[string][]*net.SRV{
			"_etcd-client-ssl._tcp.example.com": {{Target: "10.0.0.1", Port: 2379}},
		}, "https://10.0.0.1:2379"},
		{"http only", map[string][]*net.SRV{
			"_etcd-client._tcp.example.com": {{Target: "e3.example.com.", Port: 2379}},
		}, "http://e3.example.com:2379"},
		{"none", map[string][]*net.SRV{},
			"cannot find etcd in the DNS SRV records of example.com (--discovery-srv): _etcd-client-ssl._tcp.example.com, _etcd-client._tcp.example.com: lookup example.com: no such host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
				records, ok := tt.records["_"+service+"._"+proto+"."+name]
				if !ok {
					return "", nil, nxdomain
				}
				return "_" + service + "._" + proto + "." + name + ".", records, nil
			}
			endpoints, err := discoverEndpoints(context.Background(), lookup, "example.com")
			got := joinEndpoints(endpoints)
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
